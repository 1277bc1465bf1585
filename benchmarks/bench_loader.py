"""DataLoader worker hand-off: what the training process pays per batch to receive it from a worker.

    python benchmarks/bench_loader.py [--batches 60] [--compute-ms 40]

With `num_workers > 0` the training process does not build batches, but it still has to receive
them: every tensor storage in a batch crosses from the worker as a shared-memory segment, and
with torch's default `file_descriptor` strategy each segment costs a socket connection to the
worker (an authenticated handshake served by a thread of the worker, which has to win the
worker's GIL while the worker is busy augmenting the next batch). That time is lost on the loop's
thread, as `data_wait`, even when the worker is far ahead.

Compared side by side in one run, same data, same worker, same batches:
  packed    the toolkit's `collate`: the five batch tensors are views of one block (one segment)
  separate  the same batches with each tensor in its own storage (five segments), as before

The main process stands in for a GPU-bound loop: it waits `--compute-ms` between batches (so the
worker is always ahead) and times `next()` alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from functools import partial


def separate_storages(samples, **kwargs):
    from asl_cli.data.dataset import collate

    return {k: v.clone() for k, v in collate(samples, **kwargs).items()}  # one storage per tensor


def handoff_ms(loader, batches: int, compute_s: float) -> list[float]:
    it = iter(loader)
    next(it)  # worker start-up is not hand-off
    times = []
    for _ in range(batches):
        time.sleep(compute_s)
        t0 = time.perf_counter()
        next(it)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--compute-ms", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from asl_cli.config import load_config
    from asl_cli.engine.trainer import ASLTrainer

    cfg = load_config("cpu", [f"runs_dir={tempfile.mkdtemp(prefix='asl-bench-')}", "data.val_fold=-1",
                              "loader.num_workers=1"])
    trainer = ASLTrainer(cfg)  # the cpu preset's real pipeline: cache -> augment -> preprocess
    shipped = trainer.train_loader
    variants = {"packed": shipped.collate_fn, "separate": partial(separate_storages, **shipped.collate_fn.keywords)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):  # alternate, so a drift of the machine hits both
        for name, collate_fn in variants.items():
            loader = DataLoader(shipped.dataset, batch_sampler=shipped.batch_sampler, collate_fn=collate_fn,
                                num_workers=1, prefetch_factor=2)
            times[name] += handoff_ms(loader, args.batches, args.compute_ms / 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"bench": "loader_handoff", "packed_ms_per_batch": round(med["packed"], 2),
                      "separate_ms_per_batch": round(med["separate"], 2),
                      "ratio_separate_over_packed": round(med["separate"] / med["packed"], 2),
                      "batches": len(times["packed"]), "batch_size": cfg.train.batch_size,
                      "compute_ms": args.compute_ms, "sharing_strategy": torch.multiprocessing.get_sharing_strategy()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
