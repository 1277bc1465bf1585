"""The monitoring layer: NVML error mapping on the real binding, the scripted fake, the sampler,
and the pure renderers.

The NVML tests replace functions of the real `pynvml` module with ones that raise the real
exception classes (`pynvml.NVMLError(code)` maps to the subclass), so the backend's handling is
exercised exactly as on a driver that refuses a query — without a GPU.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

pynvml = pytest.importorskip("pynvml")

from asl_cli.config import AugConfig, load_config  # noqa: E402
from asl_cli.errors import ConfigError, NoGPUError  # noqa: E402
from asl_cli.monitor import GPUSampler, GPUSnapshot, ProcessInfo, open_backend  # noqa: E402
from asl_cli.ui import gpu, ndjson, training, widgets  # noqa: E402
from asl_cli.testing.fake_gpu import FakeNVML, fake_backend, load_spec  # noqa: E402
from asl_cli.monitor.nvml import NVMLBackend, deprecated_pynvml_warning  # noqa: E402

# The binding's own unversioned process-list calls (they call `_v3` and turn a missing function into
# NVMLLibraryMismatchError), kept before any test replaces them.
BINDING_PROCESS_CALLS = {name: getattr(pynvml, name) for name in
                         ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses")}

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE = FIXTURES / "fake_gpus.json"
MIB = 1024 * 1024


def text_of(renderable, width: int = 110) -> str:
    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))
    console.print(renderable)
    return console.export_text()


# --- the real backend over a scripted driver ----------------------------------------------------

def nvml_error(code: int) -> Exception:
    return pynvml.NVMLError(code)


class ScriptedDriver:
    """Replaces pynvml's device functions; `refuse[(function, device)] = code` makes a call raise."""

    def __init__(self, monkeypatch, devices: int = 2):
        self.calls: Counter = Counter()
        self.refuse: dict[tuple[str, int], int] = {}
        self.devices = devices
        m = monkeypatch

        def scripted(name, result):
            def fn(h, *args, **kwargs):
                key = name + ("_v2" if kwargs.get("version") else "")
                self.calls[(key, h)] += 1
                code = self.refuse.get((key, h))
                if code is not None:
                    raise nvml_error(code)
                return result(h, *args, **kwargs) if callable(result) else result
            m.setattr(pynvml, name, fn)

        m.setattr(pynvml, "nvmlInit", lambda: None)
        m.setattr(pynvml, "nvmlShutdown", lambda: None)
        m.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "535.104.05")
        m.setattr(pynvml, "nvmlDeviceGetCount", lambda: self.devices)
        m.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: i)
        scripted("nvmlDeviceGetName", lambda h: f"Scripted GPU {h}")
        scripted("nvmlDeviceGetUUID", lambda h: f"GPU-{h:08d}")
        scripted("nvmlDeviceGetCudaComputeCapability", (8, 6))
        scripted("nvmlDeviceGetMemoryInfo",
                 lambda h, version=None: SimpleNamespace(total=8192 * MIB, used=(1000 if version else 1300) * MIB))
        scripted("nvmlDeviceGetUtilizationRates", SimpleNamespace(gpu=77, memory=33))
        scripted("nvmlDeviceGetTemperatureV", lambda h, sensor: 61)
        scripted("nvmlDeviceGetTemperature", lambda h, sensor: 59)
        scripted("nvmlDeviceGetPowerUsage", 150_000)
        scripted("nvmlDeviceGetEnforcedPowerLimit", 220_000)
        scripted("nvmlDeviceGetFanSpeed", 40)
        scripted("nvmlDeviceGetClockInfo", lambda h, t: 1800 if t == pynvml.NVML_CLOCK_SM else 7000)
        scripted("nvmlDeviceGetCurrPcieLinkGeneration", 4)
        scripted("nvmlDeviceGetComputeRunningProcesses",
                 [SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * MIB),
                  SimpleNamespace(pid=999_999_999, usedGpuMemory=None)])
        scripted("nvmlDeviceGetGraphicsRunningProcesses",
                 [SimpleNamespace(pid=999_999_999, usedGpuMemory=64 * MIB),
                  SimpleNamespace(pid=999_999_998, usedGpuMemory=2**64 - 1)])  # NVML_VALUE_NOT_AVAILABLE
        # the older calls (drivers before R510 have no _v3, the binding's default)
        scripted("nvmlDeviceGetComputeRunningProcesses_v2", [SimpleNamespace(pid=4242, usedGpuMemory=100 * MIB)])
        scripted("nvmlDeviceGetGraphicsRunningProcesses_v2", [SimpleNamespace(pid=4343, usedGpuMemory=7 * MIB)])

        def no_name(pid):
            raise nvml_error(pynvml.NVML_ERROR_NOT_FOUND)
        m.setattr(pynvml, "nvmlSystemGetProcessName", no_name)


@pytest.fixture
def driver(monkeypatch):
    return ScriptedDriver(monkeypatch)


def started() -> NVMLBackend:
    b = NVMLBackend()
    b.init()
    return b


def test_full_snapshot_converts_units_and_prefers_v2_calls(driver):
    s = started().snapshot(0)
    assert (s.name, s.uuid, s.driver, s.compute_capability) == ("Scripted GPU 0", "GPU-00000000", "535.104.05", (8, 6))
    assert s.memory_used == 1000 * MIB and s.memory_total == 8192 * MIB  # v2: without the reserved part
    assert s.temperature == 61  # TemperatureV, not the deprecated call
    assert (s.power_usage, s.power_limit) == (150.0, 220.0)  # mW -> W
    assert (s.util_gpu, s.util_mem, s.fan, s.clock_sm, s.clock_mem, s.pcie_gen) == (77, 33, 40, 1800, 7000, 4)
    assert s.bf16 is True and not s.lost and not s.fake
    # NVML could not name our pid, /proc could; an unknown pid stays nameless; compute and graphics
    # entries of one pid merge into "C+G"; N/A memory stays None; pids /proc does not have are marked
    own = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert s.processes == (ProcessInfo(os.getpid(), own, 512 * MIB, "C", True),
                           ProcessInfo(999_999_999, None, 64 * MIB, "C+G", False),
                           ProcessInfo(999_999_998, None, None, "G", False))
    assert driver.calls[("nvmlDeviceGetTemperature", 0)] == 0


def test_process_lists_fall_back_to_v2_only_where_the_driver_lacks_v3(driver):
    for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        driver.refuse[(name, 1)] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    b = started()
    for _ in range(3):
        assert [(p.pid, p.used_memory, p.kind) for p in b.snapshot(1).processes] == \
            [(4242, 100 * MIB, "C"), (4343, 7 * MIB, "G")]
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses", 1)] == 1  # v3 asked once, then v2
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v2", 1)] == 3
    assert 4242 not in [p.pid for p in b.snapshot(0).processes]  # device 0 has v3
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v2", 0)] == 0


def test_v2_fallback_fires_on_the_exception_the_binding_really_raises(driver, monkeypatch):
    """Before R510 the driver's library has no `_v3`: the binding's `_nvmlGetFunctionPointer` raises
    NVMLError(FUNCTION_NOT_FOUND) inside `_v3`, and its unversioned call (the one the backend uses)
    turns that into NVMLLibraryMismatchError, which is not an NVMLError. That must select `_v2`,
    once per device, not give N/A and ask again every poll."""
    for name, real in BINDING_PROCESS_CALLS.items():
        monkeypatch.setattr(pynvml, name, real)  # the binding's code, not a script

        def v3(h, name=name):
            driver.calls[(name + "_v3", h)] += 1
            if h == 1:  # what _nvmlGetFunctionPointer raises for a symbol the library lacks
                raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return [SimpleNamespace(pid=777, usedGpuMemory=5 * MIB)]
        monkeypatch.setattr(pynvml, name + "_v3", v3)
    with pytest.raises(pynvml.NVMLLibraryMismatchError):  # the real binding's behaviour
        pynvml.nvmlDeviceGetComputeRunningProcesses(1)
    driver.calls.clear()
    b = started()
    for _ in range(3):
        assert [(p.pid, p.kind) for p in b.snapshot(1).processes] == [(4242, "C"), (4343, "G")]
        assert [p.pid for p in b.snapshot(0).processes] == [777]
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v3", 1)] == 1  # asked once, remembered
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v2", 1)] == 3
    assert driver.calls[("nvmlDeviceGetGraphicsRunningProcesses_v2", 1)] == 3
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v2", 0)] == 0
    assert b.is_unsupported(1, "processes") and not b.is_unsupported(0, "processes")


def test_mig_slices_are_listed_under_their_parent_and_found_by_uuid():
    from asl_cli.monitor.status import pick_gpu

    b = fake_backend(FIXTURES / "fake_mig.json")
    b.init()
    snaps = [b.snapshots() for _ in range(3)][-1]
    a100, rtx = snaps
    assert a100.error is None and a100.util_gpu is None and a100.processes is None  # NOT_SUPPORTED: N/A
    assert [m.slot for m in a100.mig] == [0, 2]  # slot 1 is empty (NOT_FOUND)
    first = a100.mig[0]
    assert first.uuid == "MIG-5e1a0000-0000-0000-0000-000000000001"
    assert (first.gpu_instance, first.compute_instance) == (1, 0)
    assert (first.memory_used, first.memory_total) == (8700 * MIB, 19968 * MIB)
    assert [(p.pid, p.name, p.used_memory) for p in first.processes] == [(5151, "asl", 8650 * MIB)]
    assert a100.mig[1].processes == ()
    assert rtx.mig is None  # a consumer card: NOT_SUPPORTED, asked once
    assert b._nvml.calls[("nvmlDeviceGetMigMode", 1)] == 1 and b.is_unsupported(1, "mig_mode")
    # the RTX 3090's driver has no _v3: the fake raises the binding's mismatch error, _v2 answers
    assert [p.pid for p in rtx.processes] == [6161]
    assert b._nvml.calls[("nvmlDeviceGetComputeRunningProcesses", 1)] == 1
    # a run on the 1g.5gb slice (torch reports the slice's UUID without the prefix) is matched to it,
    # not to GPU 0 as a whole and not by the index
    run = {"device": "cuda:0", "gpu_uuid": "5e1a0000-0000-0000-0000-000000000003"}
    mine = pick_gpu(run, snaps)
    assert mine.uuid == "MIG-5e1a0000-0000-0000-0000-000000000003" and mine.parent_uuid == a100.uuid
    assert mine.name.endswith("MIG 1g.5gb") and mine.memory_total == 4864 * MIB and mine.util_gpu is None
    assert mine.temperature == 44  # the physical GPU's sensors
    assert pick_gpu({"device": "cuda:0", "gpu_uuid": "30900000-0000-0000-0000-000000000000"}, snaps) is rtx
    # listed under the parent in the watch view, the plain lines and the JSON
    card = text_of(gpu.gpu_panel(snaps))
    assert "3g.20gb" in card and "1g.5gb" in card and "MIG" in card
    lines = gpu.mig_lines(a100)
    assert lines[0].startswith("gpu0/mig0 NVIDIA A100-SXM4-40GB MIG 3g.20gb: mem 8700/19968MiB  procs 1")
    d = json.loads(ndjson.ndjson_line(a100))
    assert [m["slot"] for m in d["mig"]] == [0, 2] and d["mig"][0]["processes"][0]["pid"] == 5151


def test_fake_mig_files_are_checked(tmp_path):
    from asl_cli.testing.fake_gpu import load_spec

    path = tmp_path / "mig.json"
    path.write_text(json.dumps({"gpus": [{"name": "x", "mig": [None, {"memory_total_mib": "lots"}]}]}))
    with pytest.raises(ConfigError, match=r"gpus\[0\]\.mig\[1\]\.memory_total_mib"):
        load_spec(path)


def test_not_supported_is_asked_once_and_shown_as_none(driver):
    driver.refuse[("nvmlDeviceGetPowerUsage", 1)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    driver.refuse[("nvmlDeviceGetFanSpeed", 1)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    driver.refuse[("nvmlDeviceGetComputeRunningProcesses", 1)] = pynvml.NVML_ERROR_NO_PERMISSION
    driver.refuse[("nvmlDeviceGetGraphicsRunningProcesses", 1)] = pynvml.NVML_ERROR_NO_PERMISSION
    b = started()
    snaps = [b.snapshot(1) for _ in range(4)]
    assert all(s.power_usage is None and s.fan is None and s.processes is None for s in snaps)
    assert all(s.power_limit == 220.0 and s.util_gpu == 77 for s in snaps)  # the rest still works
    assert driver.calls[("nvmlDeviceGetPowerUsage", 1)] == 1
    assert driver.calls[("nvmlDeviceGetFanSpeed", 1)] == 1
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses", 1)] == 1
    assert driver.calls[("nvmlDeviceGetComputeRunningProcesses_v2", 1)] == 0  # no permission: not a driver age
    assert b.is_unsupported(1, "power_usage") and not b.is_unsupported(0, "power_usage")
    assert b.snapshot(0).power_usage == 150.0  # remembered per device


def test_memory_v2_missing_falls_back_to_v1_once(driver):
    driver.refuse[("nvmlDeviceGetMemoryInfo_v2", 1)] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    b = started()
    for _ in range(3):
        s = b.snapshot(1)
        assert s.memory_used == 1300 * MIB  # v1 (counts reserved memory as used)
    assert driver.calls[("nvmlDeviceGetMemoryInfo_v2", 1)] == 1
    assert driver.calls[("nvmlDeviceGetMemoryInfo", 1)] == 3


def test_temperature_v_missing_falls_back_to_the_old_call(driver, monkeypatch):
    driver.refuse[("nvmlDeviceGetTemperatureV", 0)] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    b = started()
    assert [b.snapshot(0).temperature for _ in range(3)] == [59, 59, 59]
    assert driver.calls[("nvmlDeviceGetTemperatureV", 0)] == 1
    # an older binding without the function at all
    monkeypatch.delattr(pynvml, "nvmlDeviceGetTemperatureV")
    assert started().snapshot(1).temperature == 59


def test_transient_error_is_na_for_one_sample_only(driver):
    driver.refuse[("nvmlDeviceGetUtilizationRates", 0)] = pynvml.NVML_ERROR_UNKNOWN
    b = started()
    assert b.snapshot(0).util_gpu is None
    del driver.refuse[("nvmlDeviceGetUtilizationRates", 0)]
    assert b.snapshot(0).util_gpu == 77
    assert driver.calls[("nvmlDeviceGetUtilizationRates", 0)] == 2


def test_lost_gpu_gives_a_lost_snapshot_and_is_not_queried_again(driver):
    b = started()
    assert not b.snapshot(1).lost
    driver.refuse[("nvmlDeviceGetUtilizationRates", 1)] = pynvml.NVML_ERROR_GPU_IS_LOST
    s = b.snapshot(1)
    assert s.lost and s.name == "Scripted GPU 1" and s.util_gpu is None and "lost" in s.error.lower()
    before = sum(driver.calls.values())
    assert b.snapshot(1).lost
    assert sum(driver.calls.values()) == before
    assert not b.snapshot(0).lost


@pytest.mark.parametrize("code", [pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED])
def test_no_driver_becomes_one_line_no_gpu_error(monkeypatch, code):
    def fail():
        raise nvml_error(code)
    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    with pytest.raises(NoGPUError) as info:
        NVMLBackend().init()
    msg = str(info.value)
    assert info.value.exit_code == 5 and "\n" not in msg
    assert msg.startswith("no NVIDIA driver found (NVML: ") and "; hint: " in msg


def test_library_mismatch_is_not_an_nvml_error_but_is_handled(monkeypatch):
    assert not issubclass(pynvml.NVMLLibraryMismatchError, pynvml.NVMLError)

    def fail():
        raise pynvml.NVMLLibraryMismatchError("Unversioned function called and the pyNVML version does not match")
    monkeypatch.setattr(pynvml, "nvmlInit", fail)
    with pytest.raises(NoGPUError, match="does not match the driver"):
        NVMLBackend().init()


def test_real_library_on_this_machine_fails_cleanly():
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("an NVIDIA driver is present here")
    with pytest.raises(NoGPUError, match=r"^no NVIDIA driver found \(NVML: .+\); hint: "):
        NVMLBackend().init()


def test_deprecated_pynvml_package_is_detected_by_distribution():
    def lookup(name):
        if name == "pynvml":
            return "12.0.0"
        raise AssertionError(name)
    line = deprecated_pynvml_warning(lookup)
    assert line.startswith("warning: the deprecated 'pynvml' package (12.0.0)") and "\n" not in line

    import importlib.metadata

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)
    assert deprecated_pynvml_warning(absent) is None


# --- the scripted fake --------------------------------------------------------------------------

def test_fake_scripts_change_per_sample_and_exercise_fallbacks():
    b = fake_backend(FAKE)
    b.init()
    assert b.device_count() == 3
    utils = [b.snapshot(0).util_gpu for _ in range(7)]
    assert utils == [4, 46, 97, 99, 92, 98, 4]  # cycles
    t4 = [b.snapshot(1) for _ in range(3)]
    assert all(s.power_usage is None and s.fan is None and s.processes is None for s in t4)
    assert t4[0].memory_used == (3 + 254) * MIB  # v1 fallback includes the reserved memory
    assert t4[0].temperature == 33 and t4[0].compute_capability == (7, 5) and t4[0].bf16 is False
    calls = b._nvml.calls
    assert calls[("nvmlDeviceGetPowerUsage", 1)] == 1 and calls[("nvmlDeviceGetFanSpeed", 1)] == 1
    assert calls[("nvmlDeviceGetMemoryInfo_v2", 1)] == 1 and calls[("nvmlDeviceGetTemperatureV", 1)] == 1
    lost = b.snapshot(2)
    assert lost.lost and lost.fake and lost.memory_total is None


def test_fake_lost_after_n_samples(tmp_path):
    spec = {"gpus": [{"name": "Flaky", "memory_total_mib": 100, "memory_used_mib": 1, "util_gpu": 5,
                      "lost_after": 2}]}
    path = tmp_path / "flaky.json"
    path.write_text(json.dumps(spec))
    b = fake_backend(path)
    b.init()
    assert [b.snapshot(0).lost for _ in range(4)] == [False, False, True, True]
    assert b.snapshot(0).name == "Flaky"  # learnt before it was lost


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"gpu": []}', 'expected {"gpus"'),
    ('{"gpus": [1]}', "must be an object"),
    # a number the fake cannot read would show as N/A, like a GPU that does not report it
    ('{"gpus": [{"temperature": "hot"}]}', r"gpus\[0\]\.temperature: expected a number, .* got 'hot'"),
    ('{"gpus": [{}, {"memory_used_mib": [10, "12GB"]}]}', r"gpus\[1\]\.memory_used_mib\[1\]: .* got '12GB'"),
    ('{"gpus": [{"power_w": true}]}', r"gpus\[0\]\.power_w: .* got True"),
    ('{"gpus": [{"util_gpu": []}]}', r"gpus\[0\]\.util_gpu: .* got \[\]"),
    ('{"gpus": [{"reserved_mib": "254"}]}', r"gpus\[0\]\.reserved_mib: expected a number"),
    ('{"gpus": [{"compute_capability": ["8", 9]}]}', r"gpus\[0\]\.compute_capability: expected \[major, minor\]"),
    ('{"gpus": [{"lost_after": "soon"}]}', r"gpus\[0\]\.lost_after: expected a number of calls"),
    ('{"gpus": [{"processes": [{"pid": 1, "used_mib": "big"}]}]}', r"gpus\[0\]\.processes\[0\]\.used_mib: .* 'big'"),
    ('{"gpus": [{"processes": [{"pid": "x"}]}]}', r"gpus\[0\]\.processes\[0\]\.pid: expected a process id"),
])
def test_broken_fake_file_is_a_config_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_spec(path)
    assert info.value.path == str(path)
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "missing.json")


def test_fake_numbers_may_be_constants_scripts_or_nvml_errors(tmp_path):
    from asl_cli.testing.fake_gpu import bad_numeric_field

    assert bad_numeric_field({"temperature": 41, "power_w": [18.5, "UNKNOWN", 141.0], "fan": "NOT_SUPPORTED",
                              "compute_capability": [8, 9], "lost_after": None, "reserved_mib": 254,
                              "processes": "NO_PERMISSION",
                              "graphics_processes": [{"pid": 2210, "used_mib": [212, 300]}]}) is None


def test_env_var_selects_the_fake(monkeypatch):
    monkeypatch.setenv("ASL_FAKE_GPU", str(FAKE))
    b = open_backend()
    assert b.fake and b.snapshot(0).name == "NVIDIA GeForce RTX 4070"


def test_fake_module_offers_every_function_the_backend_calls():
    import inspect

    source = inspect.getsource(NVMLBackend)
    used = set(re.findall(r"\bnv\.(nvml\w+)", source)) | set(re.findall(r"_nvml\.(nvml\w+)", source))
    fake = FakeNVML({"gpus": []})
    assert used and all(hasattr(fake, name) for name in used), used - set(dir(fake))


# --- the sampler --------------------------------------------------------------------------------

def test_sampler_polls_in_the_background_with_bounded_history():
    b = open_backend(FAKE)
    sampler = GPUSampler(b, interval=0.01, history_len=4)
    with sampler:
        assert sampler.running
        deadline = time.monotonic() + 5
        while sampler.samples < 6 and time.monotonic() < deadline:
            sampler.wait_for_sample(sampler.samples, timeout=1)
    assert not sampler.running
    assert sampler.samples >= 6
    latest = sampler.latest()
    assert [s.index for s in latest] == [0, 1, 2]
    hist = sampler.history()
    assert set(hist) == {0, 1, 2} and all(len(h) == 4 for h in hist.values())
    assert len({s.util_gpu for s in hist[0]}) > 1  # the scripted values moved


def test_sampler_survives_a_failing_backend_and_readers_see_whole_samples():
    class Flaky:
        fake = True

        def __init__(self):
            self.n = 0

        def device_count(self):
            return 2

        def snapshot(self, i):
            self.n += 1
            if self.n % 5 == 0:
                raise RuntimeError("driver hiccup")
            return GPUSnapshot(index=i, util_gpu=self.n % 100)

    sampler = GPUSampler(Flaky(), interval=0.001)
    seen_sizes = set()
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            seen_sizes.add(len(sampler.latest()))

    t = threading.Thread(target=reader)
    t.start()
    with sampler:
        sampler.wait_for_sample(20, timeout=5)
    stop.set()
    t.join()
    assert isinstance(sampler.last_error, RuntimeError)
    assert sampler.samples > 20
    assert seen_sizes <= {0, 2}  # never a half-written sample
    assert 2 in seen_sizes and len(sampler.latest()) == 2  # ...and whole samples did reach the reader


def test_snapshot_never_raises_even_on_a_surprise(driver, monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: 1 / 0)
    s = started().snapshot(0)
    assert not s.lost and s.memory_total is None and s.error.startswith("ZeroDivisionError")


def test_sampler_rejects_a_non_positive_interval():
    with pytest.raises(ValueError):
        GPUSampler(open_backend(FAKE), interval=0)


# --- renderers ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sampled():
    sampler = GPUSampler(open_backend(FAKE), interval=1)
    for _ in range(5):
        sampler.sample_once()
    return sampler.latest(), sampler.history()


def test_gpu_panel_shows_values_na_lost_bars_sparklines_and_processes(sampled):
    snaps, hist = sampled
    out = text_of(gpu.gpu_panel(snaps, hist))
    assert "NVIDIA GeForce RTX 4070" in out and "Tesla T4" in out
    assert "10,388 / 12,282 MiB" in out and "92%" in out and "187 / 200 W" in out  # sample 5 of the script
    t4 = out[out.index("Tesla T4"):]
    assert re.search(r"power N/A\s+fan N/A", t4) and "processes N/A" in t4
    assert "LOST" in out and "fell off the bus" in out
    assert "█" in out and "░" in out
    assert re.search(r"[▁▂▃▄▅▆▇█]{5}", out)  # a sparkline of 5 samples
    assert re.search(r"31337\s+C\s+asl\s+9,966 MiB", out) and re.search(r"2210\s+G\s+Xorg\s+212 MiB", out)
    assert "cc 8.9 · bf16" in out and "cc 7.5 · no bf16" in out and "(fake)" in out


def test_gpu_panel_all_none_snapshot_is_na_everywhere():
    out = text_of(gpu.gpu_panel([GPUSnapshot(index=0)]))
    assert out.count("N/A") >= 6 and "unknown GPU" in out
    assert "no GPU found" in text_of(gpu.gpu_panel([]))


def test_bar_and_sparkline():
    assert widgets.bar(0.5, 10).plain == "█" * 5 + "░" * 5
    assert widgets.bar(1.7, 4).plain == "████" and widgets.bar(-1, 4).plain == "░░░░"
    assert widgets.bar(None, 3).plain == "░░░"
    assert widgets.sparkline([0, 50, 100, None], width=4) == "▁▅█ "
    assert widgets.sparkline([100] * 50, width=8) == "█" * 8
    assert widgets.sparkline([], width=3) == "   "


STATUS = {"run": "rtx4070-1128", "state": "running", "epoch": 3, "epochs": 12, "step": 1200, "total_steps": 4800,
          "eta_s": 723, "loss": 2.31412, "loss_smooth": 2.401, "lr": 1.2e-3, "grad_norm": 0.84, "samples_per_s": 812.4,
          "data_wait": 0.12, "val_top1": 0.512, "val_top5": 0.78, "best_top1": 0.52, "peak_mem_mb": 3120,
          "amp_scale": 65536.0, "precision": "bf16", "device": "cuda:0"}


def test_train_panel_and_plain_line_show_compile_state_and_skipped_updates():
    compiling = {**STATUS, "compile": "recompiling (graph 3)", "compile_graphs": 2, "overflow_skipped": 4,
                 "nonfinite_skipped": 1}
    out = text_of(training.train_panel(compiling))
    assert "compiling #3" in out and "fp16 skips" in out and "4" in out and "non-finite" in out
    assert "on · 7 graphs" in text_of(training.train_panel({**STATUS, "compile": "on", "compile_graphs": 7}))
    assert "eager (fell back)" in text_of(training.train_panel({**STATUS, "compile": "fallback (eager)"}))
    assert "on · 3 eager" in text_of(training.train_panel({**STATUS, "compile": "on, 3 batches eager (recompile "
                                                                    "limit)", "compile_eager_batches": 3}))
    line = training.plain_line(compiling)
    assert line.endswith("compile recompiling (graph 3)  fp16 skips 4  non-finite skips 1")
    assert "compile" not in training.plain_line({**STATUS, "compile": "on"})  # only what is unusual
    assert "skips" not in training.plain_line({**STATUS, "overflow_skipped": 0})
    for width in (80, 120):  # still fits
        assert max(len(x) for x in text_of(training.train_panel(compiling), width=width).splitlines()) <= width


def test_train_panel_shows_the_status_and_dashes_for_missing_keys():
    out = text_of(training.train_panel(STATUS))
    for piece in ("rtx4070-1128", "running", "3 / 12", "1,200 / 4,800", "eta 0:12:03", "2.3141", "(2.4010)",
                  "1.20e-03", "812.4", "12%", "51.2%", "78.0%", "52.0%", "3,120 MiB", "bf16", "cuda:0", "65536"):
        assert piece in out, piece
    empty = text_of(training.train_panel({}))
    assert empty.count("—") >= 12
    weird = text_of(training.train_panel({"loss": float("nan"), "lr": "fast", "epoch": None, "state": "failed"}))
    assert "nan" not in weird.lower() and "fast" not in weird and "failed" in weird


def test_aug_and_config_panels():
    aug = AugConfig().__dict__
    out = text_of(training.aug_panel(aug))
    for piece in ("temporal", "p=0.5", "resample 0.5–1.5×", "rotate ±30°", "scale 0.8–1.2", "flip p=0.5",
                  "σ=0.01", "landmarks p=0.05"):
        assert piece in out, piece
    assert "off" in text_of(training.aug_panel({**aug, "use_augmentations": False}))
    assert "—" in text_of(training.aug_panel(None))
    cfg = load_config("rtx4070").to_dict()
    out = text_of(training.config_panel(cfg))
    assert "12 × 4 accum = 48" in out and "rtx4070" in out and "radam_lookahead" in out
    assert re.search(r"workers\s+4\b", out)
    assert re.search(r"workers\s+auto\b", text_of(training.config_panel(load_config("cpu").to_dict())))
    assert text_of(training.config_panel({})).count("—") >= 5


def test_plain_line_has_the_detectron2_fields_in_order(sampled):
    snaps, _ = sampled
    line = training.plain_line(STATUS, snaps[0])
    keys = ["eta", "epoch", "step", "loss", "lr", "samples/s", "data", "val top1", "max_mem", "gpu mem", "util"]
    positions = [line.index(k + " ") for k in keys]
    assert positions == sorted(positions) and "\n" not in line
    assert "epoch 3/12" in line and "step 1200/4800" in line and "gpu mem 10388/12282MiB" in line and "util 92%" in line
    assert training.plain_line({}).startswith("eta —  epoch —/—")
    assert "gpu mem N/A" in training.plain_line({}, snaps[2])  # lost GPU


def test_ndjson_line_is_one_strict_json_object(sampled):
    snaps, _ = sampled
    line = ndjson.ndjson_line({"loss": float("nan"), "inf": float("inf"), "gpus": snaps, "path": Path("/x")})
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["loss"] is None and obj["inf"] is None and obj["path"] == "/x"
    assert obj["gpus"][0]["compute_capability"] == [8, 9] and obj["gpus"][2]["lost"] is True
    assert obj["gpus"][0]["processes"][0] == {"pid": 31337, "name": "asl", "used_memory": 9966 * MIB, "kind": "C",
                                              "in_namespace": True}


def test_gpu_line_marks_na_and_lost(sampled):
    snaps, _ = sampled
    lines = [gpu.gpu_line(s) for s in snaps]
    assert lines[0].startswith("gpu0 NVIDIA GeForce RTX 4070 (fake): mem 10388/12282MiB (85%)  util 92%")
    assert "power N/A  fan N/A" in lines[1] and "procs N/A" in lines[1]
    assert "LOST" in lines[2]


# --- review: error classes and odd values ---------------------------------------------------------

def test_transient_memory_v2_failure_is_na_not_a_v1_reading(driver):
    # v1 counts the driver-reserved memory as used: falling back on a timeout would make `used`
    # jump by the reserved part for one sample (and cost a second blocking call)
    driver.refuse[("nvmlDeviceGetMemoryInfo_v2", 0)] = pynvml.NVML_ERROR_TIMEOUT
    b = started()
    s = b.snapshot(0)
    assert (s.memory_used, s.memory_total) == (None, None)
    assert driver.calls[("nvmlDeviceGetMemoryInfo", 0)] == 0
    del driver.refuse[("nvmlDeviceGetMemoryInfo_v2", 0)]
    assert b.snapshot(0).memory_used == 1000 * MIB  # v2 again on the next sample


def test_version_mismatch_is_permanent_and_falls_back(driver):
    # NVML_ERROR_ARGUMENT_VERSION_MISMATCH: the driver does not know the struct version the binding
    # sends; asking again cannot help, so the older call is used (not N/A for ever)
    driver.refuse[("nvmlDeviceGetTemperatureV", 0)] = pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    driver.refuse[("nvmlDeviceGetMemoryInfo_v2", 0)] = pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH
    b = started()
    snaps = [b.snapshot(0) for _ in range(3)]
    assert [s.temperature for s in snaps] == [59, 59, 59]
    assert [s.memory_used for s in snaps] == [1300 * MIB] * 3
    assert driver.calls[("nvmlDeviceGetTemperatureV", 0)] == 1
    assert driver.calls[("nvmlDeviceGetMemoryInfo_v2", 0)] == 1


def test_transient_failure_of_a_static_field_is_asked_again(driver):
    # name/UUID/compute capability are asked once, but a timeout on the first sample must not
    # leave the GPU nameless (and unmatchable by UUID) for the whole session
    driver.refuse[("nvmlDeviceGetUUID", 0)] = pynvml.NVML_ERROR_TIMEOUT
    driver.refuse[("nvmlDeviceGetName", 0)] = pynvml.NVML_ERROR_UNKNOWN
    b = started()
    first = b.snapshot(0)
    assert first.uuid is None and first.name is None and first.compute_capability == (8, 6)
    del driver.refuse[("nvmlDeviceGetUUID", 0)], driver.refuse[("nvmlDeviceGetName", 0)]
    second = b.snapshot(0)
    assert (second.uuid, second.name, second.compute_capability) == ("GPU-00000000", "Scripted GPU 0", (8, 6))
    b.snapshot(0)
    assert driver.calls[("nvmlDeviceGetName", 0)] == 2 and driver.calls[("nvmlDeviceGetCudaComputeCapability", 0)] == 1
    # a permanent refusal is still asked only once
    driver.refuse[("nvmlDeviceGetName", 1)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    assert [b.snapshot(1).name for _ in range(3)] == [None, None, None]
    assert driver.calls[("nvmlDeviceGetName", 1)] == 1


def test_gpu_line_does_not_invent_a_percentage_for_an_unknown_total():
    line = gpu.gpu_line(GPUSnapshot(index=0, memory_used=0, memory_total=0))
    assert "%)" not in line and "mem 0/0MiB" in line
    assert "(50%)" in gpu.gpu_line(GPUSnapshot(index=0, memory_used=50 * MIB, memory_total=100 * MIB))
