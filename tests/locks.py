"""Run-folder locks as another process sees them (shared by the trainer, parallelism and ablate
tests; `tests/` is on sys.path through its conftest)."""

from __future__ import annotations

import fcntl
import os


def folder_is_free(folder) -> bool:
    """Could another process take this folder's lock right now?"""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
