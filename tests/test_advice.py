"""The advice rules (asl_cli/engine/advice.py): each one holds in a case made for it and not in
the case next to it; the trainer records them, the dashboard and gpu-watch show them."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest

from asl_cli.engine.advice import advise
from asl_cli.ui.dashboard import JSON, PLAIN, TrainDashboard
from kit import FIXTURES, run_asl

MIB = 1024 * 1024
RUNNING = {"state": "running", "device": "cuda:0", "step": 200, "batch_size": 64, "accumulation": 1}


def gpu(**fields):
    base = dict(util_gpu=95, memory_used=6000 * MIB, memory_total=12282 * MIB, throttle_reasons=0)
    return SimpleNamespace(**{**base, **fields})


def rules(status, snapshot=None, **kw):
    return [a.rule for a in advise(status, snapshot, **kw)]


def test_a_healthy_gpu_run_gets_no_advice():
    assert rules({**RUNNING, "data_wait": 0.05, "peak_mem_mb": 6000, "gpu_mem_total_mb": 12282}, gpu()) == []


@pytest.mark.parametrize("status, snapshot, cores, rule", [
    ({**RUNNING, "data_wait": 0.40, "num_workers": 2}, None, 16, "data-starved"),
    ({**RUNNING, "data_wait": 0.05}, gpu(util_gpu=30), None, "gpu-underused"),
    ({**RUNNING, "peak_mem_mb": 11800, "gpu_mem_total_mb": 12282}, None, None, "vram-pressure"),
    ({**RUNNING, "peak_mem_mb": 2000, "gpu_mem_total_mb": 12282}, None, None, "vram-headroom"),
    (RUNNING, gpu(throttle_reasons=0x40), None, "throttling"),
    (RUNNING, gpu(throttle_reasons=0x4), None, "throttling"),
    ({**RUNNING, "compile": "fallback (eager)", "eager_reason": "no C compiler"}, None, None, "recompiling"),
    ({**RUNNING, "compile": "on", "eager_batches": 12}, None, None, "recompiling"),
    ({**RUNNING, "nonfinite_skipped": 2}, None, None, "non-finite"),
    ({**RUNNING, "overflow_skipped": 40}, None, None, "non-finite"),
    ({"state": "running", "device": "cpu", "torch_threads": 2, "num_workers": 2}, None, 2, "cpu-oversubscribed"),
])
def test_each_rule_holds_where_it_should(status, snapshot, cores, rule):
    assert rule in rules(status, snapshot, cores=cores)


@pytest.mark.parametrize("status, snapshot, cores, rule", [
    ({**RUNNING, "data_wait": 0.10, "num_workers": 2}, None, 16, "data-starved"),
    # a 2-core CPU: the data work stays in the training process on purpose (no worker to add)
    ({"state": "running", "device": "cpu", "data_wait": 0.40, "num_workers": 0}, None, 2, "data-starved"),
    ({**RUNNING, "data_wait": 0.05}, gpu(util_gpu=80), None, "gpu-underused"),
    ({**RUNNING, "data_wait": 0.50}, gpu(util_gpu=30), None, "gpu-underused"),  # the loader's fault, not the batch's
    ({**RUNNING, "peak_mem_mb": 9000, "gpu_mem_total_mb": 12282}, None, None, "vram-pressure"),
    ({**RUNNING, "step": 10, "peak_mem_mb": 2000, "gpu_mem_total_mb": 12282}, None, None, "vram-headroom"),
    ({**RUNNING, "peak_mem_mb": 7000, "gpu_mem_total_mb": 12282}, None, None, "vram-headroom"),
    (RUNNING, gpu(throttle_reasons=0x1), None, "throttling"),  # GPU idle: not a slowdown
    (RUNNING, gpu(throttle_reasons=None), None, "throttling"),  # N/A on this GPU
    ({**RUNNING, "compile": "on", "eager_batches": 0}, None, None, "recompiling"),
    ({**RUNNING, "overflow_skipped": 3, "step": 500}, None, None, "non-finite"),  # the scale settling
    ({"state": "running", "device": "cpu", "torch_threads": 1, "num_workers": 1}, None, 2, "cpu-oversubscribed"),
])
def test_each_rule_stays_quiet_next_to_its_case(status, snapshot, cores, rule):
    assert rule not in rules(status, snapshot, cores=cores)


def test_messages_name_the_flag_to_change():
    by_rule = {a.rule: a.message for a in advise(
        {**RUNNING, "data_wait": 0.4, "num_workers": 2, "peak_mem_mb": 11900, "gpu_mem_total_mb": 12282,
         "nonfinite_skipped": 1}, gpu(throttle_reasons=0x20), cores=8)}
    assert "--workers N, now 2" in by_rule["data-starved"]
    assert "--batch-size 32 --set train.gradient_accumulation_steps=2" in by_rule["vram-pressure"]
    assert "--set train.precision=bf16" in by_rule["non-finite"]
    assert "thermal" in by_rule["throttling"]
    headroom = advise({**RUNNING, "peak_mem_mb": 2000, "gpu_mem_total_mb": 12282})[0]
    assert headroom.message.endswith("about --batch-size 312 would fit")  # 64 x 0.8 x 12282 / 2000 = 314 -> x 8


def test_the_trainer_records_its_advice_in_status_json(tiny_data, tmp_path):
    from asl_cli.config import load_config
    from asl_cli.engine.parallelism import available_cpus
    from asl_cli.engine.trainer import ASLTrainer

    workers = available_cpus()  # with the compute thread, one more than the cores
    cfg = load_config("cpu", [f"data.data_dir={tiny_data.data}", f"data.cache_dir={tiny_data.cache}",
                              f"runs_dir={tmp_path}", "model.dim=32", "model.blocks=1", "data.max_len=32",
                              "train.max_steps=2", "train.epochs=1", "train.log_every=1", "train.device=cpu",
                              f"loader.num_workers={workers}", "loader.persistent_workers=false"])
    trainer = ASLTrainer(cfg)
    trainer.fit()
    status = trainer.run.read_status()
    assert "cpu-oversubscribed" in [a["rule"] for a in status["advice"]]
    assert status["cpus"] == available_cpus()
    metrics = [json.loads(line) for line in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all("advice" not in m for m in metrics)  # status only: not repeated in every line


def test_plain_output_says_each_new_advice_once_and_json_says_when_it_changes():
    out = io.StringIO()
    board = TrainDashboard(PLAIN, out=out, log_interval=1e9)
    starved = {"event": "step", **RUNNING, "data_wait": 0.5, "num_workers": 1}
    board(starved)
    board(starved)
    board({**starved, "data_wait": 0.05})
    board(starved)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("advice")]
    assert lines == [lines[0]] * 2 and lines[0].startswith("advice data-starved: the model waits for data 50% of the time")

    out = io.StringIO()
    board = TrainDashboard(JSON, out=out, log_interval=1e9)
    board(starved)
    board(starved)
    board({**starved, "data_wait": 0.05})
    events = [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == "advice"]
    assert [[a["rule"] for a in e["advice"]] for e in events] == [["data-starved"], []]


def test_gpu_watch_shows_a_throttling_gpu_to_its_run(tmp_path):
    fake = json.loads((FIXTURES / "fake_gpus.json").read_text())
    fake["gpus"][0]["throttle_reasons"] = 0x40  # hardware thermal slowdown
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(fake))
    run = tmp_path / "runs" / "hot"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({**RUNNING, "run": "hot", "gpu_uuid": fake["gpus"][0]["uuid"]}))
    r = run_asl("gpu-watch", "--fake-gpu", path, "--once", "--json", "--run", run)
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout.splitlines()[-1])
    hot_rules = [a["rule"] for a in obj["advice"]]
    assert "throttling" in hot_rules and "hardware thermal slowdown" in obj["advice"][hot_rules.index("throttling")]["message"]
    assert obj["gpus"][0]["throttle_reasons"] == 0x40
    cool = run_asl("gpu-watch", "--fake-gpu", FIXTURES / "fake_gpus.json", "--once", "--json", "--run", run)
    cool_rules = [a["rule"] for a in json.loads(cool.stdout.splitlines()[-1])["advice"]]
    assert "throttling" not in cool_rules and cool_rules == [r for r in hot_rules if r != "throttling"]
    finished = run / "status.json"
    finished.write_text(json.dumps({**RUNNING, "state": "finished", "run": "hot"}))
    done = run_asl("gpu-watch", "--fake-gpu", path, "--once", "--json", "--run", run)
    assert json.loads(done.stdout.splitlines()[-1])["advice"] == []  # a finished run: nothing to fix now


# --- TensorBoard event files (train.tensorboard, extra `tensorboard`) ---------------------------

def test_a_run_writes_tensorboard_scalars_that_read_back(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")  # CI installs it (the dev extra); skipped only by hand-made envs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from asl_cli.config import load_config
    from asl_cli.engine.trainer import ASLTrainer

    cfg = load_config("cpu", [f"data.data_dir={tiny_data.data}", f"data.cache_dir={tiny_data.cache}",
                              f"runs_dir={tmp_path}", "model.dim=32", "model.blocks=1", "data.max_len=32",
                              "train.max_steps=3", "train.epochs=1", "train.log_every=1", "train.device=cpu",
                              "loader.num_workers=0", "train.tensorboard=on"])
    trainer = ASLTrainer(cfg)
    trainer.fit()
    events = EventAccumulator(str(trainer.run.tensorboard_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s", "train/data_wait",
            "val/loss", "val/top1", "val/top5"} <= tags
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3]
    logged = [json.loads(line) for line in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    assert [round(e.value, 5) for e in losses] == [round(m["loss"], 5) for m in logged if m["event"] == "step"]
    evals = [m for m in logged if m["event"] == "eval"]
    assert events.Scalars("val/top1")[-1].value == pytest.approx(evals[-1]["val_top1"], abs=1e-6)


def test_tensorboard_off_writes_nothing_and_on_without_the_package_is_one_line(tiny_data, tmp_path, monkeypatch):
    from asl_cli.config import load_config
    from asl_cli.engine import tensorboard_log
    from asl_cli.engine.trainer import ASLTrainer
    from asl_cli.errors import ConfigError

    base = [f"data.data_dir={tiny_data.data}", f"data.cache_dir={tiny_data.cache}", f"runs_dir={tmp_path}",
            "model.dim=32", "model.blocks=1", "data.max_len=32", "train.max_steps=1", "train.epochs=1",
            "train.device=cpu", "loader.num_workers=0"]
    trainer = ASLTrainer(load_config("cpu", base + ["train.tensorboard=off", "name=off"]))
    trainer.fit()
    assert not trainer.run.tensorboard_dir.exists()
    monkeypatch.setattr(tensorboard_log, "available", lambda: False)
    with pytest.raises(ConfigError, match=r'pip install "asl-cli\[tensorboard\]"'):
        ASLTrainer(load_config("cpu", base + ["train.tensorboard=on", "name=missing"]))
    assert not (tmp_path / "missing").exists()  # refused before a run folder was made
    quiet = ASLTrainer(load_config("cpu", base + ["name=auto"]))  # auto: nothing, no complaint
    assert not any(isinstance(c, tensorboard_log.TensorBoardLog) for c in quiet.callbacks)
