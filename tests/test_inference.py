"""asl evaluate / asl predict and the inference library, on a tiny model trained on the real sample."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from kit import run_asl
from realdata import SEQUENCES
from asl_cli.cli.app import app
from asl_cli.errors import EXIT_CHECKPOINT, EXIT_DATA

runner = CliRunner()


# `trained_run`: a tiny model trained 3 steps on the real sample (conftest.py)

def sample_files(sample_dir: Path) -> list[Path]:
    return sorted((sample_dir / "train_landmark_files").rglob("*.parquet"))


def invoke(*args: str):
    return runner.invoke(app, list(map(str, args)))


def one_error_line(result, *needles: str) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# --- loading ----------------------------------------------------------------------------------

def test_load_uses_the_checkpoints_own_config_and_sign_map(trained_run, sample_dir):
    from asl_cli.serve.inference import load_for_inference

    loaded = load_for_inference(trained_run)
    assert loaded.checkpoint_path == trained_run / "checkpoints" / "best.pt"
    assert loaded.max_len == 32 and loaded.config.model.dim == 32
    expected = json.loads((sample_dir / "sign_to_prediction_index_map.json").read_text())
    assert loaded.sign_map == expected and loaded.classes[expected["hello"]] == "hello"
    assert not loaded.model.training
    assert load_for_inference(trained_run / "checkpoints" / "last.pt").checkpoint_path.name == "last.pt"


# --- evaluate ---------------------------------------------------------------------------------

def test_evaluate_json_is_consistent_with_predict(trained_run, sample_dir, tmp_path):
    from asl_cli.data.dataset import participant_folds
    from asl_cli.data.reader import read_index

    res = invoke("evaluate", trained_run, "--json", "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    for key in ("n", "top1", "top5", "correct", "per_sign", "confused_pairs", "confusion", "split", "val_fold"):
        assert key in ev
    assert ev["split"] == "val" and ev["val_fold"] == 0 and ev["n_folds"] == 5
    # The validation fold, rebuilt from train.csv: participant-held-out.
    index = read_index(sample_dir)
    folds = participant_folds(index.participants, 5)
    val = np.flatnonzero(folds == 0)
    assert ev["n"] == len(val) and ev["sequence_ids"] == index.sequence_ids[val].tolist()
    assert set(index.participants[val]).isdisjoint(index.participants[folds != 0])
    # top-1 = the fraction of files whose predicted top sign (asl predict, from the raw parquet) is the label.
    pr = invoke("predict", trained_run, *[index.file(i) for i in val], "--json", "--top-k", "1")
    assert pr.exit_code == 0, pr.output
    preds = [p["top"][0]["sign"] for p in json.loads(pr.stdout)["predictions"]]
    correct = sum(p == index.signs[i] for p, i in zip(preds, val))
    assert ev["correct"] == correct and ev["top1"] == pytest.approx(correct / len(val))
    assert ev["top1"] <= ev["top5"] <= 1.0
    matrix = np.asarray(ev["confusion"]["matrix"])
    assert matrix.sum() == ev["n"] and np.trace(matrix) == ev["correct"]
    assert sum(r["n"] for r in ev["per_sign"]) == ev["n"]
    assert sum(r["correct"] for r in ev["per_sign"]) == ev["correct"]
    off_diagonal = matrix.sum() - np.trace(matrix)
    assert sum(p["count"] for p in ev["confused_pairs"]) == off_diagonal  # fewer than 10 pairs here: all listed
    assert (tmp_path / "ev" / "metrics.json").is_file() and (tmp_path / "ev" / "confusion.png").is_file()
    # The trainer's own validation of this checkpoint (stored in best.pt) saw the same fold.
    from asl_cli.serve.inference import load_for_inference

    stored = load_for_inference(trained_run).metrics
    assert stored["val_top1"] == pytest.approx(ev["top1"]) and stored["val_top5"] == pytest.approx(ev["top5"])


def test_evaluate_ends_with_the_next_commands(trained_run):
    import shlex

    res = invoke("evaluate", trained_run)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    commands = [line.split("   # ")[0].strip() for line in lines[lines.index("next:") + 1:]]
    assert commands[1:] == [f"asl evaluate {trained_run} --split all", f"asl export {trained_run}"]
    predict = shlex.split(commands[0])
    assert predict[:3] == ["asl", "predict", str(trained_run)] and Path(predict[3]).is_file()
    assert invoke(*predict[1:]).exit_code == 0  # it works as printed
    ev = json.loads(invoke("evaluate", trained_run, "--json", "--split", "all").stdout)
    assert [s["what"] for s in ev["next"]] == ["predict", "export"] and Path(ev["example_file"]).is_file()


def test_evaluate_all_and_table(trained_run):
    res = invoke("evaluate", trained_run, "--split", "all")
    assert res.exit_code == 0, res.output
    assert f"{SEQUENCES} sequences" in res.output and "top-1" in res.output and "Per-sign accuracy" in res.output
    metrics = json.loads((trained_run / "eval-all" / "metrics.json").read_text())
    assert metrics["n"] == SEQUENCES and np.asarray(metrics["confusion"]["matrix"]).sum() == SEQUENCES


def test_evaluate_refuses_a_data_set_with_another_sign_map(trained_run, sample_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.csv").write_text((sample_dir / "train.csv").read_text())
    (other / "train_landmark_files").symlink_to(sample_dir / "train_landmark_files")
    sign_map = json.loads((sample_dir / "sign_to_prediction_index_map.json").read_text())
    sign_map["hello"], sign_map["thankyou"] = sign_map["thankyou"], sign_map["hello"]  # renumbered
    (other / "sign_to_prediction_index_map.json").write_text(json.dumps(sign_map))
    res = invoke("evaluate", trained_run, "--data", other, "--split", "all", "--out", tmp_path / "ev")
    assert res.exit_code == EXIT_DATA
    one_error_line(res, "sign_to_prediction_index_map.json", "disagrees with the checkpoint")


def test_evaluate_val_with_data_naming_the_runs_own_folder_keeps_its_split(trained_run, sample_dir, tmp_path):
    """`--data` naming the folder the run trained on is the run's own data: its data.limit still
    applies, so --split val is the trainer's validation fold, not folds rebuilt over the whole set
    (which would score participants the model trained on)."""
    from asl_cli.data.dataset import participant_folds
    from asl_cli.data.reader import read_index
    from asl_cli.serve.inference import evaluate_split, load_for_inference

    loaded = load_for_inference(trained_run)
    loaded.config.data.limit = 100  # as if trained with --set data.limit=100
    loaded.config.data.cache_dir = str(tmp_path / "cache")
    own = evaluate_split(loaded)
    named = evaluate_split(loaded, sample_dir)
    assert named["sequence_ids"] == own["sequence_ids"]
    index = read_index(sample_dir)
    parts = np.asarray(index.participants)[:100]
    trained_on = set(parts[participant_folds(parts, 5) != 0].tolist())
    by_id = dict(zip(np.asarray(index.sequence_ids).tolist(), np.asarray(index.participants).tolist()))
    assert trained_on.isdisjoint(by_id[s] for s in named["sequence_ids"])


def test_evaluation_metrics_by_hand():
    from asl_cli.serve.inference import evaluation_metrics

    classes = ["a", "b", "c", "d", "e", "f"]
    probs = np.full((4, 6), 0.01, dtype=np.float32)
    probs[0, 0] = probs[1, 2] = probs[2, 1] = probs[3, 1] = 0.9  # predictions: a, c, b, b
    probs[1, 1] = 0.5  # sample 1 (true b) has b second: a top-5 hit
    probs[3, 3] = 0.0  # sample 3 (true d) ranks d last of 6: a top-5 miss
    m = evaluation_metrics(np.array([0, 1, 1, 3]), probs, classes)
    assert m["top1"] == 0.5 and m["correct"] == 2
    assert m["top5"] == 0.75
    assert m["confusion"]["signs"] == ["a", "b", "c", "d"]
    assert m["confusion"]["matrix"] == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]]
    assert {(p["true"], p["predicted"]) for p in m["confused_pairs"]} == {("b", "c"), ("d", "b")}
    assert [r["sign"] for r in m["per_sign"]] == ["d", "b", "a"]  # worst first


# --- predict ----------------------------------------------------------------------------------

def write_variants(src: Path, out: Path) -> dict[str, Path]:
    """The layouts other MediaPipe Holistic capture scripts write, from one real file."""
    table = pq.read_table(src)
    out.mkdir(parents=True, exist_ok=True)
    cols = table.column_names
    reordered = table.select(list(reversed(cols)))
    no_row_id = table.drop_columns(["row_id"])
    frame64 = table.set_column(cols.index("frame"), "frame", table["frame"].cast(pa.int64()))
    paths = {}
    for name, t in (("reordered", reordered), ("no_row_id", no_row_id), ("frame_int64", frame64)):
        paths[name] = out / f"{name}.parquet"
        pq.write_table(t.replace_schema_metadata(None), paths[name])
    return paths


def test_predict_same_result_for_every_file_variant(trained_run, sample_dir, tmp_path):
    src = sample_files(sample_dir)[0]
    variants = write_variants(src, tmp_path)
    res = invoke("predict", trained_run, src, *variants.values(), "--json", "--top-k", "3")
    assert res.exit_code == 0, res.output
    preds = json.loads(res.stdout)["predictions"]
    assert [p["file"] for p in preds] == [str(src), *map(str, variants.values())]
    first = preds[0]["top"]
    assert len(first) == 3 and first[0]["probability"] >= first[1]["probability"] >= first[2]["probability"]
    for p in preds[1:]:
        assert [t["sign"] for t in p["top"]] == [t["sign"] for t in first]
        assert np.allclose([t["probability"] for t in p["top"]], [t["probability"] for t in first], atol=1e-6)


def test_predict_and_show_accept_what_training_accepts_a_file_without_z(trained_run, sample_dir, tmp_path):
    """Training reads only frame, x, y; so do predict and show (one reader rule), so a file without z works."""
    pytest.importorskip("matplotlib")
    src = sample_files(sample_dir)[0]
    noz = tmp_path / "noz.parquet"
    pq.write_table(pq.read_table(src).drop(["z"]), noz)
    res = invoke("predict", trained_run, src, noz, "--json")
    assert res.exit_code == 0, res.output
    a, b = json.loads(res.stdout)["predictions"]
    assert a["frames"] == b["frames"] and [t["sign"] for t in a["top"]] == [t["sign"] for t in b["top"]]
    assert np.allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-6)
    res = invoke("show", noz, "--augment", "--out", tmp_path / "noz.png")
    assert res.exit_code == 0, res.output
    res = invoke("show", src, "--augment", "--out", tmp_path / "src.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "noz.png").read_bytes() == (tmp_path / "src.png").read_bytes()  # z is never drawn


def test_predict_refuses_json_with_ndjson(trained_run, sample_dir):
    res = invoke("predict", trained_run, sample_files(sample_dir)[0], "--json", "--ndjson")
    assert res.exit_code == 2 and res.stderr == ""  # asked for JSON: the error is one JSON object
    err = json.loads(res.stdout)
    assert err["exit_code"] == 2 and err["error"].startswith("--json and --ndjson cannot be used together")


def test_predict_batched_equals_one_by_one(trained_run, sample_dir):
    from asl_cli.serve.inference import load_for_inference, predict_files

    loaded = load_for_inference(trained_run)
    files = sample_files(sample_dir)[:40]
    batched = predict_files(loaded, files, batch_size=64).probabilities
    single = predict_files(loaded, files, batch_size=1).probabilities
    assert batched.shape == (len(files), 250)
    assert np.allclose(batched, single, atol=1e-5) and np.allclose(batched.sum(axis=1), 1, atol=1e-5)


def test_predict_table_and_ndjson(trained_run, sample_dir):
    files = sample_files(sample_dir)[:3]
    res = invoke("predict", trained_run, *files, "--ndjson", "--top-k", "2")
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["file"] for x in lines] == list(map(str, files)) and all(len(x["top"]) == 2 for x in lines)
    res = invoke("predict", trained_run, *files)
    assert res.exit_code == 0 and "#5" in res.output and "frames" in res.output


# --- bad inputs -------------------------------------------------------------------------------

def test_predict_bad_parquet_stops_or_is_skipped(trained_run, sample_dir, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("this is not parquet")
    good = sample_files(sample_dir)[0]
    res = invoke("predict", trained_run, good, bad)
    assert res.exit_code == EXIT_DATA
    one_error_line(res, str(bad))
    res = invoke("predict", trained_run, good, bad, "--skip-bad", "--json")
    assert res.exit_code == 0, res.output
    assert [p["file"] for p in json.loads(res.stdout)["predictions"]] == [str(good)]
    assert f"skipped: {bad}" in res.stderr
    res = invoke("predict", trained_run, bad, "--skip-bad")
    assert res.exit_code == EXIT_DATA  # nothing could be read


@pytest.mark.parametrize("mode", [[], ["--json"], ["--ndjson"]])
def test_predict_skip_bad_with_every_file_bad_prints_only_one_error_line(trained_run, tmp_path, mode):
    """No empty table or empty JSON before the error: nothing on stdout, one line on stderr."""
    bad = [tmp_path / "bad1.parquet", tmp_path / "bad2.parquet"]
    for b in bad:
        b.write_text("this is not parquet")
    def error(res) -> str:
        if not mode:
            assert res.stdout == ""
            return one_error_line(res)
        assert res.stderr == ""  # --json / --ndjson: the error is one JSON object on stdout, nothing else
        (line,) = res.stdout.splitlines()
        return "error: " + json.loads(line)["error"]

    res = invoke("predict", trained_run, *bad, "--skip-bad", *mode)
    assert res.exit_code == EXIT_DATA
    line = error(res)
    for needle in (str(bad[0]), "not a readable parquet file", "none of the 2 files could be read"):
        assert needle in line
    res = invoke("predict", trained_run, bad[0], "--skip-bad", *mode)  # one file: the same line as without --skip-bad
    assert res.exit_code == EXIT_DATA
    assert error(res) == error(invoke("predict", trained_run, bad[0], *mode))


def test_bad_checkpoints(tmp_path, sample_dir):
    good = sample_files(sample_dir)[0]
    res = invoke("predict", tmp_path / "missing.pt", good)
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, "missing.pt", "no such run folder or checkpoint file")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    res = invoke("evaluate", junk)
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, "junk.pt")
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)  # a torch file, but not ours
    res = invoke("predict", foreign, good)
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, "foreign.pt", "not an asl checkpoint")
    res = invoke("evaluate", tmp_path)  # a folder that is no run folder (no config.json, no checkpoints/)
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, str(tmp_path), "not a run folder or checkpoint file")
    res = invoke("evaluate", tmp_path / "nowhere")
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, "nowhere", "no such run folder or checkpoint file")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)  # a run folder whose checkpoints are gone
    res = invoke("evaluate", tmp_path / "run")
    assert res.exit_code == EXIT_CHECKPOINT
    one_error_line(res, "no checkpoints/best.pt or checkpoints/last.pt in this run folder")


def test_real_subprocess_one_line_and_exit_codes(trained_run, tmp_path, sample_dir):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    p = run_asl("predict", junk, sample_files(sample_dir)[0])
    assert p.returncode == EXIT_CHECKPOINT and p.stdout == ""
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith(f"error: {junk}")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 nonsense")
    p = run_asl("predict", trained_run, bad)
    assert p.returncode == EXIT_DATA and p.stderr.strip().count("\n") == 0 and str(bad) in p.stderr


def test_evaluate_without_matplotlib_skips_the_png(trained_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    res = invoke("evaluate", trained_run, "--json", "--out", tmp_path / "ev")
    assert res.exit_code == 0, res.output
    assert "confusion.png skipped" in res.stderr and "pip install 'asl-cli[plot]'" in res.stderr
    assert json.loads(res.stdout)["confusion_png"] is None and not (tmp_path / "ev" / "confusion.png").exists()


def test_evaluate_a_run_trained_on_the_synthetic_default(tmp_path, monkeypatch):
    """No --data and no data.data_dir in the run: its own synthetic set (same synth.* settings)."""
    from asl_cli.config import load_config
    from asl_cli.data.synth import default_dataset_dir
    from asl_cli.engine.trainer import ASLTrainer

    monkeypatch.setenv("ASL_CACHE", str(tmp_path / "cache"))
    cfg = load_config("cpu", [f"runs_dir={tmp_path / 'runs'}", "name=synth", "synth.num_signs=4",
                              "synth.num_participants=5", "synth.repetitions=3", "model.dim=32", "model.blocks=1",
                              "train.max_steps=2", "train.epochs=1", "data.max_len=16", "train.device=cpu",
                              "aug.use_augmentations=false"])
    ASLTrainer(cfg).fit()
    res = invoke("evaluate", tmp_path / "runs" / "synth", "--json")
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert Path(ev["data_dir"]) == default_dataset_dir(cfg.synth)
    assert 0 < ev["n"] < 4 * 5 * 3 and np.asarray(ev["confusion"]["matrix"]).sum() == ev["n"]
    assert len(json.loads(res.stdout)["sequence_ids"]) == ev["n"]


def test_device_cuda_without_a_gpu_is_exit_5(trained_run, sample_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    res = invoke("predict", trained_run, sample_files(sample_dir)[0], "--device", "cuda")
    assert res.exit_code == 5
    one_error_line(res, "no CUDA GPU")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("device, code, problem", [("cuda", 5, "is 'cuda' but no CUDA GPU is available"),
                                                   ("cuda:x", 2, "'cuda:x' is not a device")])
def test_device_errors_name_the_commands_own_option(trained_run, sample_dir, monkeypatch, command, device, code,
                                                     problem):
    """evaluate/predict have no train.device: the error names the --device the user gave."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    files = [sample_files(sample_dir)[0]] if command == "predict" else []
    res = invoke(command, trained_run, *files, "--device", device)
    assert res.exit_code == code
    line = one_error_line(res, "--device", problem)
    assert "train.device" not in line and "preset" not in line


def test_piped_predict_and_evaluate_keep_long_paths_whole(trained_run, sample_dir, tmp_path):
    """`asl predict RUN FILE > p.txt`, `asl evaluate RUN > e.txt`: not a terminal, so Rich would fold at
    80 columns; every path must come out whole, on one line (docs/predict.md, docs/evaluate.md)."""
    import shutil

    deep = tmp_path / "a-rather-long-folder-name-for-testing-wrapping" / "another-level-of-nesting"
    deep.mkdir(parents=True)
    src = sample_files(sample_dir)[0]
    copy = deep / f"{src.parent.name}-{src.name}"
    shutil.copy(src, copy)
    assert len(str(copy)) > 80
    res = runner.invoke(app, ["predict", str(trained_run), str(copy)], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(line.startswith(f"│ {copy} ") for line in lines), res.stdout
    assert lines[0].startswith(str(trained_run / "checkpoints"))  # the title's checkpoint path too

    out = deep / "eval"
    res = runner.invoke(app, ["evaluate", str(trained_run), "--out", str(out)], env={"COLUMNS": None})
    assert res.exit_code == 0, res.output
    last = next(line for line in res.stdout.splitlines() if line.startswith("metrics: "))  # then the next steps
    assert last.startswith(f"metrics: {out / 'metrics.json'}")
    if (out / "confusion.png").is_file():
        assert last.endswith(f"confusion matrix: {out / 'confusion.png'}")
