"""Mixed precision in one small object: autocast dtype, GradScaler (fp16 only), backward, update.

Like timm's `NativeScaler`: the trainer calls `precision.autocast()` around the forward pass,
`precision.backward(loss)` every micro-step and `precision.update(optimizer, params, clip)` once
per accumulation window (unscale -> clip -> step -> scaler update). bf16 and fp32 need no scaler;
`GradScaler(enabled=False)` is a no-op, so every precision shares one code path. The scaler is
built for the run's own device type, so `Precision("cpu", "fp16")` runs the real fp16 logic
(loss scaling, overflow skips, scale growth and back-off) where the tests run: on a CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PrecisionChoice:
    name: str  # "fp32" | "bf16" | "fp16"
    note: str = ""  # why the choice differs from what was asked ("" when it does not)


def cuda_has_native_bf16(device: torch.device | int | None = None) -> bool:
    """bf16 in hardware on `device` (None: the current device): compute capability >= 8, or ROCm.

    `torch.cuda.is_bf16_supported()` also says True where bf16 is only emulated (T4, V100), which
    is far slower than fp16 there, and it only ever asks about the *current* device; asking the
    run's own device does not depend on who set the current one.
    """
    if torch.version.hip:
        return True
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device)[0] >= 8


def choose_precision(device_type: str, *, mixed: bool, requested: str = "auto",
                     bf16_supported: bool | None = None, device: torch.device | None = None) -> PrecisionChoice:
    """Pick the autocast dtype.

    CUDA: auto -> bf16 where supported, else fp16; explicit bf16 on a card without it -> fp16.
    CPU: fp32 unless bf16 is asked for explicitly. fp16 on a CPU falls back to fp32 with a note:
    CPU autocast and the GradScaler do run fp16 (the tests use them), but an fp16 step is slower
    than an fp32 one on a CPU (about 2x for the cpu preset's model, even on a Xeon with
    AVX512-FP16: docs/engine.md) and needs loss scaling; bf16 is the CPU's mixed precision.
    `mixed=False` is always fp32.
    `device`: the CUDA device the run trains on (None: the current one), whose bf16 support counts.
    """
    if not mixed or requested == "fp32":
        return PrecisionChoice("fp32")
    if device_type == "cuda":
        if bf16_supported is None:
            bf16_supported = cuda_has_native_bf16(device)
        if requested == "auto":
            return PrecisionChoice("bf16" if bf16_supported else "fp16")
        if requested == "bf16" and not bf16_supported:
            return PrecisionChoice("fp16", "this GPU has no bf16: using fp16 with a GradScaler")
        return PrecisionChoice(requested)
    if requested == "bf16":
        return PrecisionChoice("bf16")
    if requested == "fp16":
        return PrecisionChoice("fp32", "fp16 is slower than fp32 on a CPU: using fp32 "
                                       "(bf16 is the CPU's mixed precision)")
    return PrecisionChoice("fp32")  # auto on CPU: fp32 (bf16 only when asked for)


class Precision:
    """Owns autocast + GradScaler + backward + the once-per-update optimizer step."""

    def __init__(self, device_type: str, name: str = "fp32"):
        if name not in DTYPES:
            raise ValueError(f"unknown precision {name!r}")
        self.device_type = device_type
        self.name = name
        self.dtype = DTYPES[name]
        # Loss scaling for fp16 only, on any device (bf16 has fp32's exponent range). A "cuda" scaler
        # on a CPU machine disables itself, so the device type must be the run's own.
        self.scaler = torch.amp.GradScaler(device_type, enabled=name == "fp16")
        self.overflowed = False  # the latest update() found inf/NaN gradients: the scaler skipped the step

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def update(self, optimizer: torch.optim.Optimizer, parameters, clip_val: float) -> torch.Tensor | None:
        """unscale -> clip the whole accumulated gradient -> step -> scaler update.

        Returns the pre-clip gradient norm as a tensor (no sync) when clipping, else None.
        With fp16, an overflowing step is skipped by the scaler and the scale lowered; `overflowed`
        then says so, for the caller to leave its step count and schedule where they are.
        """
        self.scaler.unscale_(optimizer)  # clip real gradients, not scaled ones (a no-op without a scaler)
        grad_norm = None
        if clip_val > 0:
            params = [p for p in parameters if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip_val)
        self.overflowed = self._found_inf(optimizer)
        self.scaler.step(optimizer)
        self.scaler.update()
        return grad_norm

    def _found_inf(self, optimizer: torch.optim.Optimizer) -> bool:
        """Did `unscale_` find inf/NaN in the gradients (so `scaler.step` will skip the step)?

        Read from the scaler's per-optimizer record, the flag `scaler.step` itself reads with
        `.item()` right after: on a GPU this read waits for the same work that one does, so it adds
        no stall. (Comparing `get_scale()` before and after `update()` would add a sync after the
        optimizer's kernels.) The record is private to torch; the CPU tests break if it moves.
        """
        if not self.scaler.is_enabled():
            return False
        found = self.scaler._per_optimizer_states[id(optimizer)].get("found_inf_per_device", {})
        return any(bool(flag) for flag in found.values())  # SYNC (fp16): the one scaler.step makes

    @property
    def scale(self) -> float | None:
        """The current loss scale (fp16), else None. Reads a GPU scalar: call at log time only."""
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else None

    def state_dict(self) -> dict:
        return {"name": self.name, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
