"""How sizes and numbers are written, one rule for every command.

- Memory (GPU memory, a process's peak, NVML readings) in MiB (2^20 bytes), as NVML, nvidia-smi and
  torch report it: `fmt_mib`, and the `*_mb` / `*_mib` fields of status and summaries hold MiB.
- Files on disk (data sets, caches, checkpoints, ONNX files) in decimal kB/MB/GB (10^3 bytes), as
  `ls -h --si`, `du --si` and download pages write them: `human_bytes`.
- Measured values that may be missing (a status field, a summary's metric): `fmt_value`, shares of
  1 as percentages `fmt_pct`, seconds as `H:MM:SS` `fmt_duration`; None, NaN, infinities and
  non-numbers are shown as `none` ("—" unless a caller says otherwise), never as "nan".

Foundation layer (with config, errors and tempfiles): imports nothing of the toolkit.
"""

from __future__ import annotations

import math
from typing import Any

MIB = 1024 * 1024
DASH = "—"  # a missing value


def human_bytes(n: float) -> str:
    """A file size in decimal units: `812 B`, `3.8 MB`, `1.2 GB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def fmt_mib(value_mib: float | None, na: str = DASH) -> str:
    """Memory given in MiB: `562 MiB`, `10,502 MiB`."""
    return na if value_mib is None else f"{value_mib:,.0f} MiB"


def num(value: Any) -> float | None:
    """A finite number, or None (missing, None, NaN, a string...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_duration(seconds: Any) -> str:
    s = num(seconds)
    if s is None or s < 0:
        return DASH
    s = int(round(s))
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{sec:02d}" if days else f"{h}:{m:02d}:{sec:02d}"


def fmt_value(value: Any, spec: str = "", suffix: str = "", none: str = DASH) -> str:
    v = num(value)
    return none if v is None else f"{v:{spec}}{suffix}"


def fmt_pct(value: Any, none: str = DASH, digits: int = 1) -> str:
    """A 0..1 share as a percentage."""
    v = num(value)
    return none if v is None else f"{100 * v:.{digits}f}%"
