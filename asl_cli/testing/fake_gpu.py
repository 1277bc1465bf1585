"""Scripted fake GPUs: a test double for the `pynvml` module, driven by a JSON file.

Test-only and demo code, not part of any real code path: the toolkit imports it only when fake GPUs
are asked for (`--fake-gpu FILE|demo` or `$ASL_FAKE_GPU`, see `asl_cli.monitor.open_backend`); with
real GPUs or none, NVML is all there is. It ships in the package only so that
`asl gpu-watch --fake-gpu demo` works after `pip install`.

The fake imitates NVML at the function level (same names, units and error classes), so
`--fake-gpu FILE` runs the real `NVMLBackend` logic — N/A memory, v1 fallbacks, lost GPUs —
on a machine without a GPU. Selected by `--fake-gpu FILE` or `ASL_FAKE_GPU=FILE`; `--fake-gpu demo`
uses the example shipped beside this module (`demo_gpus.json`, a copy of tests/fixtures/fake_gpus.json).

File format (see tests/fixtures/fake_gpus.json)::

    {"driver": "550.54.15",
     "gpus": [{"name": "NVIDIA GeForce RTX 4070", "uuid": "GPU-...",
               "memory_total_mib": 12282, "memory_used_mib": [812, 5230, 9731],
               "util_gpu": [3, 45, 97], "util_mem": 20, "temperature": [41, 58, 66],
               "power_w": [18.5, 141.0, 196.2], "power_limit_w": 200, "fan": 30,
               "clock_sm": 2610, "clock_mem": 10501, "pcie_gen": 4, "compute_capability": [8, 9],
               "processes": [{"pid": 4242, "name": "asl", "used_mib": [600, 4800]}],
               "graphics_processes": [{"pid": 2210, "name": "Xorg", "used_mib": 212}],
               "memory_v2": true, "temperature_v": true, "lost": false, "lost_after": null}]}

A field is a number (constant), a list (the k-th call returns item k, cycling, so successive
samples change) or one of "NOT_SUPPORTED", "NO_PERMISSION", "UNKNOWN" (the call raises that NVML
error; "UNKNOWN" is a transient failure). A missing field is NOT_SUPPORTED. `memory_v2: false` /
`temperature_v: false` emulate a driver without `nvmlDeviceGetMemoryInfo_v2` /
`nvmlDeviceGetTemperatureV` (FUNCTION_NOT_FOUND); `processes_v3: false` one before R510 (the
binding's process-list calls raise NVMLLibraryMismatchError; `_v2` answers). `mig: [slice, null,
...]` puts a GPU in MIG mode with those slices (null: an empty slot), each with `uuid`, `name`,
`memory_total_mib`, `memory_used_mib`, `gpu_instance`, `compute_instance`, `processes`; without
`mig` the GPU answers NOT_SUPPORTED to the MIG calls, as a consumer card does. A process with
`"host_pid": true` is one a container sees only by its host PID (NVML lists it, cannot name it,
/proc has no such PID). `throttle_reasons`
is NVML's clocks-event bit mask (0x20/0x40 thermal, 0x4/0x8/0x80 power; 0 none). `lost: true` makes every query raise
GPU_IS_LOST; `lost_after: N` does so from the (N+1)-th call of each query. Anything else where a
number is read (a string, true/false, an empty list) is refused by `load_spec`, naming the field.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from asl_cli.errors import ConfigError
from asl_cli.monitor.nvml import NVMLBackend, import_pynvml
from asl_cli.units import MIB


_ERRORS = {"NOT_SUPPORTED": 3, "NO_PERMISSION": 4, "UNKNOWN": 999, "FUNCTION_NOT_FOUND": 13,
           "GPU_IS_LOST": 15}


class MigHandle(NamedTuple):
    """A fake MIG device handle: the parent GPU's index and the slot under it."""

    parent: int
    slot: int


class FakeNVML:
    """Enough of the `pynvml` module for `NVMLBackend`, with per-function call counters.

    Error classes and constants come from the real binding, so the backend's error handling
    is the same code path as on a real driver.
    """

    def __init__(self, spec: dict, *, source: str = "fake"):
        nv = import_pynvml()
        self.NVMLError = nv.NVMLError
        self.NVMLLibraryMismatchError = nv.NVMLLibraryMismatchError
        self.nvmlMemory_v2 = nv.nvmlMemory_v2
        self.NVML_TEMPERATURE_GPU = nv.NVML_TEMPERATURE_GPU
        self.NVML_CLOCK_SM = nv.NVML_CLOCK_SM
        self.NVML_CLOCK_MEM = nv.NVML_CLOCK_MEM
        self.source = source
        self.driver = str(spec.get("driver", "550.54.15"))
        self.gpus: list[dict] = list(spec.get("gpus", []))
        self.calls: Counter = Counter()  # (function name, device index) -> calls so far

    # -- scripting ------------------------------------------------------------------------------

    def _raise(self, name: str) -> None:
        raise self.NVMLError(_ERRORS[name])

    def _gpu(self, h: Any) -> dict:
        """The spec of device handle `h`: a GPU (an int) or one of its MIG slices (a MigHandle),
        which is lost with its parent."""
        if isinstance(h, MigHandle):
            parent = self.gpus[h.parent]
            return {"lost": parent.get("lost"), "lost_after": parent.get("lost_after"), **parent["mig"][h.slot]}
        return self.gpus[h]

    def _value(self, h: Any, fn: str, key: str, *, cycle: bool = True) -> Any:
        """The scripted value of `key` for this call of `fn` on device `h` (or an NVML error)."""
        gpu = self._gpu(h)
        k = self.calls[(fn, h)]
        self.calls[(fn, h)] += 1
        if gpu.get("lost") or (gpu.get("lost_after") is not None and k >= int(gpu["lost_after"])):
            self._raise("GPU_IS_LOST")
        value = gpu.get(key, "NOT_SUPPORTED")
        if not cycle and isinstance(value, list):
            return value  # a list-valued field (compute capability), not a script
        return self._pick(value, k)

    def _pick(self, value: Any, k: int) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], (list, dict)):
            value = value[k % len(value)]
        if isinstance(value, str) and value in _ERRORS:
            self._raise(value)
        return value

    # -- the pynvml functions NVMLBackend uses -------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls[("nvmlInit", -1)] += 1

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise self.NVMLError(2)  # INVALID_ARGUMENT
        return index

    def nvmlDeviceGetName(self, h: int) -> str:
        return str(self._value(h, "nvmlDeviceGetName", "name"))

    def nvmlDeviceGetUUID(self, h: Any) -> str:
        if isinstance(h, MigHandle):
            spec = self.gpus[h.parent]["mig"][h.slot]
            spec.setdefault("uuid", f"MIG-fake{h.parent:04d}-{h.slot:04d}-0000-0000-000000000000")
            return str(self._value(h, "nvmlDeviceGetUUID", "uuid"))
        gpu = self.gpus[h]
        if "uuid" not in gpu:
            gpu = {**gpu, "uuid": f"GPU-fake{h:04d}-0000-0000-0000-000000000000"}
            self.gpus[h] = gpu
        return str(self._value(h, "nvmlDeviceGetUUID", "uuid"))

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        major, minor = self._value(h, "nvmlDeviceGetCudaComputeCapability", "compute_capability",
                                   cycle=False)
        return int(major), int(minor)

    def nvmlDeviceGetMemoryInfo(self, h: Any, version: int | None = None) -> SimpleNamespace:
        if version:
            fn = "nvmlDeviceGetMemoryInfo_v2"
            self.calls[(fn, h)] += 1
            if self._gpu(h).get("memory_v2", True) is False:
                self._raise("FUNCTION_NOT_FOUND")
        else:
            fn = "nvmlDeviceGetMemoryInfo"
            self.calls[(fn, h)] += 1
        k = self.calls[(fn, h)] - 1
        gpu = self._gpu(h)
        if gpu.get("lost") or (gpu.get("lost_after") is not None and k >= int(gpu["lost_after"])):
            self._raise("GPU_IS_LOST")
        total = self._pick(gpu.get("memory_total_mib", "NOT_SUPPORTED"), k)
        used = self._pick(gpu.get("memory_used_mib", 0), k)
        # v1 counts the driver-reserved memory as used; v2 does not
        reserved = 0 if version else int(gpu.get("reserved_mib", 0))
        total_b, used_b = int(total * MIB), int((used + reserved) * MIB)
        return SimpleNamespace(total=total_b, used=used_b, free=total_b - used_b, reserved=reserved * MIB)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        k = self.calls[("nvmlDeviceGetUtilizationRates", h)]
        gpu_util = self._value(h, "nvmlDeviceGetUtilizationRates", "util_gpu")
        mem_util = self._pick(self._gpu(h).get("util_mem", 0), k)
        return SimpleNamespace(gpu=int(gpu_util), memory=int(mem_util))

    def nvmlDeviceGetTemperatureV(self, h: int, sensor: int) -> int:
        if self._gpu(h).get("temperature_v", True) is False:
            self.calls[("nvmlDeviceGetTemperatureV", h)] += 1
            self._raise("FUNCTION_NOT_FOUND")
        return int(self._value(h, "nvmlDeviceGetTemperatureV", "temperature"))

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        return int(self._value(h, "nvmlDeviceGetTemperature", "temperature"))

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return int(round(float(self._value(h, "nvmlDeviceGetPowerUsage", "power_w")) * 1000))  # mW

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return int(round(float(self._value(h, "nvmlDeviceGetEnforcedPowerLimit", "power_limit_w")) * 1000))

    def nvmlDeviceGetFanSpeed(self, h: int) -> int:
        return int(self._value(h, "nvmlDeviceGetFanSpeed", "fan"))

    def nvmlDeviceGetClockInfo(self, h: int, clock_type: int) -> int:
        key = "clock_sm" if clock_type == self.NVML_CLOCK_SM else "clock_mem"
        return int(self._value(h, f"nvmlDeviceGetClockInfo:{key}", key))

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        return int(self._value(h, "nvmlDeviceGetCurrentClocksEventReasons", "throttle_reasons"))

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: int) -> int:
        return int(self._value(h, "nvmlDeviceGetCurrPcieLinkGeneration", "pcie_gen"))

    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[SimpleNamespace]:
        self._v3_or_mismatch(h, "nvmlDeviceGetComputeRunningProcesses")
        return self._processes(h, "nvmlDeviceGetComputeRunningProcesses", "processes")

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: Any) -> list[SimpleNamespace]:
        self._v3_or_mismatch(h, "nvmlDeviceGetGraphicsRunningProcesses")
        return self._processes(h, "nvmlDeviceGetGraphicsRunningProcesses", "graphics_processes")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, h: Any) -> list[SimpleNamespace]:
        return self._processes(h, "nvmlDeviceGetComputeRunningProcesses_v2", "processes")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, h: Any) -> list[SimpleNamespace]:
        return self._processes(h, "nvmlDeviceGetGraphicsRunningProcesses_v2", "graphics_processes")

    def _v3_or_mismatch(self, h: Any, fn: str) -> None:
        """`processes_v3: false` emulates a driver before R510: the binding's unversioned call finds
        no `_v3` in the library and raises NVMLLibraryMismatchError (not an NVMLError), as the real
        `pynvml` does."""
        if self._gpu(h).get("processes_v3", True) is False:
            self.calls[(fn, h)] += 1
            raise self.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does not "
                                                "match the NVML lib version. Either use matching pyNVML and NVML "
                                                f"lib versions or use a versioned function such as {fn}_v2")

    def _processes(self, h: int, fn: str, key: str) -> list[SimpleNamespace]:
        k = self.calls[(fn, h)]
        procs = self._value(h, fn, key, cycle=False)
        out = []
        for p in procs:
            used = self._pick(p.get("used_mib"), k) if "used_mib" in p else None
            out.append(SimpleNamespace(pid=int(p["pid"]), usedGpuMemory=None if used is None else int(used * MIB)))
        return out

    # MIG: "mig": [slice, null, ...] on a GPU turns MIG mode on (null: an empty slot); a slice has
    # uuid, name, memory_total_mib, memory_used_mib, gpu_instance, compute_instance, processes.
    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        self.calls[("nvmlDeviceGetMigMode", h)] += 1
        mig = self.gpus[h].get("mig", "NOT_SUPPORTED")
        if isinstance(mig, str):
            self._raise(mig)  # a consumer card: NOT_SUPPORTED
        return [1, 1] if mig else [0, 0]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: int) -> int:
        return len(self.gpus[h].get("mig") or [])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: int, slot: int) -> MigHandle:
        self.calls[("nvmlDeviceGetMigDeviceHandleByIndex", h)] += 1
        slices = self.gpus[h].get("mig") or []
        if not 0 <= slot < len(slices) or slices[slot] is None:
            raise self.NVMLError(6)  # NOT_FOUND: an empty slot
        return MigHandle(h, slot)

    def nvmlDeviceGetGpuInstanceId(self, h: MigHandle) -> int:
        return int(self._value(h, "nvmlDeviceGetGpuInstanceId", "gpu_instance"))

    def nvmlDeviceGetComputeInstanceId(self, h: MigHandle) -> int:
        return int(self._value(h, "nvmlDeviceGetComputeInstanceId", "compute_instance"))

    def _scripted_processes(self) -> list[dict]:
        """Every process entry of the file (GPUs and MIG slices)."""
        owners = [g for g in self.gpus] + [m for g in self.gpus for m in (g.get("mig") or []) if m]
        return [p for gpu in owners for key in ("processes", "graphics_processes")
                if isinstance(gpu.get(key), list) for p in gpu[key]]

    def nvmlSystemGetProcessName(self, pid: int) -> str:
        for p in self._scripted_processes():
            # a host PID seen from a container: the driver cannot name it from inside
            if int(p["pid"]) == pid and p.get("name") and not p.get("host_pid"):
                return str(p["name"])
        raise self.NVMLError(6)  # NOT_FOUND

    def pid_visible(self, pid: int) -> bool:
        """Whether a scripted PID is in "this" PID namespace: all are, but those marked `host_pid`
        (a container that sees the host's PIDs from NVML and not in its /proc)."""
        return not any(int(p["pid"]) == pid and p.get("host_pid") for p in self._scripted_processes())


def load_spec(path: str | Path) -> dict:
    """Read and check a fake-GPU file; problems are one-line ConfigErrors naming the file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("fake GPU file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the fake GPU file ({exc})", path=path) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path=path) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("gpus"), list):
        raise ConfigError('expected {"gpus": [...]} (see docs/gpu-watch.md)', path=path)
    for i, gpu in enumerate(spec["gpus"]):
        if not isinstance(gpu, dict):
            raise ConfigError(f"gpus[{i}] must be an object", path=path)
        _check_processes(gpu, f"gpus[{i}]", path)
        problem = bad_numeric_field(gpu)
        if problem:
            raise ConfigError(f"gpus[{i}].{problem}", path=path)
        mig = gpu.get("mig")
        if mig is not None and not (isinstance(mig, list) or mig in _ERRORS):
            raise ConfigError(f"gpus[{i}].mig: expected a list of MIG slices (null for an empty slot)", path=path)
        for j, piece in enumerate(mig if isinstance(mig, list) else []):
            if piece is None:
                continue
            if not isinstance(piece, dict):
                raise ConfigError(f"gpus[{i}].mig[{j}] must be an object or null", path=path)
            _check_processes(piece, f"gpus[{i}].mig[{j}]", path)
            problem = bad_numeric_field(piece)
            for key in ("gpu_instance", "compute_instance"):
                if problem is None and key in piece and not _is_count(piece[key]):
                    problem = f"{key}: expected a number, got {piece[key]!r}"
            if problem:
                raise ConfigError(f"gpus[{i}].mig[{j}].{problem}", path=path)
    return spec


# Fields read as numbers. Checked when the file is loaded: the backend shows a failed read as N/A,
# so a typo ("hot", "12GB") would otherwise pass for a GPU that does not report the value.
SCRIPTED_NUMBERS = ("memory_total_mib", "memory_used_mib", "util_gpu", "util_mem", "temperature", "power_w",
                    "power_limit_w", "fan", "clock_sm", "clock_mem", "pcie_gen", "throttle_reasons")
SCRIPTED = "a number, a list of numbers or one of NOT_SUPPORTED, NO_PERMISSION, UNKNOWN"


def _check_processes(entry: dict, where: str, path: str | Path) -> None:
    """A scripted GPU's or MIG slice's process lists: every entry an object with a pid."""
    for key in ("processes", "graphics_processes"):
        procs = entry.get(key)
        if isinstance(procs, list) and not all(isinstance(p, dict) and "pid" in p for p in procs):
            raise ConfigError(f"{where}.{key}: each entry needs a pid", path=path)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return _is_number(value) and value == int(value) and value >= 0


def _is_capability(value: Any) -> bool:
    if isinstance(value, list):
        return len(value) == 2 and all(_is_count(v) for v in value)
    return isinstance(value, str) and value in _ERRORS


def _scripted_problem(key: str, value: Any) -> str | None:
    """Why `value` is no scripted number (a number or an NVML error name, or a list of those), or None."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return f"{key}: expected {SCRIPTED}, got []"
    for j, item in enumerate(items):
        if not (_is_number(item) or (isinstance(item, str) and item in _ERRORS)):
            where = f"{key}[{j}]" if isinstance(value, list) else key
            return f"{where}: expected {SCRIPTED}, got {item!r}"
    return None


def bad_numeric_field(gpu: dict) -> str | None:
    """The first field of one fake GPU where the fake reads a number but the file has none, as
    `"field: expected ..., got ..."`; None when all are fine. Pure."""
    for key in SCRIPTED_NUMBERS:
        problem = _scripted_problem(key, gpu[key]) if key in gpu else None
        if problem:
            return problem
    if "reserved_mib" in gpu and not _is_number(gpu["reserved_mib"]):
        return f"reserved_mib: expected a number, got {gpu['reserved_mib']!r}"
    if gpu.get("lost_after") is not None and not _is_count(gpu["lost_after"]):
        return f"lost_after: expected a number of calls or null, got {gpu['lost_after']!r}"
    cc = gpu.get("compute_capability")
    if cc is not None and not _is_capability(cc):
        return f"compute_capability: expected [major, minor] or one of NOT_SUPPORTED, NO_PERMISSION, UNKNOWN, " \
               f"got {cc!r}"
    for procs_key in ("processes", "graphics_processes"):
        procs = gpu.get(procs_key)
        for j, proc in enumerate(procs if isinstance(procs, list) else []):
            if not _is_count(proc["pid"]):
                return f"{procs_key}[{j}].pid: expected a process id, got {proc['pid']!r}"
            if not isinstance(proc.get("host_pid", False), bool):
                return f"{procs_key}[{j}].host_pid: expected true or false, got {proc['host_pid']!r}"
            problem = _scripted_problem(f"{procs_key}[{j}].used_mib", proc["used_mib"]) if "used_mib" in proc else None
            if problem:
                return problem
    return None


# `--fake-gpu demo`: the example shipped with the package (the same file as tests/fixtures/fake_gpus.json:
# an RTX 4070 under load, a T4 without power/fan readings on an old driver, a lost A100).
DEMO = "demo"
DEMO_FILE = Path(__file__).resolve().parent / "demo_gpus.json"


def resolve_fake_path(path: str | Path) -> Path:
    """The file `--fake-gpu` / $ASL_FAKE_GPU names: `demo` is the shipped example, anything else a path."""
    return DEMO_FILE if str(path) == DEMO else Path(path)


def fake_backend(path: str | Path) -> NVMLBackend:
    """An `NVMLBackend` over scripted fake GPUs (every snapshot is marked fake)."""
    if str(path) == DEMO:
        fake = FakeNVML(load_spec(DEMO_FILE), source="demo")
        return NVMLBackend(fake, fake=True, source="fake GPUs (--fake-gpu demo)", pid_visible=fake.pid_visible)
    fake = FakeNVML(load_spec(path), source=str(path))
    return NVMLBackend(fake, fake=True, source=f"fake GPUs from {path}", pid_visible=fake.pid_visible)

