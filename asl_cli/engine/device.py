"""Turning a device setting (`auto`, `cpu`, `cuda`, `cuda:N`) into a `torch.device` that exists here.

Its errors name the option the user gave: `train.device` for a training configuration, the
command's own `--device` where there is no configuration (`asl evaluate`, `asl predict`).
"""

from __future__ import annotations

import torch

from asl_cli.errors import ConfigError, NoGPUError

TRAIN_DEVICE = "train.device"


def resolve_device(spec: str, *, option: str = TRAIN_DEVICE) -> torch.device:
    """`auto` -> cuda if available else cpu; an explicit cuda device must exist.

    ConfigError for a value that is no device, NoGPUError for a GPU this machine does not have;
    both name `option`.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"{option}: {spec!r} is not a device (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            # a preset only helps where the device came from a configuration
            instead = "--device cpu or the cpu preset" if option == TRAIN_DEVICE else f"{option} cpu"
            raise NoGPUError(f"{option} is {spec!r} but no CUDA GPU is available (use {instead})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NoGPUError(f"{option} is {spec!r} but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type != "cpu":
        raise ConfigError(f"{option}: {spec!r} is not supported (auto, cpu, cuda, cuda:N)")
    return device
