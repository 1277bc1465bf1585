"""`asl ablate` and asl_cli/tools/ablation.py: variants as data, same budget, deltas, files, resume."""

from __future__ import annotations

import functools
import json
import signal
import sys

import pytest
from typer.testing import CliRunner

from asl_cli.tools import ablation
from asl_cli.tools.ablation import (BASELINE, VARIANTS, check_resumable, comparison_rows, metric_delta,
                              plan_ablation, variant_config, variant_note, write_chart)
from asl_cli.cli.app import app
from asl_cli.config import load_config
from asl_cli.errors import ConfigError
from kit import lock_held, run_asl, start_asl, tiny_cli_args

runner = CliRunner()


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


# --- the library --------------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["cpu", "rtx4070", "winner"])
def test_each_variant_differs_from_the_baseline_only_by_its_overrides(preset):
    base = load_config(preset)
    base.train.max_steps, base.train.time_budget = 7, 30.0
    plan = plan_ablation(base, list(VARIANTS), device_type="cuda", out_dir="/tmp/x", force=True)
    assert plan.names == [BASELINE, *VARIANTS] and plan.skipped == []
    b = flat(plan.entries[0][2].to_dict())
    for name, _desc, cfg, _note in plan.entries[1:]:
        d = flat(cfg.to_dict())
        changed = {k for k in b if b[k] != d[k]} - {"name"}
        assert changed <= set(VARIANTS[name].overrides), (name, changed)
        # ...and the overrides are really applied (a variant that trains the baseline is no ablation)
        for key, value in VARIANTS[name].overrides.items():
            assert d[key] == value, (name, key, d[key])
        # same seed, data and budget for everyone
        for key in ("train.seed", "data.data_dir", "train.max_steps", "train.time_budget", "train.epochs"):
            assert d[key] == b[key]
        assert cfg.runs_dir == "/tmp/x" and cfg.name == name


def test_notes_label_variants_that_change_nothing_here():
    rtx, cpu = load_config("rtx4070"), load_config("cpu")
    assert variant_note(rtx, VARIANTS["no-amp"], "cuda") == ""
    assert variant_note(rtx, VARIANTS["no-amp"], "cpu") == "same as baseline on CPU (AMP is off there)"
    assert variant_note(cpu, VARIANTS["no-amp"], "cpu").startswith("same as baseline (train.use_mixed_precision")
    assert variant_note(rtx, VARIANTS["empty-cache"], "cpu") == "same as baseline on CPU (CUDA-only setting)"
    assert variant_note(rtx, VARIANTS["empty-cache"], "cuda") == ""
    assert variant_note(rtx, VARIANTS["no-compile"], "cuda") == ""  # the GPU presets compile
    assert variant_note(cpu, VARIANTS["no-compile"], "cpu").startswith("same as baseline")  # compile is off
    assert variant_note(cpu, VARIANTS["no-bucketing"], "cpu") == ""
    assert variant_note(cpu, VARIANTS["no-aug"], "cpu") == ""


@pytest.mark.parametrize("cpus, note", [
    (2, "same as baseline here (auto chose no worker"),
    (4, "baseline: 1 worker(s) and 3 compute thread(s); this variant: none and 4"),
])
def test_no_workers_against_auto_says_what_auto_chose_here(cpus, note, monkeypatch):
    import torch

    from asl_cli.engine import parallelism

    monkeypatch.setattr(parallelism, "available_cpus", lambda: cpus)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        assert variant_note(load_config("cpu"), VARIANTS["no-workers"], "cpu").startswith(note)
    finally:
        torch.set_num_threads(before)
    assert variant_note(load_config("rtx4070"), VARIANTS["no-workers"], "cpu") == ""  # 4 workers as set


def test_variants_that_change_nothing_here_are_not_run_unless_forced():
    cpu = load_config("cpu")
    plan = plan_ablation(cpu, ["no-aug", "no-amp", "empty-cache"], device_type="cpu", out_dir="/tmp/x")
    assert plan.names == [BASELINE, "no-aug"]
    assert [name for name, _ in plan.skipped] == ["no-amp", "empty-cache"]
    assert dict(plan.skipped)["no-amp"].startswith("same as baseline (train.use_mixed_precision")
    assert ablation.skipped_lines(plan.skipped)[1] == ("not run: empty-cache: same as baseline on CPU (CUDA-only "
                                                       "setting); --force runs it anyway")
    forced = plan_ablation(cpu, ["no-aug", "no-amp"], device_type="cpu", out_dir="/tmp/x", force=True)
    assert forced.names == [BASELINE, "no-aug", "no-amp"] and forced.skipped == []
    # on a GPU with AMP on, no-amp changes something: it runs
    rtx = load_config("rtx4070")
    assert plan_ablation(rtx, ["no-amp"], device_type="cuda", out_dir="/tmp/x").names == [BASELINE, "no-amp"]


def test_a_resumed_ablation_plans_its_skipped_variants_again(tmp_path):
    plan = plan_ablation(load_config("cpu"), ["no-aug", "no-amp"], device_type="cpu", out_dir=tmp_path)
    ablation.write_results(plan, {})
    base, variants, folder, force = ablation.resume_from(tmp_path)
    assert variants == ["no-aug", "no-amp"] and folder == tmp_path and force is False
    again = plan_ablation(base, variants, device_type="cpu", out_dir=folder, force=force)
    assert again.names == plan.names and again.skipped == plan.skipped


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown ablation variant 'no-magic'"):
        plan_ablation(load_config("cpu"), ["no-magic"], device_type="cpu")


def test_deltas_absolute_for_accuracy_relative_for_speed():
    assert metric_delta("best_top1", 0.5, 0.4) == pytest.approx(0.1)
    assert metric_delta("samples_per_s", 150.0, 100.0) == pytest.approx(50.0)
    assert metric_delta("peak_mem_mb", 50.0, 100.0) == pytest.approx(-50.0)
    assert metric_delta("wall_s", 1.0, None) is None and metric_delta("samples_per_s", 1.0, 0) is None
    results = {BASELINE: {"status": "done", "best_top1": 0.4, "samples_per_s": 100.0},
               "no-aug": {"status": "done", "best_top1": 0.3, "samples_per_s": 120.0, "note": ""}}
    rows = comparison_rows(results, [BASELINE, "no-aug", "no-amp"])
    assert [r["variant"] for r in rows] == [BASELINE, "no-aug"]  # unfinished variants are left out
    assert rows[0]["best_top1_delta"] is None
    assert rows[1]["best_top1_delta"] == pytest.approx(-0.1) and rows[1]["samples_per_s_delta"] == pytest.approx(20.0)


def test_rows_table_and_notes_mark_a_resumed_variant():
    from rich.console import Console

    from asl_cli.ui.ablation import RESUMED_MARK, comparison_table, notes_lines

    results = {BASELINE: {"status": "done", "best_top1": 0.4, "samples_per_s": 100.0},
               "no-aug": {"status": "done", "best_top1": 0.3, "samples_per_s": 20.0, "resumed": True}}
    rows = comparison_rows(results, [BASELINE, "no-aug"])
    assert [r["resumed"] for r in rows] == [False, True]
    console = Console(width=100, record=True)
    console.print(comparison_table(rows))
    text = console.export_text()
    assert f"no-aug {RESUMED_MARK}" in text and f"baseline {RESUMED_MARK}" not in text
    notes = notes_lines(rows)
    assert len(notes) == 1 and notes[0].startswith(f"{RESUMED_MARK} no-aug: resumed")
    assert "samples/s, peak memory and wall time cover only the part after the resume" in notes[0]


@pytest.mark.parametrize("mode", ["plain", "live", "json"])
def test_the_final_table_marks_variants_resumed_earlier(tmp_path, monkeypatch, mode):
    """results.json's `"resumed": true` shows in the table (live and plain) and in the JSON rows."""
    import asl_cli.ui.dashboard as dashboard

    from asl_cli.ui.ablation import RESUMED_MARK

    plan = plan_ablation(load_config("cpu"), ["no-aug"], device_type="cpu", out_dir=tmp_path)
    ablation.write_results(plan, {BASELINE: {"status": "done", "best_top1": 0.5, "note": ""},
                                  "no-aug": {"status": "done", "best_top1": 0.4, "note": "", "resumed": True}})
    monkeypatch.delenv("ASL_FAKE_GPU", raising=False)
    if mode == "live":  # CliRunner's stdout is no terminal: ask for the live dashboard anyway
        monkeypatch.setattr(dashboard, "choose_mode", lambda **kwargs: dashboard.LIVE)
    extra = {"plain": ["--plain"], "live": [], "json": ["--json"]}[mode]
    r = runner.invoke(app, ["ablate", "--resume", str(tmp_path), *extra])
    assert r.exit_code == 0, r.output
    if mode == "json":
        rows = json.loads(r.stdout.splitlines()[-1])["rows"]
        assert {row["variant"]: row["resumed"] for row in rows} == {BASELINE: False, "no-aug": True}
        return
    assert f"no-aug {RESUMED_MARK}" in r.stdout and f"{RESUMED_MARK} no-aug: resumed" in r.stdout
    assert f"baseline {RESUMED_MARK}" not in r.stdout


def test_resuming_with_another_configuration_is_refused(tmp_path):
    base = load_config("cpu")
    plan = plan_ablation(base, ["no-aug"], device_type="cpu", out_dir=tmp_path)
    ablation.write_results(plan, {BASELINE: {"status": "done", "best_top1": 0.5}})
    kept = check_resumable(plan, ablation.load_results(tmp_path))
    assert list(kept) == [BASELINE]
    other = load_config("cpu")
    other.train.seed = 1
    with pytest.raises(ConfigError, match="different configuration"):
        check_resumable(plan_ablation(other, ["no-aug"], device_type="cpu", out_dir=tmp_path),
                        ablation.load_results(tmp_path))


def _an_ablation_stopped_before_its_first_variant(tmp_path, monkeypatch):
    """A `no-aug` ablation in tmp_path whose trainer stops at once: (its plan, its results.json)."""
    import asl_cli.engine.trainer as trainer_mod
    from asl_cli.errors import TrainingInterrupted

    class StoppedTrainer:
        def __init__(self, cfg, **kwargs):
            self.device = "cpu"

        def fit(self):
            raise TrainingInterrupted("stopped")

    monkeypatch.setattr(trainer_mod, "ASLTrainer", StoppedTrainer)
    plan = plan_ablation(load_config("cpu"), ["no-aug"], device_type="cpu", out_dir=tmp_path)
    with pytest.raises(TrainingInterrupted):
        ablation.run_ablation(plan, warmup_steps=0)
    return plan, ablation.load_results(tmp_path)


def test_an_ablation_stopped_in_its_first_variant_can_be_resumed(tmp_path, monkeypatch):
    """Ctrl-C during the baseline: the stop line says `asl ablate --resume DIR`, so DIR must already
    be an ablation folder (results.json with its configuration), and a rerun with another
    configuration must be refused rather than resume the old baseline's checkpoint."""
    plan, doc = _an_ablation_stopped_before_its_first_variant(tmp_path, monkeypatch)
    assert doc is not None and doc["results"] == {} and doc["variants"] == [BASELINE, "no-aug"]
    ok = runner.invoke(app, ["ablate", "--resume", str(tmp_path), "--print-config", "--plain"])
    assert ok.exit_code == 0, ok.output
    other = load_config("cpu")
    other.train.seed = 1
    with pytest.raises(ConfigError, match="different configuration"):
        ablation.run_ablation(plan_ablation(other, ["no-aug"], device_type="cpu", out_dir=tmp_path), warmup_steps=0)


def test_an_ablation_folder_of_an_older_version_still_resumes(tmp_path, monkeypatch):
    """results.json written before issue 17: `data.compiled` in its configuration and the retired
    `no-compiled-data` variant in its list. Both are dropped; the same ablation continues."""
    plan, doc = _an_ablation_stopped_before_its_first_variant(tmp_path, monkeypatch)
    doc["base_config"]["data"]["compiled"] = True
    doc["variants"].append("no-compiled-data")
    (tmp_path / ablation.RESULTS_JSON).write_text(json.dumps(doc))
    ok = runner.invoke(app, ["ablate", "--resume", str(tmp_path), "--print-config", "--plain"])
    assert ok.exit_code == 0, ok.output
    again = plan_ablation(load_config("cpu"), doc["variants"][1:], device_type="cpu", out_dir=tmp_path)
    assert again.names == [BASELINE, "no-aug"]
    assert check_resumable(again, doc) == {}  # the same configuration: no "different configuration" error


def test_a_variant_killed_after_its_last_checkpoint_is_recorded_as_finished(tmp_path, monkeypatch):
    """Killed between its final checkpoint and results.json: the resumed trainer has nothing left
    to train ("already_finished"); the ablation records the variant as finished, not as that."""
    import asl_cli.engine.trainer as trainer_mod

    class FinishedTrainer:
        def __init__(self, cfg, **kwargs):
            self.device = "cpu"

        def fit(self):
            return {"state": "already_finished", "reason": "already finished its 1 epochs (3 steps)",
                    "steps": 3, "best_top1": 0.5, "wall_s": 0.0, "samples_per_s": None}

    monkeypatch.setattr(trainer_mod, "ASLTrainer", FinishedTrainer)
    plan = plan_ablation(load_config("cpu"), ["no-aug"], device_type="cpu", out_dir=tmp_path)
    results = ablation.run_ablation(plan, warmup_steps=0)
    assert {r["state"] for r in results.values()} == {"finished"} and len(results) == 2


@pytest.mark.parametrize("extra", [["--max-steps", "50"], ["--set", "model.dim=32"], ["--no-clip"],
                                   ["--preset", "rtx4070"], ["--all"]])
def test_resume_refuses_options_that_would_change_the_ablation(tmp_path, extra):
    # docs/ablate.md: resuming with a different configuration is refused (exit 2), not silently ignored
    plan = plan_ablation(load_config("cpu"), ["no-aug"], device_type="cpu", out_dir=tmp_path)
    ablation.write_results(plan, {BASELINE: {"status": "done", "best_top1": 0.5}})
    r = runner.invoke(app, ["ablate", "--resume", str(tmp_path), *extra])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: --resume") and extra[0] in r.stderr
    ok = runner.invoke(app, ["ablate", "--resume", str(tmp_path), "--print-config", "--plain"])
    assert ok.exit_code == 0 and 'preset = "cpu"' in ok.stdout


def test_chart_is_skipped_without_matplotlib(tmp_path, monkeypatch):
    results = {BASELINE: {"best_top1": 0.5, "samples_per_s": 10.0}, "no-aug": {"best_top1": 0.4}}
    png = write_chart(results, [BASELINE, "no-aug"], tmp_path / "a.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert write_chart(results, [BASELINE, "no-aug"], tmp_path / "b.png") is None
    assert not (tmp_path / "b.png").exists()


def test_every_variant_has_a_cli_flag():
    out = runner.invoke(app, ["ablate", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0
    for name in VARIANTS:
        assert f"--{name}" in out.stdout, name


# --- end to end -----------------------------------------------------------------------------------

# `tiny` (the 4-sign set, this module's runs folder) and `env` (its cache, no fake GPU): conftest.py
tiny_args = functools.partial(tiny_cli_args, "ablate")  # tiny_args(tiny, name, *extra)


def test_ablate_runs_every_variant_with_one_budget_and_writes_the_results(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "e2e", "--max-steps", "3", "--epochs", "5", "--no-aug", "--no-clip",
                                       "--no-amp"))
    assert out.exit_code == 0, out.stderr
    folder = tiny.runs / "ablate-e2e"
    doc = json.loads((folder / "results.json").read_text())
    assert doc["variants"] == [BASELINE, "no-aug", "no-clip"]  # the order of VARIANTS
    # the cpu preset has AMP off already: no-amp would train the baseline again, so it is not run
    assert list(doc["skipped"]) == ["no-amp"] and doc["skipped"]["no-amp"].startswith("same as baseline")
    assert not (folder / "no-amp").exists() and doc["force"] is False
    res = doc["results"]
    assert all(res[v]["status"] == "done" and res[v]["steps"] == 3 for v in doc["variants"])
    for v in doc["variants"]:  # each variant's own run folder holds the config it trained with
        cfg = json.loads((folder / v / "config.json").read_text())
        assert cfg["train"]["seed"] == 42 and cfg["train"]["max_steps"] == 3
        assert cfg["aug"]["use_augmentations"] is (v != "no-aug")
        assert cfg["train"]["gradient_clip_val"] == (0.0 if v == "no-clip" else 1.0)
    csv_lines = (folder / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,status,note,best_top1,best_top1_delta") and len(csv_lines) == 4
    assert (folder / "results.png").is_file()
    text = out.stdout
    assert "deltas against the baseline" in text and "no-clip" in text
    why = f"not run: no-amp: {doc['skipped']['no-amp']}; --force runs it anyway"
    assert text.splitlines()[0] == why  # said before the runs, and again under the table
    assert text.count(why) == 2
    assert f"results: {folder / 'results.json'}" in text
    lines = text.splitlines()
    block = lines[lines.index("next:") + 1:]
    assert block[0].startswith(f"  asl evaluate {folder / BASELINE}")
    assert block[1].startswith(f"  asl evaluate {folder / 'no-aug'}")
    assert block[2].startswith(f"  asl predict {folder / BASELINE} {tiny.data / 'train_landmark_files'}")
    # --force runs it (its note says its deltas are the noise)
    forced = runner.invoke(app, tiny_args(tiny, "e2e-force", "--max-steps", "1", "--no-amp", "--force"))
    assert forced.exit_code == 0, forced.output
    doc = json.loads((tiny.runs / "ablate-e2e-force" / "results.json").read_text())
    assert doc["variants"] == [BASELINE, "no-amp"] and doc["skipped"] == {} and doc["force"] is True
    assert "* no-amp: same as baseline" in forced.stdout and "not run:" not in forced.stdout


def test_ablate_json_and_print_config(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "json", "--max-steps", "1", "--no-aug", "--json"))
    assert out.exit_code == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["variant"] for e in events if e["event"] == "variant"] == [BASELINE, "no-aug"]
    final = events[-1]
    assert final["event"] == "ablation" and [r["variant"] for r in final["rows"]] == [BASELINE, "no-aug"]
    assert final["skipped"] == [] and [s["what"] for s in final["next"]][:3] == ["evaluate", "evaluate", "predict"]
    skipping = runner.invoke(app, tiny_args(tiny, "json-skip", "--max-steps", "1", "--no-amp", "--json"))
    events = [json.loads(line) for line in skipping.stdout.splitlines()]
    assert events[0]["event"] == "variant_skipped" and events[0]["variant"] == "no-amp"
    assert events[-1]["skipped"] == [{"variant": "no-amp", "reason": events[0]["reason"]}]
    cfg = runner.invoke(app, ["ablate", "--preset", "rtx4070", "--epochs", "2", "--print-config", "--json"])
    assert cfg.exit_code == 0 and json.loads(cfg.stdout)["train"]["epochs"] == 2


def test_the_missing_chart_hint_names_the_plot_extra(tiny, env, monkeypatch):
    monkeypatch.setattr(ablation, "write_chart", lambda *args, **kwargs: None)  # as without matplotlib
    out = runner.invoke(app, tiny_args(tiny, "nochart", "--max-steps", "1", "--no-aug", "--plain"))
    assert out.exit_code == 0, out.stderr
    # "[plot]" is text, not Rich markup (which silently dropped it)
    assert "chart skipped: matplotlib is not installed (pip install 'asl-cli[plot]')" in out.stdout


def test_interrupted_ablation_resumes_without_redoing_finished_variants(tiny, env):
    folder = tiny.runs / "ablate-resume"
    args = tiny_args(tiny, "resume", "--epochs", "1000", "--time-budget", "3", "--no-aug", "--plain",
                     "--log-interval", "0.2")
    proc = start_asl(*args, env=env)
    in_second = False
    for line in proc.stdout:
        in_second = in_second or line.startswith("variant 2/2 no-aug")
        if in_second and line.startswith("eta ") and "step 0/" not in line:
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"continue with: asl ablate --resume {folder}" in err
    before = json.loads((folder / "results.json").read_text())["results"]
    assert list(before) == [BASELINE]
    assert (folder / "no-aug" / "checkpoints" / "last.pt").is_file()

    again = run_asl("ablate", "--resume", folder, "--plain", env=env)
    assert again.returncode == 0, again.stderr
    assert "variant 1/2 baseline (done earlier)" in again.stdout
    after = json.loads((folder / "results.json").read_text())["results"]
    assert after[BASELINE] == before[BASELINE]  # not redone
    assert after["no-aug"]["status"] == "done" and after["no-aug"]["resumed"] is True
    assert "no-aug" in again.stdout and "deltas against the baseline" in again.stdout
    assert "no-aug †" in again.stdout and "† no-aug: resumed from its checkpoint" in again.stdout


def test_subprocess_exit_codes(tiny, env):
    bad = run_asl("ablate", "--resume", tiny.runs, env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"error: {tiny.runs}: not an ablation folder (no results.json)"
    ok = run_asl("ablate", "--print-config", env=env)
    assert ok.returncode == 0 and 'preset = "cpu"' in ok.stdout



def test_amp_note_follows_the_engine_rule_for_cpu_bf16():
    rtx = load_config("rtx4070")
    rtx.train.precision = "bf16"  # the CPU autocasts in bf16 when asked explicitly
    assert variant_note(rtx, VARIANTS["no-amp"], "cpu") == ""
    rtx.train.precision = "fp16"  # fp16 needs CUDA: fp32 on the CPU
    assert variant_note(rtx, VARIANTS["no-amp"], "cpu").startswith("same as baseline on CPU")


def test_live_progress_in_a_pseudo_terminal(tiny, env):
    """In a terminal: the variant line (which one runs, which are done) above the training panel."""
    res = run_asl(*tiny_args(tiny, "pty", "--max-steps", "3", "--no-aug"), env=env, pty=True)
    assert res.returncode == 0
    text = res.text
    assert "ablation ablate-pty" in text and "no-aug running" in text and "baseline done" in text
    assert "samples/s" in text and "loss" in text
    assert "deltas against the baseline" in text


def test_variant_config_leaves_the_baseline_alone():
    base = load_config("rtx4070")
    before = base.to_dict()
    cfg = variant_config(base, VARIANTS["no-accum"])
    assert cfg.train.gradient_accumulation_steps == 1 and base.to_dict() == before


def test_ablation_name_cannot_leave_the_runs_folder():
    base = load_config("cpu")
    base.name = "../elsewhere"
    with pytest.raises(ConfigError, match="is not allowed"):
        plan_ablation(base, ["no-aug"], device_type="cpu")


def test_a_second_ablation_on_the_same_folder_is_refused(tmp_path, monkeypatch):
    import asl_cli.engine.trainer as trainer_mod

    trained = []

    class FakeTrainer:  # the lock is what is tested, not training
        def __init__(self, cfg, **kwargs):
            self.device = "cpu"
            trained.append(cfg.name)

        def fit(self):
            return {"state": "finished"}

    monkeypatch.setattr(trainer_mod, "ASLTrainer", FakeTrainer)
    plan = plan_ablation(load_config("cpu"), ["no-aug"], device_type="cpu", out_dir=tmp_path)
    with lock_held(tmp_path):  # as a running `asl ablate` on this folder
        with pytest.raises(ConfigError, match="in use by another asl ablate"):
            ablation.run_ablation(plan, warmup_steps=0)
    assert trained == [] and ablation.load_results(tmp_path) is None  # nothing written beside it
    ablation.run_ablation(plan, warmup_steps=0)  # free again
    assert len(trained) == 2


def test_ablate_with_a_time_budget_gives_every_variant_the_same_seconds_and_a_complete_schedule(tiny, env):
    out = runner.invoke(app, tiny_args(tiny, "budget", "--time-budget", "4", "--no-aug", "--json"))
    assert out.exit_code == 0, out.stderr
    folder = tiny.runs / "ablate-budget"
    for variant in (BASELINE, "no-aug"):
        status = json.loads((folder / variant / "status.json").read_text())
        assert status["time_budget_s"] == 4 and 3.6 <= status["budget_used_s"] <= 4.0, status["budget_used_s"]
        assert status["schedule_progress"] == 1.0 and status["lr"] == pytest.approx(1e-6, rel=1e-9)  # min_lr
