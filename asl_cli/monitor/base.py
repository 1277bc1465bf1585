"""What a GPU monitor backend returns: one immutable snapshot per GPU, N/A as None.

No NVML import here: the renderers and the sampler depend only on these types, so a fake
backend (and `asl --help`) never loads the NVIDIA library.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

MIB = 1024 * 1024


@dataclass(frozen=True)
class ProcessInfo:
    """A process holding memory on a GPU; `used_memory` (bytes) is None where NVML hides it.

    `kind` is "C" (compute, e.g. CUDA) or "G" (graphics), "C+G" for both, as in nvidia-smi.
    """

    pid: int
    name: str | None = None
    used_memory: int | None = None
    kind: str | None = None


@dataclass(frozen=True)
class GPUSnapshot:
    """One GPU at one moment. Every measured field may be None (N/A: unsupported or failed).

    `lost` marks a GPU that NVML reports as fallen off the bus; only the fields learnt before
    (index, uuid, name, driver, compute capability) are then filled. `fake` marks a scripted GPU.
    """

    index: int
    uuid: str | None = None
    name: str | None = None
    driver: str | None = None
    memory_used: int | None = None  # bytes (NVML v2: without the driver-reserved part)
    memory_total: int | None = None  # bytes
    util_gpu: int | None = None  # percent
    util_mem: int | None = None  # percent (memory controller)
    temperature: int | None = None  # degrees C
    power_usage: float | None = None  # watts
    power_limit: float | None = None  # watts
    fan: int | None = None  # percent
    clock_sm: int | None = None  # MHz
    clock_mem: int | None = None  # MHz
    pcie_gen: int | None = None
    compute_capability: tuple[int, int] | None = None
    processes: tuple[ProcessInfo, ...] | None = None  # None: the list itself is N/A
    lost: bool = False
    fake: bool = False
    error: str | None = None  # why the GPU is lost, for the UI
    timestamp: float = field(default_factory=time.time)

    @property
    def memory_fraction(self) -> float | None:
        if self.memory_used is None or not self.memory_total:
            return None
        return self.memory_used / self.memory_total

    @property
    def bf16(self) -> bool | None:
        """bf16 tensor-core support: compute capability 8.0 (Ampere) and newer."""
        if self.compute_capability is None:
            return None
        return tuple(self.compute_capability) >= (8, 0)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (tuples become lists, processes become dicts)."""
        d = dataclasses.asdict(self)
        if self.compute_capability is not None:
            d["compute_capability"] = list(self.compute_capability)
        if self.processes is not None:
            d["processes"] = [dataclasses.asdict(p) for p in self.processes]
        d["bf16"] = self.bf16
        return d


@runtime_checkable
class GPUBackend(Protocol):
    """The small interface the sampler and the commands use (NVML or a scripted fake)."""

    fake: bool

    def init(self) -> None:
        """Load the library; raises `NoGPUError` (one line + hint) when there is no driver."""

    def device_count(self) -> int: ...

    def snapshot(self, index: int) -> GPUSnapshot:
        """Never raises: failed fields are None, a lost GPU gives `lost=True`."""

    def shutdown(self) -> None: ...


def same_gpu(nvml_uuid: str | None, cuda_uuid: str | None) -> bool:
    """Whether NVML's UUID ("GPU-8f3c...") and torch's (the same digits, no prefix) name one GPU."""
    def bare(uuid: str | None) -> str:
        text = (uuid or "").strip().lower()
        return text[4:] if text.startswith("gpu-") else text

    return bool(bare(nvml_uuid)) and bare(nvml_uuid) == bare(cuda_uuid)
