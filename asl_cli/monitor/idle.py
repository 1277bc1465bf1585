"""Which GPUs sit idle while a job holds them: memory held, utilisation about 0, for how long.

Pure functions over a sampler's history (no NVML, no Rich): `asl gpu-watch` marks a GPU IDLE after
`--idle-after` seconds of this, the case nvitop and cluster admins watch for (a notebook or a hung
job keeping a card nobody computes on).
"""

from __future__ import annotations

from typing import Sequence

from asl_cli.monitor.base import GPUSnapshot
from asl_cli.units import MIB

IDLE_UTIL_PERCENT = 5  # at most this GPU utilisation counts as idle (a desktop's compositor stays under it)
HELD_MIB = 512  # without a compute process listed, at least this much used memory counts as held


def holds_memory(s: GPUSnapshot) -> bool:
    """Whether a job holds memory on the GPU: a compute process is listed, or (the list is empty or N/A,
    as inside containers) at least HELD_MIB are in use. A display server alone does not count."""
    if any("C" in (p.kind or "C") for p in s.processes or ()):
        return True
    return not s.processes and s.memory_used is not None and s.memory_used >= HELD_MIB * MIB


def is_idle(s: GPUSnapshot) -> bool:
    """One sample: memory held and utilisation at most IDLE_UTIL_PERCENT (unknown utilisation, a MIG
    parent or a lost GPU is never idle: nothing says so)."""
    return not s.lost and s.util_gpu is not None and s.util_gpu <= IDLE_UTIL_PERCENT and holds_memory(s)


def idle_seconds(history: Sequence[GPUSnapshot]) -> float:
    """How long the GPU has been idle up to its newest sample (0.0 when that sample is not idle): the
    time since the first sample of the unbroken idle run at the end of `history` (oldest first)."""
    start = None
    for s in reversed(history):
        if not is_idle(s):
            break
        start = s
    if start is None:
        return 0.0
    return max(0.0, history[-1].timestamp - start.timestamp)


def idle_marks(history: dict[int, Sequence[GPUSnapshot]], after: float) -> dict[int, float]:
    """GPU index -> seconds idle, for the GPUs idle for at least `after` seconds."""
    marks = {}
    for index, snaps in history.items():
        seconds = idle_seconds(snaps) if snaps else 0.0
        if seconds >= after:
            marks[index] = seconds
    return marks
