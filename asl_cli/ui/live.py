"""Rich `Live` views that a terminal draws in one piece: no flicker in tmux, over SSH or on a slow link.

A Live frame erases the previous one (cursor up + erase line, or cursor home on the full screen) and
draws the new one; a terminal (or tmux relaying to one) may paint that half-way through, and the
erased lines show for an instant. Every write of the live view (a refresh, or a line printed above
it) is therefore one synchronized update (DEC private mode 2026, `CSI ? 2026 h` ... `l`): terminals
that know it (tmux >= 3.4, kitty, WezTerm, iTerm2, foot, Windows Terminal, Alacritty >= 0.13) show
it only once complete; the others ignore the unknown mode, as they must.
"""

from __future__ import annotations

from typing import List

from rich.console import ConsoleRenderable
from rich.control import Control
from rich.live import Live
from rich.segment import ControlType, Segment

BEGIN_SYNC, END_SYNC = "\x1b[?2026h", "\x1b[?2026l"


def _raw_control(code: str) -> Control:
    """A control sequence Rich has no ControlType for, written as-is on a terminal (never measured as text)."""
    control = Control()
    control.segment = Segment(code, None, [(ControlType.BELL,)])  # any control type: it marks "not text"
    return control


class SyncedLive(Live):
    """`rich.live.Live` whose every write on an interactive terminal is one synchronized update."""

    def process_renderables(self, renderables: List[ConsoleRenderable]) -> List[ConsoleRenderable]:
        out = super().process_renderables(renderables)
        if not self.console.is_interactive:  # a pipe or a dumb terminal: no live view, no control codes
            return out
        return [_raw_control(BEGIN_SYNC), *out, _raw_control(END_SYNC)]
