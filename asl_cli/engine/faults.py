"""Turning what goes wrong inside the loop into one clear error line (asl_cli/errors.py's classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asl_cli.errors import DataError, OutOfMemoryError


def worker_crash_error(exc: RuntimeError, loader: Any, epoch: int, batch_no: int,
                       data_dir: str | Path | None) -> BaseException:
    """A data-loader worker that died (os._exit, segfault, OOM killer) -> DataError naming the
    sequences of the batch it was loading; any other RuntimeError is returned unchanged."""
    text = str(exc)
    if "DataLoader worker" not in text:
        return exc
    try:
        ds = loader.dataset
        positions = loader.batch_sampler.batches(epoch)[batch_no]
        paths = [str(ds.cache.paths[int(ds.indices[int(p)])]) for p in positions]
    except Exception:  # noqa: BLE001 - the message without the names is still useful
        paths = []
    shown = ", ".join(paths[:8]) + (f" (+{len(paths) - 8} more)" if len(paths) > 8 else "")
    which = f"; the failing sample is one of: {shown}" if paths else ""
    first = (text.strip().splitlines() or ["worker died"])[0]
    return DataError(f"a data-loader worker died while loading batch {batch_no + 1} of epoch {epoch + 1} "
                     f"({first}){which}. Rerun with --workers 0 to see that sample's own error",
                     path=data_dir or None)


def out_of_memory_error(step: int, batch_size: int, accumulation: int, max_len: int,
                        last_checkpoint: Path) -> OutOfMemoryError:
    """CUDA out of memory in a training step: what to change, and that the checkpoint is safe."""
    return OutOfMemoryError(
        f"out of GPU memory at step {step} (batch {batch_size} x {accumulation} accumulation, "
        f"max_len {max_len}): use a smaller --batch-size with more accumulation, or a "
        f"smaller preset" + (f"; last checkpoint {last_checkpoint} is intact" if last_checkpoint.is_file() else ""))


__all__ = ["worker_crash_error", "out_of_memory_error"]
