"""`asl gpu-watch`: in-process (CliRunner), as a real subprocess, in a real pseudo-terminal
(the full-screen Live view), and through a pipe (plain lines that arrive as they are sampled)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from kit import FAKE_GPUS, FIXTURES, run_asl, start_asl, strip_ansi

FAKE = str(FAKE_GPUS)
runner = CliRunner()


def has_nvidia_driver() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


no_driver_only = pytest.mark.skipif(has_nvidia_driver(), reason="an NVIDIA driver is present")
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty and select() on pipes")


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, ["gpu-watch", *args], env=env)


def sub_env(**extra: str) -> dict:
    """Set over run_asl's environment: no fake GPU from outside, a 110 x 60 screen."""
    return {"ASL_FAKE_GPU": None, "COLUMNS": "110", "LINES": "60", **extra}


# --- in process ---------------------------------------------------------------------------------

def test_once_prints_one_frame_with_every_gpu():
    r = invoke("--fake-gpu", FAKE, "--once")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "asl gpu-watch" in out and "NVIDIA GeForce RTX 4070" in out and "Tesla T4" in out
    assert "LOST" in out and "N/A" in out and "1,034 / 12,282 MiB" in out
    assert "Ctrl-C" not in out  # not a live view


def test_once_json_is_one_line():
    r = invoke("--fake-gpu", FAKE, "--once", "--json")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    gpus = obj["gpus"]
    assert [g["name"] for g in gpus[:2]] == ["NVIDIA GeForce RTX 4070", "Tesla T4"]
    assert gpus[1]["power_usage"] is None and gpus[1]["fan"] is None and gpus[2]["lost"] is True
    assert all(g["fake"] for g in gpus) and "time" in obj


def test_json_stream_has_one_object_per_sample_with_changing_values():
    r = invoke("--fake-gpu", FAKE, "--json", "--count", "3", "--interval", "0.05")
    assert r.exit_code == 0
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(objs) == 3
    assert len({o["gpus"][0]["util_gpu"] for o in objs}) == 3


def test_without_a_terminal_it_prints_plain_lines_per_sample():
    r = invoke("--fake-gpu", FAKE, "--count", "2", "--interval", "0.05")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 6  # 2 samples x 3 GPUs
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] gpu[012] ", line) for line in lines)
    assert "\x1b[" not in r.stdout  # no Live escape codes in a pipe


def test_env_var_selects_fake_gpus():
    r = invoke("--once", "--json", env={"ASL_FAKE_GPU": FAKE})
    assert r.exit_code == 0 and json.loads(r.stdout)["gpus"][0]["fake"] is True


@no_driver_only
def test_no_driver_is_one_line_and_exit_5():
    r = invoke("--once", env={"ASL_FAKE_GPU": ""})
    assert r.exit_code == 5
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no NVIDIA driver found (NVML: ")
    assert "; hint: " in lines[0]


def test_driver_without_gpus_is_exit_5():
    r = invoke("--fake-gpu", str(FIXTURES / "fake_no_gpus.json"), "--once")
    assert r.exit_code == 5 and "sees no GPU" in r.stderr


def test_bad_fake_file_is_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = invoke("--fake-gpu", str(bad), "--once")
    assert r.exit_code == 2 and r.stderr.startswith(f"error: {bad}: not valid JSON")


def test_fake_file_with_a_non_numeric_number_is_refused_not_shown_as_na(tmp_path):
    bad = tmp_path / "hot.json"
    bad.write_text('{"gpus": [{"name": "X", "memory_total_mib": 100, "memory_used_mib": 10, "temperature": "hot"}]}')
    r = invoke("--fake-gpu", str(bad), "--once")
    assert r.exit_code == 2 and r.stdout == "", r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: gpus[0].temperature: expected a number")


def write_status(run_dir: Path, **fields) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    status = {"run": run_dir.name, "state": "running", "epoch": 2, "epochs": 10, "step": 340, "total_steps": 1700,
              "loss": 3.1234, "samples_per_s": 901.5, "device": "cuda:0",
              "aug": {"use_augmentations": True, "profile": "seed", "rotate": True, "rotate_deg": 30.0},
              "config": {"train": {"batch_size": 12, "gradient_accumulation_steps": 4}}}
    status.update(fields)
    (run_dir / "status.json").write_text(json.dumps(status))


def test_run_status_in_frame_plain_line_and_json(tmp_path):
    run = tmp_path / "runs" / "demo"
    write_status(run)
    frame = invoke("--fake-gpu", FAKE, "--once", "--run", str(run)).stdout
    assert "demo" in frame and "340 / 1,700" in frame and "3.1234" in frame and "rotate ±30°" in frame
    assert "12 × 4 accum = 48" in frame
    plain = invoke("--fake-gpu", FAKE, "--count", "1", "--run", str(run)).stdout.splitlines()
    run_line = next(line for line in plain if "] demo: " in line)
    assert re.match(r"\[\d\d:\d\d:\d\d\] demo: eta .* step 340/1700 .* gpu mem 1034/12282MiB  util 4%$", run_line)
    assert plain[-1].endswith("a larger batch (--batch-size)")  # the fake GPU at 4 %: advice gpu-underused
    obj = json.loads(invoke("--fake-gpu", FAKE, "--once", "--json", "--run", str(run)).stdout)
    assert obj["status"]["step"] == 340 and "config" not in obj["status"] and obj["run"] == str(run)


def test_run_configuration_comes_from_config_json(tmp_path):
    # the trainer's status.json has no "config" (it is in config.json beside it): the configuration
    # panel of `gpu-watch --run` (docs/gpu-watch.md) must still show the run's settings
    run = tmp_path / "runs" / "real"
    write_status(run)
    status = json.loads((run / "status.json").read_text())
    del status["config"]
    (run / "status.json").write_text(json.dumps(status))
    (run / "config.json").write_text(json.dumps({"preset": "rtx4070", "train": {
        "batch_size": 12, "gradient_accumulation_steps": 4, "epochs": 100}}))
    frame = invoke("--fake-gpu", FAKE, "--once", "--run", str(run)).stdout
    assert "configuration" in frame and "12 × 4 accum = 48" in frame and "rtx4070" in frame
    obj = json.loads(invoke("--fake-gpu", FAKE, "--once", "--json", "--run", str(run)).stdout)
    assert obj["status"]["step"] == 340 and "config" not in obj["status"]


def test_plain_line_of_a_cpu_run_shows_no_gpu_values(tmp_path):
    run = tmp_path / "runs" / "cpurun"
    write_status(run, device="cpu")
    plain = invoke("--fake-gpu", FAKE, "--count", "1", "--run", str(run)).stdout.splitlines()
    assert plain[-1].startswith("[") and "cpurun: eta" in plain[-1] and plain[-1].endswith("gpu mem —  util —")


def test_latest_run_picks_the_newest_status(tmp_path):
    runs = tmp_path / "runs"
    write_status(runs / "old", step=1)
    time.sleep(0.02)
    write_status(runs / "new", step=2)
    os.utime(runs / "old" / "status.json", (time.time() - 100, time.time() - 100))
    r = invoke("--fake-gpu", FAKE, "--once", "--json", "--latest-run", "--runs-dir", str(runs))
    assert r.exit_code == 0 and json.loads(r.stdout)["status"]["run"] == "new"


def test_run_folder_problems_are_usage_errors(tmp_path):
    r = invoke("--fake-gpu", FAKE, "--once", "--run", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "run folder not found" in r.stderr
    r = invoke("--fake-gpu", FAKE, "--once", "--latest-run", "--runs-dir", str(tmp_path))
    assert r.exit_code == 2 and "no run folder" in r.stderr
    r = invoke("--fake-gpu", FAKE, "--once", "--latest-run", "--run", str(tmp_path))
    assert r.exit_code == 2


def test_run_without_status_yet_waits(tmp_path):
    r = invoke("--fake-gpu", FAKE, "--once", "--run", str(tmp_path))
    assert r.exit_code == 0 and "waiting for" in r.stdout


def test_help_does_not_load_nvml():
    code = ("import sys; sys.argv=['asl','gpu-watch','--help']\n"
            "from asl_cli.cli.app import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "assert 'pynvml' not in sys.modules and 'asl_cli.monitor' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "--interval" in out.stdout


def test_fake_gpu_option_is_documented_in_help_with_its_shipped_demo():
    r = runner.invoke(app, ["gpu-watch", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "--fake-gpu" in r.stdout and "demo" in r.stdout


def test_fake_gpu_demo_is_the_shipped_example_the_no_driver_hint_names():
    from asl_cli.testing.fake_gpu import DEMO_FILE
    from asl_cli.monitor.nvml import NO_DRIVER_HINT

    assert "--fake-gpu demo" in NO_DRIVER_HINT
    assert json.loads(DEMO_FILE.read_text()) == json.loads(Path(FAKE).read_text())  # the documented fixture
    r = invoke("--fake-gpu", "demo", "--once", "--json")
    assert r.exit_code == 0, r.output
    assert [g["name"] for g in json.loads(r.stdout)["gpus"]][:2] == ["NVIDIA GeForce RTX 4070", "Tesla T4"]
    assert invoke("--once", "--json", env={"ASL_FAKE_GPU": "demo"}).exit_code == 0


@no_driver_only
def test_json_errors_are_one_json_object_on_stdout_with_the_same_exit_code(tmp_path):
    r = invoke("--once", "--json", env={"ASL_FAKE_GPU": ""})
    assert r.exit_code == 5 and r.stderr == ""
    err = json.loads(r.stdout)
    assert err["event"] == "error" and err["exit_code"] == 5 and err["type"] == "NoGPUError"
    assert err["error"].startswith("no NVIDIA driver found") and "--fake-gpu demo" in err["error"]
    # a bad option value through the real entry point: JSON too, the parser's exit code 2
    p = run_asl("gpu-watch", "--json", "--interval", "abc", env=sub_env(), cwd=tmp_path, timeout=30)
    assert p.returncode == 2 and p.stderr == ""
    usage = json.loads(p.stdout)
    assert usage["exit_code"] == 2 and usage["type"] == "UsageError" and "--interval" in usage["error"]


# --- real processes -----------------------------------------------------------------------------

def test_subprocess_json_once_and_exit_codes(tmp_path):
    ok = run_asl("gpu-watch", "--fake-gpu", FAKE, "--once", "--json", env=sub_env(), cwd=tmp_path, timeout=30)
    assert ok.returncode == 0 and len(json.loads(ok.stdout)["gpus"]) == 3 and ok.stderr == ""
    if not has_nvidia_driver():
        bad = run_asl("gpu-watch", "--once", env=sub_env(), cwd=tmp_path, timeout=30)
        assert bad.returncode == 5 and "Traceback" not in bad.stderr
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: no NVIDIA driver found")


@posix_only
def test_pipe_output_arrives_line_by_line_before_the_end(tmp_path):
    proc = start_asl("gpu-watch", "--fake-gpu", FAKE, "--interval", "0.4", "--count", "4", env=sub_env(),
                     cwd=tmp_path, text=False)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no output within 20 s"
        first = proc.stdout.readline().decode()
        assert proc.poll() is None, "the first line only came at the end"
        assert first.startswith("[") and "gpu0 NVIDIA GeForce RTX 4070" in first
        rest = proc.stdout.read().decode()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()
    assert len((first + rest).splitlines()) == 12


def run_in_pty(args: list[str], *, interrupt_after: bytes | None = None, timeout: float = 25,
               rows: int = 60, cwd: Path | None = None) -> tuple[int, bytes]:
    """`python -m asl_cli ...` on a pseudo-terminal; Ctrl-C (SIGINT) once `interrupt_after` shows."""

    def interrupt(out: bytes, proc: subprocess.Popen) -> None:
        if interrupt_after is not None and interrupt_after in out and not sent:
            proc.send_signal(signal.SIGINT)
            sent.append(True)

    sent: list[bool] = []
    res = run_asl(*args, env={"ASL_FAKE_GPU": None}, cwd=cwd, pty=True, rows=rows, columns=110, timeout=timeout,
                  poll=0.5, watch=interrupt)
    return res.returncode, res.raw


@posix_only
def test_dumb_terminal_gets_plain_lines_not_an_empty_screen():
    # TERM=dumb (Emacs shell, some CI consoles) cannot draw a full-screen view: Rich draws nothing there
    res = run_asl("gpu-watch", "--fake-gpu", FAKE, "--interval", "0.1", "--count", "2", env=sub_env(TERM="dumb"),
                  pty=True, timeout=25)
    code, out, text = res.returncode, res.raw, res.stdout
    assert code == 0 and b"\x1b[?1049h" not in out
    assert text.count("gpu0 NVIDIA GeForce RTX 4070 (fake): mem") == 2, text[-2000:]


@posix_only
def test_live_view_in_a_terminal_redraws_frames_and_restores_the_screen(tmp_path):
    code, out = run_in_pty(["gpu-watch", "--fake-gpu", FAKE, "--interval", "0.2", "--count", "3"])
    assert code == 0, out[-2000:]
    assert out.count(b"\x1b[?1049h") == 1 and out.rstrip().endswith(b"\x1b[?1049l")  # alternate screen left
    assert out.count(b"NVIDIA GeForce RTX 4070") >= 3  # one per frame
    text = strip_ansi(out)
    for value in ("1,034 / 12,282 MiB", "5,230 / 12,282 MiB", "9,731 / 12,282 MiB"):  # successive samples
        assert value in text
    assert "Tesla T4" in text and "LOST" in text and "Ctrl-C quits" in text


@posix_only
def test_ctrl_c_exits_0_and_restores_the_terminal():
    code, out = run_in_pty(["gpu-watch", "--fake-gpu", FAKE, "--interval", "0.2"], interrupt_after=b"Tesla T4")
    assert code == 0
    assert b"\x1b[?1049l" in out and b"Traceback" not in out


@no_driver_only
def test_deprecated_pynvml_package_is_warned_about_in_one_line(monkeypatch):
    import asl_cli.monitor.nvml as nvml

    monkeypatch.setattr(nvml, "deprecated_pynvml_warning", lambda: "warning: the deprecated 'pynvml' package ...")
    r = invoke("--once", env={"ASL_FAKE_GPU": ""})
    lines = r.stderr.splitlines()
    assert r.exit_code == 5 and lines[0].startswith("warning: the deprecated 'pynvml'") and len(lines) == 2
    assert "deprecated" not in invoke("--fake-gpu", FAKE, "--once").stderr


@posix_only
@pytest.mark.parametrize("rows, config_shown", [(80, True), (40, False)])
def test_live_view_with_a_run_drops_static_panels_on_a_short_terminal(tmp_path, rows, config_shown):
    write_status(tmp_path / "runs" / "demo")
    code, out = run_in_pty(["gpu-watch", "--fake-gpu", FAKE, "--latest-run", "--count", "1"], rows=rows,
                           cwd=tmp_path)
    text = strip_ansi(out)
    assert code == 0 and "run demo" in text and "340 / 1,700" in text  # the training panel always fits
    assert ("configuration" in text) is config_shown


def test_a_run_gpu_is_picked_by_torch_uuid_without_nvml_prefix():
    from asl_cli.monitor.base import GPUSnapshot, same_gpu
    from asl_cli.monitor.status import pick_gpu

    snaps = [GPUSnapshot(index=0, uuid="GPU-aaaa-1", name="first"), GPUSnapshot(index=1, uuid="GPU-bbbb-2", name="second")]
    # CUDA_VISIBLE_DEVICES=1: the run's cuda:0 is NVML's GPU 1; torch reports the UUID without "GPU-"
    assert pick_gpu({"device": "cuda:0", "gpu_uuid": "bbbb-2"}, snaps).name == "second"
    assert pick_gpu({"device": "cuda:0", "gpu_uuid": "GPU-BBBB-2"}, snaps).name == "second"
    assert pick_gpu({"device": "cuda:1"}, snaps).name == "second"  # no UUID: the index
    assert pick_gpu({"device": "cuda:0", "gpu_uuid": "cccc"}, snaps).name == "first"  # unknown UUID: the index
    assert pick_gpu({"device": "cpu", "gpu_uuid": None}, snaps) is None
    assert not same_gpu(None, None) and not same_gpu("GPU-", "") and same_gpu("GPU-ab", "ab")


def test_count_is_the_number_of_samples_shown_even_when_samples_pile_up():
    # a slow consumer (a blocked pipe, a long Live render) lets several samples arrive between two
    # shows: `--count 3` must still print 3 samples, not stop after 2
    from asl_cli.cli.cmd_gpu_watch import _loop

    class Bursty:
        def __init__(self):
            self.n = 0

        def wait_for_sample(self, after, timeout=None):
            self.n = after + 2  # two new samples each time
            return self.n

    shown = []
    _loop(Bursty(), 3, 0.05, lambda: shown.append(1))
    assert len(shown) == 3
