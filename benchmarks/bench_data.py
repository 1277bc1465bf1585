"""Data pipeline throughput, one process: naive per-sample pandas reading vs the prepared cache.

(a) naive: per sample, `pandas.read_parquet` -> (T, 543, 3) -> 118 points -> `preprocess`
(b) cache: `SignDataset` over the prepared cache (memory map) -> `preprocess` -> `collate`
    in length-bucketed batches of 64 (what a DataLoader worker does, minus the worker)

Both run over the real sample (its length distribution: 2-108 frames, median 14), in alternating
short rounds, in one process with one thread. The best round of each is reported (as timeit
does: the least disturbed by other processes on a shared machine), with the median next to it,
and the ratio of the best rounds.
Goals (issue 2): b/a >= 50 and b >= 10,000 samples/s per core.
Usage: OMP_NUM_THREADS=1 python benchmarks/bench_data.py [--data DIR] [--rounds 5] [--seconds 1.5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/asl-signs-sample"


def naive_round(files: list[Path], max_len: int, seconds: float) -> float:
    import pandas as pd

    from asl_cli.data.preprocess import POINT_INDEX, preprocess

    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for f in files:
            df = pd.read_parquet(f)
            frames = df[["x", "y", "z"]].to_numpy().reshape(-1, 543, 3).astype(np.float32)
            preprocess(frames[:, POINT_INDEX], max_len)
            done += 1
    return done / (time.perf_counter() - t0)


def cache_round(cache, max_len: int, batch_size: int, bucket_step: int, seconds: float,
                epoch: int) -> float:
    from asl_cli.data.dataset import LengthBucketBatchSampler, SignDataset, collate

    ds = SignDataset(cache, np.arange(len(cache)), max_len=max_len)
    sampler = LengthBucketBatchSampler(np.minimum(cache.lengths, max_len), batch_size, shuffle=True, seed=0)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        sampler.set_epoch(epoch)
        epoch += 1
        for batch in sampler:
            out = collate([ds[item] for item in batch], bucket_step=bucket_step, max_len=max_len)
            done += out["labels"].shape[0]
    return done / (time.perf_counter() - t0)


def preprocess_round(cache, max_len: int, seconds: float) -> float:
    from asl_cli.data.preprocess import preprocess

    pts = [cache.points(i) for i in range(len(cache))]
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for p in pts:
            preprocess(p, max_len, drop_nan_frames=False)
        done += len(pts)
    return done / (time.perf_counter() - t0)


def full_scale_open(tmp: Path, n: int = 94_477, mean_frames: int = 40) -> tuple[float, float]:
    """Seconds to open a cache the size of the full data set, and its points.npy size in GB.

    The index is real-sized (paths like Kaggle's); points.npy is a sparse file of the full size
    (memory-mapped, so its size does not change the open time; no disk space is used).
    """
    import json

    from asl_cli.data import cache as cm

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 2 * mean_frames, size=n)
    offsets = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    folder = tmp / "full-scale"
    folder.mkdir()
    total = int(lengths.sum())
    with open(folder / cm.POINTS_FILE, "wb") as fh:
        fh.write(cm._npy_header((total, 118, 2)))
        fh.truncate(cm.NPY_HEADER_BYTES + total * 118 * 2 * 4)
    participants = rng.integers(0, 21, size=n) + 16000
    sequence_ids = rng.integers(1_000_000, 4_000_000_000, size=n)
    np.savez(folder / cm.INDEX_FILE, offsets=offsets, lengths=lengths, labels=rng.integers(0, 250, size=n),
             participants=participants, sequence_ids=sequence_ids,
             paths=np.array([f"train_landmark_files/{p}/{s}.parquet" for p, s in zip(participants, sequence_ids)]))
    meta = {"format": cm.CACHE_FORMAT_VERSION, "sign_map": {f"sign{i}": i for i in range(250)}}
    (folder / cm.META_FILE).write_text(json.dumps(meta))
    (folder / cm.COMPLETE_FILE).write_text("x\n")
    t0 = time.perf_counter()
    opened = cm.open_cache(folder)
    seconds = time.perf_counter() - t0
    assert len(opened) == n and opened.points(n - 1).shape[0] == lengths[-1]
    return seconds, (cm.NPY_HEADER_BYTES + total * 944) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SAMPLE)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one round per variant")
    parser.add_argument("--max-len", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bucket-step", type=int, default=16)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from asl_cli.data.cache import prepare
    from asl_cli.data.reader import read_index

    index = read_index(args.data)
    files = [index.file(i) for i in range(len(index))]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cache = prepare(args.data, tmp, workers=1)
        prep_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        prepare(args.data, tmp, workers=1)
        rerun_s = time.perf_counter() - t0
        lengths = cache.lengths
        print(f"data: {args.data} ({len(cache)} sequences, {cache.total_frames} frames, "
              f"median {int(np.median(lengths))}, max {int(lengths.max())})")
        print(f"prepare: {prep_s:.2f} s ({len(cache) / prep_s:.0f} files/s, 1 process); "
              f"no-op rerun {rerun_s * 1000:.0f} ms; cache {cache.size_bytes() / 1e6:.1f} MB")
        open_s, gb = full_scale_open(Path(tmp))
        print(f"opening a full-size cache (94,477 sequences, 40 frames on average): {open_s * 1000:.0f} ms "
              f"(points.npy {gb:.1f} GB, memory-mapped)")
        naive_round(files[:8], args.max_len, 0.01)  # warm up imports and the file cache
        cache_round(cache, args.max_len, args.batch_size, args.bucket_step, 0.1, epoch=0)
        a, b, p = [], [], []
        for r in range(args.rounds):
            a.append(naive_round(files, args.max_len, args.seconds))
            b.append(cache_round(cache, args.max_len, args.batch_size, args.bucket_step, args.seconds,
                                 epoch=1000 * (r + 1)))
            p.append(preprocess_round(cache, args.max_len, args.seconds / 2))
        ma, mb, mp = max(a), max(b), max(p)
        print("samples/s, one process, one thread          best    median")
        print(f"(a) naive pandas.read_parquet + preprocess {ma:8.0f}  {statistics.median(a):8.0f}")
        print(f"(b) prepared cache + preprocess + collate  {mb:8.0f}  {statistics.median(b):8.0f}"
              f"   (batch {args.batch_size}, bucket step {args.bucket_step})")
        print(f"    preprocess alone                       {mp:8.0f}  {statistics.median(p):8.0f}"
              f"   ({1e6 / mp:.1f} us per sample at best)")
        print(f"ratio b/a = {mb / ma:.0f} (goal >= 50); b = {mb:.0f}/s per core (goal >= 10,000)")
        print(f"ratio of medians = {statistics.median(b) / statistics.median(a):.0f}")


if __name__ == "__main__":
    main()
