"""What a GPU monitor backend returns: one immutable snapshot per GPU, N/A as None.

No NVML import here: the renderers and the sampler depend only on these types, so a fake
backend (and `asl --help`) never loads the NVIDIA library.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ProcessInfo:
    """A process holding memory on a GPU; `used_memory` (bytes) is None where NVML hides it.

    `kind` is "C" (compute, e.g. CUDA) or "G" (graphics), "C+G" for both, as in nvidia-smi.
    `in_namespace` says whether `pid` is a process this machine sees (/proc/PID exists): False
    inside a container, where NVML reports the host's PIDs (no name can be found for them then),
    or for a process that has just ended; None where it was not checked.
    """

    pid: int
    name: str | None = None
    used_memory: int | None = None
    kind: str | None = None
    in_namespace: bool | None = None


@dataclass(frozen=True)
class MigDevice:
    """A MIG slice of a GPU (A100/H100/H200 in MIG mode), as NVML reports it under its parent.

    `slot` is NVML's index under the parent (`nvmlDeviceGetMigDeviceHandleByIndex`); `uuid` the
    slice's own ("MIG-..."), which is what CUDA reports for a process that runs on the slice.
    Utilisation, power, clocks and temperature are the parent's (NVML has none per slice).
    """

    slot: int
    uuid: str | None = None
    name: str | None = None
    memory_used: int | None = None  # bytes
    memory_total: int | None = None  # bytes
    gpu_instance: int | None = None
    compute_instance: int | None = None
    processes: tuple[ProcessInfo, ...] | None = None


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
    throttle_reasons: int | None = None  # NVML's clocks event (throttle) reasons bit mask; 0: none
    compute_capability: tuple[int, int] | None = None
    processes: tuple[ProcessInfo, ...] | None = None  # None: the list itself is N/A
    lost: bool = False
    fake: bool = False
    error: str | None = None  # why the GPU is lost, for the UI
    mig: tuple[MigDevice, ...] | None = None  # MIG mode on: its slices; None: MIG off or unsupported
    parent_uuid: str | None = None  # set on the view of one MIG slice (`mig_view`): the physical GPU
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
        """Plain JSON-ready dict (tuples become lists, processes and MIG slices become dicts)."""
        d = dataclasses.asdict(self)
        if self.compute_capability is not None:
            d["compute_capability"] = list(self.compute_capability)
        if self.processes is not None:
            d["processes"] = [dataclasses.asdict(p) for p in self.processes]
        if self.mig is not None:
            d["mig"] = [dataclasses.asdict(m) | {"processes": None if m.processes is None else
                                                 [dataclasses.asdict(p) for p in m.processes]} for m in self.mig]
        d["bf16"] = self.bf16
        return d

    def mig_view(self, device: MigDevice) -> "GPUSnapshot":
        """This GPU as seen from one of its MIG slices: the slice's UUID, name, memory and processes;
        the physical GPU's sensors; no utilisation (NVML has none per slice)."""
        return dataclasses.replace(self, uuid=device.uuid, name=device.name or self.name,
                                   memory_used=device.memory_used, memory_total=device.memory_total,
                                   util_gpu=None, util_mem=None, processes=device.processes, mig=None,
                                   parent_uuid=self.uuid)


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
    """Whether NVML's UUID ("GPU-8f3c..." or a MIG slice's "MIG-1a2b...") and torch's (the same
    digits, no prefix) name one device."""
    def bare(uuid: str | None) -> str:
        text = (uuid or "").strip().lower()
        for prefix in ("gpu-", "mig-"):
            if text.startswith(prefix):
                return text[len(prefix):]
        return text

    return bool(bare(nvml_uuid)) and bare(nvml_uuid) == bare(cuda_uuid)


def find_by_uuid(snapshots, uuid: str | None) -> "GPUSnapshot | None":
    """The snapshot of the device whose UUID is `uuid` (as torch reports it): a whole GPU, or the
    `mig_view` of the MIG slice with that UUID; None when no device has it."""
    if not uuid:
        return None
    for s in snapshots:
        if same_gpu(s.uuid, uuid):
            return s
    for s in snapshots:
        for m in s.mig or ():
            if same_gpu(m.uuid, uuid):
                return s.mig_view(m)
    return None
