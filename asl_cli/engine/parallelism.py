"""How a run shares the machine's cores: DataLoader workers and torch's compute threads.

`loader.num_workers = -1` ("auto") is resolved here, once, by a pure rule (`plan`), so that the
data pipeline never competes with the compute for a core:

- On a CPU the compute already uses torch's intra-op threads (by default one per core). A worker
  on a core that those threads also use slows everything down (measured on 2 cores: 0.69 of a bare
  loop, against 0.85 with the data in the loop's process and 0.97 with a core of its own;
  docs/benchmarks.md). So: with at least 3 cores per process, one worker (the pipeline runs at
  ~7,500 samples/s per core, several times the compute's speed on a CPU) and torch's threads
  capped at the cores left; with fewer, no worker and the threads untouched.
- On a GPU the compute runs on the device; the host needs one core for the training loop, and the
  rest can feed it: up to 8 workers.

Torchrun processes on one machine share its cores: each plans with its share. An explicit
`num_workers >= 0` is used as given and leaves the threads alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

AUTO = -1
MAX_AUTO_WORKERS_GPU = 8


@dataclass(frozen=True)
class Plan:
    num_workers: int
    torch_threads: int  # intra-op threads for the training process
    reason: str  # one line for logs: why these numbers


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask: a container's or taskset's limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def plan(requested_workers: int, *, device_type: str, cpus: int, torch_threads: int,
         local_processes: int = 1) -> Plan:
    """Workers and compute threads for one training process (pure; see the module docstring)."""
    if requested_workers != AUTO:
        return Plan(int(requested_workers), torch_threads, f"{requested_workers} worker(s) as configured")
    share = max(1, cpus // max(1, local_processes))
    if device_type == "cuda":
        workers = min(MAX_AUTO_WORKERS_GPU, share - 1)
        return Plan(workers, torch_threads, f"auto: {workers} worker(s) beside the training loop "
                                            f"({share} core(s) for this process)")
    if share < 3:
        return Plan(0, torch_threads, f"auto: no worker, {share} core(s) for this process are all "
                                      f"needed by the compute")
    threads = min(torch_threads, share - 1)
    return Plan(1, threads, f"auto: 1 worker on a core of its own, {threads} compute thread(s) "
                            f"({share} cores for this process)")
