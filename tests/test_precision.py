"""The precision layer's real logic on a CPU: fp16 loss scaling with torch's CPU GradScaler.

Training never picks fp16 on a CPU (`choose_precision` falls back to fp32: slower there), but
`Precision("cpu", "fp16")` runs the same code a GPU run does: scale -> backward per micro-batch ->
unscale once -> clip real gradients -> step -> scaler update, overflow skips, scale growth and
back-off. So a broken fp16 path fails here, not only on a GPU that CI does not have.
"""

from __future__ import annotations

import math

import pytest
import torch

from asl_cli.engine.precision import Precision
from asl_cli.engine.step import TrainStep
from test_accumulation import RecordingSGD, TinyNet, make_data, reference_gradient


@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_the_scaler_is_built_for_the_run_s_device_and_enabled_for_fp16_only(name, device_type, monkeypatch):
    # A "cuda" scaler reports itself disabled on a CPU machine whatever it was asked for, so what
    # Precision asks for is recorded instead of read back.
    built = []
    real = torch.amp.GradScaler

    def recording(device="cuda", *args, enabled=True, **kwargs):
        built.append((device, enabled))
        return real("cpu", *args, enabled=enabled, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", recording)
    Precision(device_type, name)
    assert built == [(device_type, name == "fp16")]


def test_on_a_cpu_the_fp16_scaler_is_real():
    assert Precision("cpu", "fp16").scaler.is_enabled() and Precision("cpu", "fp16").scale == 2.0 ** 16
    assert not Precision("cpu", "bf16").scaler.is_enabled() and Precision("cpu", "bf16").scale is None
    assert not Precision("cpu", "fp32").scaler.is_enabled()


def _spy(calls: list, name: str, fn):
    def wrapped(*args, **kwargs):
        calls.append(name)
        return fn(*args, **kwargs)
    return wrapped


def _norm(tensors) -> float:
    return float(torch.linalg.vector_norm(torch.stack([t.norm() for t in tensors])))


def test_an_fp16_window_scales_every_backward_unscales_once_and_clips_real_gradients(monkeypatch):
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = RecordingSGD(model.parameters())
    precision = Precision("cpu", "fp16")
    x, mask, y = make_data(12)
    reference = reference_gradient(model, x, mask, y)  # fp32, unscaled
    clip = _norm(reference) / 2  # clipping active
    step = TrainStep(model, opt, precision, nominal_window=12, clip_val=clip)

    calls: list[str] = []
    scaler = precision.scaler
    for name in ("scale", "unscale_", "step", "update"):  # GradScaler.step calls self.unscale_ too
        setattr(scaler, name, _spy(calls, name, getattr(scaler, name)))
    opt.step = _spy(calls, "optimizer.step", opt.step)
    model.head.weight.register_hook(lambda grad: calls.append("backward"))
    clip_saw = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip_grad_norm_(params, max_norm, *args, **kwargs):
        params = list(params)
        calls.append("clip")
        clip_saw.append(_norm([p.grad for p in params]))
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_grad_norm_)
    for start in (0, 4, 8):
        step.micro_step(x[start:start + 4], mask[start:start + 4], y[start:start + 4])
    applied, grad_norm, _ = step.update()

    assert applied and step.skip_reason is None
    assert calls == ["scale", "backward"] * 3 + ["unscale_", "clip", "step", "optimizer.step", "update"]
    # the clip saw the real gradient (fp16 forward: close to the fp32 one), not 2**16 times it
    assert clip_saw[0] == pytest.approx(_norm(reference), rel=1e-2)
    assert float(grad_norm) == pytest.approx(clip_saw[0])
    applied_grad = opt.seen[0]
    assert _norm(applied_grad) == pytest.approx(clip, rel=1e-4)
    dot = sum(float((a * r).sum()) for a, r in zip(applied_grad, reference))
    assert dot / (_norm(applied_grad) * _norm(reference)) > 0.999  # the same direction


def test_the_fp16_gradient_applied_is_the_mean_cross_entropy_gradient():
    """Without clipping (the scaler unscales inside its step): still the real gradient."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = RecordingSGD(model.parameters())
    step = TrainStep(model, opt, Precision("cpu", "fp16"), nominal_window=16)
    x, mask, y = make_data(11)
    step.micro_step(x[:8], mask[:8], y[:8])
    step.micro_step(x[8:], mask[8:], y[8:])  # a partial window: 11 of 16
    assert step.update()[0]
    reference = reference_gradient(model, x, mask, y)
    error = _norm([a - r for a, r in zip(opt.seen[0], reference)])
    assert error < 1e-2 * _norm(reference)


def _window(step: TrainStep, data, *, overflow: bool = False):
    x, mask, y = data
    step.micro_step(x[:4], mask[:4], y[:4])
    if overflow:  # an fp16 gradient that overflowed in this window's backward
        step.model.head.weight.grad[0, 0] = float("inf")
    step.micro_step(x[4:], mask[4:], y[4:])
    return step.update()


def test_an_inf_gradient_skips_the_update_and_leaves_weights_schedule_and_rate():
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda u: 1.0 / (u + 1))
    precision = Precision("cpu", "fp16")
    step = TrainStep(model, opt, precision, nominal_window=8, clip_val=1.0, scheduler=sched)
    data = make_data(8)
    assert _window(step, data)[0]
    weights = [p.detach().clone() for p in model.parameters()]
    lr, last_lr, scale = opt.param_groups[0]["lr"], step.last_lr, precision.scale

    applied, grad_norm, loss = _window(step, data, overflow=True)
    assert not applied and step.skip_reason == "overflow" and grad_norm is None
    assert math.isfinite(float(loss))  # the loss was fine: not the non-finite-loss path
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert sched.last_epoch == 1 and opt.param_groups[0]["lr"] == lr and step.last_lr == last_lr
    assert precision.scale == scale / 2  # backed off
    assert all(p.grad is None for p in model.parameters()) and step.window_samples == 0

    assert _window(step, data)[0]  # the next window applies, with the rate the skipped one would have used
    assert step.last_lr == lr and sched.last_epoch == 2
    assert not all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))


def test_the_loss_scale_grows_after_clean_windows_and_backs_off_at_each_overflow():
    torch.manual_seed(0)
    model = TinyNet().eval()
    opt = RecordingSGD(model.parameters())  # records each step it takes
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda u: 1.0)
    precision = Precision("cpu", "fp16")
    precision.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_factor=2.0, backoff_factor=0.5,
                                            growth_interval=2)  # grows after 2 clean windows in a row
    step = TrainStep(model, opt, precision, nominal_window=8, scheduler=sched)
    data = make_data(8)
    script = [False, False, True, False, False, False, True, True, False]  # overflow in the window?
    want = [1024, 2048, 1024, 1024, 2048, 2048, 1024, 512, 512]
    scales, applied = [], []
    for overflow in script:
        applied.append(_window(step, data, overflow=overflow)[0])
        scales.append(precision.scale)
    assert scales == want
    assert applied == [not o for o in script]
    assert len(opt.seen) == sched.last_epoch == script.count(False)
    state = precision.state_dict()  # a resume continues at the same scale
    again = Precision("cpu", "fp16")
    again.load_state_dict(state)
    assert again.scale == 512
