"""The device a run uses: a setting (`auto`, `cpu`, `cuda`, `cuda:N`) turned into a `torch.device`
that exists here, and the process-wide settings made for it (seeds, cuDNN/TF32 flags, GPU UUID).

`resolve_device`'s errors name the option the user gave: `train.device` for a training configuration, the
command's own `--device` where there is no configuration (`asl evaluate`, `asl predict`).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from asl_cli.errors import ConfigError, NoGPUError
from asl_cli.units import MIB

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


def cuda_device_uuid(device: torch.device) -> str:
    """The CUDA device's UUID as torch reports it (no NVML "GPU-" prefix); "" when not CUDA or unknown.

    Monitors need it: NVML numbers GPUs in PCI bus order, CUDA in its own (and after
    CUDA_VISIBLE_DEVICES), so the index in `device` may name another GPU for NVML.
    """
    if device.type != "cuda":
        return ""
    try:
        return str(torch.cuda.get_device_properties(device).uuid)
    except Exception:  # noqa: BLE001 - an older torch or a driver hiccup: monitors fall back to the index
        return ""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def configure_backends(train_cfg, device: torch.device) -> None:
    """cuDNN autotuning for speed, or deterministic algorithms for reproducibility; TF32 on CUDA as
    `train.tf32` says (the legacy `allow_tf32` flags: torch 2.13 refuses to read the precision once
    the legacy and the new `fp32_precision` API were mixed, and Inductor reads the legacy ones)."""
    det = bool(train_cfg.deterministic)
    torch.use_deterministic_algorithms(det, warn_only=True)
    torch.backends.cudnn.deterministic = det
    torch.backends.cudnn.benchmark = bool(train_cfg.cudnn_benchmark) and not det and device.type == "cuda"
    if det and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    if device.type == "cuda":
        tf32 = bool(getattr(train_cfg, "tf32", True))
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def gpu_memory_mb(device: torch.device) -> float | None:
    """The CUDA device's total memory in MiB; None on a CPU or when torch cannot tell."""
    if device.type != "cuda":
        return None
    try:
        return torch.cuda.get_device_properties(device).total_memory / MIB
    except Exception:  # noqa: BLE001 - a driver hiccup: the advice simply lacks this rule
        return None
