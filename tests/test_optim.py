"""Optimizers (RAdam + Lookahead, RAdam, AdamW), the update-counted schedule, and AWP."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from asl_cli.config import OptimConfig
from asl_cli.engine.awp import AWP
from asl_cli.engine.optim import Lookahead, build_optimizer, build_scheduler, lr_factor


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.BatchNorm1d(16), torch.nn.SiLU(),
                               torch.nn.Linear(16, 3))


def batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def train(model, optimizer, scheduler, data) -> None:
    for x, y in data:
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()


def lrs_over(cfg: OptimConfig, total: int, per_epoch: int, lr_scale: float = 1.0) -> list[float]:
    """The lr used by each of `total` updates, then the lr after the last one."""
    opt = build_optimizer(tiny_model(), cfg, lr_scale=lr_scale)
    sched = build_scheduler(opt, cfg, total_updates=total, updates_per_epoch=per_epoch)
    seen = []
    for _ in range(total):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: a no-op update, keeps the scheduler's order check happy
        sched.step()
    seen.append(opt.param_groups[0]["lr"])
    assert all(g["lr"] == seen[-1] for g in opt.param_groups)
    return seen


# --- schedule ------------------------------------------------------------------------------------

def test_cosine_without_warmup_starts_at_peak_and_ends_at_min_lr():
    cfg = OptimConfig(lr=4e-3, min_lr=1e-6, warmup_epochs=0)
    lrs = lrs_over(cfg, total=50, per_epoch=10)
    assert lrs[0] == pytest.approx(4e-3)
    assert lrs[-1] == pytest.approx(1e-6, rel=1e-9)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert lrs[25] == pytest.approx(1e-6 + (4e-3 - 1e-6) * 0.5, rel=1e-9)  # half way: the cosine's midpoint


def test_warmup_is_linear_then_cosine_and_counts_updates():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_epochs=2)
    lrs = lrs_over(cfg, total=60, per_epoch=5)  # 10 warm-up updates
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[4] == pytest.approx(5e-4)
    assert lrs[9] == pytest.approx(1e-3) and lrs[10] == pytest.approx(1e-3)
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-5)
    assert lr_factor(1000, total_updates=60, warmup_updates=10, floor=0.01) == pytest.approx(0.01)


def test_constant_schedule_and_lr_scale():
    lrs = lrs_over(OptimConfig(lr=1e-3, min_lr=1e-5, warmup_epochs=1, schedule="constant"), total=20, per_epoch=4)
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert set(lrs[3:]) == {1e-3}
    scaled = lrs_over(OptimConfig(lr=1e-3, min_lr=1e-5), total=20, per_epoch=4, lr_scale=4.0)
    assert scaled[0] == pytest.approx(4e-3)
    assert scaled[-1] == pytest.approx(1e-5)  # min_lr is absolute


# --- optimizers and weight decay ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["radam_lookahead", "radam", "adamw"])
def test_weight_decay_groups(name):
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig(optimizer=name, lr=1e-3, weight_decay=0.1))
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"decay", "no_decay"}
    grouped = [p for g in opt.param_groups for p in g["params"]]
    assert len(grouped) == len(list(model.parameters()))
    assert {id(p) for p in grouped} == {id(p) for p in model.parameters()}
    assert all(p.ndim >= 2 for p in groups["decay"]["params"])
    assert all(p.ndim == 1 for p in groups["no_decay"]["params"])  # biases and BN gamma/beta
    assert groups["decay"]["weight_decay"] == 0.1 and groups["no_decay"]["weight_decay"] == 0.0
    base = opt.optimizer if isinstance(opt, Lookahead) else opt
    assert isinstance(base, torch.optim.AdamW if name == "adamw" else torch.optim.RAdam)
    assert isinstance(opt, Lookahead) == (name == "radam_lookahead")
    if name != "adamw":
        assert base.param_groups[0]["decoupled_weight_decay"] is True


def test_decoupled_decay_is_weight_decay_times_current_lr():
    """With a zero gradient, one RAdam update shrinks a matrix by exactly (1 - lr * 0.1): 0.1 x lr."""
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig(optimizer="radam", lr=2e-3, weight_decay=0.1))
    weight, bias = model[0].weight, model[0].bias
    before_w, before_b = weight.detach().clone(), bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(weight, before_w * (1 - 2e-3 * 0.1), rtol=0, atol=1e-9)
    assert torch.equal(bias, before_b)


# --- Lookahead ------------------------------------------------------------------------------------

def test_lookahead_interpolates_from_the_initial_weights():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Lookahead(torch.optim.SGD([w], lr=0.1), k=2, alpha=0.5)
    start = w.detach().clone()
    fast = start.clone()
    for step in range(4):
        w.grad = torch.tensor([1.0, 1.0])
        opt.step()
        fast = fast - 0.1
        if step == 1:  # first sync: halfway between the start and the fast weights
            torch.testing.assert_close(w.detach(), start + 0.5 * (fast - start))
            start = fast = w.detach().clone()
    torch.testing.assert_close(w.detach(), start + 0.5 * (fast - start))
    assert opt.updates == 4


def test_lookahead_resume_continues_bitwise():
    cfg = OptimConfig(lr=3e-3, lookahead_k=5)
    data = batches(13)

    model = tiny_model()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_updates=13, updates_per_epoch=4)
    train(model, opt, sched, data)

    model_a = tiny_model()
    opt_a = build_optimizer(model_a, cfg)
    sched_a = build_scheduler(opt_a, cfg, total_updates=13, updates_per_epoch=4)
    train(model_a, opt_a, sched_a, data[:7])  # 7: stop between two syncs
    buffer = io.BytesIO()
    torch.save({"model": model_a.state_dict(), "opt": opt_a.state_dict(), "sched": sched_a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    model_b = tiny_model(seed=123)  # different weights: everything must come from the checkpoint
    opt_b = build_optimizer(model_b, cfg)
    sched_b = build_scheduler(opt_b, cfg, total_updates=13, updates_per_epoch=4)
    model_b.load_state_dict(saved["model"])
    opt_b.load_state_dict(saved["opt"])
    sched_b.load_state_dict(saved["sched"])
    assert opt_b.updates == 7 and opt_b.param_groups is opt_b.optimizer.param_groups
    train(model_b, opt_b, sched_b, data[7:])

    for a, b in zip(model.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)
    assert opt_b.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_lookahead_state_dict_needs_its_entry():
    model = tiny_model()
    opt = build_optimizer(model, OptimConfig())
    plain = torch.optim.RAdam(model.parameters()).state_dict()
    with pytest.raises(ValueError, match="lookahead"):
        opt.load_state_dict(plain)


def test_lookahead_works_under_gradscaler_and_scheduler():
    model = tiny_model()
    cfg = OptimConfig(lr=1e-3)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_updates=10, updates_per_epoch=10)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    before = copy.deepcopy(model.state_dict())
    for x, y in batches(2):
        scaler.scale(F.cross_entropy(model(x), y)).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        sched.step()
    assert opt.updates == 2
    assert not torch.equal(before["0.weight"], model[0].weight)
    assert opt.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * lr_factor(2, total_updates=10,
                                                                                  floor=1e-6 / 1e-3))


# --- AWP ------------------------------------------------------------------------------------------

def test_awp_moves_each_tensor_by_lambda_and_restores_bitwise():
    model = tiny_model()
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    model[3].bias.grad = None  # a parameter without gradient is left alone
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    awp = AWP(model, 0.2)
    awp.perturb()
    for name, p in model.named_parameters():
        delta = p.detach() - original[name]
        if grads[name] is None:
            assert torch.equal(delta, torch.zeros_like(delta))
            continue
        g = grads[name]
        assert delta.norm().item() == pytest.approx(0.2 * g.norm().item() / (g.norm().item() + 1e-6), rel=1e-4)
        assert F.cosine_similarity(delta.flatten(), g.flatten(), dim=0).item() == pytest.approx(1.0, abs=1e-5)
    awp.restore()
    for name, p in model.named_parameters():
        assert torch.equal(p, original[name])


def test_awp_gradient_is_taken_at_the_perturbed_weights():
    model = tiny_model().eval()  # eval BN: both passes see the same statistics
    x, y = batches(1)[0]
    F.cross_entropy(model(x), y).backward()
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for p, q in zip(model.parameters(), shifted.parameters()):
            q.add_(0.2 * p.grad / (p.grad.norm() + 1e-6))
    shifted.zero_grad(set_to_none=True)
    F.cross_entropy(shifted(x), y).backward()

    awp = AWP(model, 0.2)
    with awp.perturbed():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    for p, q in zip(model.parameters(), shifted.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7)


def test_awp_skips_non_finite_gradients_and_guards_misuse():
    model = tiny_model()
    awp = AWP(model, 0.2)
    grads = [torch.full_like(p, float("inf")) if i == 0 else torch.ones_like(p)
             for i, p in enumerate(model.parameters())]
    before = [p.detach().clone() for p in model.parameters()]
    first = before[0]
    awp.perturb(grads)
    assert torch.equal(next(model.parameters()), first)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # only the tensor with the non-finite gradient stays: the others moved by lambda along their gradient
    for p, b, g in list(zip(model.parameters(), before, grads))[1:]:
        torch.testing.assert_close(p.detach() - b, 0.2 * g / (g.norm() + 1e-6), rtol=1e-4, atol=1e-6)
    with pytest.raises(RuntimeError):
        awp.perturb(grads)
    awp.restore()
    with pytest.raises(RuntimeError):
        awp.restore()
    with pytest.raises(ZeroDivisionError):
        with awp.perturbed(grads):
            1 / 0
    assert not awp.is_perturbed and torch.equal(next(model.parameters()), first)


def test_awp_perturbation_of_the_full_model_has_the_expected_size():
    from asl_cli.config import ModelConfig
    from asl_cli.model import build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=32, blocks=1), num_classes=10)
    x = torch.randn(4, 12, 708)
    mask = torch.arange(12)[None] < torch.tensor([12, 7, 3, 1])[:, None]
    F.cross_entropy(model(x, mask), torch.tensor([0, 1, 2, 3])).backward()
    before = [p.detach().clone() for p in model.parameters()]
    awp = AWP(model, 0.2)
    awp.perturb()
    moved = [(p.detach() - b).norm().item() for p, b in zip(model.parameters(), before)]
    awp.restore()
    assert len(moved) == len(before)
    assert all(math.isclose(m, 0.2, rel_tol=1e-3) for m in moved)


def test_unknown_names_are_config_errors():
    from asl_cli.errors import ConfigError

    model = tiny_model()
    with pytest.raises(ConfigError, match="optim.optimizer"):
        build_optimizer(model, OptimConfig(optimizer="sgd"))
    opt = build_optimizer(model, OptimConfig())
    with pytest.raises(ConfigError, match="optim.schedule"):
        build_scheduler(opt, OptimConfig(schedule="step"), total_updates=10, updates_per_epoch=5)
