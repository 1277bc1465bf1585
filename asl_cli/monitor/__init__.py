"""GPU monitoring: an NVML API with no UI in it, a scripted fake, a sampler thread, pure renderers.

    backend = open_backend()            # NVML, or fake GPUs from --fake-gpu / $ASL_FAKE_GPU
    with GPUSampler(backend, 1.0) as s:  # polls on a daemon thread
        gpu_panel(s.latest(), s.history())

Nothing here imports `pynvml` until a backend is initialised, so `asl --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from asl_cli.monitor.base import GPUBackend, GPUSnapshot, MigDevice, ProcessInfo
from asl_cli.monitor.sampler import GPUSampler

__all__ = ["GPUBackend", "GPUSnapshot", "MigDevice", "ProcessInfo", "GPUSampler", "open_backend"]


def open_backend(fake: str | Path | None = None) -> GPUBackend:
    """The backend to use, initialised: fake GPUs from `fake` or `$ASL_FAKE_GPU`, else NVML.

    Raises `NoGPUError` (exit 5, one line with a hint) when NVML has no driver, and
    `ConfigError` for a broken fake-GPU file.
    """
    from asl_cli.monitor.fake import fake_backend, fake_path_from_env
    from asl_cli.monitor.nvml import NVMLBackend

    path = fake or fake_path_from_env()
    backend: GPUBackend = fake_backend(path) if path else NVMLBackend()
    backend.init()
    return backend
