"""Ordered parallel map over worker processes, for the data layer's one-off jobs (prepare, synth)."""

from __future__ import annotations

import multiprocessing as mp
import signal
import sys
from typing import Callable, Iterable, Iterator

from asl_cli.errors import ASLError

# Spawned workers re-run the parent's main script; one without a main guard that calls the API
# would start a pool of its own there. multiprocessing.Pool replaced such dying workers forever
# (a silent hang); an executor notices the death, so the parent can stop with this line.
WORKER_DIED = ("a data worker process died before finishing its work (killed, e.g. out of memory; "
               "or a script that uses asl's Python API without `if __name__ == \"__main__\":` around "
               "its entry point, which spawned workers re-run)")


class WorkerPoolError(ASLError):
    """A worker process of `imap_ordered` died (exit code 1)."""


def _start_worker() -> None:
    # Ctrl-C goes to the whole process group: only the main process should react (it stops the
    # pool and reports once); workers printing KeyboardInterrupt tracebacks would be noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _refuse_nested_start() -> None:
    """In a spawned worker still importing the parent's script: leave with one line, no traceback."""
    if getattr(mp.current_process(), "_inheriting", False):
        print("asl: not starting worker processes from a worker that is re-running its parent's "
              "script: guard the script's entry point with `if __name__ == \"__main__\":`",
              file=sys.stderr)
        raise SystemExit(1)


def imap_ordered(fn: Callable, items: Iterable, workers: int, *, chunksize: int = 1) -> Iterator:
    """`map(fn, items)` in order, in `workers` spawned processes when more than one.

    Raises `WorkerPoolError` when a worker dies. Leaving early (an exception in the consumer,
    Ctrl-C) cancels the work not yet started and terminates the workers (a worker's half-written
    file is a temp sibling, which the next job removes), so the process ends at once.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    _refuse_nested_start()
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn: never fork a process that may hold torch/OpenMP/pyarrow threads (the trainer calls us).
    executor = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_start_worker)
    finished = False
    try:
        yield from executor.map(fn, items, chunksize=chunksize)
        finished = True
    except BrokenProcessPool:
        raise WorkerPoolError(WORKER_DIED) from None
    finally:
        if not finished:  # leaving early (an error, Ctrl-C): cancel what is queued and stop the workers now
            workers_now = list((executor._processes or {}).values())  # noqa: SLF001 - no public way to stop them
            executor.shutdown(wait=False, cancel_futures=True)
            for process in workers_now:
                process.terminate()
        else:
            executor.shutdown(wait=True)
