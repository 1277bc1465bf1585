"""The data layer's worker pool: ordered results, workers leave Ctrl-C to the main process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asl_cli.data.pool import WorkerPoolError, imap_ordered


def test_results_keep_input_order_in_processes():
    assert list(imap_ordered(abs, [-3, 1, -2, 5, -8], 2)) == [3, 1, 2, 5, 8]


def test_workers_ignore_sigint_main_process_does_not():
    handlers = list(imap_ordered(signal.getsignal, [signal.SIGINT] * 2, 2))
    assert handlers == [signal.SIG_IGN, signal.SIG_IGN]
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


def _die(_item) -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would


def test_a_dead_worker_stops_the_map_with_one_error_instead_of_hanging():
    with pytest.raises(WorkerPoolError, match="worker process died"):
        list(imap_ordered(_die, [1, 2, 3], 2))


def _mark(path: str) -> str:
    time.sleep(0.02)
    Path(path).touch()
    return path


def test_leaving_early_cancels_the_rest(tmp_path, monkeypatch):
    """close() cancels the work not yet started. To count what still ran, the pool's shutdown is
    made to wait for its workers (imap_ordered itself does not wait): without the cancellation
    all 200 items would then have run."""
    from concurrent import futures

    waits = []

    class WaitingExecutor(futures.ProcessPoolExecutor):
        def shutdown(self, wait=True, **kwargs):
            waits.append(wait)
            super().shutdown(wait=True, **kwargs)

    monkeypatch.setattr(futures, "ProcessPoolExecutor", WaitingExecutor)
    items = [str(tmp_path / f"{i}.done") for i in range(200)]  # ~2 s of work for two workers
    results = imap_ordered(_mark, items, 2)
    assert next(results) == items[0]
    results.close()  # the consumer stops
    assert waits == [False]  # imap_ordered leaves without waiting for the running items
    ran = len(list(tmp_path.glob("*.done")))
    # what had started or sat in the executor's queue (a few per worker) ran; nothing else did
    assert ran < 20, f"{ran} of {len(items)} items ran after close()"


def test_unguarded_script_using_the_api_fails_fast(tmp_path):
    # Spawned workers re-run a script without a main guard; its own call to imap_ordered in the
    # worker must not start a pool there (Pool used to respawn such workers forever).
    script = tmp_path / "unguarded.py"
    script.write_text("from asl_cli.data.pool import imap_ordered\n"
                      "print(list(imap_ordered(abs, [-1, -2], 2)))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode != 0
    assert "WorkerPoolError" in done.stderr and "__main__" in done.stderr
    assert "guard the script's entry point" in done.stderr  # the worker's own line
