"""Ctrl-C and SIGTERM for the commands that train (`asl train`, `asl ablate`) and those that stop at once.

`StopRequests` turns the first SIGINT/SIGTERM into `trainer.request_stop(signum)` (the trainer saves
`last` at its next safe point) and posts the "stopping" note on the dashboard; a second Ctrl-C quits
at once. `stop_on_signals` installs it for the duration of a `with` block.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


class StopBeforeStart(KeyboardInterrupt):
    """A signal before any trainer exists (data preparation): nothing to save, stop at once.

    A KeyboardInterrupt, so that it unwinds everything on its way (worker pools included) the way
    Ctrl-C normally does.
    """

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum
        self.exit_code = 143 if signum == signal.SIGTERM else 130


class StopRequests:
    """SIGINT/SIGTERM -> `trainer.request_stop(signum)` on the current trainer; a second SIGINT
    quits at once (KeyboardInterrupt), without waiting for the checkpoint. Before a trainer is
    attached a signal raises `StopBeforeStart` (a flag nobody reads would leave the process
    waiting on a half-killed worker pool)."""

    def __init__(self, dashboard: Any = None):  # a TrainDashboard (its post_note)
        self.trainer = None
        self.dashboard = dashboard
        self.signum: int | None = None

    def attach(self, trainer) -> None:
        self.trainer = trainer
        if self.signum is not None:  # a signal arrived while no trainer was running (set-up, ablate)
            trainer.request_stop(self.signum)

    def handle(self, signum: int, _frame: Any) -> None:
        if self.trainer is None:
            raise StopBeforeStart(signum)
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: the caller exits 130 without a new checkpoint
        self.signum = signum
        if self.trainer is not None:
            self.trainer.request_stop(signum)
        if self.dashboard is not None:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.dashboard.post_note(f"{name}: stopping at the next safe point and saving a checkpoint "
                                    "(Ctrl-C again to quit now)")


@contextlib.contextmanager
def stop_on_signals(requests: StopRequests) -> Iterator[StopRequests]:
    """Install the handlers for SIGINT and SIGTERM (main thread only) and restore them after."""
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, requests.handle)
    try:
        yield requests
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
