"""Live views draw each frame as one synchronized update on a terminal (no flicker in tmux), nothing extra elsewhere."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from asl_cli.ui.live import BEGIN_SYNC, END_SYNC, SyncedLive
from kit import FAKE_GPUS, run_asl


def test_every_refresh_and_every_line_printed_above_is_one_synchronized_update():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=60)
    with SyncedLive(Text("frame 1"), console=console, auto_refresh=False) as live:
        live.update(Text("frame 2"), refresh=True)
        console.print("a line above the live view")
    text = out.getvalue()
    assert text.count(BEGIN_SYNC) == text.count(END_SYNC) >= 3
    # begin and end alternate, and every frame and the printed line sit inside a pair
    marks = [i for i in range(len(text)) if text.startswith((BEGIN_SYNC, END_SYNC), i)]
    kinds = [text[i:i + len(BEGIN_SYNC)] for i in marks]
    assert kinds == [BEGIN_SYNC, END_SYNC] * (len(kinds) // 2)
    for word in ("frame 2", "a line above"):
        at = text.index(word)
        assert text.rfind(BEGIN_SYNC, 0, at) > text.rfind(END_SYNC, 0, at)


def test_no_control_codes_where_the_output_is_not_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=60)
    with SyncedLive(Text("frame"), console=console, auto_refresh=False) as live:
        live.refresh()
    assert BEGIN_SYNC not in out.getvalue() and "frame" in out.getvalue()


def test_gpu_watch_on_a_terminal_sends_synchronized_frames_without_clearing_the_screen():
    res = run_asl("gpu-watch", "--fake-gpu", str(FAKE_GPUS), "--interval", "0.1", "--count", "3",
                  env={"ASL_FAKE_GPU": None}, pty=True, rows=24, columns=80, timeout=30)
    assert res.returncode == 0
    frames = res.raw.split(BEGIN_SYNC.encode())[1:]
    assert len(frames) == 3 and all(END_SYNC.encode() in f for f in frames)
    assert b"\x1b[2J" not in res.raw  # redrawn from the top-left corner, never cleared: nothing blinks
