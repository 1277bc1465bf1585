"""Small pieces every panel uses: how a missing value is shown, the colour of a level, and two tiny
widgets (a level-coloured bar, a sparkline). Numbers, durations and shares as text are
`asl_cli.units` (the CLI's summary lines use the same rules).

None, NaN or a non-number means N/A for a GPU field and "—" for a training field.
"""

from __future__ import annotations

import math
from typing import Iterable

from rich.text import Text

NA = "N/A"
SPARKS = "▁▂▃▄▅▆▇█"


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
