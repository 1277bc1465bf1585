"""asl export: the ONNX graph agrees with PyTorch (raw landmarks with NaN, dynamic length; features)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.data.landmarks import TYPE_OFFSETS, TYPE_SIZES
from asl_cli.errors import EXIT_CHECKPOINT, EXIT_PROBLEM

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
runner = CliRunner()


@pytest.fixture(scope="session")
def export_run(trained_run):
    """conftest's tiny model trained a few steps on the real sample (trained BatchNorm statistics, not the init)."""
    return trained_run


@pytest.fixture(scope="session")
def loaded(export_run):
    from asl_cli.serve.inference import load_for_inference

    return load_for_inference(export_run)


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def hand_missing(landmarks: np.ndarray, hand: str) -> bool:
    o = TYPE_OFFSETS[hand]
    return bool(np.isnan(landmarks[:, o:o + TYPE_SIZES[hand]]).all())


def test_export_raw_graph_matches_torch_on_real_files(export_run, loaded, sample_dir, tmp_path):
    from asl_cli.data.reader import read_landmarks
    from asl_cli.serve.export import wrap

    out = tmp_path / "model.onnx"
    res = runner.invoke(app, ["export", str(export_run), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "verified 8 real files" in res.output and "MB" in res.output and "ms per sequence" in res.output
    sess = session(out)
    torch_module = wrap(loaded)
    files = sorted((sample_dir / "train_landmark_files").rglob("*.parquet"))
    checked = {"missing_hand": 0, "longer_than_max_len": 0}
    lengths = set()
    for f in files[:20]:
        x = read_landmarks(f)
        # The whole file, and its first 3 frames: two different lengths through one graph.
        for seq in (x, x[:3]):
            got = sess.run(None, {"landmarks": seq})[0]
            with torch.no_grad():
                ref = torch_module(torch.from_numpy(seq)).numpy()
            assert got.shape == (250,) and np.abs(got - ref).max() < 1e-4, f
            lengths.add(seq.shape[0])
        checked["missing_hand"] += hand_missing(x, "left_hand") or hand_missing(x, "right_hand")
    # Longer than max_len (truncated inside the graph, statistics over the whole sequence).
    long = np.concatenate([read_landmarks(files[0])] * 10)
    assert long.shape[0] > loaded.max_len
    with torch.no_grad():
        ref = torch_module(torch.from_numpy(long)).numpy()
    assert np.abs(sess.run(None, {"landmarks": long})[0] - ref).max() < 1e-4
    assert checked["missing_hand"] > 0 and len(lengths) > 3


def test_onnx_equals_batched_inference_and_handles_nan(loaded, tmp_path, sample_dir):
    """A hand missing in every frame / some frames, and all-NaN frames: ONNX = asl predict's numbers."""
    from asl_cli.data.reader import read_landmarks
    from asl_cli.serve.export import export_onnx
    from asl_cli.serve.inference import features_from_landmarks, predict_features

    path = export_onnx(loaded, tmp_path / "m.onnx")
    sess = session(path)
    x = read_landmarks(sorted((sample_dir / "train_landmark_files").rglob("*.parquet"))[0]).copy()
    variants = {"as read": x.copy()}
    right = slice(TYPE_OFFSETS["right_hand"], TYPE_OFFSETS["right_hand"] + 21)
    left = slice(TYPE_OFFSETS["left_hand"], TYPE_OFFSETS["left_hand"] + 21)
    v = x.copy(); v[:, right] = np.nan; v[:, left] = np.nan; variants["no hands"] = v
    v = x.copy(); v[: len(x) // 2, left] = np.nan; variants["left hand half the time"] = v
    v = np.concatenate([np.full((2, 543, 3), np.nan, np.float32), x]); variants["all-NaN frames first"] = v
    variants["nothing seen at all"] = np.full((5, 543, 3), np.nan, np.float32)
    variants["one frame"] = x[:1].copy()
    feats = [features_from_landmarks(v, loaded.max_len) for v in variants.values()]
    ref = predict_features(loaded.model, feats, probabilities=False)
    for (name, v), r in zip(variants.items(), ref):
        got = sess.run(None, {"landmarks": v})[0]
        assert np.isfinite(got).all() and np.abs(got - r).max() < 1e-4, name
    # The dropped all-NaN frames change nothing.
    assert np.abs(ref[3] - ref[0]).max() < 1e-5


def test_export_features_variant_dynamic_batch_and_length(export_run, loaded, tmp_path, sample_dir):
    from asl_cli.data.dataset import collate
    from asl_cli.data.reader import read_landmarks
    from asl_cli.serve.inference import features_from_landmarks

    out = tmp_path / "f.onnx"
    res = runner.invoke(app, ["export", str(export_run), "--features", "--probabilities", "--out", str(out)])
    assert res.exit_code == 0, res.output
    sess = session(out)
    assert [i.name for i in sess.get_inputs()] == ["features", "mask"]
    files = sorted((sample_dir / "train_landmark_files").rglob("*.parquet"))
    for group in (files[:3], files[3:8]):
        feats = [features_from_landmarks(read_landmarks(f), loaded.max_len) for f in group]
        batch = collate([{"features": f, "label": 0, "index": i} for i, f in enumerate(feats)])
        got = sess.run(None, {"features": batch["features"].numpy(), "mask": batch["mask"].numpy()})[0]
        with torch.no_grad():
            ref = torch.softmax(loaded.model(batch["features"], batch["mask"]), -1).numpy()
        assert got.shape == (len(group), 250) and np.abs(got - ref).max() < 1e-4
        assert np.allclose(got.sum(axis=1), 1, atol=1e-5)


def test_export_verifies_on_generated_sequences_without_a_sample(export_run, tmp_path, monkeypatch):
    import asl_cli.cli.cmd_export as cmd_export

    monkeypatch.setattr(cmd_export, "DEFAULT_SAMPLE", tmp_path / "no-sample-here")  # e.g. a plain pip install
    res = runner.invoke(app, ["export", str(export_run), "--out", str(tmp_path / "g.onnx")])
    assert res.exit_code == 0, res.output
    assert "verified 5 generated sequences" in res.output


def test_export_refuses_a_verify_data_folder_without_usable_files(export_run, tmp_path):
    """A --verify-data the user named is never silently replaced by generated sequences: exit 3, one line."""
    from asl_cli.errors import EXIT_DATA

    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad").mkdir()
    for name in ("a.parquet", "b.parquet"):
        (tmp_path / "bad" / name).write_text("not parquet")
    for folder, problem in ((tmp_path / "nowhere", "--verify-data folder not found"),
                            (tmp_path / "notes.txt", "--verify-data is not a folder"),
                            (tmp_path / "empty", "--verify-data folder holds no .parquet files"),
                            (tmp_path / "bad", "none of the 2 files could be read")):
        out = tmp_path / "x.onnx"
        res = runner.invoke(app, ["export", str(export_run), "--out", str(out), "--verify-data", str(folder)])
        assert res.exit_code == EXIT_DATA, (folder, res.output)
        lines = [x for x in res.output.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {folder}") and problem in lines[0], lines
        assert not out.exists()


def test_export_reports_unreadable_verify_data_files(export_run, sample_dir, tmp_path):
    """Unreadable files are skipped as `asl predict --skip-bad` skips them: one stderr line each, and counted."""
    import shutil

    good = sorted((sample_dir / "train_landmark_files").rglob("*.parquet"))[:2]
    folder = tmp_path / "mixed"
    folder.mkdir()
    for f in good:
        shutil.copy(f, folder / f.name)
    (folder / "zz-broken.parquet").write_bytes(b"PAR1 nonsense")
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(good[0]).drop(["z"]), folder / "no-z.parquet")  # usable: z is optional
    res = runner.invoke(app, ["export", str(export_run), "--out", str(tmp_path / "m.onnx"),
                              "--verify-data", str(folder)])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [l for l in res.stderr.splitlines() if l.startswith("skipped: ")]
    assert len(res.stderr.splitlines()) == 1 and f"skipped: {folder / 'zz-broken.parquet'}: " in res.stderr
    assert "verified 3 real files (1 unreadable file skipped)" in res.stdout


def test_export_refuses_a_mismatch_and_removes_the_file(export_run, tmp_path, monkeypatch):
    import asl_cli.serve.export as export

    real = export.verify_onnx

    def off_by_a_lot(*args, **kwargs):
        v = real(*args, **kwargs)
        v.max_abs_diff = 0.5
        v.per_sample = [(n, t, 0.5) for n, t, _ in v.per_sample]
        return v

    monkeypatch.setattr(export, "verify_onnx", off_by_a_lot)
    out = tmp_path / "bad.onnx"
    res = runner.invoke(app, ["export", str(export_run), "--out", str(out)])
    assert res.exit_code == EXIT_PROBLEM and "disagrees with PyTorch" in res.output
    assert not out.exists()


def test_export_without_onnx_names_the_extra(export_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    res = runner.invoke(app, ["export", str(export_run), "--out", str(tmp_path / "x.onnx")])
    assert res.exit_code == EXIT_PROBLEM
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "pip install 'asl-cli[onnx]'" in lines[0]


def test_exporter_failure_is_one_line_and_leaves_no_file(export_run, tmp_path, monkeypatch):
    def unsupported(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::fancy' to ONNX opset 17 is not supported.\nmore")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    out = tmp_path / "x.onnx"
    res = runner.invoke(app, ["export", str(export_run), "--out", str(out)])
    assert res.exit_code == EXIT_PROBLEM
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "torch.onnx.export failed (RuntimeError: Exporting the operator" in lines[0]
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp sibling


def test_export_bad_checkpoint_and_format(tmp_path, export_run):
    res = runner.invoke(app, ["export", str(tmp_path / "nope.pt")])
    assert res.exit_code == EXIT_CHECKPOINT and "nope.pt" in res.output
    res = runner.invoke(app, ["export", str(export_run), "--format", "tflite"])
    assert res.exit_code == 2 and "only onnx" in res.output
