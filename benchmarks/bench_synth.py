"""Synthetic data generation: the default set end to end, and the row_id column builders side by side.

1. The default set (`SynthConfig()`: 20 signs x 12 participants x 10 repetitions) written into a
   temporary folder with 1 and with 2 worker processes, interleaved, `--rounds` times each: wall
   time, sequences/s, size on disk, and whether both outputs are byte-identical.
2. Building the `row_id` column ("<frame>-<type>-<index>", 543 strings per frame) for a sequence
   of 21 frames: the numpy byte template `landmark_writer._RowIds` vs pyarrow cast + binary_join vs Python
   f-strings converted to an Arrow array (median of `--reps` timings).

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_synth.py [--rounds 2] [--reps 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def default_set(rounds: int) -> None:
    from asl_cli.config import SynthConfig
    from asl_cli.data import synth

    cfg = SynthConfig()
    times: dict[int, list[float]] = {1: [], 2: []}
    digests: dict[int, str] = {}
    summary = None
    for _ in range(rounds):
        for workers in (1, 2):
            tmp = Path(tempfile.mkdtemp(prefix="bench-synth-"))
            try:
                started = time.perf_counter()
                summary = synth.generate(tmp / "set", num_signs=cfg.num_signs, num_participants=cfg.num_participants,
                                         repetitions=cfg.repetitions, seed=cfg.seed, workers=workers)
                times[workers].append(time.perf_counter() - started)
                digests[workers] = tree_digest(tmp / "set")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    assert summary is not None
    print(f"default set: {summary.sequences} sequences, {summary.frames} frames, {summary.bytes / 1e6:.1f} MB")
    for workers, ts in times.items():
        med = statistics.median(ts)
        print(f"  workers={workers}: median {med:.1f} s over {len(ts)} round(s) "
              f"({summary.sequences / med:.0f} sequences/s), all: {', '.join(f'{t:.1f}' for t in ts)}")
    print(f"  speed-up 2 vs 1 workers: {statistics.median(times[1]) / statistics.median(times[2]):.2f}x; "
          f"identical output: {digests[1] == digests[2]}")


def row_ids(reps: int) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from asl_cli.data import landmark_writer

    _, _, suffix = landmark_writer._row_layout()
    frames = np.arange(37, 58, dtype=np.int16)  # 21 frames, the default set's mean length
    template = landmark_writer._RowIds(suffix)
    suffix_arr = pa.array(suffix * len(frames))

    def numpy_template():
        return template.build(frames)

    def arrow_join():
        numbers = pa.array(np.repeat(frames, len(suffix)))
        return pc.binary_join_element_wise(pc.cast(numbers, pa.string()), suffix_arr, "")

    def python_fstrings():
        return pa.array([f"{f}{s}" for f in frames.tolist() for s in suffix], type=pa.string())

    expected = python_fstrings()
    variants = {"numpy byte template (used)": numpy_template, "pyarrow cast + join": arrow_join,
                "python f-strings": python_fstrings}
    results: dict[str, list[float]] = {k: [] for k in variants}
    for name, fn in variants.items():
        assert fn().equals(expected), name
    for _ in range(reps):  # interleaved, so load changes hit all variants alike
        for name, fn in variants.items():
            started = time.perf_counter()
            fn()
            results[name].append(time.perf_counter() - started)
    base = statistics.median(results["numpy byte template (used)"])
    print(f"row_id column, {len(frames)} frames ({len(frames) * len(suffix)} strings), median of {reps}:")
    for name, ts in results.items():
        med = statistics.median(ts)
        print(f"  {name:28s} {med * 1e3:7.3f} ms  ({med / base:.1f}x the template)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    row_ids(args.reps)
    default_set(args.rounds)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
