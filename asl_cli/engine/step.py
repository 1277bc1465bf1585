"""One training step: micro-batches into an accumulation window, then one optimizer update.

    step = TrainStep(model, optimizer, precision, nominal_window=batch_size * accumulation)
    step.micro_step(features, mask, labels, window_end=False)   # forward + backward, no update
    step.micro_step(features, mask, labels, window_end=True)
    applied, grad_norm, loss_sum = step.update()                 # unscale -> clip -> step -> schedule

It knows nothing of processes, epochs or files: `engine/distributed.py` wraps it for DDP
(`DistributedTrainStep`), the trainer (`engine/trainer.py`) drives it. Exact accumulation: every
micro-batch's loss is a per-sample *sum*, and the window's gradient is divided by the window's
true sample count, so 12+12+12+5 samples give the same update as one batch of 41.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from asl_cli.engine.compiled import CompiledForward
from asl_cli.engine.precision import Precision


class TrainStep:
    """Micro-steps and optimizer updates with exact gradient accumulation.

    `micro_step(features, mask, labels)` adds one micro-batch's gradient: its loss is the SUM of
    per-sample losses divided by the nominal window size (batch_size x accumulation), which keeps
    gradient magnitudes (and the fp16 loss scale) as usual. `update()` rescales the gradient by
    nominal / true sample count when the window was short (a partial last window or a short last
    batch), so the gradient is always the mean over exactly the samples seen; then
    unscale -> clip -> step -> scaler update -> schedule step, once.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, precision: Precision, *,
                 nominal_window: int, clip_val: float = 0.0, label_smoothing: float = 0.0,
                 scheduler: Any = None, forward: Callable | None = None, awp: Any = None):
        self.model = model
        self.optimizer = optimizer
        self.precision = precision
        self.scheduler = scheduler
        self.nominal = int(nominal_window)
        self.clip_val = float(clip_val)
        self.label_smoothing = float(label_smoothing)
        self.forward = forward or model
        self.awp = awp  # an AWP object, used when `awp_active` is set by the trainer
        self.awp_active = False
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.last_lr: float | None = None  # the rate the latest applied update used (the schedule moves on after it)
        self.skip_reason: str | None = None  # why the latest update() applied nothing: "nonfinite" | "overflow"
        self.compile_s_last = 0.0  # seconds of the latest micro_step when it compiled a graph, else 0
        self.reset_window()

    def reset_window(self) -> None:
        self.window_loss: torch.Tensor | float = 0.0  # device tensor: summed per-sample losses
        self.window_samples = 0  # host int: known from the batch shape, no sync
        self.window_batches: list[tuple] = []  # kept only for AWP's second pass

    def loss_sum(self, features: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            logits = self.forward(features, mask)
        # The loss in fp32 (autocast also does this for cross_entropy; being explicit keeps CPU bf16 right).
        return F.cross_entropy(logits.float(), labels, reduction="sum", label_smoothing=self.label_smoothing)

    def micro_step(self, features: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, *,
                   window_end: bool = True) -> None:
        """Add one micro-batch's gradient to the window (`window_end`: the window's last micro-batch,
        where several processes synchronise; one process needs no such point)."""
        with self._compile_timer():
            loss = self._forward_backward(features, mask, labels, self.nominal)
        self.window_loss = self.window_loss + loss.detach()
        self.window_samples += int(labels.shape[0])
        if self.awp_active:
            self.window_batches.append((features, mask, labels))

    def _forward_backward(self, features: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                          divisor: int) -> torch.Tensor:
        """loss_sum, then backward of loss / divisor; returns the loss sum."""
        loss = self.loss_sum(features, mask, labels)
        try:
            self.precision.backward(loss / divisor)
        except Exception as exc:
            # torch.compile builds the backward graph at the first backward pass: if that fails, this
            # micro-batch runs again eagerly (no gradient reached the weights: they all sit behind the
            # compiled graph). Once per run, that batch's BN statistics and dropout draws happen twice.
            if not (isinstance(self.forward, CompiledForward) and self.forward.backward_failed(exc)):
                raise
            loss = self.loss_sum(features, mask, labels)
            self.precision.backward(loss / divisor)
        return loss

    @contextlib.contextmanager
    def _compile_timer(self):
        """Times a micro-step that compiled a graph (its forward and the backward compiled at its
        first pass): `compile_s_last`, also added to the compiled forward's `compile_s`."""
        forward = self.forward if isinstance(self.forward, CompiledForward) else None
        self.compile_s_last = 0.0
        if forward is None:
            yield
            return
        events, spent, begin = forward.compile_events, forward.compile_s, time.perf_counter()
        yield
        if forward.compile_events != events:
            self.compile_s_last = time.perf_counter() - begin
            forward.compile_s = spent + self.compile_s_last

    def update(self) -> tuple[bool, torch.Tensor | None, torch.Tensor]:
        """Apply the window: (applied, grad norm tensor or None, window loss sum tensor).

        Not applied (`skip_reason` says why) when the window's loss is non-finite ("nonfinite":
        gradients are dropped and the caller decides, skip or stop) or when the fp16 GradScaler
        found inf/NaN in the gradients ("overflow": it skipped the step and lowered the scale).
        A skipped window moves neither the weights nor the schedule nor `last_lr`.
        """
        n, loss = self.window_samples, self.window_loss
        if n == 0:
            self.skip_reason = "empty"
            return False, None, torch.zeros(())
        loss = loss if torch.is_tensor(loss) else torch.tensor(float(loss))
        checked = loss
        if self.awp_active and self.awp is not None:
            # The update applies the AWP pass's gradient, so its loss is checked too (same sync). A NaN
            # first-pass gradient does not move the weights (AWP skips non-finite norms).
            checked = loss + self._awp_second_pass()
        # SYNC (one per optimizer update): a NaN/Inf loss must stop this update before it lands.
        if not bool(torch.isfinite(checked)):
            self.optimizer.zero_grad(set_to_none=True)
            self.reset_window()
            self.skip_reason = "nonfinite"
            return False, None, loss
        if n != self.nominal:  # short window: mean over the samples actually seen
            grads = [p.grad for p in self.params if p.grad is not None]
            torch._foreach_mul_(grads, self.nominal / n)
        lr = float(self.optimizer.param_groups[0]["lr"])
        grad_norm = self.precision.update(self.optimizer, self.params, self.clip_val)
        self.optimizer.zero_grad(set_to_none=True)
        self.reset_window()
        if self.precision.overflowed:  # no step was taken: the schedule waits for the next real one
            self.skip_reason = "overflow"
            return False, None, loss
        self.skip_reason = None
        self.last_lr = lr
        if self.scheduler is not None:
            self.scheduler.step()
        return True, grad_norm, loss

    def _awp_second_pass(self) -> torch.Tensor:
        """AWP: move the weights along the window's gradient, take the gradient there, move back.

        Returns the summed loss at the moved weights (a device tensor, no sync).
        """
        total: torch.Tensor | float = 0.0
        with self.awp.perturbed():  # restored even when the pass fails (an OOM must not leave moved weights)
            self.optimizer.zero_grad(set_to_none=True)
            for features, mask, labels in self.window_batches:
                loss = self.loss_sum(features, mask, labels)
                self.precision.backward(loss / self.nominal)
                total = total + loss.detach()
        return total if torch.is_tensor(total) else torch.tensor(float(total))


__all__ = ["TrainStep"]
