"""Exact gradient accumulation: the trainer's own `TrainStep` against one big batch.

SGD without momentum makes the update proportional to the gradient, so a wrong divisor (the
classic `loss / accum_steps` on a partial window) shows up directly in the weights. (Adam's first
step is nearly `lr * sign(g)` and would hide it.) Models have no batch statistics in play: a
BN-free model, or the real network in eval mode.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from asl_cli.config import ModelConfig
from asl_cli.engine.precision import Precision
from asl_cli.engine.step import TrainStep
from asl_cli.model import build_model

FEATURES = 708


class TinyNet(nn.Module):
    """A BN-free model with the trainer's `model(features, mask)` signature (masked mean pool)."""

    def __init__(self, classes: int = 7):
        super().__init__()
        self.proj = nn.Linear(FEATURES, 16)
        self.head = nn.Linear(16, classes)

    def forward(self, features, mask):
        h = torch.tanh(self.proj(features)) * mask.unsqueeze(-1)
        return self.head(h.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))


def make_data(n: int, classes: int = 7, length: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, FEATURES, generator=g)
    lengths = torch.randint(2, length + 1, (n,), generator=g)
    mask = torch.arange(length) < lengths[:, None]
    y = torch.randint(0, classes, (n,), generator=g)
    return x * mask.unsqueeze(-1), mask, y


def one_update(model_fn, sizes: list[int], nominal_batch: int, accum: int, *, clip: float = 0.0,
               smoothing: float = 0.0, data=None) -> list[torch.Tensor]:
    """Parameters after ONE update through TrainStep from micro-batches of `sizes`."""
    torch.manual_seed(0)
    model = model_fn()
    model.eval()  # no batch statistics, no dropout
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=nominal_batch * accum,
                     clip_val=clip, label_smoothing=smoothing)
    x, mask, y = data
    start = 0
    for size in sizes:
        step.micro_step(x[start:start + size], mask[start:start + size], y[start:start + size])
        start += size
    applied, grad_norm, loss = step.update()
    assert applied
    assert step.window_samples == 0  # the window is reset for the next one
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-6) -> None:
    assert len(a) == len(b)
    for pa, pb in zip(a, b):
        torch.testing.assert_close(pa, pb, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_full_window_equals_one_big_batch(smoothing):
    data = make_data(48)
    accumulated = one_update(TinyNet, [12, 12, 12, 12], 12, 4, smoothing=smoothing, data=data)
    single = one_update(TinyNet, [48], 48, 1, smoothing=smoothing, data=data)
    assert_same(accumulated, single)


def test_uneven_window_equals_one_batch_of_its_true_size():
    """12+12+12+5 (a short last batch in a window of 4) == one batch of 41."""
    data = make_data(41)
    accumulated = one_update(TinyNet, [12, 12, 12, 5], 12, 4, data=data)
    single = one_update(TinyNet, [41], 41, 1, data=data)
    assert_same(accumulated, single)


def test_partial_last_window_equals_one_batch():
    """The last window of an epoch with only 2 of 4 micro-batches (12+7) == one batch of 19."""
    data = make_data(19)
    accumulated = one_update(TinyNet, [12, 7], 12, 4, data=data)
    single = one_update(TinyNet, [19], 12, 1, data=data)  # nominal 12, true 19: rescaled too
    assert_same(accumulated, single)


def test_naive_divisor_would_fail():
    """Sanity of the test itself: dividing by accum_steps on a partial window gives another update."""
    data = make_data(41)
    single = one_update(TinyNet, [41], 41, 1, data=data)
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, mask, y = data
    for s in range(0, 41, 12):
        loss = nn.functional.cross_entropy(model(x[s:s + 12], mask[s:s + 12]), y[s:s + 12]) / 4
        loss.backward()
    opt.step()
    assert not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(model.parameters(), single))


def test_clipping_acts_once_on_the_whole_window_gradient():
    data = make_data(41)
    accumulated = one_update(TinyNet, [12, 12, 12, 5], 12, 4, clip=0.05, data=data)
    single = one_update(TinyNet, [41], 41, 1, clip=0.05, data=data)
    unclipped = one_update(TinyNet, [41], 41, 1, clip=0.0, data=data)
    assert_same(accumulated, single)
    assert not all(torch.allclose(p, q) for p, q in zip(single, unclipped))  # clipping was active


def test_real_network_in_eval_mode_uneven_window():
    cfg = ModelConfig(dim=32, blocks=1, num_heads=4)
    data = make_data(41, classes=5, length=16)
    fn = lambda: build_model(cfg, 5)  # noqa: E731
    accumulated = one_update(fn, [12, 12, 12, 5], 12, 4, data=data)
    single = one_update(fn, [41], 41, 1, data=data)
    assert_same(accumulated, single, atol=1e-6)


def test_nonfinite_window_is_not_applied():
    torch.manual_seed(0)
    model = TinyNet().eval()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=8)
    x, mask, y = make_data(8)
    x[3, 0, 0] = float("nan")
    step.micro_step(x, mask, y)
    applied, grad_norm, loss = step.update()
    assert not applied and not math.isfinite(float(loss))
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_schedule_steps_once_per_update():
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda u: 1.0 / (u + 1))
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=8, scheduler=sched)
    x, mask, y = make_data(8)
    for _ in range(3):  # 3 windows of 2 micro-batches
        step.micro_step(x[:4], mask[:4], y[:4])
        step.micro_step(x[4:], mask[4:], y[4:])
        step.update()
    assert sched.last_epoch == 3
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 4)


def test_nonfinite_awp_pass_is_not_applied():
    """With AWP, the gradient applied is the second (perturbed) pass's: a NaN there must drop the
    update like a NaN in the first pass (fp32 has no GradScaler to catch it)."""
    from asl_cli.engine.awp import AWP

    torch.manual_seed(0)
    model = TinyNet().eval()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=8, clip_val=1.0, awp=AWP(model, 0.2))
    step.awp_active = True
    clean_loss_sum = step.loss_sum
    calls = {"n": 0}

    def loss_sum(*args):
        calls["n"] += 1
        loss = clean_loss_sum(*args)
        return loss * float("nan") if calls["n"] == 3 else loss  # the second pass's first micro-batch

    step.loss_sum = loss_sum
    x, mask, y = make_data(8)
    step.micro_step(x[:4], mask[:4], y[:4])
    step.micro_step(x[4:], mask[4:], y[4:])
    applied, grad_norm, loss = step.update()
    assert calls["n"] == 4 and not applied
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_failing_awp_pass_leaves_the_weights_where_they_were():
    """An error inside AWP's second pass (an OOM on a GPU) must not leave the weights perturbed."""
    from asl_cli.engine.awp import AWP

    torch.manual_seed(0)
    model = TinyNet().eval()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=8, awp=AWP(model, 0.2))
    step.awp_active = True
    x, mask, y = make_data(8)
    step.micro_step(x, mask, y)
    clean_loss_sum = step.loss_sum

    def failing(*args):
        assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # perturbed now
        raise RuntimeError("out of memory (simulated)")

    step.loss_sum = failing
    with pytest.raises(RuntimeError, match="simulated"):
        step.update()
    step.loss_sum = clean_loss_sum
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not step.awp.is_perturbed


# --- the absolute update: torch's own mean cross-entropy gradient -------------------------------
#
# The tests above compare TrainStep with itself (accumulated vs one batch), which a uniform scale
# error (every gradient doubled) passes: both sides double. Here the gradient TrainStep hands the
# optimizer is compared with plain `F.cross_entropy(model(x, mask), y, reduction="mean")` on the
# same samples, computed independently.

class RecordingSGD(torch.optim.SGD):
    """SGD with lr 0 that records the gradient it is asked to apply (the weights stay put)."""

    def __init__(self, params):
        super().__init__(params, lr=0.0)
        self.seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append([torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                          for group in self.param_groups for p in group["params"]])
        return super().step(closure)


def padded_data(n: int, classes: int = 7, length: int = 12, seed: int = 3):
    """Sequences of 2..length valid frames; the padding holds large garbage, not zeros, so a
    lost or ignored mask changes the logits."""
    x, mask, y = make_data(n, classes=classes, length=length, seed=seed)
    garbage = 50.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1))
    return torch.where(mask.unsqueeze(-1), x, garbage), mask, y


def reference_gradient(model, x, mask, y) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, mask), y, reduction="mean").backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return grads


def real_net():
    return build_model(ModelConfig(dim=32, blocks=1, num_heads=4), 7)


WINDOWS = {  # micro-batch sizes, batch size, accumulation
    "one-batch": ([24], 24, 1),
    "short-batch-no-accumulation": ([19], 24, 1),
    "full-window": ([6, 6, 6, 6], 6, 4),
    "short-last-batch": ([6, 6, 6, 5], 6, 4),
    "partial-last-window": ([6, 3], 6, 4),
}


@pytest.mark.parametrize("window", list(WINDOWS), ids=str)
@pytest.mark.parametrize("model_fn", [TinyNet, real_net], ids=["tiny", "real-network"])
def test_the_applied_gradient_is_torch_s_mean_cross_entropy_gradient(model_fn, window):
    sizes, batch_size, accum = WINDOWS[window]
    torch.manual_seed(0)
    model = model_fn().eval()  # deterministic: no dropout, BatchNorm on running statistics
    opt = RecordingSGD(model.parameters())
    step = TrainStep(model, opt, Precision("cpu", "fp32"), nominal_window=batch_size * accum)
    x, mask, y = padded_data(sum(sizes))
    start = 0
    for size in sizes:
        step.micro_step(x[start:start + size], mask[start:start + size], y[start:start + size])
        start += size
    applied, _, _ = step.update()
    assert applied and len(opt.seen) == 1
    want = reference_gradient(model, x, mask, y)
    assert any(float(g.abs().max()) > 1e-3 for g in want)  # a gradient worth comparing
    for got, ref in zip(opt.seen[0], want):
        torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
