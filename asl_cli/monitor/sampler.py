"""A background thread that polls a GPU backend and keeps the latest snapshots plus a short history.

NVML queries can block for ~20 ms each (PCIe counters, busy drivers), so they never run inside
a training step or a render call: the thread polls every `interval` seconds and readers take a
consistent copy under a lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from asl_cli.monitor.base import GPUBackend, GPUSnapshot


class GPUSampler:
    """Poll `backend` every `interval` seconds on a daemon thread.

    `latest()` returns the newest list of snapshots (one per GPU), `history()` the last
    `history_len` snapshots per GPU index (oldest first) for sparklines. `sample_once()` polls
    synchronously (for `--once`, or a caller that drives its own clock). A backend that breaks
    mid-run does not kill the thread: the error is kept in `last_error`.
    """

    def __init__(self, backend: GPUBackend, interval: float = 1.0, history_len: int = 60):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.backend = backend
        self.interval = float(interval)
        self._history_len = int(history_len)
        self._lock = threading.Condition()
        self._latest: list[GPUSnapshot] = []
        self._history: dict[int, deque[GPUSnapshot]] = {}
        self._samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None
        self._count: int | None = None

    # -- sampling ----------------------------------------------------------------------------

    def sample_once(self) -> list[GPUSnapshot]:
        """Poll every GPU now, record the result and return it."""
        if self._count is None:
            self._count = self.backend.device_count()
        snaps = [self.backend.snapshot(i) for i in range(self._count)]
        with self._lock:
            self._latest = snaps
            for s in snaps:
                self._history.setdefault(s.index, deque(maxlen=self._history_len)).append(s)
            self._samples += 1
            self._lock.notify_all()
        return snaps

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception as exc:  # keep sampling: the UI shows the last good frame
                self.last_error = exc
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # a slow poll: do not try to catch up in a burst
                next_at, delay = time.monotonic(), 0
            self._stop.wait(delay)

    def start(self) -> "GPUSampler":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="asl-gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> "GPUSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- reading -----------------------------------------------------------------------------

    @property
    def samples(self) -> int:
        """How many polls have completed."""
        with self._lock:
            return self._samples

    def latest(self) -> list[GPUSnapshot]:
        with self._lock:
            return list(self._latest)

    def history(self) -> dict[int, list[GPUSnapshot]]:
        with self._lock:
            return {i: list(h) for i, h in self._history.items()}

    def wait_for_sample(self, after: int, timeout: float | None = None) -> int:
        """Block until more than `after` samples exist (or timeout); return the sample count."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._samples <= after:
                remaining = None if deadline is None else deadline - time.monotonic()
                if (remaining is not None and remaining <= 0) or self._stop.is_set():
                    break
                self._lock.wait(0.5 if remaining is None else min(remaining, 0.5))
            return self._samples
