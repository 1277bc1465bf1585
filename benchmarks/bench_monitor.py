"""Costs of the monitoring layer and of `asl check-env --data`, side by side in one run.

  check-env data, 1 thread    read_index + read_landmarks(x, y) of every file, sequentially
  check-env data, N threads   the same on the thread pool `data_facts` uses (pyarrow releases the GIL)
  snapshot (fake NVML)        NVMLBackend.snapshot over the scripted fake: the backend's own
                              Python overhead per GPU (a real NVML call adds ~0.1-20 ms each)
  frame render                watch_frame of 3 GPUs with 60-sample sparklines + a run's status,
                              rendered to a 120-column console (what gpu-watch does per sample)

Variants run interleaved, round after round; medians are reported.
Usage: OMP_NUM_THREADS=1 python benchmarks/bench_monitor.py [--rounds 5] [--workers 2,4]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared/data/asl-signs-sample"
FAKE = ROOT / "tests/fixtures/fake_gpus.json"
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SAMPLE))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", default="2,4", help="thread counts to compare with 1, comma-separated")
    args = parser.parse_args()

    from rich.console import Console

    from asl_cli.config import load_config
    from asl_cli.tools.env_report import data_facts
    from asl_cli.monitor import GPUSampler, open_backend
    from asl_cli.ui.gpu import watch_frame

    data_facts(args.data, workers=1)  # warm-up: imports, page cache
    backend = open_backend(FAKE)
    sampler = GPUSampler(backend, interval=1.0)
    for _ in range(60):
        sampler.sample_once()
    cfg = load_config("rtx4070").to_dict()
    status = {"run": "bench", "state": "running", "epoch": 3, "epochs": 10, "step": 100, "total_steps": 1000,
              "loss": 2.0, "aug": cfg["aug"], "config": cfg}

    workers = [int(w) for w in args.workers.split(",")]
    times: dict[str, list[float]] = {"data1": [], "snap": [], "frame": [], **{f"data{w}": [] for w in workers}}
    files = None
    for _ in range(args.rounds):
        t = time.perf_counter()
        files = data_facts(args.data, workers=1)["sequences"]
        times["data1"].append(time.perf_counter() - t)
        for w in workers:
            t = time.perf_counter()
            data_facts(args.data, workers=w)
            times[f"data{w}"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(200):
            backend.snapshot(0)
        times["snap"].append((time.perf_counter() - t) / 200)
        t = time.perf_counter()
        for _ in range(20):
            console = Console(file=io.StringIO(), width=120, force_terminal=True)
            console.print(watch_frame(sampler.latest(), sampler.history(), status=status, host="bench",
                                      interval=1.0))
        times["frame"].append((time.perf_counter() - t) / 20)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"files checked: {files}")
    print(f"check-env data, 1 thread:  {med['data1'] * 1000:8.1f} ms  ({files / med['data1']:,.0f} files/s)")
    for w in workers:
        m = med[f"data{w}"]
        print(f"check-env data, {w} threads: {m * 1000:8.1f} ms  ({files / m:,.0f} files/s)  "
              f"speed-up {med['data1'] / m:.2f}x")
    print(f"snapshot per GPU (fake):   {med['snap'] * 1e6:8.1f} us")
    print(f"frame render (3 GPUs+run): {med['frame'] * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
