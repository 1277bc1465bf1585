"""`asl test-fix`: every check passes (or SKIPs with a reason) on the real code, and reports FAIL
when its property is broken on purpose (the seed's original bugs, re-introduced by monkeypatch)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from kit import run_asl
from asl_cli.cli.app import app
from asl_cli.config import load_config
from asl_cli.tools.selfcheck import CHECK_NAMES, FAIL, PASS, SKIP, run_checks

runner = CliRunner()
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One tiny synthetic set and cache for every run in this file."""
    return tmp_path_factory.mktemp("test-fix")


def check(workdir, name: str, preset: str = "cpu"):
    (result,) = run_checks(load_config(preset), only=[name], workdir=workdir, compile_timeout=3)
    return result


def test_all_checks_pass_or_skip_with_a_reason_on_the_real_code(workdir):
    results = run_checks(load_config("rtx4070"), workdir=workdir, compile_timeout=3)
    assert [r.name for r in results] == CHECK_NAMES
    for r in results:
        assert r.status in (PASS, SKIP), (r.name, r.reason)
        assert r.reason
    by = {r.name: r for r in results}
    if not CUDA:
        assert by["amp-fp16"].status == SKIP and "CUDA" in by["amp-fp16"].reason
        assert by["cudnn-flags"].status == SKIP
        assert by["amp-bf16"].status == PASS and by["amp-bf16"].reason.startswith("CPU bf16")
        # rtx4070 asks for pinned memory; without CUDA the loader must not pin
        assert "pin_memory False" in by["loader-settings"].reason
    for name in ("augment-train-only", "features-key", "preprocess-once", "checkpoint-config", "clipping",
                 "accumulation", "loader-settings"):
        assert by[name].status == PASS, (name, by[name].reason)


# --- each property broken on purpose ---------------------------------------------------------------

def _patch_build_loaders(monkeypatch, change):
    import asl_cli.data.dataset as dataset

    original = dataset.build_loaders

    def broken(cfg, cache, *, augment=None, device_type="cpu", num_workers=None):
        # the trainer's planned worker count is dropped: the loaders follow cfg (as `change` leaves it)
        return change(original, cfg, cache, augment, device_type)

    monkeypatch.setattr(dataset, "build_loaders", broken)


def test_augmentation_applied_to_validation_fails(workdir, monkeypatch):
    def augment_val_too(original, cfg, cache, augment, device_type):
        train, val = original(cfg, cache, augment=augment, device_type=device_type)
        val.dataset.augment = augment
        return train, val

    _patch_build_loaders(monkeypatch, augment_val_too)
    r = check(workdir, "augment-train-only")
    assert r.status == FAIL and "validation batches are augmented" in r.reason


def test_augmentations_not_wired_into_the_loader_fails(workdir, monkeypatch):
    """The seed's bug 1: augmentations configured but never used."""
    _patch_build_loaders(monkeypatch, lambda original, cfg, cache, augment, dt:
                         original(cfg, cache, augment=None, device_type=dt))
    r = check(workdir, "augment-train-only")
    assert r.status == FAIL and "do not reach training batches" in r.reason


def test_reading_batch_landmarks_fails(workdir, monkeypatch):
    """The seed's bug 2: the training loop read batch['landmarks']."""
    from asl_cli.engine.trainer import ASLTrainer

    def old_epoch(self):
        for batch in self.train_loader:
            self.step_fn.micro_step(batch["landmarks"], batch["mask"], batch["labels"])

    monkeypatch.setattr(ASLTrainer, "_train_epoch", old_epoch)
    r = check(workdir, "features-key")
    assert r.status == FAIL and "KeyError" in r.reason and "landmarks" in r.reason


def test_transforming_features_again_in_the_step_fails(workdir, monkeypatch):
    from asl_cli.engine.step import TrainStep

    original = TrainStep.micro_step
    monkeypatch.setattr(TrainStep, "micro_step", lambda self, f, m, y, **kw: original(self, f * 2.0, m, y, **kw))
    r = check(workdir, "features-key")
    assert r.status == FAIL and "other than batch" in r.reason


def test_preprocessing_twice_in_the_dataset_fails(workdir, monkeypatch):
    """The seed's bug 3, data side: preprocessing runs twice per sample."""
    import asl_cli.data.dataset as dataset

    original = dataset.SignDataset.__getitem__  # what the loader runs for every sample

    def twice(self, item):
        out = original(self, item)
        position = item[0] if isinstance(item, tuple) else item
        dataset.preprocess(self.cache.points(int(self.indices[position])), self.max_len)
        return out

    monkeypatch.setattr(dataset.SignDataset, "__getitem__", twice)
    r = check(workdir, "preprocess-once")
    assert r.status == FAIL and "ran preprocessing" in r.reason


def test_preprocessing_again_in_the_training_step_fails(workdir, monkeypatch):
    """The seed's bug 3, trainer side: train.py preprocessed the batch a second time."""
    import asl_cli.data.preprocess_torch as ppt
    from asl_cli.engine.step import TrainStep

    original = TrainStep.micro_step

    def step(self, f, m, y, **kw):
        ppt.preprocess_torch(torch.zeros(4, 118, 2))  # what the old train.py did to every batch
        return original(self, f, m, y, **kw)

    monkeypatch.setattr(TrainStep, "micro_step", step)
    r = check(workdir, "preprocess-once")
    assert r.status == FAIL and "training step ran preprocessing again" in r.reason


def test_checkpoint_without_use_augmentations_fails(workdir, monkeypatch):
    """The seed's bug 4: the augmentation switch was not saved with the model."""
    import asl_cli.engine.trainer as trainer_mod

    original = trainer_mod.save_checkpoint

    def drop_switch(payload, path):
        cfg = json.loads(payload["config"]) if isinstance(payload["config"], str) else dict(payload["config"])
        cfg["aug"].pop("use_augmentations")
        payload = {**payload, "config": json.dumps(cfg)}
        return original(payload, path)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", drop_switch)
    r = check(workdir, "checkpoint-config")
    assert r.status == FAIL and "use_augmentations" in r.reason


def test_autocast_that_does_nothing_fails(workdir, monkeypatch):
    from asl_cli.engine.precision import Precision

    monkeypatch.setattr(Precision, "autocast", lambda self: contextlib.nullcontext())
    r = check(workdir, "amp-fp16" if CUDA else "amp-bf16")
    assert r.status == FAIL and "layers ran in float32" in r.reason


def test_dropped_clipping_fails(workdir, monkeypatch):
    from asl_cli.engine.precision import Precision

    def update_without_clip(self, optimizer, parameters, clip_val):
        params = [p for p in parameters if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        self.scaler.step(optimizer)
        self.scaler.update()
        return norm

    monkeypatch.setattr(Precision, "update", update_without_clip)
    r = check(workdir, "clipping")
    assert r.status == FAIL and "> clip 1.0" in r.reason


def test_wrong_accumulation_divisor_fails(workdir, monkeypatch):
    """The seed's loop divided the last, partial window by the full accumulation count."""
    from asl_cli.engine.step import TrainStep

    original = TrainStep.update

    def no_rescale(self):
        self.window_samples = self.nominal  # pretend every window is full
        return original(self)

    monkeypatch.setattr(TrainStep, "update", no_rescale)
    r = check(workdir, "accumulation")
    assert r.status == FAIL and "4+4+2 accumulated differs from one batch of 10" in r.reason


def test_dropped_partial_window_fails(workdir, monkeypatch):
    """The seed's other accumulation defect: the epoch's last, partial window never stepped."""
    from asl_cli.engine.trainer import ASLTrainer

    original = ASLTrainer._apply_update

    def drop_partial(self):
        if self.step_fn.window_samples < self.step_fn.nominal:
            self.optimizer.zero_grad(set_to_none=True)
            self.step_fn.reset_window()
            return None
        return original(self)

    monkeypatch.setattr(ASLTrainer, "_apply_update", drop_partial)
    r = check(workdir, "accumulation")
    assert r.status == FAIL and "the last, partial window must be stepped" in r.reason, r.reason


def test_loader_ignoring_the_preset_fails(workdir, monkeypatch):
    def ignore_workers(original, cfg, cache, augment, device_type):
        cfg.loader.num_workers = 0
        return original(cfg, cache, augment=augment, device_type=device_type)

    _patch_build_loaders(monkeypatch, ignore_workers)
    r = check(workdir, "loader-settings", preset="rtx4070")  # rtx4070: 4 workers
    assert r.status == FAIL and "num_workers=0 (expected 4)" in r.reason


def test_pinning_without_cuda_fails(workdir, monkeypatch):
    if CUDA:
        pytest.skip("pinning is right with CUDA")

    def pin_anyway(original, cfg, cache, augment, device_type):
        return original(cfg, cache, augment=augment, device_type="cuda")

    _patch_build_loaders(monkeypatch, pin_anyway)
    r = check(workdir, "loader-settings", preset="rtx4070")
    assert r.status == FAIL and "pin_memory=True (expected False)" in r.reason


def test_the_compile_checks_seconds_are_the_time_its_reason_gives(workdir, monkeypatch):
    """The inductor compile runs in a subprocess beside the other checks: the seconds column shows its
    own compile time (or the timeout it hit), the figure the reason names, not this process's wait."""
    import re

    import asl_cli.tools.selfcheck as selfcheck

    script = "import json; print(json.dumps({'seconds': 12.34, 'max_diff': 0.0, 'device': 'cpu'}))"
    monkeypatch.setattr(selfcheck, "start_compile_probe",
                        lambda backend="inductor": subprocess.Popen([sys.executable, "-c", script],
                                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                                    text=True))
    r = check(workdir, "compile")
    assert r.status == PASS and r.seconds == 12.34
    assert re.search(r"matched in 12\.3 s \(in a subprocess, while the other checks ran\)$", r.reason)
    monkeypatch.setattr(selfcheck, "start_compile_probe",
                        lambda backend="inductor": subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                                    text=True))
    r = check(workdir, "compile")  # compile_timeout=3
    assert r.status == SKIP and "did not finish within 3 s" in r.reason and r.seconds == 3.0
    table = runner.invoke(app, ["test-fix", "--only", "compile", "--compile-timeout", "3"], env={"COLUMNS": "120"})
    assert "3.0" in table.stdout and "within 3 s" in table.stdout


def test_compile_that_changes_results_fails(workdir, monkeypatch):
    real_compile = torch.compile

    def wrong_compile(model, *args, **kwargs):
        compiled = real_compile(model, *args, **kwargs)
        return lambda *a, **k: compiled(*a, **k) + 1.0

    monkeypatch.setattr(torch, "compile", wrong_compile)
    r = check(workdir, "compile")
    assert r.status == FAIL and "changes the output" in r.reason


@pytest.mark.skipif(not CUDA, reason="cuDNN flags are only checked with CUDA")
def test_cudnn_flags_not_set_fails(workdir, monkeypatch):
    import asl_cli.engine.trainer as trainer_mod

    def wrong(train_cfg, device):
        torch.backends.cudnn.benchmark = not train_cfg.cudnn_benchmark

    monkeypatch.setattr(trainer_mod, "configure_backends", wrong)
    r = check(workdir, "cudnn-flags")
    assert r.status == FAIL


def test_cudnn_flags_on_a_cuda_machine_training_on_the_cpu_is_not_a_fail(workdir, monkeypatch):
    """With CUDA present but train.device=cpu the trainer rightly leaves cudnn.benchmark off:
    nothing to check (SKIP), not a FAIL against the preset's cudnn_benchmark."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the workspace sees "a GPU"
    (r,) = run_checks(load_config("cpu", ["train.device=cpu"]), only=["cudnn-flags"], workdir=workdir)
    assert r.status == SKIP and "cpu" in r.reason.lower(), r


def test_cudnn_flags_left_alone_by_the_trainer_fails(workdir, monkeypatch):
    """A trainer that never sets the flags must not pass because they happen to hold the expected
    values already (torch's defaults, or what an earlier trainer set)."""
    import asl_cli.engine.trainer as trainer_mod
    from asl_cli.tools.selfcheck import Workspace, check_cudnn_flags

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(trainer_mod, "configure_backends", lambda train_cfg, device: None)

    class CudaTrainer:  # what ws.trainer would give on a GPU: only its device is looked at
        device = torch.device("cuda")

    ws = Workspace(load_config("cpu", ["train.cudnn_benchmark=false"]), workdir)
    monkeypatch.setattr(ws, "trainer", lambda cfg, **kw: trainer_mod.configure_backends(cfg.train, CudaTrainer.device)
                        or CudaTrainer())
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    status, reason = check_cudnn_flags(ws)
    assert status == FAIL, reason


def test_a_crashing_check_is_a_fail_with_the_exception(workdir, monkeypatch):
    from asl_cli.engine.step import TrainStep

    def boom(self, *a):
        raise RuntimeError("exploded")

    monkeypatch.setattr(TrainStep, "update", boom)
    r = check(workdir, "clipping")
    assert r.status == FAIL and r.reason == "raised RuntimeError: exploded"


# --- the command -------------------------------------------------------------------------------------

def test_cli_exit_codes_and_json(workdir, monkeypatch):
    ok = runner.invoke(app, ["test-fix", "--only", "clipping", "--only", "amp-fp16", "--json"])
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert [c["name"] for c in doc["checks"]] == ["amp-fp16", "clipping"] and doc["ok"] is True
    table = runner.invoke(app, ["test-fix", "--only", "accumulation"])
    assert table.exit_code == 0 and "PASS" in table.stdout and "accumulation equals the big batch" in table.stdout
    assert "1 passed, 0 failed, 0 skipped" in table.stdout

    from asl_cli.engine.step import TrainStep

    original = TrainStep.update
    monkeypatch.setattr(TrainStep, "update", lambda self: (setattr(self, "window_samples", self.nominal),
                                                           original(self))[1])
    bad = runner.invoke(app, ["test-fix", "--only", "accumulation"])
    assert bad.exit_code == 1 and "FAIL" in bad.stdout and "1 failed" in bad.stdout


def test_cli_as_a_subprocess():
    ok = run_asl("test-fix", "--only", "loader-settings", "--preset", "rtx4070")
    assert ok.returncode == 0, ok.stderr
    assert "DataLoader settings as the preset says" in ok.stdout and "as preset rtx4070 says" in ok.stdout
    bad = run_asl("test-fix", "--only", "nope", timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown check 'nope'")


def test_auto_workers_are_checked_against_the_rule(workdir, monkeypatch):
    from asl_cli.engine import parallelism

    if CUDA:
        pytest.skip("the cpu preset trains on the GPU here")
    monkeypatch.setattr(parallelism, "available_cpus", lambda: 4)  # auto: one worker on a CPU
    r = check(workdir, "loader-settings", preset="cpu")
    assert r.status == PASS and "num_workers 1 (auto)" in r.reason, r.reason

    def ignore_workers(original, cfg, cache, augment, device_type):
        cfg.loader.num_workers = 0
        return original(cfg, cache, augment=augment, device_type=device_type)

    _patch_build_loaders(monkeypatch, ignore_workers)
    r = check(workdir, "loader-settings", preset="cpu")
    assert r.status == FAIL and "num_workers=0 (expected 1)" in r.reason, r.reason


def test_docs_show_the_real_number_of_settings(workdir):
    """docs/test-fix.md's captured output quotes the checkpoint-config reason: keep its count true."""
    import re
    from pathlib import Path

    result = check(workdir, "checkpoint-config")
    assert result.status == PASS, result.reason
    real = re.search(r"all (\d+) settings", result.reason).group(1)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "test-fix.md").read_text(encoding="utf-8")
    assert set(re.findall(r"all (\d+) settings", doc)) == {real}
