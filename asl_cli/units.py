"""How sizes are written, one rule for every command.

- Memory (GPU memory, a process's peak, NVML readings) in MiB (2^20 bytes), as NVML, nvidia-smi and
  torch report it: `fmt_mib`, and the `*_mb` / `*_mib` fields of status and summaries hold MiB.
- Files on disk (data sets, caches, checkpoints, ONNX files) in decimal kB/MB/GB (10^3 bytes), as
  `ls -h --si`, `du --si` and download pages write them: `human_bytes`.

Foundation layer (with config, errors and tempfiles): imports nothing of the toolkit.
"""

from __future__ import annotations

MIB = 1024 * 1024


def human_bytes(n: float) -> str:
    """A file size in decimal units: `812 B`, `3.8 MB`, `1.2 GB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


def fmt_mib(value_mib: float | None, na: str = "—") -> str:
    """Memory given in MiB: `562 MiB`, `10,502 MiB`."""
    return na if value_mib is None else f"{value_mib:,.0f} MiB"
