"""Start-up cost: `asl --help` against `python -c "import torch"`, side by side in one run.

Goal (issue 2): `asl --help` well under half the time of importing torch.
Usage: python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def best_of(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    best_of([py, "-c", "pass"], 1)  # warm the file cache
    help_s = best_of([py, "-m", "asl_cli", "--help"], args.repeats)
    version_s = best_of([py, "-m", "asl_cli", "--version"], args.repeats)
    torch_s = best_of([py, "-c", "import torch"], args.repeats)
    print(f"asl --help      {help_s * 1000:7.0f} ms")
    print(f"asl --version   {version_s * 1000:7.0f} ms")
    print(f"import torch    {torch_s * 1000:7.0f} ms")
    print(f"ratio help/torch = {help_s / torch_s:.2f} (goal < 0.5)")


if __name__ == "__main__":
    main()
