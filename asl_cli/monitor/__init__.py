"""GPU monitoring: an NVML API with no UI in it, a sampler thread, a run's status file as data.

The scripted fake GPUs of --fake-gpu are a test double kept apart, in `asl_cli.testing.fake_gpu`.

    backend = open_backend()            # NVML, or fake GPUs from --fake-gpu / $ASL_FAKE_GPU
    with GPUSampler(backend, 1.0) as s:  # polls on a daemon thread
        gpu_panel(s.latest(), s.history())  # drawn by asl_cli.ui.gpu; nothing here imports Rich

Nothing here imports `pynvml` until a backend is initialised, so `asl --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path

from asl_cli.monitor.base import GPUBackend, GPUSnapshot, MigDevice, ProcessInfo
from asl_cli.monitor.sampler import GPUSampler

FAKE_GPU_ENV = "ASL_FAKE_GPU"  # a fake-GPU file (or `demo`) instead of NVML, like --fake-gpu

__all__ = ["GPUBackend", "GPUSnapshot", "MigDevice", "ProcessInfo", "GPUSampler", "open_backend", "open_sampler"]


def open_backend(fake: str | Path | None = None) -> GPUBackend:
    """The backend to use, initialised: fake GPUs from `fake` or `$ASL_FAKE_GPU`, else NVML.

    Raises `NoGPUError` (exit 5, one line with a hint) when NVML has no driver, and
    `ConfigError` for a broken fake-GPU file. The fake (`asl_cli.testing.fake_gpu`, a test double
    and demo) is imported only when asked for.
    """
    path = fake or os.environ.get(FAKE_GPU_ENV) or None
    backend: GPUBackend
    if path:
        from asl_cli.testing.fake_gpu import fake_backend

        backend = fake_backend(path)
    else:
        from asl_cli.monitor.nvml import NVMLBackend

        backend = NVMLBackend()
    backend.init()
    return backend


def open_sampler(fake_gpu: str | None = None, interval: float = 1.0):
    """Start the monitor's background GPU sampler; None when there is no NVIDIA GPU.

    The fake backend (`--fake-gpu FILE` or ASL_FAKE_GPU) stands in for NVML in tests and demos;
    a broken fake file is a ConfigError (asked for explicitly), a missing driver is not an error.
    """
    from asl_cli.errors import NoGPUError

    try:
        backend = open_backend(fake_gpu)
        if backend.device_count() == 0:
            backend.shutdown()
            return None
    except NoGPUError:
        return None
    return GPUSampler(backend, interval).start()
