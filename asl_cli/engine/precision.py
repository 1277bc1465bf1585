"""Mixed precision in one small object: autocast dtype, GradScaler (fp16 only), backward, update.

Like timm's `NativeScaler`: the trainer calls `precision.autocast()` around the forward pass,
`precision.backward(loss)` every micro-step and `precision.update(optimizer, params, clip)` once
per accumulation window (unscale -> clip -> step -> scaler update). bf16 and fp32 need no scaler;
`GradScaler(enabled=False)` is a no-op, so CPU and GPU share one code path.
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
    CPU: fp32 unless bf16 is asked for explicitly (CPU autocast has bf16; fp16 + GradScaler is a
    CUDA feature, so fp16 on CPU falls back to fp32 with a note). `mixed=False` is always fp32.
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
        return PrecisionChoice("fp32", "fp16 mixed precision needs CUDA: using fp32 on the CPU")
    return PrecisionChoice("fp32")  # auto on CPU: fp32 (bf16 only when asked for)


class Precision:
    """Owns autocast + GradScaler + backward + the once-per-update optimizer step."""

    def __init__(self, device_type: str, name: str = "fp32"):
        if name not in DTYPES:
            raise ValueError(f"unknown precision {name!r}")
        self.device_type = device_type
        self.name = name
        self.dtype = DTYPES[name]
        # Loss scaling only for fp16 on CUDA (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler("cuda", enabled=(name == "fp16" and device_type == "cuda"))

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def update(self, optimizer: torch.optim.Optimizer, parameters, clip_val: float) -> torch.Tensor | None:
        """unscale -> clip the whole accumulated gradient -> step -> scaler update.

        Returns the pre-clip gradient norm as a tensor (no sync) when clipping, else None.
        With fp16, an overflowing step is skipped by the scaler and the scale lowered: normal.
        """
        grad_norm = None
        if clip_val > 0:
            self.scaler.unscale_(optimizer)  # clip real gradients, not scaled ones
            params = [p for p in parameters if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip_val)
        self.scaler.step(optimizer)
        self.scaler.update()
        return grad_norm

    @property
    def scale(self) -> float | None:
        """The current loss scale (fp16), else None. Reads a GPU scalar: call at log time only."""
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else None

    def state_dict(self) -> dict:
        return {"name": self.name, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
