"""Names for temporary siblings of a file or folder being written, and finding abandoned ones.

Everything the toolkit writes atomically goes through a sibling named `.<name>.<kind>-<pid>-<rand>`
that is renamed over the target when complete. A writer killed with SIGKILL cannot clean up, so
the next writer deletes siblings whose process is gone (or is itself: a leftover of this process).

Foundation layer (with config, errors and units): imports only `asl_cli.errors`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator

from asl_cli.errors import RunIOError


def temp_sibling(target: Path, kind: str = "tmp") -> Path:
    """A fresh hidden name beside `target` that records the writing process."""
    return target.parent / f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def abandoned(paths: Iterable[Path]) -> Iterator[Path]:
    """The temp siblings among `paths` whose writing process no longer runs (or is this one)."""
    for path in paths:
        try:
            pid = int(path.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue  # not one of ours
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # its writer is still running
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # a live process of another user
        yield path


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temp sibling and a rename: readers see old or new, never half."""
    tmp = temp_sibling(path)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RunIOError(f"cannot write ({exc.strerror or exc})", path=path) from None
