"""Faults during a run, injected in-process through the CLI (`asl train` / `asl prepare`):
full disk, unwritable run folder, out of memory, NaN/Inf in a batch or the weights, a data-loader
worker that dies, an interrupted prepare. Each: one clear line, the documented exit code, the
previous checkpoint intact and finite."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.engine.checkpoint import all_finite, load_checkpoint
from asl_cli.errors import EXIT_DATA, EXIT_IO, EXIT_NONFINITE, EXIT_OOM
from faultkit import DRIVER, one_error_line, train_args

runner = CliRunner()
PER_EPOCH = 6  # updates per epoch of the tiny set at batch 8


@pytest.fixture(autouse=True)
def no_hang():
    """A fault that hangs fails the test after 90 s instead of stalling the suite."""
    def hung(signum, frame):
        raise TimeoutError("hung for 90 s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(90)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def train(tiny_data, tmp_path, *extra, epochs=3):
    return runner.invoke(app, train_args(tiny_data, tmp_path / "runs", "r", *extra, epochs=epochs))


def last(tmp_path) -> dict:
    return load_checkpoint(tmp_path / "runs/r/checkpoints/last.pt")


def checkpoints_finite(tmp_path) -> bool:
    return all(all_finite(load_checkpoint(p)["model"]) for p in (tmp_path / "runs/r/checkpoints").glob("*.pt"))


def fail_saves_from(monkeypatch, step: int, exc: OSError, where: str = "save"):
    """Make every checkpoint write from `step` on fail with `exc` (after a partial write)."""
    import asl_cli.engine.checkpoint as ck

    real_save, real_replace = ck.torch.save, ck.os.replace

    def save(obj, f, *a, **k):
        if where == "save" and obj["progress"]["step"] >= step:
            f.write(b"\0" * 4096)
            raise exc
        return real_save(obj, f, *a, **k)

    def replace(src, dst):
        if where == "replace" and str(dst).endswith(".pt") and load_checkpoint(src)["progress"]["step"] >= step:
            raise exc
        return real_replace(src, dst)

    monkeypatch.setattr(ck.torch, "save", save)
    monkeypatch.setattr(ck.os, "replace", replace)


@pytest.mark.parametrize("name,exc,where", [
    ("disk full while writing a checkpoint", OSError(errno.ENOSPC, "No space left on device"), "save"),
    ("read-only run folder at the rename", OSError(errno.EROFS, "Read-only file system"), "replace"),
])
def test_checkpoint_write_failure_keeps_the_previous_one(name, exc, where, tiny_data, tmp_path, cache_env,
                                                         monkeypatch, ledger):
    with ledger.case("fault", name, lost="nothing saved after the previous checkpoint (epoch 1)"):
        fail_saves_from(monkeypatch, 2 * PER_EPOCH, exc, where)
        out = train(tiny_data, tmp_path)
        assert out.exit_code == EXIT_IO, out.stderr
        line = one_error_line(out.stderr)
        assert exc.strerror in line and ".pt" in line, line
        monkeypatch.undo()
        assert last(tmp_path)["progress"]["step"] == PER_EPOCH  # the epoch-1 checkpoint, intact
        assert not list((tmp_path / "runs/r/checkpoints").glob(".*tmp*")), "temporary file left behind"


def test_run_folder_that_cannot_be_created(tiny_data, tmp_path, cache_env, ledger):
    with ledger.case("fault", "run folder under a regular file (unwritable, even for root)"):
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        out = runner.invoke(app, train_args(tiny_data, blocker, "r", epochs=1))
        assert out.exit_code == EXIT_IO, out.stderr
        assert "cannot create the run folder" in one_error_line(out.stderr)


def test_out_of_memory_is_one_line_with_advice(tiny_data, tmp_path, cache_env, monkeypatch, ledger):
    from asl_cli.engine.step import TrainStep

    real = TrainStep.loss_sum
    calls = [0]

    def oom(self, *args):
        calls[0] += 1
        if calls[0] == PER_EPOCH + 3:  # inside epoch 2
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, *args)

    with ledger.case("fault", "out of GPU memory (simulated) mid-epoch", lost="the updates since the last checkpoint"):
        monkeypatch.setattr(TrainStep, "loss_sum", oom)
        out = train(tiny_data, tmp_path)
        assert out.exit_code == EXIT_OOM, out.stderr
        line = one_error_line(out.stderr)
        assert "out of GPU memory" in line and "--batch-size" in line and "preset" in line, line
        assert "intact" in line
        assert last(tmp_path)["progress"]["step"] == PER_EPOCH


def poison_batch(monkeypatch, at_call: int, value: float):
    from asl_cli.engine.step import TrainStep

    real = TrainStep.micro_step
    calls = [0]

    def micro(self, features, mask, labels, **kwargs):
        calls[0] += 1
        if calls[0] == at_call:
            features = features.clone()
            features[0, 0, :] = value
        return real(self, features, mask, labels, **kwargs)

    monkeypatch.setattr(TrainStep, "micro_step", micro)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["NaN", "Inf"])
def test_nonfinite_batch_is_skipped(value, tiny_data, tmp_path, cache_env, monkeypatch, ledger):
    with ledger.case("fault", f"{'NaN' if value != value else 'Inf'} in a batch, nonfinite=skip", lost="the poisoned update only"):
        poison_batch(monkeypatch, 4, value)
        out = train(tiny_data, tmp_path, "--set", "train.nonfinite=skip", "--set", "aug.use_augmentations=false")
        assert out.exit_code == 0, out.stderr
        status = json.loads((tmp_path / "runs/r/status.json").read_text())
        assert status["nonfinite_skipped"] == 1 and status["step"] == 3 * PER_EPOCH - 1
        assert "non-finite loss at step 4" in out.stderr  # the warning names the step
        assert checkpoints_finite(tmp_path)


def test_nonfinite_batch_stops_when_asked(tiny_data, tmp_path, cache_env, monkeypatch, ledger):
    with ledger.case("fault", "NaN in a batch, nonfinite=stop", lost="the updates since the last checkpoint"):
        poison_batch(monkeypatch, PER_EPOCH + 2, float("nan"))
        out = train(tiny_data, tmp_path, "--set", "train.nonfinite=stop")
        assert out.exit_code == EXIT_NONFINITE, out.stderr
        assert f"non-finite loss at step {PER_EPOCH + 2}" in one_error_line(out.stderr)
        assert last(tmp_path)["progress"]["step"] == PER_EPOCH and checkpoints_finite(tmp_path)


@pytest.mark.parametrize("mode", ["skip", "stop"])
def test_nonfinite_weights_never_reach_a_checkpoint(mode, tiny_data, tmp_path, cache_env, monkeypatch, ledger):
    from asl_cli.engine.step import TrainStep

    real = TrainStep.update
    calls = [0]

    def update(self):
        result = real(self)
        calls[0] += 1
        if calls[0] == PER_EPOCH + 1:
            with torch.no_grad():
                self.params[0].fill_(float("nan"))
        return result

    with ledger.case("fault", f"NaN in the weights, nonfinite={mode}", lost="the updates since the last checkpoint"):
        monkeypatch.setattr(TrainStep, "update", update)
        out = train(tiny_data, tmp_path, "--set", f"train.nonfinite={mode}")
        assert out.exit_code == EXIT_NONFINITE, out.stderr
        line = one_error_line(out.stderr)
        assert "step" in line and "non-finite" in line, line
        assert last(tmp_path)["progress"]["step"] == PER_EPOCH and checkpoints_finite(tmp_path)


def test_dead_data_loader_worker_names_the_sample(tiny_data, tmp_path, cache_env, monkeypatch, ledger):
    from asl_cli.data.dataset import SignDataset

    real = SignDataset.__getitem__  # what the loader runs for every sample
    victim = {}

    def sample_of(self, item):
        sample = real(self, item)
        if self.augment is not None and sample["index"] == victim.setdefault("index", sample["index"]) \
                and os.environ.get("ASL_TEST_IN_WORKER") != "main":
            os._exit(3)  # a hard crash: no exception, no traceback from the worker
        return sample

    with ledger.case("fault", "data-loader worker killed by a sample (os._exit)"):
        monkeypatch.setattr(SignDataset, "__getitem__", sample_of)
        # a run that hangs on the dead worker fails through the autouse `no_hang` alarm (90 s)
        out = train(tiny_data, tmp_path, "--workers", "1", "--set", "loader.persistent_workers=false")
        assert out.exit_code == EXIT_DATA, out.stderr
        line = one_error_line(out.stderr)
        assert "data-loader worker died" in line and "--workers 0" in line, line
        assert "train_landmark_files/" in line  # the batch's sequences are named


def test_killed_prepare_is_never_used_and_is_rebuilt(tiny_data, tmp_path, cache_env, ledger):
    from asl_cli.data.cache import cache_path, open_cache
    from asl_cli.errors import DataError

    cache_dir = tmp_path / "prep-cache"
    mark = tmp_path / "mark"
    with ledger.case("fault", "SIGKILL during asl prepare", lost="the partial cache (rebuilt next time)"):
        proc = subprocess.Popen([sys.executable, str(DRIVER), "prepare", "30", str(mark), "--", "prepare",
                                 str(tiny_data), "--cache-dir", str(cache_dir), "--workers", "1"],
                                env=cache_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "prepare ended before the kill"
        proc.kill()
        proc.wait(timeout=30)
        target = cache_path(tiny_data, cache_dir)
        assert list(cache_dir.glob(".*tmp-*")), "the partial build is in a temporary folder"
        with pytest.raises(DataError):
            open_cache(target)  # never used as if complete
        # `asl train` on the same data must rebuild it, not use the partial one.
        out = runner.invoke(app, ["prepare", str(tiny_data), "--cache-dir", str(cache_dir), "--workers", "1"])
        assert out.exit_code == 0, out.stderr
        assert "built in" in out.stdout
        assert len(open_cache(target)) == 72
        assert not list(cache_dir.glob(".*tmp-*")), "leftovers of the killed build were removed"
        # A cache whose `complete` marker is gone (e.g. a crash during a manual copy) is rebuilt too.
        (target / "complete").unlink()
        out = runner.invoke(app, ["prepare", str(tiny_data), "--cache-dir", str(cache_dir), "--workers", "1"])
        assert out.exit_code == 0 and "built in" in out.stdout, out.stdout
