"""Run a command on a pseudo-terminal, as a user's shell would (the live views draw only there).

Shared by the dashboard, gpu-watch and signal tests; `tests/` is on sys.path through its conftest.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from typing import Callable

# Called after every read with the output so far and the process; it may send signals.
Watcher = Callable[[bytes, subprocess.Popen], None]


def run_on_terminal(cmd: list[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None,
                    rows: int = 45, columns: int = 100, timeout: float = 120.0, poll: float = 0.2,
                    watch: Watcher | None = None) -> tuple[int, bytes]:
    """Run `cmd` with a `rows` x `columns` pseudo-terminal as stdin, stdout and stderr.

    Returns (exit code, everything written to the terminal). The process is killed at `timeout`
    (the exit code then says so: -9).
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if watch is not None:
                watch(out, proc)
            ready, _, _ = select.select([master], [], [], poll)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                # it may have written its last lines between the select and its exit
                out += _drain(master)
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=30), out


def _drain(master: int) -> bytes:
    """Whatever is still buffered on the terminal once the process has exited."""
    rest = b""
    while select.select([master], [], [], 0.05)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: nothing left and no writer
            break
        if not chunk:
            break
        rest += chunk
    return rest
