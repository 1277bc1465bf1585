"""Small pieces every panel uses: how a missing value is shown, numbers, durations and shares as
text, and two tiny widgets (a level-coloured bar, a sparkline).

None, NaN or a non-number means N/A for a GPU field and "—" for a training field.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from rich.text import Text

NA = "N/A"
DASH = "—"
SPARKS = "▁▂▃▄▅▆▇█"


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


def level_style(fraction: float | None) -> str:
    if fraction is None:
        return "dim"
    return "green" if fraction < 0.6 else "yellow" if fraction < 0.85 else "red"


def bar(fraction: float | None, width: int = 24) -> Text:
    """A horizontal bar (█ filled, ░ empty) coloured by level; all ░ when unknown."""
    if fraction is None:
        return Text("░" * width, style="dim")
    f = min(max(fraction, 0.0), 1.0)
    filled = int(round(f * width))
    t = Text("█" * filled, style=level_style(f))
    t.append("░" * (width - filled), style="bright_black")
    return t


def sparkline(values: Iterable[float | None], width: int = 30, lo: float = 0.0, hi: float = 100.0) -> str:
    """The last `width` values as block characters on a fixed scale (space for N/A)."""
    vals = list(values)[-width:]
    out = []
    span = (hi - lo) or 1.0
    for v in vals:
        if v is None or not math.isfinite(v):
            out.append(" ")
            continue
        k = int(round((min(max(v, lo), hi) - lo) / span * (len(SPARKS) - 1)))
        out.append(SPARKS[k])
    return "".join(out).rjust(width)
