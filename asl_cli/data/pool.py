"""Ordered parallel map over worker processes, for the data layer's one-off jobs (prepare, synth)."""

from __future__ import annotations

import signal
from typing import Callable, Iterable, Iterator


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group: only the main process should react (it stops the
    # pool and reports once); workers printing KeyboardInterrupt tracebacks would be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def imap_ordered(fn: Callable, items: Iterable, workers: int, *, chunksize: int = 1) -> Iterator:
    """`map(fn, items)` in order, in `workers` spawned processes when more than one."""
    if workers <= 1:
        yield from map(fn, items)
        return
    import multiprocessing as mp

    # spawn: never fork a process that may hold torch/OpenMP/pyarrow threads (the trainer calls us).
    with mp.get_context("spawn").Pool(workers, initializer=_ignore_sigint) as pool:
        yield from pool.imap(fn, items, chunksize=chunksize)
