"""`asl gpu-watch` where GPUs live: containers (host PIDs, unlisted processes) and idle GPUs.

Through the scripted fake (tests/fixtures/fake_container.json: an idle A10G held by two processes a
container sees only by host PID, an idle one whose processes NVML does not list, a busy one) and on
hand-made snapshots for the pure rules of `asl_cli.monitor.idle`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

import pytest
from rich.console import Console
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.monitor.base import GPUSnapshot, ProcessInfo
from asl_cli.monitor.idle import HELD_MIB, holds_memory, idle_marks, idle_seconds, is_idle
from asl_cli.monitor.nvml import NVMLBackend, pid_in_namespace
from asl_cli.testing.fake_gpu import FakeNVML, load_spec
from asl_cli.ui.gpu import gpu_line, gpu_panel, processes_view, unlisted_memory_mib
from asl_cli.units import MIB
from kit import FIXTURES, strip_ansi

CONTAINER = str(FIXTURES / "fake_container.json")


def render(renderable) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
runner = CliRunner()


def watch(*args: str):
    return runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, *args], env={"COLUMNS": "80"})


# --- processes in containers --------------------------------------------------------------------

def test_pid_in_namespace_is_true_for_this_process_and_false_for_an_impossible_pid():
    assert pid_in_namespace(os.getpid())
    assert not pid_in_namespace(2**31 + 5) and not pid_in_namespace(0)


def test_host_pids_are_listed_unnamed_and_marked_outside_this_namespace():
    fake = FakeNVML(load_spec(CONTAINER))
    backend = NVMLBackend(fake, fake=True, pid_visible=fake.pid_visible)
    backend.init()
    procs = backend.snapshot(0).processes
    assert [(p.pid, p.name, p.in_namespace) for p in procs] == [(2081734, None, False), (2090112, None, False)]
    named = backend.snapshot(2).processes[0]
    assert (named.name, named.in_namespace) == ("python", True)


def test_a_host_pid_is_not_named_after_whatever_has_that_pid_here():
    # inside a container host PID 1 (or any) may exist in /proc as another process: no /proc name for it
    fake = FakeNVML({"gpus": [{"name": "g", "processes": [{"pid": os.getpid(), "used_mib": 10}]}]})
    outside = NVMLBackend(fake, fake=True, pid_visible=lambda pid: False)
    outside.init()
    assert outside.snapshot(0).processes[0].name is None
    inside = NVMLBackend(fake, fake=True, pid_visible=lambda pid: True)
    inside.init()
    assert inside.snapshot(0).processes[0].name  # /proc/<our pid>/comm


def test_frame_plain_line_and_json_show_host_pids_and_unlisted_memory():
    r = watch("--once")
    assert r.exit_code == 0, r.output
    out = strip_ansi(r.stdout)
    assert out.count("(host PID, not visible here)") == 2
    assert "no processes listed; 12,480 MiB held by processes not visible here" in out
    assert max(len(line) for line in out.splitlines()) <= 80  # the narrow layout
    lines = runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, "--count", "1", "-n", "0.05"]).stdout
    assert "procs 2 (2 host PIDs)" in lines and "procs 0 (12480MiB unlisted)" in lines
    assert "gpu2 NVIDIA A10G (fake)" in lines and lines.count("unlisted") == 1
    obj = json.loads(runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, "--once", "--json"]).stdout)
    assert [p["in_namespace"] for p in obj["gpus"][0]["processes"]] == [False, False]
    assert obj["gpus"][1]["processes"] == [] and obj["gpus"][2]["processes"][0]["in_namespace"] is True


def test_unlisted_memory_needs_an_empty_list_and_held_memory():
    base = GPUSnapshot(index=0, memory_used=9000 * MIB, memory_total=24000 * MIB, processes=())
    assert unlisted_memory_mib(base) == 9000
    assert unlisted_memory_mib(dataclasses.replace(base, processes=None)) is None  # N/A is not "empty"
    assert unlisted_memory_mib(dataclasses.replace(base, memory_used=300 * MIB)) is None
    listed = dataclasses.replace(base, processes=(ProcessInfo(7, "python", 8000 * MIB, "C", True),))
    assert unlisted_memory_mib(listed) is None
    assert "python" in render(processes_view(listed)) and "held by" not in render(processes_view(listed))
    assert "9,000 MiB held by processes not visible here" in render(processes_view(base))


def test_fake_file_with_a_non_boolean_host_pid_is_refused(tmp_path):
    spec = json.loads(open(CONTAINER).read())
    spec["gpus"][0]["processes"][0]["host_pid"] = "yes"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    r = runner.invoke(app, ["gpu-watch", "--fake-gpu", str(bad), "--once"])
    assert r.exit_code == 2
    assert "bad.json: gpus[0].processes[0].host_pid: expected true or false, got 'yes'" in r.output


# --- idle GPUs ----------------------------------------------------------------------------------

def snap(t: float, util: int | None, *, used_mib: int = 9000, procs=(ProcessInfo(1, "python", None, "C"),),
         lost: bool = False) -> GPUSnapshot:
    return GPUSnapshot(index=0, util_gpu=util, memory_used=used_mib * MIB, memory_total=24000 * MIB,
                       processes=procs, lost=lost, timestamp=t)


def test_idle_needs_held_memory_and_low_utilisation():
    assert is_idle(snap(0, 0)) and is_idle(snap(0, 5))
    assert not is_idle(snap(0, 6))  # busy enough
    assert not is_idle(snap(0, None))  # unknown utilisation (MIG parents): nothing says idle
    assert not is_idle(snap(0, 0, lost=True))
    xorg = (ProcessInfo(2, "Xorg", 200 * MIB, "G"),)
    assert not holds_memory(snap(0, 0, used_mib=400, procs=xorg))  # a desktop alone is not a held GPU
    assert holds_memory(snap(0, 0, used_mib=HELD_MIB, procs=()))  # a container: no list, memory in use
    assert not holds_memory(snap(0, 0, used_mib=HELD_MIB - 1, procs=None))


def test_idle_seconds_counts_the_unbroken_idle_run_at_the_end():
    history = [snap(0, 90), snap(10, 0), snap(20, 2), snap(45, 0)]
    assert idle_seconds(history) == 35
    assert idle_seconds(history + [snap(50, 40)]) == 0  # used again: no mark
    assert idle_seconds([snap(0, 0, procs=())]) == 0  # one sample, nothing held long
    assert idle_marks({0: history, 1: history[:2]}, after=30) == {0: 35}
    assert idle_marks({0: history}, after=36) == {} and idle_marks({3: []}, after=1) == {}


def test_watch_marks_idle_gpus_after_idle_after_seconds_and_not_the_busy_one():
    r = runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, "-n", "0.05", "--idle-after", "1",
                            "--count", "40", "--json"])
    assert r.exit_code == 0, r.output
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    first, last = samples[0]["gpus"], samples[-1]["gpus"]
    assert [g["idle"] for g in first] == [False, False, False]  # not idle long enough yet
    assert [g["idle"] for g in last] == [True, True, False]
    assert last[0]["idle_s"] >= 1.0 and last[2]["idle_s"] == 0
    plain = runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, "-n", "0.05", "--idle-after", "1",
                                "--count", "40"]).stdout.splitlines()
    assert "IDLE 0:00:0" in plain[-3] and "IDLE 0:00:0" in plain[-2] and "IDLE" not in plain[-1]
    assert all("IDLE" not in line for line in plain[:3])


def test_idle_mark_in_the_card_title_and_line():
    s = snap(0, 0)
    assert gpu_line(s, 75).endswith("IDLE 0:01:15") and "IDLE" not in gpu_line(s)
    assert "IDLE 0:01:15" in render(gpu_panel([s], idle={0: 75})) and "IDLE" not in render(gpu_panel([s]))


@pytest.mark.parametrize("value", ["0", "-5", "100000"])
def test_idle_after_out_of_range_is_a_usage_error(value):
    r = runner.invoke(app, ["gpu-watch", "--fake-gpu", CONTAINER, "--once", "--idle-after", value])
    assert r.exit_code == 2 and "--idle-after" in r.output
