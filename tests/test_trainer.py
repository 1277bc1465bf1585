"""ASLTrainer end to end on a tiny synthetic set (5 signs x 5 signers x 6 repetitions).

These are the slower engine tests: they train real (tiny) models on the CPU.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from asl_cli.config import load_config
from asl_cli.engine.checkpoint import load_checkpoint
from asl_cli.engine.trainer import ASLTrainer
from asl_cli.errors import (CheckpointError, ConfigError, NonFiniteLossError, OutOfMemoryError, RunIOError,
                            TrainingInterrupted)
from kit import folder_is_free

NUM_SIGNS = 5  # `tiny_data` (conftest.py): 5 signs x 5 participants x 6 repetitions, read-only


def make_cfg(tiny_data, tmp_path, *sets: str):
    base = [f"data.data_dir={tiny_data.data}", f"data.cache_dir={tiny_data.cache}", f"runs_dir={tmp_path / 'runs'}",
            "model.dim=32", "model.blocks=1", "train.batch_size=16", "train.log_every=1",
            "train.epochs=4", "data.max_len=48", "train.device=cpu",
            "loader.num_workers=0"]  # the preset's auto would depend on this machine's cores
    return load_config("cpu", base + list(sets))


def params_of(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


# --- learning ---------------------------------------------------------------------------------

def test_initial_loss_is_log_num_classes_and_every_parameter_gets_a_gradient(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "optim.label_smoothing=0"))
    assert trainer.num_classes == NUM_SIGNS
    val = trainer.evaluate()
    assert val["val_loss"] == pytest.approx(math.log(NUM_SIGNS), abs=0.35)
    batch = next(iter(trainer.train_loader))
    trainer.step_fn.micro_step(batch["features"], batch["mask"], batch["labels"])
    missing = [n for n, p in trainer.model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_overfits_one_small_batch(tiny_data, tmp_path):
    cfg = make_cfg(tiny_data, tmp_path, "aug.use_augmentations=false", "model.drop_rate=0", "optim.lr=3e-3",
                   "optim.weight_decay=0", "optim.label_smoothing=0", "optim.warmup_epochs=0",
                   "optim.schedule=constant")
    trainer = ASLTrainer(cfg)
    batch = next(iter(trainer.train_loader))
    x, mask, y = batch["features"], batch["mask"], batch["labels"]
    for _ in range(120):
        trainer.step_fn.micro_step(x, mask, y)
        trainer.step_fn.update()
    trainer.model.eval()
    with torch.no_grad():
        accuracy = (trainer.model(x, mask).argmax(-1) == y).float().mean().item()
    assert accuracy == 1.0


def test_short_run_learns_and_writes_its_run_folder(tiny_data, tmp_path):
    events = []
    cfg = make_cfg(tiny_data, tmp_path, "train.epochs=20", "optim.lr=3e-3", "train.log_every=4", "name=learn")
    trainer = ASLTrainer(cfg, callbacks=[events.append])
    summary = trainer.fit()
    # Validation (held-out signers, no augmentation) well above chance (1/5).
    assert summary["best_top1"] >= 0.6, summary
    assert summary["state"] == "finished" and summary["epochs_done"] == 20
    assert summary["steps"] == 20 * trainer.updates_per_epoch
    assert set(summary) >= {"run_dir", "best_checkpoint", "last_checkpoint", "best_top1", "best_top5",
                            "final_train_loss", "epochs_done", "steps", "wall_s", "samples_per_s",
                            "peak_mem_mb", "skipped", "state"}
    assert summary["skipped"] == 0 and summary["final_train_loss"] < math.log(NUM_SIGNS)
    run = trainer.run
    assert run.path == tmp_path / "runs" / "learn"
    assert json.loads(run.config_path.read_text())["train"]["epochs"] == 20
    status = run.read_status()
    assert status["state"] == "finished" and status["best_top1"] == summary["best_top1"]
    assert status["precision"] == "fp32" and status["peak_mem_source"] == "cpu_peak_rss"
    assert status["device"] == "cpu" and status["gpu_uuid"] is None  # monitors match a CUDA run's GPU by it
    assert status["data_path"] == "numpy"  # the one sample path (kept for scripts that read it)
    metrics = run.read_metrics()
    assert {m["event"] for m in metrics} == {"step", "eval"}
    assert sum(m["event"] == "eval" for m in metrics) == 20
    assert all("config" not in m for m in metrics)
    # Callbacks: start (with the config) ... end; checkpoint events name path and kind.
    assert events[0]["event"] == "start" and "config" in events[0] and events[-1]["event"] == "end"
    kinds = {e["kind"] for e in events if e["event"] == "checkpoint"}
    assert kinds == {"best", "last"}
    step = next(e for e in events if e["event"] == "step")
    for key in ("run", "state", "epoch", "epochs", "step", "total_steps", "eta_s", "loss", "loss_smooth", "lr",
                "grad_norm", "samples_per_s", "data_wait", "val_top1", "val_top5", "best_top1", "peak_mem_mb",
                "amp_scale", "precision", "device", "aug"):
        assert key in step, key
    assert 0.0 <= step["data_wait"] <= 1.0 and step["grad_norm"] > 0 and step["amp_scale"] is None
    best = load_checkpoint(summary["best_checkpoint"])
    assert best["progress"]["best_top1"] == summary["best_top1"]
    assert not any(k.startswith("_orig_mod.") for k in best["model"])


# --- accumulation inside the epoch loop ---------------------------------------------------------

def test_partial_last_window_of_an_epoch_is_stepped(tiny_data, tmp_path):
    cfg = make_cfg(tiny_data, tmp_path, "train.epochs=1", "train.gradient_accumulation_steps=3")
    trainer = ASLTrainer(cfg)
    assert trainer.batches_per_epoch % 3 != 0  # the test needs a partial last window
    seen = []
    original = trainer.step_fn.update

    def spy():
        seen.append(trainer.step_fn.window_samples)
        return original()

    trainer.step_fn.update = spy
    trainer.fit()
    assert trainer.step == math.ceil(trainer.batches_per_epoch / 3) == len(seen)
    assert sum(seen) == len(trainer.train_loader.dataset)  # every sample in exactly one update
    assert trainer.scheduler.last_epoch == trainer.step


# --- resume -------------------------------------------------------------------------------------

RESUME_SETS = ("train.deterministic=true", "train.gradient_accumulation_steps=2", "train.epochs=3",
               "aug.use_augmentations=true")


def _straight_and_resumed(tiny_data, tmp_path, *extra: str, stop_mid_window: bool = False):
    sets = RESUME_SETS + extra
    total = 9  # 4 updates per epoch: stops in epoch 2 and ends in epoch 3
    straight = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, f"train.max_steps={total}", "name=straight"))
    straight.fit()
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=5", "name=resumed"))
    if stop_mid_window:  # a stop request between the two micro-steps of update 6
        calls = {"n": 0}
        original = first.step_fn.micro_step

        def micro(*args, **kwargs):
            original(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 11:
                first.request_stop(15)

        first.step_fn.micro_step = micro
        first.cfg.train.max_steps = 0
        with pytest.raises(TrainingInterrupted) as info:
            first.fit()
        assert info.value.exit_code == 143 and first.step == 5
    else:
        first.fit()
    assert first.step == 5 and 0 < first.batch_in_epoch < first.batches_per_epoch
    second = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, f"train.max_steps={total}"), resume=first.run_dir)
    assert second.run_dir == first.run_dir and second.step == 5
    second.fit()
    assert second.step == straight.step == total
    return straight, second


def test_resume_continues_bitwise_exactly(tiny_data, tmp_path):
    straight, resumed = _straight_and_resumed(tiny_data, tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(params_of(straight), params_of(resumed)))
    assert all(torch.equal(a, b) for a, b in zip(straight.model.buffers(), resumed.model.buffers()))
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]


def test_stop_inside_a_window_then_resume_is_bitwise_exact(tiny_data, tmp_path):
    straight, resumed = _straight_and_resumed(tiny_data, tmp_path, stop_mid_window=True)
    assert all(torch.equal(a, b) for a, b in zip(params_of(straight), params_of(resumed)))
    # BatchNorm running statistics too: the dropped half window's forward must not leak into them.
    assert all(torch.equal(a, b) for a, b in zip(straight.model.buffers(), resumed.model.buffers()))


def test_resume_with_persistent_workers_is_bitwise_exact(tiny_data, tmp_path):
    straight, resumed = _straight_and_resumed(tiny_data, tmp_path, "loader.num_workers=2",
                                              "loader.persistent_workers=true")
    assert all(torch.equal(a, b) for a, b in zip(params_of(straight), params_of(resumed)))


def test_resume_refuses_another_model_size(tiny_data, tmp_path):
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=1", "name=a"))
    first.fit()
    with pytest.raises(CheckpointError, match="does not match"):
        ASLTrainer(make_cfg(tiny_data, tmp_path, "model.dim=64"), resume=first.run_dir)


def test_a_trainer_holds_its_run_folder_from_set_up_until_fit_returns(tiny_data, tmp_path, monkeypatch):
    during, refused, built = [], [], []
    original_build = ASLTrainer._build

    def build(self, cfg):
        built.append(cfg)
        return original_build(self, cfg)

    def second_trainer(event):
        if event["event"] != "step":
            return
        during.append(folder_is_free(first.run_dir))
        if event["step"] == 1:  # a resume while it trains: refused before any data or model set-up
            built.clear()
            with pytest.raises(ConfigError, match="in use by another trainer") as info:
                ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=4"), resume=first.run_dir)
            refused.append((info.value.path, list(built)))

    monkeypatch.setattr(ASLTrainer, "_build", build)
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=2", "name=held"), callbacks=[second_trainer])
    assert not folder_is_free(first.run_dir)
    built.clear()
    with pytest.raises(ConfigError, match="in use by another trainer") as info:
        ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=4"), run_dir=first.run_dir)
    assert info.value.path == str(first.run_dir) and built == []
    first.fit()
    assert during and not any(during)
    assert refused == [(str(first.run_dir), [])]
    assert folder_is_free(first.run_dir)  # released: the run can be resumed
    second = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=4"), resume=first.run_dir)
    assert not folder_is_free(first.run_dir)
    assert second.fit()["steps"] == 4 and folder_is_free(first.run_dir)


def test_a_trainer_that_fails_in_set_up_frees_the_folder(tiny_data, tmp_path):
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=1", "name=b"))
    first.fit()
    with pytest.raises(CheckpointError) as info:  # the failed trainer stays alive in the traceback
        ASLTrainer(make_cfg(tiny_data, tmp_path, "model.dim=64"), resume=first.run_dir)
    assert info.value is not None and folder_is_free(first.run_dir)


# --- stopping and faults ------------------------------------------------------------------------

def test_request_stop_saves_last_and_raises(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path), callbacks=[lambda e: e["event"] == "step" and e["step"] == 3
                                                                   and trainer.request_stop(2)])
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.exit_code == 130 and "resume" in str(info.value)
    ck = load_checkpoint(trainer.run.last_checkpoint)
    assert ck["progress"]["step"] == 3
    assert trainer.run.read_status()["state"] == "interrupted"


def test_relative_data_paths_are_recorded_absolute(tiny_data, tmp_path, monkeypatch):
    """A run trained with --data ../x must still evaluate and resume from another folder."""
    import os

    data_dir, cache_dir = tiny_data.data, tiny_data.cache
    monkeypatch.chdir(data_dir.parent)
    cfg = make_cfg(tiny_data, tmp_path, "train.max_steps=1", "name=rel",
                   f"data.data_dir={os.path.relpath(data_dir)}", f"data.cache_dir={os.path.relpath(cache_dir)}")
    trainer = ASLTrainer(cfg)
    saved = json.loads(trainer.run.config_path.read_text())["data"]
    assert saved["data_dir"] == str(data_dir) and saved["cache_dir"] == str(cache_dir)
    assert trainer.cfg.data.data_dir == str(data_dir) and cfg.data.data_dir != str(data_dir)  # the caller's copy


def test_a_resume_drops_the_metrics_of_updates_it_redoes(tiny_data, tmp_path):
    """Killed (or a checkpoint write failed) after the last checkpoint: the updates logged since
    are redone by the resume, and metrics.jsonl must not hold them twice."""
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=3", "train.epochs=3", "name=redo"))
    first.fit()
    lost = [{"event": "step", "step": 4, "loss": 9.0}, {"event": "step", "step": 5, "loss": 9.0}]
    with open(first.run.metrics_path, "a", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in lost) + '{"event": "step", "st')  # and a torn line
    second = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=5", "train.epochs=3"), resume=first.run_dir)
    second.fit()
    steps = [m["step"] for m in second.run.read_metrics() if m["event"] == "step"]
    assert steps == [1, 2, 3, 4, 5] and 9.0 not in [m.get("loss") for m in second.run.read_metrics()]


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_files(tiny_data, tmp_path):
    done = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=1", "name=done"))
    done.fit()
    files = {p.name: p.read_bytes() for p in (done.run.config_path, done.run.path / "status.json",
                                                done.run.path / "metrics.jsonl")}
    again = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=1"), resume=done.run_dir)
    summary = again.fit()
    assert summary["state"] == "already_finished" and summary["steps"] == done.step
    assert summary["reason"] == f"already finished its 1 epochs ({done.step} steps)"
    assert summary["best_top1"] == done.best_top1 and summary["wall_s"] == 0.0
    # status.json keeps the run's final figures (a resume used to overwrite them with nulls)
    assert {p.name: p.read_bytes() for p in (done.run.config_path, done.run.path / "status.json",
                                             done.run.path / "metrics.jsonl")} == files
    assert folder_is_free(done.run_dir)
    # max_steps already reached: the same, with its own reason; more epochs do train on
    capped = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=3", "train.max_steps=2", "name=capped"))
    capped.fit()
    again = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=3", "train.max_steps=2"), resume=capped.run_dir)
    assert again.fit()["reason"] == "already reached max_steps 2"
    more = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=2"), resume=done.run_dir)
    assert more.fit()["state"] == "finished" and more.epoch == 2


def test_every_epoch_end_is_a_log_point_so_evaluations_report_fresh_losses(tiny_data, tmp_path):
    """Fewer updates per epoch than log_every: the loss an evaluation is shown with is its epoch's."""
    events = []
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=3", "train.log_every=1000"),
                         callbacks=[events.append])
    trainer.fit()
    per_epoch = trainer.updates_per_epoch
    logged = [e for e in events if e["event"] in ("step", "eval")]
    assert [(e["event"], e["step"]) for e in logged] == [(kind, per_epoch * k) for k in (1, 2, 3)
                                                         for kind in ("step", "eval")]
    losses = [e["loss"] for e in logged if e["event"] == "step"]
    assert len(set(losses)) == 3 and all(e["loss"] == prev["loss"] for prev, e in zip(logged, logged[1:])
                                         if e["event"] == "eval")


def test_the_logged_lr_is_the_rate_the_logged_updates_used(tiny_data, tmp_path):
    events = []
    cfg = make_cfg(tiny_data, tmp_path, "optim.warmup_epochs=0", "optim.schedule=cosine", "optim.lr=1e-3",
                   "train.epochs=2")
    trainer = ASLTrainer(cfg, callbacks=[events.append])
    rates = []  # the rate each update steps with (the schedule advances after it)
    original = trainer.step_fn.update

    def update():
        rates.append(trainer.optimizer.param_groups[0]["lr"])
        return original()

    trainer.step_fn.update = update
    trainer.fit()
    logged = [e["lr"] for e in events if e["event"] == "step"]  # log_every = 1: one per update
    assert logged[0] == pytest.approx(1e-3) and logged == pytest.approx(rates)


def test_max_steps_stop(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=3", "train.log_every=10"))
    summary = trainer.fit()
    assert summary["steps"] == 3 and summary["state"] == "finished" and summary["last_checkpoint"]
    assert summary["stopped_by"] == "max_steps" and summary["epochs_done"] == 0
    assert summary["epochs_progress"] == pytest.approx(3 / trainer.updates_per_epoch)  # accumulation 1
    # fewer updates than log_every: the final loss still covers them (flushed at the end)
    assert summary["final_train_loss"] is not None and math.isfinite(summary["final_train_loss"])


def test_time_budget_stops_at_the_first_update_past_it(tiny_data, tmp_path, monkeypatch):
    """The budget is judged on the trainer's clock, here pushed 1000 s ahead once update 3 is
    logged: the next update sees the clock past the plan and is the last (no wall-clock timing, no
    dependence on machine speed)."""
    import time

    skew = {"s": 0.0}
    real_clock = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + skew["s"])

    def jump_at_step_3(event):
        if event["event"] == "step" and event["step"] == 3:
            skew["s"] += 1000.0

    # 2 epochs: a budget that is not honoured ends the run after 2 epochs instead of hanging the test
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.time_budget=600", "train.epochs=2",
                                  "train.log_every=1"), callbacks=[jump_at_step_3])
    assert trainer.updates_per_epoch > 4  # the stop falls inside the first epoch
    summary = trainer.fit()
    assert summary["steps"] == 4 and summary["state"] == "finished" and summary["epochs_done"] == 0
    assert summary["stopped_by"] == "time_budget"
    assert load_checkpoint(summary["last_checkpoint"])["progress"]["step"] == 4


def test_throughput_counts_training_time_only(tiny_data, tmp_path, monkeypatch):
    """samples_per_s / data_wait are the training loop's: evaluation and checkpoint time (here a
    fake 1000 s per evaluation) must not dilute them, also at the final flush."""
    import time

    skew = {"s": 0.0}
    real_clock = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + skew["s"])
    events = []
    probe = ASLTrainer(make_cfg(tiny_data, tmp_path, "name=probe"))
    # log points off the epoch grid: each epoch end and the stop flush theirs before evaluating, and
    # the windows after an evaluation must not count its time
    per_epoch = probe.updates_per_epoch
    assert per_epoch > 3
    cfg = make_cfg(tiny_data, tmp_path, "train.epochs=3", f"train.log_every={per_epoch + 1}",
                   f"train.max_steps={2 * per_epoch + 3}")
    trainer = ASLTrainer(cfg, callbacks=[events.append])
    evaluate = trainer.evaluate

    def slow_evaluate():
        skew["s"] += 1000.0
        return evaluate()

    trainer.evaluate = slow_evaluate
    trainer.fit()
    steps = [e for e in events if e["event"] == "step"]
    # epoch 1 end, the log_every grid, epoch 2 end, the grid again, the stop (mid-epoch 3)
    assert [e["step"] for e in steps] == [per_epoch, per_epoch + 1, 2 * per_epoch, 2 * per_epoch + 2,
                                          2 * per_epoch + 3]
    assert all(e["samples_per_s"] > 1.0 for e in steps), [e["samples_per_s"] for e in steps]


def test_max_steps_at_an_epoch_end_between_checkpoints_still_evaluates_and_saves(tiny_data, tmp_path):
    """max_steps reached exactly at the end of epoch 1 of 6, with eval/checkpoint every 3 epochs:
    the final weights must still be evaluated and saved (last.pt was left at step 0)."""
    probe = ASLTrainer(make_cfg(tiny_data, tmp_path, "name=probe"))
    per_epoch = probe.updates_per_epoch
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, f"train.max_steps={per_epoch}", "train.epochs=6",
                                  "train.checkpoint_every=3", "train.eval_every=3", "name=boundary"))
    summary = trainer.fit()
    assert summary["steps"] == per_epoch and summary["epochs_done"] == 1
    assert load_checkpoint(trainer.run.last_checkpoint)["progress"]["step"] == per_epoch
    assert summary["best_top1"] is not None and trainer.status["val_top1"] is not None
    assert sum(m["event"] == "eval" for m in trainer.run.read_metrics()) == 1


def _poison(trainer, at_call: int):
    """Make the loss of micro-step `at_call` (1-based) NaN."""
    original = trainer.step_fn.loss_sum
    calls = {"n": 0}

    def loss_sum(*args):
        calls["n"] += 1
        loss = original(*args)
        return loss * float("nan") if calls["n"] == at_call else loss

    trainer.step_fn.loss_sum = loss_sum


def test_nonfinite_loss_skip(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=1", "train.nonfinite=skip"))
    _poison(trainer, 2)
    apply_update, skipped = trainer._apply_update, []

    def recorded_apply_update():
        window_start = [b.detach().clone() for b in trainer.window.stats_backup]
        apply_update()
        if trainer.step_fn.skip_reason == "nonfinite":
            skipped.append(all(torch.equal(a, b) for a, b in zip(trainer.window.stats, window_start)))

    trainer._apply_update = recorded_apply_update
    with pytest.warns(RuntimeWarning, match="non-finite loss at step 2"):
        summary = trainer.fit()
    assert summary["nonfinite_skipped"] == 1 and summary["overflow_skipped"] == 0
    assert skipped == [True]  # the NaN batch's forward pass left no trace in the BatchNorm statistics
    assert summary["steps"] == trainer.batches_per_epoch - 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nonfinite_loss_stop_keeps_previous_checkpoint(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=2", "train.nonfinite=stop"))
    _poison(trainer, trainer.batches_per_epoch + 2)  # in epoch 2, after last.pt of epoch 1
    with pytest.raises(NonFiniteLossError, match=f"step {trainer.batches_per_epoch + 2}"):
        trainer.fit()
    ck = load_checkpoint(trainer.run.last_checkpoint)
    assert ck["progress"]["step"] == trainer.batches_per_epoch
    assert trainer.run.read_status()["state"] == "failed"


def test_nonfinite_weights_are_never_saved(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=1"))
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="not written"):
        trainer._save("last")
    assert not trainer.run.last_checkpoint.exists()


def test_out_of_memory_becomes_one_line(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path))

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.step_fn.micro_step = oom
    with pytest.raises(OutOfMemoryError, match="smaller --batch-size") as info:
        trainer.fit()
    assert "\n" not in str(info.value) and info.value.exit_code == 7


def test_unwritable_checkpoint_is_run_io_error(tiny_data, tmp_path, monkeypatch):
    from asl_cli.engine import checkpoint as ckpt_mod

    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=1"))
    monkeypatch.setattr(ckpt_mod.torch, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(RunIOError, match="No space left"):
        trainer.fit()
    assert not any(p.name.startswith(".") for p in trainer.run.checkpoints.iterdir())


def test_late_dropout_and_awp_switch_on_at_their_epochs(tiny_data, tmp_path):
    seen = []
    cfg = make_cfg(tiny_data, tmp_path, "train.epochs=2", "model.late_dropout_start=1", "optim.awp_lambda=0.2",
                   "optim.awp_start_epoch=1")
    trainer = ASLTrainer(cfg)
    original = trainer.step_fn.update
    perturbed = []
    trainer.step_fn.awp.perturb = (lambda f: lambda *a: (perturbed.append(trainer.epoch), f(*a)))(
        trainer.step_fn.awp.perturb)

    def spy():
        seen.append((trainer.epoch, trainer.model.late_dropout_active, trainer.step_fn.awp_active))
        return original()

    trainer.step_fn.update = spy
    trainer.fit()
    assert {s for s in seen if s[0] == 0} == {(0, False, False)}
    assert {s for s in seen if s[0] == 1} == {(1, True, True)}
    assert perturbed and set(perturbed) == {1}  # AWP's second pass ran in epoch 2 only
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


# --- precision, compile, overrides --------------------------------------------------------------

def test_bf16_autocast_on_cpu(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.precision=bf16", "train.max_steps=3"),
                         use_mixed_precision=True)
    assert trainer.precision.name == "bf16" and not trainer.precision.scaler.is_enabled()
    summary = trainer.fit()
    assert summary["precision"] == "bf16" and math.isfinite(summary["final_train_loss"])


def test_an_fp16_overflow_skips_its_update_is_counted_and_survives_a_resume(tiny_data, tmp_path, monkeypatch):
    """fp16 with its GradScaler, on the CPU (training would pick fp32 here: forced). An inf in one
    window's gradients: the update is skipped and counted in overflow_skipped, and leaves the step
    count, the schedule, the logged rate, the weights and the BatchNorm statistics as they were."""
    from asl_cli.engine import trainer as trainer_mod
    from asl_cli.engine.checkpoint import save_checkpoint
    from asl_cli.engine.precision import PrecisionChoice

    monkeypatch.setattr(trainer_mod, "choose_precision", lambda *a, **k: PrecisionChoice("fp16"))
    sets = ("train.gradient_accumulation_steps=2", "optim.warmup_epochs=0", "optim.schedule=cosine",
            "train.nonfinite=stop")  # an overflow is no non-finite loss: it must not stop the run
    events = []
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=4", "name=fp16"),
                         callbacks=[events.append])
    assert trainer.precision.name == "fp16" and trainer.precision.scaler.is_enabled()
    trainer.precision.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)  # low: no overflow of its own
    micro_step, apply_update = trainer.step_fn.micro_step, trainer._apply_update
    calls = {"n": 0}

    def poisoned_micro_step(*args, **kwargs):
        micro_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # the second window's last micro-batch
            next(trainer.model.parameters()).grad.view(-1)[0] = float("inf")

    def state():
        return {"step": trainer.step, "schedule": trainer.scheduler.last_epoch, "logged_lr": trainer._logged_lr(),
                "lr": trainer.optimizer.param_groups[0]["lr"], "weights": params_of(trainer),
                "stats": [b.detach().clone() for b in trainer.window.stats], "scale": trainer.precision.scale}

    updates = []

    def recorded_apply_update():
        before = state()
        window_start = [b.detach().clone() for b in trainer.window.stats_backup]
        apply_update()
        updates.append((trainer.step_fn.skip_reason, before, state(), window_start))

    trainer.step_fn.micro_step = poisoned_micro_step
    trainer._apply_update = recorded_apply_update
    summary = trainer.fit()

    assert [u[0] for u in updates] == [None, "overflow", None, None, None]
    _, before, after, window_start = updates[1]
    for key in ("step", "schedule", "logged_lr", "lr"):
        assert after[key] == before[key], key
    assert all(torch.equal(a, b) for a, b in zip(before["weights"], after["weights"]))
    assert not all(torch.equal(a, b) for a, b in zip(before["stats"], window_start))  # the forward moved them
    assert all(torch.equal(a, b) for a, b in zip(after["stats"], window_start))  # rewound
    assert after["scale"] == before["scale"] / 2
    assert summary["steps"] == 4 and summary["overflow_skipped"] == 1 and summary["nonfinite_skipped"] == 0
    assert trainer.scheduler.last_epoch == 4  # one schedule step per applied update
    used = [u[1]["lr"] for u in updates if u[0] is None]  # the rate each applied update stepped with
    assert [e["lr"] for e in events if e["event"] == "step"] == pytest.approx(used)
    assert trainer.run.read_status()["overflow_skipped"] == 1
    last = trainer.run.last_checkpoint
    assert load_checkpoint(last)["progress"]["overflow_skipped"] == 1

    resumed = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=5"), resume=trainer.run_dir)
    assert resumed.overflow_skipped == 1 and resumed.precision.scale == trainer.precision.scale
    assert resumed.fit()["overflow_skipped"] == 1
    old = load_checkpoint(last)  # a checkpoint written before the counter existed resumes with 0
    del old["progress"]["overflow_skipped"]
    save_checkpoint(old, last)
    assert ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=6"),
                      resume=trainer.run_dir).overflow_skipped == 0


def test_auto_precision_is_fp16_on_a_gpu_that_only_emulates_bf16(monkeypatch):
    """A T4 / V100 (compute capability < 8): torch's is_bf16_supported() says True by default
    (bf16 is emulated there, far slower than fp16 tensor cores); auto must pick fp16."""
    from asl_cli.engine.precision import choose_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert choose_precision("cuda", mixed=True, requested="auto").name == "fp16"
    forced = choose_precision("cuda", mixed=True, requested="bf16")
    assert forced.name == "fp16" and "no bf16" in forced.note
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert choose_precision("cuda", mixed=True, requested="auto").name == "bf16"


def test_auto_precision_asks_the_run_s_own_gpu_not_the_current_one(tiny_data, tmp_path, monkeypatch):
    """A machine with an A100 as GPU 0 and a T4 as GPU 1, training on cuda:1 (a single process never
    calls torch.cuda.set_device, so the current device stays 0): torch.cuda.is_bf16_supported()
    answers for GPU 0; auto precision must be decided by the run's own device (fp16 on the T4)."""
    from asl_cli.engine import trainer as trainer_mod
    from asl_cli.engine.precision import choose_precision

    def capability(device=None):
        index = device.index if isinstance(device, torch.device) else device
        return (7, 5) if index == 1 else (8, 0)

    seen = []
    real = trainer_mod.choose_precision
    monkeypatch.setattr(trainer_mod, "choose_precision", lambda *a, **k: (seen.append(k.get("device")), real(*a, **k))[1])
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path))
    assert seen == [trainer.device]  # the trainer passes its own device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # GPU 0's answer
    assert choose_precision("cuda", mixed=True, requested="auto", device=torch.device("cuda", 1)).name == "fp16"
    assert choose_precision("cuda", mixed=True, requested="auto", device=torch.device("cuda", 0)).name == "bf16"


def test_a_log_point_reads_the_device_once(tiny_data, tmp_path, monkeypatch):
    """Loss sum and grad norm come to the host in ONE transfer (each .cpu()/.item()/.tolist()/float()
    of a CUDA tensor is a host-device sync)."""
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=3", "train.log_every=1"))
    reads, inside = [], {"on": False}
    for name in ("cpu", "item", "tolist", "numpy", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            if inside["on"]:
                reads.append(_name)
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    log_step = trainer._log_step
    calls = []

    def spy():
        inside["on"] = True
        try:
            before = len(reads)
            log_step()
            calls.append(reads[before:])
        finally:
            inside["on"] = False
    trainer._log_step = spy
    trainer.fit()
    assert len(calls) == 3 and all(c[0] is not None for c in calls)
    assert all(len(c) == 1 for c in calls), calls  # one read per log point (no AMP scale on the CPU)


def test_cpu_defaults_to_fp32_even_with_mixed_precision(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.use_mixed_precision=true"))
    assert trainer.precision.name == "fp32" and trainer.status["precision"] == "fp32"


def test_seed_keyword_overrides(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path), use_augmentations=False, use_mixed_precision=False,
                         gradient_clip_val=0.5, gradient_accumulation_steps=3)
    assert trainer.cfg.aug.use_augmentations is False and trainer.train_loader.dataset.augment is None
    assert trainer.cfg.train.gradient_clip_val == 0.5 and trainer.step_fn.clip_val == 0.5
    assert trainer.accum == 3 and trainer.step_fn.nominal == 16 * 3


def test_compile_failure_falls_back_to_eager_with_one_warning(tiny_data, tmp_path, monkeypatch):
    def broken_compile(model, **kwargs):
        def run(*args):
            raise RuntimeError("inductor: no working C compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.compile=true", "train.max_steps=3"))
    with pytest.warns(RuntimeWarning, match="torch.compile unavailable") as record:
        summary = trainer.fit()
    assert len([w for w in record if "torch.compile" in str(w.message)]) == 1
    assert summary["steps"] == 3
    assert trainer.status["compile"] == "fallback (eager)"
    assert any("torch.compile" in w for w in trainer.status["warnings"])


def test_compiled_backward_failure_retries_the_batch_eagerly(tiny_data, tmp_path, monkeypatch):
    """Inductor compiles the backward graph at the first backward pass; a failure there falls back
    to eager like a forward failure, and the update equals a plain eager run's."""
    from torch._dynamo.exc import BackendCompilerFailed

    class CompiledBackwardFails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise BackendCompilerFailed(lambda *a: None, RuntimeError("backward codegen failed"), None)

    def compile_with_broken_backward(model, **kwargs):
        return lambda features, mask: CompiledBackwardFails.apply(model(features, mask))

    sets = ("train.max_steps=2", "train.deterministic=true", "data.max_len=16", "model.drop_rate=0")  # no RNG draws
    reference = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "name=eager"))
    reference.fit()
    monkeypatch.setattr(torch, "compile", compile_with_broken_backward)
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.compile=true", "name=compiled"))
    with pytest.warns(RuntimeWarning, match="torch.compile unavailable.*BackendCompilerFailed"):
        assert trainer.fit()["steps"] == 2
    assert trainer.status["compile"] == "fallback (eager)"
    ref = reference.model.state_dict()
    got = trainer.model.state_dict()
    # Only the BN statistics of the retried batch saw it twice; every weight matches the eager run.
    weights = [k for k in ref if "running" not in k and "num_batches" not in k]
    assert weights and all(torch.allclose(ref[k], got[k], atol=1e-6) for k in weights)

    def oom(model, **kwargs):  # anything that is not a compiler error still stops the run
        class Fails(CompiledBackwardFails):
            @staticmethod
            def backward(ctx, grad):
                raise RuntimeError("a real error in backward")
        return lambda features, mask: Fails.apply(model(features, mask))

    monkeypatch.setattr(torch, "compile", oom)
    broken = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.compile=true", "name=real-error"))
    with pytest.raises(RuntimeError, match="a real error in backward"):
        broken.fit()


def test_tf32_follows_the_config_on_cuda_only(monkeypatch):
    """train.tf32 sets the legacy allow_tf32 flags (Inductor reads those; torch 2.13 refuses to read
    a precision set through a mix of the legacy and the new API) for a CUDA device, and leaves a
    CPU run's process-wide flags alone. The flags can be set without a GPU."""
    from types import SimpleNamespace

    from asl_cli.engine.device import configure_backends

    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    bench = torch.backends.cudnn.benchmark
    try:
        cfg = SimpleNamespace(deterministic=False, cudnn_benchmark=True, tf32=True)
        configure_backends(cfg, torch.device("cuda", 0))
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"  # readable: no mixed-API error
        configure_backends(SimpleNamespace(deterministic=False, cudnn_benchmark=True, tf32=False),
                           torch.device("cuda", 0))
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        configure_backends(cfg, torch.device("cpu"))  # a CPU run does not touch them
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        torch.backends.cudnn.benchmark = bench
        torch.use_deterministic_algorithms(False)


def test_cuda_only_settings_are_inert_on_cpu(tiny_data, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.empty_cache_every=1", "loader.pin_memory=true",
                                  "train.cudnn_benchmark=true", "train.max_steps=3"))
    assert not trainer.train_loader.pin_memory and not torch.backends.cudnn.benchmark
    trainer.fit()
    assert calls == []


# --- GPU only -----------------------------------------------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
def test_gpu_fp16_uses_grad_scaler_and_cudnn_flags(tiny_data, tmp_path, monkeypatch):
    calls = []
    real_empty_cache = torch.cuda.empty_cache
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: (calls.append(1), real_empty_cache()))
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.device=cuda", "train.precision=fp16",
                                  "train.max_steps=4", "train.cudnn_benchmark=true", "loader.pin_memory=true",
                                  "train.empty_cache_every=2"), use_mixed_precision=True)
    assert trainer.precision.name == "fp16" and trainer.precision.scaler.is_enabled()
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert trainer.train_loader.pin_memory
    summary = trainer.fit()
    assert summary["steps"] == 4 and trainer.status["amp_scale"] > 0
    assert len(calls) >= 2  # every 2 batches (4 updates x 1 batch each)
    assert trainer.status["peak_mem_source"] == "cuda_max_allocated"


@pytest.mark.gpu
@gpu
def test_gpu_auto_precision_and_deterministic_flags(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.device=cuda", "train.deterministic=true",
                                  "train.max_steps=2"), use_mixed_precision=True)
    from asl_cli.engine.precision import cuda_has_native_bf16

    expected = "bf16" if cuda_has_native_bf16() else "fp16"
    assert trainer.precision.name == expected
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert trainer.fit()["steps"] == 2


@pytest.mark.gpu
@gpu
def test_gpu_resume_restores_rng_and_continues(tiny_data, tmp_path):
    """A resume on CUDA: the checkpoint's RNG states must reach torch.set_rng_state as CPU tensors."""
    sets = ("train.device=cuda", "train.gradient_accumulation_steps=2")
    first = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=2", "name=gpu-resume"))
    first.fit()
    second = ASLTrainer(make_cfg(tiny_data, tmp_path, *sets, "train.max_steps=4"), resume=first.run_dir)
    assert second.step == 2 and second.fit()["steps"] == 4
    state = second.optimizer.state_dict()["state"]
    assert all(p.is_cuda for p in second.model.parameters())
    assert all(v.is_cuda for s in state.values() for k, v in s.items() if torch.is_tensor(v) and k != "step")


@pytest.mark.gpu
@gpu
def test_gpu_status_names_the_device_by_uuid_as_nvml_does(tiny_data, tmp_path):
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.device=cuda", "train.max_steps=1"))
    uuid = trainer.status["gpu_uuid"]
    assert uuid and uuid == str(torch.cuda.get_device_properties(trainer.device).uuid)
    from asl_cli.monitor.base import same_gpu
    from asl_cli.monitor.nvml import NVMLBackend

    backend = NVMLBackend()
    try:
        backend.init()
    except Exception as exc:  # noqa: BLE001 - a GPU without NVML still ran the rest of the test
        pytest.skip(f"NVML unavailable: {exc}")
    snaps = backend.snapshots()
    assert sum(same_gpu(s.uuid, uuid) for s in snaps) == 1


def test_an_improving_epoch_saves_last_before_best(tiny_data, tmp_path, monkeypatch):
    """On a disk that fills up, the resumable checkpoint must be the one written first."""
    import asl_cli.engine.trainer as trainer_mod

    written = []
    real_save = trainer_mod.save_checkpoint
    monkeypatch.setattr(trainer_mod, "save_checkpoint",
                        lambda payload, path: (written.append(payload["progress"]["kind"]), real_save(payload, path))[1])
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.epochs=2"))
    trainer.fit()
    assert written[0] == "last"  # the run's start
    assert written[1:3] == ["last", "best"]  # epoch 1 improves on nothing: last, then best
    assert written.count("last") == 3


def test_resume_from_a_checkpoint_without_trainer_state_is_one_checkpoint_error(tiny_data, tmp_path):
    from asl_cli.engine.checkpoint import load_checkpoint, save_checkpoint
    from asl_cli.errors import CheckpointError

    first = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=1", "name=cut"))
    first.fit()
    last = first.run.last_checkpoint
    ckpt = load_checkpoint(last)
    del ckpt["sampler"], ckpt["rng"]  # e.g. a file cut down by hand to share the weights
    save_checkpoint(ckpt, last)
    with pytest.raises(CheckpointError, match="no rng, sampler in the checkpoint") as info:
        ASLTrainer(make_cfg(tiny_data, tmp_path, "train.max_steps=2"), resume=first.run_dir)
    assert str(last) in str(info.value)


def test_a_forked_child_does_not_keep_the_folder_locked_after_its_parent_is_gone(tmp_path):
    """A DataLoader worker is a forked child: after a kill -9 of the trainer (here: its descriptor
    closed without unlocking) the folder must be free at once, not when the worker notices."""
    import os
    import time

    from asl_cli.engine.run_dir import FolderLock

    lock = FolderLock(tmp_path)
    assert lock.held and not folder_is_free(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "worker": forked (its at-fork hooks have run), then lives on doing nothing
        os.write(ready_w, b"x")
        time.sleep(5)
        os._exit(0)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"x"
        os.close(lock._fd)  # the trainer dies: no LOCK_UN, the kernel just drops its descriptor
        lock._fd = None
        assert folder_is_free(tmp_path)
    finally:
        os.close(ready_r)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
