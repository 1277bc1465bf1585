"""Extraction speed of `asl extract` on the real sign videos (tests/data/pose-format): frames/s per core.

Two measurements, each the median of `--rounds` rounds:
1. MediaPipe Holistic in this process (`extract_video`, what `--workers 1`, predict and show run): wall
   frames/s, and frames per CPU-second (process CPU time, all of MediaPipe's threads counted) = frames/s
   per core when the cores are busy.
2. The whole job (`asl_cli.extract.job.extract`, `--force`) with 1 and 2 worker processes on `--copies`
   copies of each video (each copy has a few bytes appended, which decoders ignore, so that its content hash,
   hence its sequence id, differs: the job extracts every copy): wall frames/s including process start-up,
   MediaPipe's import and the parquet writes.

Usage: python benchmarks/bench_extract.py [--rounds 5] [--copies 3] [--complexity 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

VIDEOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pose-format"
FILES = (VIDEOS / "FOOTBALL.mp4", VIDEOS / "test_video.mp4")


def in_process(rounds: int, settings) -> None:
    from asl_cli.extract.holistic import extract_video

    extract_video(FILES[0], settings)  # warm: the import, the model files in the page cache
    for path in FILES:
        wall, per_cpu = [], []
        for _ in range(rounds):
            w0, c0 = time.perf_counter(), time.process_time()
            frames = extract_video(path, settings).shape[0]
            w, c = time.perf_counter() - w0, time.process_time() - c0
            wall.append(frames / w)
            per_cpu.append(frames / c)
        print(f"  {path.name:15s} {frames:3d} frames   {statistics.median(wall):5.1f} frames/s wall   "
              f"{statistics.median(per_cpu):5.1f} frames per CPU-second   (rounds: "
              f"{', '.join(f'{x:.1f}' for x in wall)})")


def whole_job(rounds: int, copies: int, settings) -> None:
    from asl_cli.extract.inputs import Input
    from asl_cli.extract.job import extract

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        inputs = []
        for path in FILES:
            for i in range(copies):
                copy = Path(tmp) / f"{path.stem}-{i}{path.suffix}"
                copy.write_bytes(path.read_bytes() + b"\0" * (i + 1))
                inputs.append(Input(copy, None, 0))
        for workers in (1, 2):
            rates = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                summary = extract(inputs, Path(tmp) / "out", settings=settings, workers=workers, force=True)
                rates.append(summary.frames_extracted / (time.perf_counter() - t0))
            print(f"  workers {workers}: {summary.frames_extracted} frames, {statistics.median(rates):5.1f} frames/s "
                  f"wall (rounds: {', '.join(f'{x:.1f}' for x in rates)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--complexity", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args()
    from importlib import metadata

    from asl_cli.extract.holistic import HolisticSettings

    settings = HolisticSettings(model_complexity=args.complexity)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; mediapipe {metadata.version('mediapipe')}, "
          f"model complexity {args.complexity}, {args.rounds} rounds")
    print("MediaPipe Holistic in this process:")
    in_process(args.rounds, settings)
    print(f"the whole job ({args.copies} copies of each video, --force):")
    whole_job(args.rounds, args.copies, settings)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
