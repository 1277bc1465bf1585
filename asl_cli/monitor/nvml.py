"""The NVML backend: every query returns a value or None (N/A), never raises into the UI.

Works on the real `pynvml` module (from the `nvidia-ml-py` distribution) or on any object with
the same functions, constants and error classes — the scripted fake in `fake.py` is one.

Field rules (as nvitop and gpustat learnt them):
- A field the device does not support (NOT_SUPPORTED, FUNCTION_NOT_FOUND, NO_PERMISSION,
  ARGUMENT_VERSION_MISMATCH) is asked once and remembered per device, then reported as N/A
  without another call.
- Other failures (timeouts, unknown errors) give N/A for this sample only.
- `GPU_IS_LOST` from any call marks the device lost for good (it needs a reset or reboot).
- Memory uses the v2 call (used memory without the driver-reserved part, drivers >= 510) and
  falls back to v1 only when v2 is refused for good (a transient v2 failure is N/A, not a v1
  reading that counts the reserved memory as used); temperature prefers `nvmlDeviceGetTemperatureV`.
- NVML errors define `__eq__` without `__hash__` (unhashable) and `NVMLLibraryMismatchError` is
  not an `NVMLError`: errors are matched by their numeric `.value`, never put in sets. The
  binding raises that mismatch error from its unversioned process-list calls when the driver has
  no `_v3` (before R510); it counts as FUNCTION_NOT_FOUND, so the `_v2` fallback fires.
- MIG: a GPU in MIG mode lists its slices (`GPUSnapshot.mig`, each with its own UUID, memory and
  processes); a run on a slice is matched by the slice's UUID (`base.find_by_uuid`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
import warnings
from typing import Any, Callable

from asl_cli.errors import NoGPUError
from asl_cli.monitor.base import GPUSnapshot, MigDevice, ProcessInfo

# NVML return codes (stable across releases; spelled out so this module imports without pynvml).
ERROR_UNINITIALIZED = 1
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_NOT_FOUND = 6
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_ARGUMENT_VERSION_MISMATCH = 25

# Asking again cannot change these answers on the same device and driver.
_PERMANENT = (ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND, ERROR_NO_PERMISSION, ERROR_ARGUMENT_VERSION_MISMATCH)

NO_DRIVER_HINT = ("hint: install the NVIDIA driver (nvidia-smi must work), run inside a GPU "
                  "container with --gpus all, or try the monitor with --fake-gpu demo")


def deprecated_pynvml_version(version: Callable[[str], str] = importlib.metadata.version) -> str | None:
    """The version of the deprecated `pynvml` PyPI package when it is installed, else None.

    That package is not NVIDIA's binding: installed next to `nvidia-ml-py` it makes every
    `import pynvml` emit a FutureWarning (and may shadow the official module).
    """
    try:
        return version("pynvml")
    except importlib.metadata.PackageNotFoundError:
        return None


def deprecated_pynvml_warning(version: Callable[[str], str] = importlib.metadata.version) -> str | None:
    """One warning line about the deprecated package, or None when it is absent."""
    found = deprecated_pynvml_version(version)
    if found is None:
        return None
    return (f"warning: the deprecated 'pynvml' package ({found}) is installed; NVIDIA's binding is "
            "'nvidia-ml-py' (already a dependency): pip uninstall pynvml")


def import_pynvml():
    """Import NVIDIA's binding lazily, silencing the deprecated package's FutureWarning.

    The caller shows `deprecated_pynvml_warning()` once instead. Raises NoGPUError when the
    module is missing altogether.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml
    except ImportError as exc:
        raise NoGPUError(f"the NVML binding is not installed ({exc}); hint: pip install nvidia-ml-py") from None
    return pynvml


def _code(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


class _Lost(Exception):
    """Internal: a query reported GPU_IS_LOST."""


class NVMLBackend:
    """GPU snapshots from NVML (or an object that mimics the `pynvml` module)."""

    def __init__(self, nvml: Any = None, *, fake: bool = False, source: str = "NVML",
                 pid_visible: Callable[[int], bool] | None = None):
        self._nvml = nvml
        self._pid_visible = pid_visible or pid_in_namespace
        self.fake = fake
        self.source = source
        self._lock = threading.Lock()  # NVML is thread-safe, but our caches are not
        self._initialised = False
        self._handles: dict[int, Any] = {}
        self._static: dict[int, dict[str, Any]] = {}
        self._unsupported: dict[int, dict[str, int]] = {}  # device -> field -> the NVML error code
        self._lost: dict[int, str] = {}
        self._driver: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def init(self) -> None:
        if self._initialised:
            return
        if self._nvml is None:
            self._nvml = import_pynvml()
        nv = self._nvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            code = _code(exc)
            if code in (ERROR_LIBRARY_NOT_FOUND, ERROR_DRIVER_NOT_LOADED):
                raise NoGPUError(f"no NVIDIA driver found (NVML: {_message(exc)}); {NO_DRIVER_HINT}") from None
            raise NoGPUError(f"NVML failed to start (NVML: {_message(exc)}); {NO_DRIVER_HINT}") from None
        except Exception as exc:  # NVMLLibraryMismatchError is not an NVMLError
            if type(exc).__name__ == "NVMLLibraryMismatchError":
                raise NoGPUError(f"the NVML library does not match the driver ({_message(exc)}); hint: "
                                 "reboot after a driver update, or reinstall the driver") from None
            raise NoGPUError(f"NVML failed to start ({type(exc).__name__}: {_message(exc)}); "
                             f"{NO_DRIVER_HINT}") from None
        self._initialised = True
        try:
            self._driver = _text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            self._driver = None

    def shutdown(self) -> None:
        if self._initialised:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._initialised = False
            self._handles.clear()

    @property
    def driver(self) -> str | None:
        return self._driver

    def device_count(self) -> int:
        self.init()
        try:
            return int(self._nvml.nvmlDeviceGetCount())
        except Exception as exc:
            raise NoGPUError(f"NVML cannot count the GPUs ({_message(exc)}); {NO_DRIVER_HINT}") from None

    # -- queries --------------------------------------------------------------------------------

    def _call(self, index: int, field: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One NVML call for `field`: its value, or None; permanent refusals are remembered."""
        skip = self._unsupported.setdefault(index, {})
        if field in skip:
            return None
        try:
            return fn(*args, **kwargs)
        except self._nvml.NVMLError as exc:
            code = _code(exc)
            if code == ERROR_GPU_IS_LOST:
                raise _Lost(_message(exc)) from None
            if code in _PERMANENT:
                skip[field] = code
            return None
        except Exception as exc:  # a mismatch or a ctypes surprise must not reach the UI
            if self._is_mismatch(exc):
                # The binding's unversioned calls (the process lists: `_v3` inside) turn the driver's
                # FUNCTION_NOT_FOUND into NVMLLibraryMismatchError, which is no NVMLError: the same
                # permanent answer, so that the caller's older-call fallback fires.
                skip[field] = ERROR_FUNCTION_NOT_FOUND
            return None

    def _is_mismatch(self, exc: BaseException) -> bool:
        cls = getattr(self._nvml, "NVMLLibraryMismatchError", None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
        return type(exc).__name__ == "NVMLLibraryMismatchError"

    def is_unsupported(self, index: int, field: str) -> bool:
        """Whether `field` was refused for good on device `index` (for tests and diagnostics)."""
        return field in self._unsupported.get(index, ())

    def _missing_function(self, index: int, field: str) -> bool:
        """Whether the driver's library lacks the call behind `field` (an older driver)."""
        return self._unsupported.get(index, {}).get(field) == ERROR_FUNCTION_NOT_FOUND

    def _handle(self, index: int) -> Any:
        if index not in self._handles:
            self._handles[index] = self._nvml.nvmlDeviceGetHandleByIndex(index)
        return self._handles[index]

    def _static_info(self, index: int, h: Any) -> dict[str, Any]:
        """Fields that do not change while the driver runs: asked once per device (a field that
        failed transiently is asked again on the next sample)."""
        info = dict(self._static.get(index, {}))
        nv = self._nvml
        if info.get("uuid") is None:
            info["uuid"] = _text(self._call(index, "uuid", nv.nvmlDeviceGetUUID, h))
        if info.get("name") is None:
            info["name"] = _text(self._call(index, "name", nv.nvmlDeviceGetName, h))
        if info.get("compute_capability") is None:
            cc = self._call(index, "compute_capability", nv.nvmlDeviceGetCudaComputeCapability, h)
            info["compute_capability"] = (int(cc[0]), int(cc[1])) if cc else None
        self._static[index] = info
        return info

    def _memory(self, index: int, h: Any) -> tuple[int | None, int | None]:
        nv = self._nvml
        mem = None
        v2 = getattr(nv, "nvmlMemory_v2", None)
        if v2 is not None and not self.is_unsupported(index, "memory_v2"):
            mem = self._call(index, "memory_v2", nv.nvmlDeviceGetMemoryInfo, h, version=v2)
            if mem is None and not self.is_unsupported(index, "memory_v2"):
                return None, None  # a transient failure: N/A, not v1's used-with-reserved
        if mem is None:
            mem = self._call(index, "memory", nv.nvmlDeviceGetMemoryInfo, h)
        if mem is None:
            return None, None
        return int(mem.used), int(mem.total)

    def _temperature(self, index: int, h: Any) -> int | None:
        nv = self._nvml
        sensor = getattr(nv, "NVML_TEMPERATURE_GPU", 0)
        newer = getattr(nv, "nvmlDeviceGetTemperatureV", None)  # absent in older bindings
        if newer is not None and not self.is_unsupported(index, "temperature_v"):
            t = self._call(index, "temperature_v", newer, h, sensor)
            if t is not None:
                return int(t)
            if not self.is_unsupported(index, "temperature_v"):
                return None  # a transient failure: do not ask the deprecated call as well
        t = self._call(index, "temperature", nv.nvmlDeviceGetTemperature, h, sensor)
        return None if t is None else int(t)

    def _processes(self, index: int, h: Any, prefix: str = "") -> tuple[ProcessInfo, ...] | None:
        """Compute and graphics processes (merged by pid); None when NVML lists neither. `prefix`
        keeps a MIG slice's refusals apart from its parent's ("mig:")."""
        compute = self._process_list(index, h, prefix + "processes", "nvmlDeviceGetComputeRunningProcesses")
        graphics = self._process_list(index, h, prefix + "graphics_processes",
                                      "nvmlDeviceGetGraphicsRunningProcesses")
        if compute is None and graphics is None:
            return None
        found: dict[int, ProcessInfo] = {}
        for kind, procs in (("C", compute or ()), ("G", graphics or ())):
            for p in procs:
                pid = int(p.pid)
                used = getattr(p, "usedGpuMemory", None)
                # NVML_VALUE_NOT_AVAILABLE arrives as None (binding) or as 2**64 - 1 (raw)
                used = None if used is None or used >= (1 << 63) else int(used)
                if pid in found:  # one process using the GPU both ways: nvidia-smi's "C+G"
                    prev = found[pid]
                    found[pid] = dataclasses.replace(prev, kind="C+G", used_memory=prev.used_memory
                                                     if prev.used_memory is not None else used)
                else:
                    visible = self._pid_visible(pid)
                    found[pid] = ProcessInfo(pid=pid, name=self._process_name(pid, visible), used_memory=used,
                                             kind=kind, in_namespace=visible)
        return tuple(sorted(found.values(), key=lambda p: -(p.used_memory or 0)))

    def _process_list(self, index: int, h: Any, field: str, name: str) -> list | None:
        """One kind of process list: the binding's default call (the driver's `_v3`), or `_v2` where
        the driver's library has no `_v3` (drivers before R510: the binding raises
        NVMLLibraryMismatchError, or FUNCTION_NOT_FOUND from an older binding; both are remembered)."""
        nv = self._nvml
        call = getattr(nv, name, None)
        if call is None:
            return None
        got = self._call(index, field, call, h)
        older = getattr(nv, name + "_v2", None)
        if got is None and older is not None and self._missing_function(index, field):
            return self._call(index, field + "_v2", older, h)
        return got

    def _mig_devices(self, index: int, h: Any) -> tuple[MigDevice, ...] | None:
        """The MIG slices of a GPU in MIG mode (empty slots left out); None when MIG is off, not
        supported (consumer cards answer NOT_SUPPORTED, asked once) or the binding lacks the calls."""
        nv = self._nvml
        mode_of = getattr(nv, "nvmlDeviceGetMigMode", None)
        if mode_of is None or not hasattr(nv, "nvmlDeviceGetMigDeviceHandleByIndex"):
            return None
        mode = self._call(index, "mig_mode", mode_of, h)
        if not mode or int(mode[0]) != int(getattr(nv, "NVML_DEVICE_MIG_ENABLE", 1)):
            return None
        count = self._call(index, "mig_count", nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0
        slices = []
        for slot in range(int(count)):
            mh = self._call(index, "mig_handle", nv.nvmlDeviceGetMigDeviceHandleByIndex, h, slot)
            if mh is None:  # an empty slot (NOT_FOUND): slices come and go, asked again next sample
                continue
            mem = self._call(index, "mig_memory", nv.nvmlDeviceGetMemoryInfo, mh)
            gi = getattr(nv, "nvmlDeviceGetGpuInstanceId", None)
            ci = getattr(nv, "nvmlDeviceGetComputeInstanceId", None)
            gi_id = None if gi is None else self._call(index, "mig_gpu_instance", gi, mh)
            ci_id = None if ci is None else self._call(index, "mig_compute_instance", ci, mh)
            slices.append(MigDevice(
                slot=slot, uuid=_text(self._call(index, "mig_uuid", nv.nvmlDeviceGetUUID, mh)),
                name=_text(self._call(index, "mig_name", nv.nvmlDeviceGetName, mh)),
                memory_used=None if mem is None else int(mem.used),
                memory_total=None if mem is None else int(mem.total),
                gpu_instance=None if gi_id is None else int(gi_id),
                compute_instance=None if ci_id is None else int(ci_id),
                processes=self._processes(index, mh, prefix="mig:")))
        return tuple(slices)

    def _process_name(self, pid: int, visible: bool) -> str | None:
        try:
            name = _text(self._nvml.nvmlSystemGetProcessName(pid))
        except Exception:
            name = None
        if name:
            return os.path.basename(name)
        if not visible:  # a host PID seen from a container: /proc/PID is nobody, or somebody else
            return None
        try:  # NVML cannot name it: try /proc, which only knows our own pid namespace
            with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
                return fh.read().strip() or None
        except OSError:
            return None

    def snapshot(self, index: int) -> GPUSnapshot:
        with self._lock:
            try:
                return self._snapshot(index)
            except Exception as exc:  # the UI contract: never raise, show what went wrong
                return GPUSnapshot(index=index, driver=self._driver, fake=self.fake,
                                   error=f"{type(exc).__name__}: {_message(exc)}")

    def _snapshot(self, index: int) -> GPUSnapshot:
        static = self._static.get(index, {})
        if index in self._lost:
            return self._lost_snapshot(index, static)
        nv = self._nvml
        try:
            try:
                h = self._handle(index)
            except nv.NVMLError as exc:
                if _code(exc) == ERROR_GPU_IS_LOST:
                    raise _Lost(_message(exc)) from None
                return GPUSnapshot(index=index, driver=self._driver, fake=self.fake,
                                   error=f"NVML: {_message(exc)}")
            static = self._static_info(index, h)
            used, total = self._memory(index, h)
            util = self._call(index, "utilization", nv.nvmlDeviceGetUtilizationRates, h)
            power = self._call(index, "power_usage", nv.nvmlDeviceGetPowerUsage, h)
            limit = self._call(index, "power_limit", nv.nvmlDeviceGetEnforcedPowerLimit, h)
            fan = self._call(index, "fan", nv.nvmlDeviceGetFanSpeed, h)
            sm = self._call(index, "clock_sm", nv.nvmlDeviceGetClockInfo, h, getattr(nv, "NVML_CLOCK_SM", 1))
            memclk = self._call(index, "clock_mem", nv.nvmlDeviceGetClockInfo, h, getattr(nv, "NVML_CLOCK_MEM", 2))
            pcie = self._call(index, "pcie_gen", nv.nvmlDeviceGetCurrPcieLinkGeneration, h)
            reasons_of = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)  # the newer name
                          or getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None))
            reasons = None if reasons_of is None else self._call(index, "throttle_reasons", reasons_of, h)
            return GPUSnapshot(
                index=index,
                uuid=static["uuid"],
                name=static["name"],
                driver=self._driver,
                memory_used=used,
                memory_total=total,
                util_gpu=None if util is None else int(util.gpu),
                util_mem=None if util is None else int(util.memory),
                temperature=self._temperature(index, h),
                power_usage=None if power is None else power / 1000.0,  # mW -> W
                power_limit=None if limit is None else limit / 1000.0,
                fan=None if fan is None else int(fan),
                clock_sm=None if sm is None else int(sm),
                clock_mem=None if memclk is None else int(memclk),
                pcie_gen=None if pcie is None else int(pcie),
                throttle_reasons=None if reasons is None else int(reasons),
                compute_capability=static["compute_capability"],
                processes=self._processes(index, h),
                mig=self._mig_devices(index, h),
                fake=self.fake,
            )
        except _Lost as lost:
            self._lost[index] = str(lost) or "GPU is lost"
            return self._lost_snapshot(index, self._static.get(index, static))

    def _lost_snapshot(self, index: int, static: dict[str, Any]) -> GPUSnapshot:
        return GPUSnapshot(index=index, uuid=static.get("uuid"), name=static.get("name"), driver=self._driver,
                           compute_capability=static.get("compute_capability"), lost=True, fake=self.fake,
                           error=f"NVML: {self._lost[index]} (the GPU fell off the bus; reset or reboot)")

    def snapshots(self) -> list[GPUSnapshot]:
        return [self.snapshot(i) for i in range(self.device_count())]


def pid_in_namespace(pid: int) -> bool:
    """Whether `pid` is a process of this PID namespace. Inside a container NVML lists processes by
    their host PIDs, which /proc here does not have (or has as another process)."""
    return pid > 0 and os.path.exists(f"/proc/{pid}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _message(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:  # NVMLError.__str__ itself calls into the library
        text = ""
    return text.splitlines()[0] if text else type(exc).__name__
