"""How a run shares the machine's cores: DataLoader workers and torch's compute threads.

`loader.num_workers = -1` ("auto") is resolved by one pure rule (`plan`), so that the data
pipeline never competes with the compute for a core. The trainer plans once per run (workers and
its threads during `fit()`); `build_loaders` resolves -1 itself when called on its own. The
configuration keeps -1, so a resume works it out again on the machine it runs on.

- On a CPU the compute already uses torch's intra-op threads (by default one per core). A worker
  on a core that those threads also use slows everything down (measured on 2 cores: 0.69 of a bare
  loop, against 0.85 with the data in the loop's process and 0.97 with a core of its own;
  docs/benchmarks.md). So: with at least 3 cores per process, one worker (the pipeline runs at
  ~7,500 samples/s per core, several times the compute's speed on a CPU) and torch's threads
  capped at the cores left; with fewer, no worker and the threads untouched.
- On a GPU the compute runs on the device; the host needs one core for the training loop, and the
  rest can feed it: up to 8 workers.

"Cores" are the affinity mask (`os.sched_getaffinity`, else `os.cpu_count()`) lowered to the
cgroup's CPU quota: what the process is allowed, never how busy the machine happens to be. The
plan is a pure function of the configuration, those cores and torch's thread setting, so the same
run on the same machine always plans the same, whatever else runs at its start. On a machine
shared with other jobs, say so yourself: `OMP_NUM_THREADS=N` (torch's threads) or `--workers N`
(docs/presets.md). Torchrun processes on one machine share its
cores: each plans with its share. An explicit `num_workers >= 0` is used as given and leaves the
threads alone. No torch import at module level (the data layer uses it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

AUTO = -1
MAX_AUTO_WORKERS_GPU = 8


@dataclass(frozen=True)
class Plan:
    num_workers: int
    torch_threads: int  # intra-op threads for the training process
    reason: str  # one line for logs: why these numbers
    cpus: int = 0  # the cores this process may use (0: not known)


def available_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """Cores this process may use: its affinity mask (taskset, a container's cpuset), lowered to
    a CPU quota where one is set (`docker --cpus=N`, Kubernetes limits), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 `cpu.max`, else v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`), or None when there is none or it cannot be read."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def plan_here(requested_workers: int, *, device_type: str, local_processes: int = 1) -> Plan:
    """`plan` with this process's inputs: the cores it may use (`available_cpus`) and torch's
    thread setting now. Reads no load: the same configuration on the same machine plans the same."""
    import torch

    return plan(requested_workers, device_type=device_type, cpus=available_cpus(),
                torch_threads=torch.get_num_threads(), local_processes=local_processes)


def plan(requested_workers: int, *, device_type: str, cpus: int, torch_threads: int,
         local_processes: int = 1) -> Plan:
    """Workers and compute threads for one training process (pure; see the module docstring)."""
    if requested_workers != AUTO:
        return Plan(int(requested_workers), torch_threads, f"{requested_workers} worker(s) as configured", cpus)
    share = max(1, cpus // max(1, local_processes))
    if device_type == "cuda":
        workers = min(MAX_AUTO_WORKERS_GPU, share - 1)
        return Plan(workers, torch_threads, f"auto: {workers} worker(s) beside the training loop "
                                            f"({share} core(s) for this process)", cpus)
    if share < 3:
        return Plan(0, torch_threads, f"auto: no worker, {share} core(s) for this process are all "
                                      f"needed by the compute", cpus)
    threads = min(torch_threads, share - 1)
    return Plan(1, threads, f"auto: 1 worker on a core of its own, {threads} compute thread(s) "
                            f"({share} cores for this process)", cpus)
