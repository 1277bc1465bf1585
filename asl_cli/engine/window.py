"""What an accumulation window that does not land must undo.

A window's forward passes move the model's buffers (BatchNorm running statistics) before its
update is known to be good. Two cases undo them:

- a skipped update (a non-finite loss, an fp16 overflow): the floating buffers go back to the
  window's start (`undo_statistics`), as if the window had not run;
- a stop inside a window (Ctrl-C between micro-batches, accumulation > 1): every buffer, the RNG
  streams and the batch position go back to the window's start (`rewind`), so `last.pt` is the
  state after the previous update and a resume replays the window exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from asl_cli.engine.checkpoint import rng_state


class WindowRewind:
    """Copies taken at each window start (one fused copy of the floating buffers per window; with
    accumulation also a snapshot of every buffer and the RNG streams)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, accumulation: int):
        self.model, self.device, self.accumulation = model, device, int(accumulation)
        self.stats = [b for b in model.buffers() if b.is_floating_point()]
        self.stats_backup = [b.detach().clone() for b in self.stats]
        self._snapshot: dict[str, Any] | None = None

    def open(self, batch_in_epoch: int) -> None:
        """A window starts at `batch_in_epoch` (micro-batches of the epoch already consumed)."""
        if self.accumulation > 1:
            self._snapshot = {"rng": rng_state(self.device), "batch_in_epoch": batch_in_epoch,
                              "buffers": [b.detach().clone() for b in self.model.buffers()]}
        if self.stats:
            torch._foreach_copy_(self.stats_backup, self.stats)

    def undo_statistics(self) -> None:
        """A skipped update: its window's forward passes must not have moved the running statistics."""
        if self.stats:
            torch._foreach_copy_(self.stats, self.stats_backup)

    @torch.no_grad()
    def rewind(self) -> tuple[int, dict]:
        """A stop inside the window: buffers back to its start; (batch position, RNG state) to save."""
        snap = self._snapshot
        if snap is None:
            raise RuntimeError("rewind() needs a window opened with accumulation > 1")
        for b, saved in zip(self.model.buffers(), snap["buffers"]):
            b.copy_(saved)
        return snap["batch_in_epoch"], snap["rng"]


__all__ = ["WindowRewind"]
