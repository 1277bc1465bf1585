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

"Cores" are the affinity mask lowered to the cgroup's CPU quota. On a CPU, auto also leaves out
the cores other processes keep busy when the run starts (`busy_cores_elsewhere`, 0.1 s of the
kernel's counters): beside a busy neighbour torch's threads collapse to a quarter of their speed,
while fewer threads on the free cores keep theirs. Torchrun processes on one
machine share its cores: each plans with its share. An explicit `num_workers >= 0` is used as
given and leaves the threads alone. No torch import at module level (the data layer uses it).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

AUTO = -1
MAX_AUTO_WORKERS_GPU = 8


@dataclass(frozen=True)
class Plan:
    num_workers: int
    torch_threads: int  # intra-op threads for the training process
    reason: str  # one line for logs: why these numbers


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


def busy_cores_elsewhere(window_s: float = 0.1, proc: str = "/proc") -> float:
    """How many of this process's cores other processes keep busy right now, measured over
    `window_s` from the kernel's per-CPU counters (Linux; 0.0 where they cannot be read).

    Busy time of the CPUs in the affinity mask, minus this process's own CPU time (all its
    threads), in cores. A second job on a shared machine is what this is for: torch's threads
    collapse beside it (docs/benchmarks.md, "CPU training beside another busy process").
    """
    try:
        mine = {f"cpu{c}" for c in os.sched_getaffinity(0)}
        tick = os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError):
        return 0.0

    def sample() -> tuple[int, int, float]:
        busy = 0
        with open(f"{proc}/stat") as fh:
            for line in fh:
                name, *fields = line.split()
                if name in mine:
                    v = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
                    busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
        with open(f"{proc}/self/stat") as fh:
            own = fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        return busy, int(own[11]) + int(own[12]), time.monotonic()  # utime + stime

    try:
        busy0, own0, t0 = sample()
        time.sleep(window_s)
        busy1, own1, t1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, ((busy1 - busy0) - (own1 - own0)) / tick / max(t1 - t0, 1e-3))


def plan_here(requested_workers: int, *, device_type: str, local_processes: int = 1) -> Plan:
    """`plan` with this machine's inputs: its cores, torch's threads now and, for auto on a CPU,
    the cores other processes keep busy (the only case that needs the 0.1 s measurement)."""
    import torch

    measure = requested_workers == AUTO and device_type != "cuda"
    return plan(requested_workers, device_type=device_type, cpus=available_cpus(),
                torch_threads=torch.get_num_threads(), local_processes=local_processes,
                busy_elsewhere=busy_cores_elsewhere() if measure else 0.0)


def plan(requested_workers: int, *, device_type: str, cpus: int, torch_threads: int,
         local_processes: int = 1, busy_elsewhere: float = 0.0) -> Plan:
    """Workers and compute threads for one training process (pure; see the module docstring).

    `busy_elsewhere`: cores other processes keep busy (`busy_cores_elsewhere`); on a CPU they are
    left out, rounded, so that no compute thread has to share a core."""
    if requested_workers != AUTO:
        return Plan(int(requested_workers), torch_threads, f"{requested_workers} worker(s) as configured")
    if device_type != "cuda" and busy_elsewhere >= 0.5:
        free = max(1, cpus - round(busy_elsewhere))
        if free < cpus:
            inner = plan(AUTO, device_type=device_type, cpus=free, torch_threads=torch_threads,
                         local_processes=local_processes)
            return Plan(inner.num_workers, min(inner.torch_threads, max(1, free // max(1, local_processes))),
                        f"{inner.reason}; {busy_elsewhere:.1f} of {cpus} cores busy with other processes")
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
