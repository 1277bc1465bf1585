"""Adversarial weight perturbation (AWP), the winner's variant.

Every perturbed weight tensor w with gradient g moves by `lam * g / (||g|| + eps)` (the norm of
that tensor's gradient: each tensor moves by ~lam in L2, whatever its own size), the gradient is
taken at the moved weights, the weights go back, and the optimizer applies that second gradient.
The first gradient only chooses the direction. The winner used lam = 0.2 from epoch 15, on all
trainable weights. (Unlike the AWP paper, the step is not scaled by ||w||.)

How the trainer uses it, once per accumulation window (what asl_cli/engine/trainer.py does):

    # micro-steps as usual: forward, precision.backward(loss_i / N) -> p.grad holds the window's gradient
    awp.perturb()                          # direction from p.grad (scaled fp16 grads are fine: only the direction counts)
    optimizer.zero_grad(set_to_none=True)
    for batch in window: precision.backward(loss(batch) / N)   # gradient at the perturbed weights
    awp.restore()                          # bitwise the original weights
    precision.update(optimizer, ...)       # unscale -> clip -> step, with the adversarial gradient

With GradScaler (fp16) the first gradient is still scaled and may hold inf/NaN after an overflow;
a tensor whose gradient norm is not finite is simply not moved (no host sync), and the scaler
deals with the second pass as usual. BatchNorm running statistics are updated by both forward
passes, as in the winner's Keras train_step. `perturb(grads)` also accepts explicit gradients
(e.g. from `torch.autograd.grad`) instead of reading `p.grad`.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn


class AWP:
    def __init__(self, model: nn.Module | Iterable[torch.Tensor], lam: float = 0.2, eps: float = 1e-6):
        if lam < 0:
            raise ValueError(f"AWP lambda must be >= 0, got {lam}")
        params = model.parameters() if isinstance(model, nn.Module) else model
        self.params = [p for p in params if p.requires_grad]
        self.lam = float(lam)
        self.eps = float(eps)
        self._backup: list[torch.Tensor] | None = None
        self._moved: list[torch.Tensor] = []

    @property
    def is_perturbed(self) -> bool:
        return self._backup is not None

    @torch.no_grad()
    def perturb(self, grads: Sequence[torch.Tensor | None] | None = None) -> None:
        """Move each weight by lam * g / (||g|| + eps); `grads` defaults to each parameter's `.grad`."""
        if self._backup is not None:
            raise RuntimeError("AWP.perturb() called twice without restore()")
        if grads is None:
            grads = [p.grad for p in self.params]
        if len(grads) != len(self.params):
            raise ValueError(f"AWP got {len(grads)} gradients for {len(self.params)} parameters")
        moved = [(p, g) for p, g in zip(self.params, grads) if g is not None]
        self._moved = [p for p, _ in moved]
        self._backup = [p.detach().clone() for p in self._moved]
        if not moved:
            return
        gs = [g.detach().float() for _, g in moved]
        norms = torch._foreach_norm(gs)
        for (p, _), g, norm in zip(moved, gs, norms):
            step = g * (self.lam / (norm + self.eps))
            # A non-finite gradient (fp16 overflow) leaves this tensor where it is.
            step = torch.where(torch.isfinite(norm), step, torch.zeros_like(step))
            p.add_(step.to(p.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """Put back exactly the weights saved by `perturb()`."""
        if self._backup is None:
            raise RuntimeError("AWP.restore() called without perturb()")
        if self._moved:
            torch._foreach_copy_(self._moved, self._backup)
        self._backup, self._moved = None, []

    @contextlib.contextmanager
    def perturbed(self, grads: Sequence[torch.Tensor | None] | None = None) -> Iterator[None]:
        """`with awp.perturbed(): ...` perturbs on entry and restores on exit, even on an exception."""
        self.perturb(grads)
        try:
            yield
        finally:
            self.restore()


__all__ = ["AWP"]
