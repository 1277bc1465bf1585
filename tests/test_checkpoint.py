"""Checkpoints (atomic, safe, refusing the wrong file) and the run folder."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

import asl_cli
from asl_cli.config import ModelConfig
from asl_cli.engine import checkpoint as ckpt_mod
from asl_cli.engine.checkpoint import (check_fingerprint, load_checkpoint, model_fingerprint, rng_state,
                                       save_checkpoint, set_rng_state, unwrap_model)
from asl_cli.engine.run_dir import RunDir, check_run_name, default_run_name, find_checkpoint
from asl_cli.errors import CheckpointError, ConfigError, RunIOError
from asl_cli.model import build_model

SMALL = ModelConfig(dim=16, blocks=1, num_heads=4)


def payload(model, num_classes=5, cfg=SMALL):
    return {"model": unwrap_model(model).state_dict(), "fingerprint": model_fingerprint(cfg, num_classes, model),
            "config": json.dumps({"model": {"dim": cfg.dim}}), "rng": rng_state(), "progress": {"step": 3}}


def test_round_trip_restores_weights_and_rng(tmp_path):
    model = build_model(SMALL, 5)
    path = save_checkpoint(payload(model), tmp_path / "last.pt")
    expected_draw = (torch.rand(3), np.random.rand(), random.random())
    other = build_model(SMALL, 5)
    ck = load_checkpoint(path, expect_fingerprint=model_fingerprint(SMALL, 5, other))
    other.load_state_dict(ck["model"])
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    set_rng_state(ck["rng"])
    again = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(expected_draw[0], again[0]) and expected_draw[1:] == again[1:]
    assert ck["toolkit_version"] == asl_cli.__version__ and ck["progress"]["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_compiled_model_saves_without_orig_mod_prefix():
    model = build_model(SMALL, 5)
    compiled = torch.compile(model)  # lazy: nothing compiles until called
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    assert unwrap_model(compiled) is model
    assert not any("_orig_mod" in k for k in unwrap_model(compiled).state_dict())


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = build_model(SMALL, 5)
    path = save_checkpoint(payload(model), tmp_path / "last.pt")
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt_mod.os, "replace", disk_full)
    with pytest.raises(RunIOError, match="No space left on device") as info:
        save_checkpoint(payload(build_model(SMALL, 5)), path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # temp file removed


def test_unwritable_folder_is_run_io_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunIOError):
        save_checkpoint({"model": {}}, blocker / "sub" / "last.pt")  # a file where a folder should be


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint", b"PK\x03\x04broken zip"])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not an asl checkpoint") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_text_file_is_not_called_a_malicious_pickle(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("just some notes\n")
    with pytest.raises(CheckpointError, match="not a torch file") as info:
        load_checkpoint(path)
    assert "malicious" not in str(info.value)


def test_other_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no asl checkpoint header"):
        load_checkpoint(tmp_path / "other.pt")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, monkeypatch, writer):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    obj = {"format": ckpt_mod.FORMAT, "model": _Exploit()}
    if writer == "torch":
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj))
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "PWNED").exists()


def test_other_major_version_is_refused(tmp_path, monkeypatch):
    model = build_model(SMALL, 5)
    monkeypatch.setattr(ckpt_mod, "__version__", "99.0.0")
    path = save_checkpoint(payload(model), tmp_path / "future.pt")
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="major version"):
        load_checkpoint(path)


def test_same_major_other_minor_loads(tmp_path, monkeypatch):
    major = asl_cli.__version__.split(".")[0]
    monkeypatch.setattr(ckpt_mod, "__version__", f"{major}.999.0")
    path = save_checkpoint(payload(build_model(SMALL, 5)), tmp_path / "minor.pt")
    monkeypatch.undo()
    assert load_checkpoint(path)["toolkit_version"] == f"{major}.999.0"


@pytest.mark.parametrize("cfg,classes", [(ModelConfig(dim=32, blocks=1, num_heads=4), 5),
                                         (ModelConfig(dim=16, blocks=2, num_heads=4), 5),
                                         (SMALL, 7)])
def test_other_model_size_or_classes_is_refused(tmp_path, cfg, classes):
    path = save_checkpoint(payload(build_model(SMALL, 5)), tmp_path / "last.pt")
    ours = model_fingerprint(cfg, classes, build_model(cfg, classes))
    with pytest.raises(CheckpointError, match="does not match") as info:
        load_checkpoint(path, expect_fingerprint=ours)
    assert "\n" not in str(info.value)


def test_fingerprint_without_param_count_still_compares_shape():
    check_fingerprint({"dim": 16, "num_classes": 5}, {"dim": 16, "num_classes": 5})
    with pytest.raises(CheckpointError):
        check_fingerprint({"dim": 16, "num_classes": 5}, {"dim": 16, "num_classes": 6})


# --- run folder ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../evil", "a/b", "/abs", "..", ".", "", "a b", "x" * 200, "naïve", "a\\b"])
def test_unsafe_run_names_are_refused(name):
    with pytest.raises(ConfigError):
        check_run_name(name)


@pytest.mark.parametrize("name", ["run1", "cpu-20260101-120000", "my_run.v2", "A-b_C.9"])
def test_safe_run_names(name):
    assert check_run_name(name) == name


def test_default_name_and_layout(tmp_path):
    name = default_run_name("rtx4070", now=0)
    assert name == "rtx4070-19700101-000000"
    run = RunDir.create(tmp_path / "runs", preset="cpu")
    assert run.path.parent == tmp_path / "runs" and run.name.startswith("cpu-")
    assert run.checkpoints.is_dir()
    run.write_config({"a": 1})
    run.write_status({"state": "running", "loss": float("nan")})
    run.append_metrics({"event": "step", "step": 1})
    run.append_metrics({"event": "eval", "val_top1": 0.5})
    assert json.loads(run.config_path.read_text()) == {"a": 1}
    assert run.read_status() == {"state": "running", "loss": None}  # JSON has no NaN
    assert [m["event"] for m in run.read_metrics()] == ["step", "eval"]
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "config.json", "metrics.jsonl",
                                                          "status.json"]


def test_named_run_folder_is_not_reused_by_accident(tmp_path):
    run = RunDir.create(tmp_path, "exp")
    run.write_config({})
    with pytest.raises(ConfigError, match="already exists"):
        RunDir.create(tmp_path, "exp")


def test_find_checkpoint(tmp_path):
    run = RunDir.create(tmp_path, "exp")
    with pytest.raises(CheckpointError, match="no checkpoints/last.pt"):
        find_checkpoint(run.path)
    run.write_config({})
    save_checkpoint(payload(build_model(SMALL, 5)), run.last_checkpoint)
    assert find_checkpoint(run.path)[0] == run.last_checkpoint
    path, found = find_checkpoint(run.best_checkpoint.with_name("last.pt"))
    assert found is not None and found.path == run.path
    with pytest.raises(CheckpointError):
        find_checkpoint(tmp_path / "missing")


def test_rng_state_of_a_cpu_run_never_touches_cuda(monkeypatch):
    # get_rng_state_all() would create a CUDA context on every GPU of the machine (hundreds of MB each)
    def touched(*args, **kwargs):
        raise AssertionError("a CPU run's RNG state touched CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("get_rng_state_all", "get_rng_state", "set_rng_state_all", "set_rng_state", "current_device"):
        monkeypatch.setattr(torch.cuda, name, touched)
    state = rng_state(torch.device("cpu"))
    assert state["cuda"] is None
    set_rng_state(state, torch.device("cpu"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_rng_state_keeps_the_training_gpus_stream():
    device = torch.device("cuda", torch.cuda.device_count() - 1)
    state = rng_state(device)
    expected = torch.rand(4, device=device)
    torch.rand(100, device=device)
    set_rng_state(state, device)
    assert torch.equal(torch.rand(4, device=device), expected)
    assert state["cuda"]["index"] == device.index


def test_run_name_taken_by_a_file_is_one_error(tmp_path):
    (tmp_path / "exp").write_text("not a folder")
    with pytest.raises(ConfigError, match="not a folder"):
        RunDir.create(tmp_path, "exp")


def test_full_disk_inside_torch_save_is_run_io_error(tmp_path, monkeypatch):
    # A real ENOSPC inside torch.save surfaces as torch's RuntimeError ("[enforce fail at
    # inline_container.cc] unexpected pos ...") with the OSError only as its context.
    model = build_model(SMALL, 5)
    target = tmp_path / "last.pt"
    save_checkpoint(payload(model), target)
    before = target.read_bytes()

    def full_disk(obj, f, *a, **k):
        f.write(b"\0" * 4096)
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(ckpt_mod.torch, "save", full_disk)
    with pytest.raises(RunIOError, match="No space left on device"):
        save_checkpoint(payload(model), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left


def test_interrupted_checkpoint_write_leaves_no_temp_file(tmp_path, monkeypatch):
    def interrupted(obj, f, *a, **k):
        f.write(b"\0" * 4096)
        raise KeyboardInterrupt  # a second Ctrl-C during the write

    monkeypatch.setattr(ckpt_mod.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(payload(build_model(SMALL, 5)), tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_metrics_after_a_torn_line_stay_whole(tmp_path):
    run = RunDir.create(tmp_path, "exp")
    run.append_metrics({"event": "step", "step": 1})
    with open(run.metrics_path, "a") as fh:  # a writer killed (or out of disk) mid-line
        fh.write('{"event": "step", "st')
    run.append_metrics({"event": "step", "step": 2})
    lines = run.metrics_path.read_text().splitlines()
    assert json.loads(lines[0])["step"] == 1 and json.loads(lines[-1])["step"] == 2
