"""`asl train` end to end: in-process (CliRunner) and as a real process (pipe, pseudo-terminal,
signals), on a tiny synthetic set with a 32-wide model so every run takes a few seconds."""

from __future__ import annotations

import functools
import io
import json
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.cli.cmd_train import summary_lines
from asl_cli.cli.signals import StopRequests, stop_on_signals
from asl_cli.ui.dashboard import JSON, LIVE, PLAIN, TrainDashboard, choose_mode
from kit import FAKE_GPUS, ROOT, lock_held, run_asl, start_asl, strip_ansi, tiny_cli_args

runner = CliRunner()
# `tiny` (the 4-sign set, this module's runs folder) and `env` (its cache, no fake GPU): conftest.py
tiny_args = functools.partial(tiny_cli_args, "train")  # tiny_args(tiny, name, *extra)


# --- in-process ---------------------------------------------------------------------------------

def test_json_streams_events_and_a_summary(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "json-run", "--epochs", "2", "--json"))
    assert out.exit_code == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "step" in kinds and "eval" in kinds and kinds[-1] == "summary"
    assert events[0]["config"]["model"]["dim"] == 32
    step = next(e for e in events if e["event"] == "step")
    for key in ("loss", "lr", "samples_per_s", "epoch", "total_steps", "precision", "device"):
        assert key in step
    summary = events[-1]
    assert summary["epochs_done"] == 2 and Path(summary["best_checkpoint"]).is_file()
    assert (tiny.runs / "json-run" / "metrics.jsonl").is_file()


def test_a_broken_file_names_skip_bad_and_skip_bad_names_what_it_skipped(tiny, env, tmp_path):
    import shutil

    from asl_cli.data.reader import read_index

    data = tmp_path / "data"
    shutil.copytree(tiny.data, data)
    bad = data / read_index(data).paths[3]
    bad.write_bytes(b"not parquet")
    args = tiny_args(tiny, "skip-run", "--max-steps", "2", "--epochs", "1")
    args[args.index("--data") + 1] = str(data)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 3 and failed.stdout == ""
    (error,) = failed.stderr.strip().splitlines()
    assert error.startswith(f"error: {bad}: not a readable parquet file (")
    assert error.endswith(" (rerun with --skip-bad to skip unreadable files)")
    ok = runner.invoke(app, args + ["--skip-bad"])
    assert ok.exit_code == 0, ok.output
    run = tiny.runs / "skip-run"
    line = f"1 unreadable file skipped (--skip-bad): {bad}; the list: {run / 'skipped.txt'}"
    assert line in ok.stdout.splitlines()  # the summary
    assert f"warning: {line}" in ok.stderr.splitlines()  # at the start
    assert (run / "skipped.txt").read_text() == f"{bad}\n"
    status = json.loads((run / "status.json").read_text())
    assert status["skipped"] == 1 and status["skipped_files"] == [str(bad)] and line in status["warnings"]
    js = runner.invoke(app, args + ["--skip-bad", "--json", "--name", "skip-json"])
    summary = json.loads(js.stdout.splitlines()[-1])
    assert summary["skipped"] == 1 and summary["skipped_files"] == [str(bad)]
    assert summary["skipped_list"] == str(tiny.runs / "skip-json" / "skipped.txt")


def test_plain_summary_names_the_best_checkpoint_and_the_metrics(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "plain-run", "--max-steps", "2", "--epochs", "3"))
    assert out.exit_code == 0, out.stderr
    run = tiny.runs / "plain-run"
    assert out.stdout.startswith("start: run plain-run, device cpu, precision fp32")
    assert f"best checkpoint: {run / 'checkpoints' / 'best.pt'}" in out.stdout
    assert f"metrics: {run / 'metrics.jsonl'}" in out.stdout
    assert "eta " in out.stdout and "loss " in out.stdout  # a progress line (each eval prints one)


def test_no_data_trains_on_the_synthetic_default(tiny, env):
    out = runner.invoke(app, ["train", "--set", "synth.num_signs=3", "--set", "synth.num_participants=5",
                              "--set", "synth.repetitions=2", "--set", "model.dim=32", "--set", "data.n_folds=3",
                              "--max-steps", "1", "--runs-dir", str(tiny.runs), "--name", "synthetic", "--json"])
    assert out.exit_code == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    # the generation is announced before anything else, so the stream never sits silent
    assert events[0]["event"] == "note" and events[0]["message"].startswith("first run: generating")
    # then where it went and what it takes on disk
    from asl_cli.data.synth import default_dataset_dir
    from asl_cli.config import load_config

    written = events[1]["message"]
    target = default_dataset_dir(load_config("cpu", ["synth.num_signs=3", "synth.num_participants=5",
                                                     "synth.repetitions=2"]).synth)
    assert events[1]["event"] == "note" and written.startswith(f"synthetic default set written: {target} (30 sequences, ")
    assert re.search(r"\d MB; prepared cache [\d.]+ kB in \S+; [\d.]+ MB in all\)$", written), written
    start = events[2]
    assert start["event"] == "start" and start["config"]["data"]["data_dir"] is None
    assert events[-1]["steps"] == 1


@pytest.mark.parametrize("args, code, message", [
    (["--data", "/nonexistent/asl-signs"], 3, "/nonexistent/asl-signs"),
    (["--set", "train.batch_size=0"], 2, "train.batch_size: 0 is below the minimum 1"),
    (["--device", "cuda:7"], None, "cuda:7"),
])
def test_errors_are_one_line_with_the_documented_exit_code(tiny, env, args, code, message):
    import torch

    if code is None:  # no such GPU: NoGPUError (5) without CUDA, ConfigError/NoGPU with fewer GPUs
        code = 5
        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has a cuda:7")
    base = ["train", "--set", "model.dim=32", "--runs-dir", str(tiny.runs), "--max-steps", "1"]
    out = runner.invoke(app, base + args)
    assert out.exit_code == code, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_resume_needs_a_run_folder(tiny, env):
    out = runner.invoke(app, ["train", "--resume", str(tiny.runs)])
    assert out.exit_code == 2 and "not a run folder" in out.stderr
    out = runner.invoke(app, ["train", "--resume", str(tiny.runs), "--preset", "cpu"])
    assert out.exit_code == 2 and "leave out --preset" in out.stderr


# --- the dashboard in isolation --------------------------------------------------------------------

def fake_events(n: int = 6):
    cfg = {"train": {"batch_size": 12, "gradient_accumulation_steps": 4}, "aug": {"use_augmentations": True}}
    yield {"event": "start", "run": "r", "device": "cpu", "precision": "fp32", "config": cfg,
           "aug": cfg["aug"], "step": 0, "total_steps": n}
    for i in range(1, n + 1):
        yield {"event": "step", "run": "r", "step": i, "total_steps": n, "loss": 3.0 / i, "samples_per_s": 100.0 + i}
        if i % 3 == 0:
            yield {"event": "eval", "val_top1": 0.1 * i, "val_top5": 0.5, "best_top1": 0.1 * i}
    yield {"event": "end", "state": "finished"}


def test_plain_mode_prints_every_interval_and_each_eval():
    now = [0.0]
    out = io.StringIO()
    dash = TrainDashboard(PLAIN, log_interval=10.0, out=out, clock=lambda: now[0])
    with dash:
        for ev in fake_events():
            now[0] += 6.0  # an event every 6 s: a line every second one, plus one per eval
            dash(ev)
    lines = out.getvalue().splitlines()
    assert lines[0] == "start: run r, device cpu, precision fp32, batch 12x4, augmentations on"
    steps = [int(re.search(r"step (\d+)/6", line).group(1)) for line in lines[1:]]
    assert steps == [2, 3, 5, 6]  # interval lines at steps 2 and 5, eval lines at 3 and 6; end repeats none


def test_plain_mode_says_when_a_graph_is_compiled():
    out = io.StringIO()
    with TrainDashboard(PLAIN, log_interval=1000.0, out=out, clock=lambda: 0.0) as dash:
        dash({"event": "compile", "compile": "compiling", "compiling": "training graph for length 48"})
        dash({"event": "compile", "compile": "on", "compiled_s": 31.25, "compile_graphs": 1})
    assert out.getvalue().splitlines() == [
        "torch.compile: compiling the training graph for length 48 (left out of samples/s and eta)",
        "torch.compile: 1 graph(s) so far, this one 31.2 s; on"]


def test_json_mode_writes_one_object_per_event():
    out = io.StringIO()
    with TrainDashboard(JSON, out=out) as dash:
        for ev in fake_events():
            dash(ev)
        dash.set_note("a note")
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["event"] for o in objs][:2] == ["start", "step"] and objs[-1] == {"event": "note", "message": "a note"}


def test_live_frame_shows_training_and_gpu_or_cpu_notice():
    from rich.console import Console

    from asl_cli.monitor import open_sampler

    console = Console(width=100, record=True, file=io.StringIO())
    dash = TrainDashboard(LIVE, console=console)
    for ev in fake_events(3):
        dash(ev)  # not started: only the state is updated
    console.print(dash.renderable())
    text = console.export_text()
    assert "samples/s" in text and "no NVIDIA GPU (CPU run)" in text
    sampler = open_sampler(str(FAKE_GPUS), interval=0.05)
    try:
        sampler.wait_for_sample(0, timeout=5)
        dash.sampler = sampler
        console.print(dash.renderable())
        assert "NVIDIA GeForce RTX 4070" in console.export_text()
    finally:
        sampler.stop()


def test_mode_choice():
    class Stream(io.StringIO):
        def __init__(self, tty: bool):
            super().__init__()
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    assert choose_mode(as_json=True, stream=Stream(True)) == JSON
    assert choose_mode(as_json=False, stream=Stream(False)) == PLAIN
    assert choose_mode(as_json=False, plain=True, stream=Stream(True)) == PLAIN


def test_a_signal_before_any_trainer_exists_stops_at_once():
    from asl_cli.cli.signals import StopBeforeStart

    req = StopRequests()
    with pytest.raises(StopBeforeStart) as info:
        req.handle(signal.SIGTERM, None)
    assert info.value.exit_code == 143 and isinstance(info.value, KeyboardInterrupt)


def test_first_signal_asks_the_trainer_to_stop_and_a_second_ctrl_c_quits():
    class Trainer:
        stopped = None

        def request_stop(self, signum):
            self.stopped = signum

    def previous_int(signum, frame):  # handlers installed before: put back as they were, both signals
        pass

    def previous_term(signum, frame):
        pass

    old_int = signal.signal(signal.SIGINT, previous_int)
    old_term = signal.signal(signal.SIGTERM, previous_term)
    try:
        req = StopRequests()
        trainer = Trainer()
        req.attach(trainer)
        with stop_on_signals(req):
            assert signal.getsignal(signal.SIGINT) == req.handle and signal.getsignal(signal.SIGTERM) == req.handle
            req.handle(signal.SIGINT, None)
            assert trainer.stopped == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):
                req.handle(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGINT) is previous_int
        assert signal.getsignal(signal.SIGTERM) is previous_term
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    late = Trainer()
    req.attach(late)  # the next trainer after a signal (ablate's next variant) stops at once
    assert late.stopped == signal.SIGINT


def test_the_signal_handler_takes_no_lock_and_writes_nothing():
    """A signal can land while the main thread holds the dashboard's lock (building a frame) or is
    half-way through a write. The handler used to refresh the live view itself and so waited for that
    lock forever: Ctrl-C hung the run (seen once in CI). Now it only posts the note: the live view's
    refresh thread shows it, plain and JSON output write it at the next event or on close."""
    from rich.console import Console

    class Trainer:
        stopped = None

        def request_stop(self, signum):
            self.stopped = signum

    console = Console(width=100, file=io.StringIO(), force_terminal=True)
    with TrainDashboard(LIVE, console=console) as dash:
        req = StopRequests(dash)
        req.attach(Trainer())
        with dash._lock:  # the main thread, interrupted inside renderable()
            handler = threading.Thread(target=req.handle, args=(signal.SIGINT, None), daemon=True)
            handler.start()
            handler.join(timeout=5)
            assert not handler.is_alive(), "the signal handler waited for the dashboard's lock"
        assert req.trainer.stopped == signal.SIGINT
        frame = Console(width=100, record=True, file=io.StringIO())
        frame.print(dash.renderable())
        assert "Ctrl-C: stopping at the next safe point" in frame.export_text()

    for mode in (PLAIN, JSON):
        out = io.StringIO()
        with TrainDashboard(mode, out=out, clock=lambda: 0.0) as dash:
            req = StopRequests(dash)
            req.attach(Trainer())
            req.handle(signal.SIGTERM, None)
            assert out.getvalue() == "", f"{mode}: the handler wrote"
            dash({"event": "step", "step": 1})
            first = out.getvalue().splitlines()[0]
            assert "SIGTERM: stopping at the next safe point" in first, mode
            req.handle(signal.SIGTERM, None)  # a second SIGTERM, and no event after it: written on close
        assert out.getvalue().count("SIGTERM: stopping") == 2, mode


# --- real processes --------------------------------------------------------------------------------

def test_live_dashboard_in_a_pseudo_terminal(tiny, env):
    res = run_asl(*tiny_args(tiny, "pty-run", "--epochs", "6"), env={**env, "ASL_FAKE_GPU": str(FAKE_GPUS)},
                  cwd=ROOT, pty=True)
    out, text = res.stdout, res.text
    assert res.returncode == 0, out[-2000:]
    assert "\x1b[" in out  # drawn as a terminal UI (cursor movement, colour)
    assert text.count("samples/s") >= 2  # more than one frame
    for needle in ("loss", "NVIDIA GeForce RTX 4070", "augmentations", "configuration", "val top1"):
        assert needle in text, needle
    assert "done: 6 epochs" in text and "best checkpoint:" in text
    assert (tiny.runs / "pty-run" / "checkpoints" / "best.pt").is_file()
    run = tiny.runs / "pty-run"
    assert "next:" in text and f"asl evaluate {run}" in text and f"asl export {run}" in text  # in a terminal too
    assert f"asl gpu-watch --run {run}" not in text  # a CPU run (the fake GPUs only draw the panel)


def test_no_color_in_a_terminal_has_no_colour_codes(tiny, env):
    res = run_asl(*tiny_args(tiny, "nocolor-run", "--max-steps", "2"), env={**env, "NO_COLOR": "1"}, cwd=ROOT,
                  pty=True)
    out = res.stdout
    assert res.returncode == 0, out[-2000:]
    assert "samples/s" in strip_ansi(out)
    assert not re.search(r"\x1b\[[0-9;]*(3[0-7]|38;[0-9;]+|9[0-7])m", out), "colour codes despite NO_COLOR"


def test_without_a_terminal_progress_lines_arrive_during_the_run(tiny, env):
    proc = start_asl(*tiny_args(tiny, "pipe-run", "--epochs", "1000", "--time-budget", "4", "--log-interval", "0.3"),
                     env=env)
    first_progress_while_running = None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("eta ") and first_progress_while_running is None:
            first_progress_while_running = proc.poll() is None
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert first_progress_while_running is True
    assert sum(line.startswith("eta ") for line in lines) >= 3
    assert "\x1b[" not in "".join(lines)  # plain text in a pipe
    assert any(line.startswith("best checkpoint: ") for line in lines)


def _start_and_wait_for_progress(args: list[str], env: dict) -> subprocess.Popen:
    proc = start_asl(*args, env=env)
    for line in proc.stdout:  # training is under way once a step line is out
        if line.startswith("eta ") and "step 0/" not in line:
            return proc
    raise AssertionError(f"no progress line; stderr: {proc.stderr.read()}")


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_signal_saves_a_checkpoint_and_resume_continues(tiny, env, signum, code, word):
    name = f"sig-{signum}"
    run = tiny.runs / name
    proc = _start_and_wait_for_progress(tiny_args(tiny, name, "--epochs", "400", "--log-interval", "0.2"), env)
    proc.send_signal(signum)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    last = run / "checkpoints" / "last.pt"
    assert last.is_file()
    assert err.strip().splitlines()[-1] == (f"stopped by {word}: checkpoint saved to {last}; "
                                            f"resume with: asl train --resume {run}")
    assert "Traceback" not in err
    stopped_at = json.loads((run / "status.json").read_text())["step"]
    assert stopped_at >= 1
    if signum == signal.SIGTERM:
        return
    resumed = run_asl("train", "--resume", run, "--max-steps", stopped_at + 3, "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    first_step = next(e for e in events if e["event"] == "step")
    assert first_step["step"] == stopped_at + 1  # continues, does not start over
    assert events[-1]["event"] == "summary" and events[-1]["steps"] == stopped_at + 3


def test_resume_says_where_it_restarts_and_the_summary_separates_this_session(tiny, env):
    first = runner.invoke(app, tiny_args(tiny, "resume-line", "--max-steps", "2", "--epochs", "3",
                                         "--batch-size", "4"))
    assert first.exit_code == 0, first.output
    assert "resuming" not in first.stdout and "in all" not in first.stdout
    run = tiny.runs / "resume-line"
    batches = 48 // 4  # 72 sequences, 3 folds: 48 train, batches of 4 (accumulation 1: an update per batch)
    out = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "5"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == f"resuming resume-line from epoch 1 (after batch 2 of {batches}), step 2 (of 5)"
    done = next(line for line in lines if line.startswith("done: "))
    assert re.match(r"done: [\d.]+ of 3 epochs, 5 steps in all; this session \(resumed at step 2\): 3 steps in "
                    r"[\d.]+ s \(\d+ samples/s, peak memory \d+ MiB\) \(stopped at --max-steps\)$", done), done
    js = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "6", "--json"])
    events = [json.loads(line) for line in js.stdout.splitlines()]
    assert events[0] == {"event": "note", "message": f"resuming resume-line from epoch 1 (after batch 5 of {batches}), "
                                                     f"step 5 (of 6)"}
    assert events[-1]["resumed_from_step"] == 5 and events[-1]["session_steps"] == 1 and events[-1]["steps"] == 6


def test_a_run_folder_of_an_older_version_resumes(tiny, env):
    """config.json written before issue 17 holds `data.compiled` (the removed numba data path): the
    run still resumes, and the key is dropped from the config.json it writes back."""
    first = runner.invoke(app, tiny_args(tiny, "old-config", "--max-steps", "2", "--epochs", "3",
                                         "--batch-size", "4"))
    assert first.exit_code == 0, first.output
    run = tiny.runs / "old-config"
    config = json.loads((run / "config.json").read_text())
    config["data"]["compiled"] = True
    (run / "config.json").write_text(json.dumps(config))
    out = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3"])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0].startswith("resuming old-config from epoch 1")
    assert "compiled" not in json.loads((run / "config.json").read_text())["data"]
    assert json.loads((run / "status.json").read_text())["data_path"] == "numpy"


def test_resume_line_and_session_summary_lines():
    from asl_cli.cli.cmd_train import resume_line

    assert resume_line("r", step=120, epoch=2, total_steps=600) == "resuming r from epoch 3, step 120 (of 600)"
    assert (resume_line("r", step=7, epoch=0, batch_in_epoch=7, batches_per_epoch=57, budget_used_s=41.6,
                        time_budget_s=120.0)
            == "resuming r from epoch 1 (after batch 7 of 57), step 7 (time budget: 42 of 120 s used)")
    base = {"run_dir": "runs/r", "steps": 30, "wall_s": 2.0, "samples_per_s": 160.0, "peak_mem_mb": 300.0,
            "best_top1": 0.5, "best_top5": 0.9, "final_train_loss": 1.5, "epochs": 3, "epochs_done": 3,
            "epochs_progress": 3, "state": "finished", "session_steps": 10, "resumed_from_step": 20}
    assert summary_lines(base)[0] == ("done: 3 epochs, 30 steps in all; this session (resumed at step 20): 10 steps "
                                      "in 2.0 s (160 samples/s, peak memory 300 MiB)")


def test_train_ends_with_the_next_commands_for_this_run(tiny, env, tmp_path):
    import shlex

    out = runner.invoke(app, tiny_args(tiny, "next-run", "--max-steps", "2", "--epochs", "1"))
    assert out.exit_code == 0, out.output
    run = tiny.runs / "next-run"
    lines = out.stdout.splitlines()
    block = lines[lines.index("next:") + 1:]
    commands = [line.split("   # ")[0].strip() for line in block]
    assert [c.split()[1] for c in commands] == ["evaluate", "predict", "show", "export"]  # no GPU: no gpu-watch
    assert commands[0] == f"asl evaluate {run}" and commands[3] == f"asl export {run}"
    predict = shlex.split(commands[1])
    assert predict[2] == str(run) and Path(predict[3]).is_file() and str(tiny.data) in predict[3]
    assert shlex.split(commands[2])[2] == predict[3]
    assert all("   # " in line for line in block)  # what each gives
    # the commands work as printed
    res = runner.invoke(app, predict[1:] + ["--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["predictions"]) == 1
    # --json: the same steps as fields of the summary
    js = runner.invoke(app, tiny_args(tiny, "next-json", "--max-steps", "1", "--epochs", "1", "--json"))
    summary = json.loads(js.stdout.splitlines()[-1])
    assert [s["what"] for s in summary["next"]] == ["evaluate", "predict", "show", "export"]
    assert summary["next"][0] == {"what": "evaluate", "command": f"asl evaluate {tiny.runs / 'next-json'}",
                                  "why": "accuracy per sign, confused pairs, confusion matrix", "needs": None}


def test_next_steps_name_a_missing_extra_and_gpu_watch_on_a_gpu():
    from asl_cli.cli import nextsteps

    steps = nextsteps.after_train("runs/r", example="data/a b.parquet", device="cuda:0",
                                  installed=lambda extra: extra != "onnx")
    by = {s.what: s for s in steps}
    assert by["watch"].command == "asl gpu-watch --run runs/r"
    assert by["predict"].command == "asl predict runs/r 'data/a b.parquet'"  # quoted for the shell
    assert by["export"].needs == "onnx" and by["show"].needs is None
    text = "\n".join(nextsteps.lines(steps))
    assert 'asl export runs/r   ' in text and '(needs the onnx extra: pip install "asl-cli[onnx]")' in text
    assert nextsteps.as_json(steps)[3]["install"] == 'pip install "asl-cli[onnx]"'
    assert "watch" not in {s.what for s in nextsteps.after_train("runs/r", device="cpu")}


def test_resuming_a_finished_run_says_there_is_nothing_to_train(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "finished", "--epochs", "1"))
    assert out.exit_code == 0, out.stderr
    run = tiny.runs / "finished"
    status = (run / "status.json").read_text()
    again = runner.invoke(app, ["train", "--resume", str(run)])
    assert again.exit_code == 0, again.stderr
    first = again.stdout.splitlines()[0]
    assert first.startswith("nothing to train: run finished already finished its 1 epochs (")
    assert first.endswith("to train further, resume with --epochs N (N > 1)") and "done:" not in again.stdout
    assert (run / "status.json").read_text() == status


def test_summary_lines_say_how_far_a_stopped_run_got():
    base = {"run_dir": "runs/r", "steps": 10, "wall_s": 2.0, "samples_per_s": 160.0, "peak_mem_mb": 300.0,
            "best_top1": 0.5, "best_top5": 0.9, "final_train_loss": 1.5, "epochs": 20, "state": "finished"}
    stopped = summary_lines({**base, "epochs_done": 0, "epochs_progress": 10 / 57, "stopped_by": "max_steps"})
    assert stopped[0] == ("done: 0.18 of 20 epochs, 10 steps in 2.0 s (160 samples/s, peak memory 300 MiB) "
                          "(stopped at --max-steps)")
    whole = summary_lines({**base, "epochs_done": 20, "epochs_progress": 20.0, "stopped_by": None})
    assert whole[0].startswith("done: 20 epochs, 10 steps in 2.0 s")
    capped = summary_lines({**base, "state": "already_finished", "reason": "already reached max_steps 10"})
    assert capped[0] == ("nothing to train: run r already reached max_steps 10; to train further, resume "
                         "with a higher --max-steps (0: no limit)")


def test_json_stream_of_a_stopped_run_ends_with_its_summary(tiny, env):
    run = tiny.runs / "json-stop"
    proc = start_asl(*tiny_args(tiny, "json-stop", "--epochs", "400", "--json"), env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if json.loads(line)["event"] == "step":
            break
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    events = [json.loads(line) for line in lines + rest.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary" and summary["state"] == "interrupted" and summary["exit_code"] == 143
    assert summary["last_checkpoint"] == str(run / "checkpoints" / "last.pt") and summary["steps"] >= 1
    assert summary["resume"] == f"asl train --resume {run}"


def test_warnings_become_one_line_each_once():
    import logging
    import warnings

    from asl_cli.cli.common import tidy_warnings

    out = io.StringIO()
    with tidy_warnings(out) as seen:
        warnings.warn("fp16 needs CUDA: using fp32\nsecond line", RuntimeWarning)
        logging.getLogger("asl.engine").warning("fp16 needs CUDA: using fp32")  # the engine logs it too
        warnings.warn("another", UserWarning)
    assert out.getvalue() == "warning: fp16 needs CUDA: using fp32\nwarning: another\n"
    assert seen == ["fp16 needs CUDA: using fp32", "another"]


def test_the_run_gpu_is_found_by_uuid_not_by_index():
    from asl_cli.monitor.base import GPUSnapshot

    class Sampler:
        def latest(self):
            return [GPUSnapshot(index=0, uuid="GPU-aaaa", name="first"), GPUSnapshot(index=1, uuid="GPU-bbbb", name="second")]

    dash = TrainDashboard(PLAIN, sampler=Sampler(), out=io.StringIO())
    dash.status = {"device": "cuda:0"}
    assert [g.name for g in dash._run_gpus()] == ["first"]  # no UUID known: the index
    # CUDA's device 0 is NVML's GPU 1 (e.g. CUDA_VISIBLE_DEVICES=1); torch's UUID has no "GPU-" prefix
    dash.status = {"device": "cuda:0", "gpu_uuid": "BBBB"}
    assert [g.name for g in dash._run_gpus()] == ["second"]
    dash.status = {"device": "cpu"}
    assert len(dash._run_gpus()) == 2


def test_plain_line_of_a_cpu_run_shows_no_gpu_values():
    # a CPU run on a machine with a GPU: the line's `gpu mem` / `util` must not be another GPU's values
    from asl_cli.monitor.base import GPUSnapshot
    from asl_cli.units import MIB

    class Sampler:
        def latest(self):
            return [GPUSnapshot(index=0, uuid="GPU-aaaa", name="busy", memory_used=1000 * MIB,
                                memory_total=2000 * MIB, util_gpu=97)]

    out = io.StringIO()
    dash = TrainDashboard(PLAIN, sampler=Sampler(), out=out)
    dash({"event": "eval", "device": "cpu", "step": 5, "total_steps": 10})
    assert out.getvalue().rstrip().endswith("gpu mem —  util —")
    out.truncate(0)
    dash({"event": "eval", "device": "cuda:0", "step": 6, "total_steps": 10})
    assert out.getvalue().rstrip().endswith("gpu mem 1000/2000MiB  util 97%")


def test_interrupt_lines():
    from asl_cli.cli.cmd_train import interrupted_line
    from asl_cli.errors import TrainingInterrupted

    run = Path("runs/r1")
    assert interrupted_line(TrainingInterrupted("x", signum=2), run) == (
        "stopped by Ctrl-C: checkpoint saved to runs/r1/checkpoints/last.pt; resume with: asl train --resume runs/r1")
    assert interrupted_line(TrainingInterrupted("x", signum=15), run).startswith("stopped by SIGTERM: checkpoint")


@pytest.mark.parametrize("content", [b"[1, 2]", b"\xff\xfe{", b"null"])
def test_resume_with_a_broken_config_json_is_one_line(tiny, env, content):
    run = tiny.runs / "broken-config"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_bytes(content)
    out = runner.invoke(app, ["train", "--resume", str(run)])
    assert out.exit_code == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {run / 'config.json'}: "), out.stderr


def test_a_run_folder_in_use_by_another_trainer_is_refused(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "busy", "--max-steps", "1", "--plain"))
    assert out.exit_code == 0, out.stderr
    run = tiny.runs / "busy"
    before = (run / "checkpoints" / "last.pt").read_bytes()
    with lock_held(run):
        out = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "3", "--plain"])
    assert out.exit_code == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {run}: ") and "in use" in lines[0], out.stderr
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    out = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "2", "--plain"])  # free again
    assert out.exit_code == 0, out.stderr
