"""SIGKILL at seeded random points of `asl train` (mid-step, mid-checkpoint-write, mid-validation).

After every kill: the run folder holds a loadable, finite checkpoint; `asl train --resume`
finishes the run; and (deterministic, CPU, no workers) its final weights equal those of an
uninterrupted run bit for bit. The kill runs are real processes (tests/faults/driver.py arms the
checkpoint/validation pause points); the resumes and the reference run go through the CLI in-process.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.engine.checkpoint import all_finite, load_checkpoint
from faultkit import DRIVER, train_args
from kit import asl_command, run_on_terminal

EPOCHS = 3  # 6 updates per epoch, 18 in all; 3 validation batches per epoch
TRIALS = [(seed, ("step", "save", "eval")[seed % 3]) for seed in range(10)]
runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The kill runs use one thread (OMP_NUM_THREADS=1); the in-process resumes must too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """An uninterrupted run's final weights (and the cache every trial reuses)."""
    root = tmp_path_factory.mktemp("kill-reference")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASL_CACHE", str(root / "cache"))
    out = runner.invoke(app, train_args(tiny_data, root / "runs", "straight", epochs=EPOCHS))
    mp.undo()
    assert out.exit_code == 0, out.stderr
    ckpt = load_checkpoint(root / "runs" / "straight" / "checkpoints" / "last.pt")
    assert ckpt["progress"]["step"] == 6 * EPOCHS
    return root, ckpt["model"]


def last_step(metrics: Path) -> int:
    try:
        lines = metrics.read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line).get("step", 0) for line in lines[:-1] if line.strip()]  # last may be partial
    return max(steps, default=0)


def kill_run(tiny_data, runs: Path, name: str, kind: str, seed: int, env: dict) -> dict:
    """Start a training process, SIGKILL it at the seeded point; what was reached."""
    rng = random.Random(seed)
    mark = runs.parent / f"{name}.mark"
    # save #1 is the step-0 checkpoint written at start (see test_kill_in_the_first_checkpoint_write)
    n = {"step": 0, "save": rng.randint(2, EPOCHS + 1), "eval": rng.randint(1, 3 * EPOCHS)}[kind]
    cmd = [sys.executable, str(DRIVER), kind if kind != "step" else "none", str(n), str(mark), "--",
           *train_args(tiny_data, runs, name, epochs=EPOCHS)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = rng.randint(1, 6 * EPOCHS - 4)  # leaves a few updates, so the run is still going
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if kind == "step" and last_step(runs / name / "metrics.jsonl") >= target:
                time.sleep(rng.uniform(0.0, 0.01))  # land anywhere inside the next step(s)
                break
            if kind != "step" and mark.exists():
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"{kind} trial {seed}: the run ended before the kill " \
                                    f"({proc.stderr.read().decode()[-500:]})"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return {"at": target if kind == "step" else n, "step_seen": last_step(runs / name / "metrics.jsonl")}


@pytest.mark.parametrize("seed,kind", TRIALS, ids=[f"{k}-{s}" for s, k in TRIALS])
def test_sigkill_then_resume_is_bitwise_identical(seed, kind, tiny_data, reference, cache_env, tmp_path,
                                                   monkeypatch, ledger):
    ref_root, ref_model = reference
    env = dict(cache_env, ASL_CACHE=str(ref_root / "cache"))
    monkeypatch.setenv("ASL_CACHE", str(ref_root / "cache"))
    runs = tmp_path / "runs"
    with ledger.case("kill", f"{kind} seed {seed}", kind=kind, seed=seed) as entry:
        entry.update(kill_run(tiny_data, runs, "killed", kind, seed, env))
        run = runs / "killed"
        ckpt = load_checkpoint(run / "checkpoints" / "last.pt")  # loadable, whatever the moment
        assert all_finite(ckpt["model"])
        entry["checkpoint_step"] = ckpt["progress"]["step"]
        out = runner.invoke(app, ["train", "--resume", str(run), "--plain"])
        assert out.exit_code == 0, out.stderr
        final = load_checkpoint(run / "checkpoints" / "last.pt")
        assert final["progress"]["step"] == 6 * EPOCHS
        diff = [k for k in ref_model if not torch.equal(ref_model[k], final["model"][k])]
        assert not diff, f"resumed weights differ from the uninterrupted run in {diff[:3]}"
        entry["lost_updates"] = entry["step_seen"] - entry["checkpoint_step"]
        assert not list((run / "checkpoints").glob(".*tmp*")), "a resumed run leaves no temporary files"


def run_in_pty(cmd: list[str], env: dict, stop_after_step: int, metrics: Path, signum: int) -> tuple[int, str]:
    """Run `cmd` on a pseudo-terminal; send `signum` once `metrics` shows the step; (rc, output)."""
    sent: list[bool] = []

    def signal_at_step(out: bytes, proc: subprocess.Popen) -> None:
        if not sent and last_step(metrics) >= stop_after_step:
            proc.send_signal(signum)
            sent.append(True)

    rc, out = run_on_terminal(cmd, env=env, rows=40, columns=100, timeout=90, poll=0.01, watch=signal_at_step)
    return rc, out.decode("utf-8", "replace")


@pytest.mark.parametrize("signum,code,terminal", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)],
                         ids=["SIGINT-terminal", "SIGTERM-pipe"])
def test_signal_saves_the_last_update_and_resume_is_bitwise_identical(signum, code, terminal, tiny_data, reference,
                                                                      cache_env, tmp_path, monkeypatch, ledger):
    ref_root, ref_model = reference
    env = dict(cache_env, ASL_CACHE=str(ref_root / "cache"), TERM="xterm-256color", COLUMNS="100", LINES="40")
    monkeypatch.setenv("ASL_CACHE", str(ref_root / "cache"))
    runs, name = tmp_path / "runs", "signalled"
    at = random.Random(signum).randint(2, 6 * EPOCHS - 5)
    cmd = asl_command(*train_args(tiny_data, runs, name, epochs=EPOCHS, plain=not terminal))
    with ledger.case("signal", signal.Signals(signum).name, at=at) as entry:
        if terminal:
            rc, out = run_in_pty(cmd, env, at, runs / name / "metrics.jsonl", signum)
            assert "\x1b[?25l" in out, "the live view hides the cursor"
            assert out.rindex("\x1b[?25h") > out.rindex("\x1b[?25l"), "the cursor was not shown again"
            err = out
        else:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            while last_step(runs / name / "metrics.jsonl") < at and proc.poll() is None:
                time.sleep(0.005)
            proc.send_signal(signum)
            err = proc.communicate(timeout=60)[1]
            rc = proc.returncode
        assert rc == code, err[-1000:]
        assert "Traceback" not in err and f"resume with: asl train --resume {runs / name}" in err
        saved = load_checkpoint(runs / name / "checkpoints" / "last.pt")
        entry["step_seen"] = last_step(runs / name / "metrics.jsonl")
        entry["checkpoint_step"] = saved["progress"]["step"]
        assert saved["progress"]["step"] >= entry["step_seen"] >= at  # nothing done is lost
        entry["lost_updates"] = 0
        out = runner.invoke(app, ["train", "--resume", str(runs / name), "--plain"])
        assert out.exit_code == 0, out.stderr
        final = load_checkpoint(runs / name / "checkpoints" / "last.pt")["model"]
        assert all(torch.equal(ref_model[k], final[k]) for k in ref_model)


def test_kill_in_the_first_checkpoint_write(tiny_data, reference, cache_env, tmp_path, monkeypatch, ledger):
    """The one window without a checkpoint: the step-0 write itself. Nothing was trained yet; the
    folder holds no `last.pt`, only the killed writer's temp file, and --resume says so in one line."""
    from asl_cli.errors import EXIT_CHECKPOINT
    from faultkit import one_error_line

    ref_root, _ = reference
    env = dict(cache_env, ASL_CACHE=str(ref_root / "cache"))
    monkeypatch.setenv("ASL_CACHE", str(ref_root / "cache"))
    runs = tmp_path / "runs"
    mark = tmp_path / "first.mark"
    with ledger.case("fault", "SIGKILL in the step-0 checkpoint write", lost="nothing (no update yet)"):
        proc = subprocess.Popen([sys.executable, str(DRIVER), "save", "1", str(mark), "--",
                                 *train_args(tiny_data, runs, "first", epochs=EPOCHS)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait(timeout=30)
        assert not (runs / "first/checkpoints/last.pt").exists()
        assert last_step(runs / "first" / "metrics.jsonl") == 0  # no update was made
        out = runner.invoke(app, ["train", "--resume", str(runs / "first"), "--plain"])
        assert out.exit_code == EXIT_CHECKPOINT
        assert "no checkpoints/last.pt" in one_error_line(out.stderr)
