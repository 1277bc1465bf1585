"""TensorBoard event files for a run: a trainer callback over torch's `SummaryWriter` (extra `tensorboard`).

    RUN/tensorboard/events.out.tfevents.*      ->  tensorboard --logdir runs

Scalars at every log point (`train/loss`, `train/lr`, `train/grad_norm`, `train/samples_per_s`,
`train/data_wait`, `train/peak_mem_mb`) and evaluation (`val/loss`, `val/top1`, `val/top5`), keyed by
the optimizer update. `SummaryWriter.add_scalar` only queues the event: its own thread writes the file
(flushed every few seconds and at the end), so the training step never waits on the disk.
`train.tensorboard`: `auto` writes when the package is installed (silently nothing when not), `on`
requires it (one line with the remedy when missing), `off` never writes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from asl_cli.errors import ConfigError

INSTALL = 'pip install "asl-cli[tensorboard]"'
STEP_SCALARS = (("loss", "train/loss"), ("lr", "train/lr"), ("grad_norm", "train/grad_norm"),
                ("samples_per_s", "train/samples_per_s"), ("data_wait", "train/data_wait"),
                ("peak_mem_mb", "train/peak_mem_mb"))
EVAL_SCALARS = (("val_loss", "val/loss"), ("val_top1", "val/top1"), ("val_top5", "val/top5"))


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLog:
    """A trainer callback: writes a run's scalars to `folder` (created on the first event)."""

    def __init__(self, folder: str | Path):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder), flush_secs=10)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        scalars = STEP_SCALARS if kind == "step" else EVAL_SCALARS if kind == "eval" else ()
        step = event.get("step")
        for key, tag in scalars:
            value = event.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
                self.writer.add_scalar(tag, float(value), global_step=step)
        if kind == "end":
            self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


def check_available(setting: str) -> None:
    """ConfigError (one line with the remedy) when `train.tensorboard = on` and the package is missing."""
    if setting == "on" and not available():
        raise ConfigError(f"train.tensorboard = on needs the TensorBoard package: {INSTALL} "
                          f"(or --set train.tensorboard=off)")


def tensorboard_for(setting: str, folder: Path) -> TensorBoardLog | None:
    """The callback `train.tensorboard` asks for (writing to `folder`), or None (the trainer has run
    `check_available` before making any folder)."""
    if setting == "off" or not available():
        return None
    return TensorBoardLog(folder)


__all__ = ["TensorBoardLog", "tensorboard_for", "check_available", "available", "INSTALL"]
