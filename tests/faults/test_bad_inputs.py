"""A corpus of malformed inputs, each through the CLI end to end (`asl prepare`, `asl train`,
`asl train --resume`, `asl predict`, `asl evaluate`): one `error:` line on stderr, no traceback, the documented exit code.

Extreme but valid sequences (1 frame, 10,000 frames, all-NaN frames) must instead prepare cleanly
and give finite features. The library-level checks of each message live in tests/test_reader.py
and tests/test_checkpoint.py; this file proves the whole path from the command line.
"""

from __future__ import annotations

import json

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.errors import EXIT_CHECKPOINT, EXIT_DATA, EXIT_USAGE
from faultkit import one_error_line, train_args
from test_reader import frames_array, landmark_table

runner = CliRunner()
REL = "train_landmark_files/1/100.parquet"


def dataset(root: Path, table: dict | None = None, *, raw: bytes | None = None, csv: str | None = None,
            sign_map: str | None = None) -> Path:
    """A one-sequence asl-signs folder whose parquet, train.csv or sign map can be replaced."""
    (root / "train_landmark_files/1").mkdir(parents=True)
    target = root / REL
    if raw is not None:
        target.write_bytes(raw)
    else:
        pq.write_table(pa.table(table if table is not None else landmark_table(frames_array(5))), target)
    (root / "train.csv").write_text(csv or f"path,participant_id,sequence_id,sign\n{REL},1,100,a\n")
    (root / "sign_to_prediction_index_map.json").write_text(sign_map or '{"a": 0, "b": 1}')
    return root


def valid_bytes(tmp: Path) -> bytes:
    p = tmp / "valid.parquet"
    pq.write_table(pa.table(landmark_table(frames_array(5))), p)
    return p.read_bytes()


def drop(cols: dict, name: str) -> dict:
    return {k: v for k, v in cols.items() if k != name}


def parquet_cases(tmp: Path) -> dict:
    good = valid_bytes(tmp)
    cols = landmark_table(frames_array(3))
    corrupt = bytearray(good)
    corrupt[-40:-8] = b"\xff" * 32  # the footer's metadata
    dup = landmark_table(frames_array(2))
    dup["frame"] = pa.array(np.zeros(2 * 543, dtype=np.int16))
    inf = frames_array(3)
    inf[1, 10, 0] = np.inf
    return {
        "truncated parquet": dict(raw=good[: len(good) // 2]),
        "corrupt parquet footer": dict(raw=bytes(corrupt)),
        "not a parquet file": dict(raw=b"frame,x,y,z\n0,0.1,0.2,0.3\n"),
        "empty file": dict(raw=b""),
        "missing column x": dict(table=drop(cols, "x")),
        "missing column frame": dict(table=drop(cols, "frame")),
        "x as strings": dict(table=cols | {"x": pa.array([str(v) for v in range(3 * 543)])}),
        "frame as floats": dict(table=cols | {"frame": pa.array(np.repeat(np.arange(3.0), 543))}),
        "0 frames": dict(table={k: v.slice(0, 0) for k, v in cols.items()}),
        "rows not a multiple of 543": dict(table={k: v.slice(0, 543 * 2 + 7) for k, v in cols.items()}),
        "duplicate frames": dict(table=dup),
        "Inf coordinate": dict(table=landmark_table(inf)),
    }


HEADER = "path,participant_id,sequence_id,sign\n"
CSV_CASES = {
    "train.csv missing a column": dict(csv=f"path,participant_id,sign\n{REL},1,a\n"),
    "train.csv unknown sign": dict(csv=f"{HEADER}{REL},1,100,zebra\n"),
    "train.csv duplicate rows": dict(csv=f"{HEADER}{REL},1,100,a\n{REL},1,100,a\n"),
    "train.csv path escaping with ..": dict(csv=f"{HEADER}../../etc/passwd,1,100,a\n"),
    "train.csv absolute path": dict(csv=f"{HEADER}/etc/passwd,1,100,a\n"),
    "train.csv non-integer id": dict(csv=f"{HEADER}{REL},one,100,a\n"),
    "train.csv id beyond 64 bits": dict(csv=f"{HEADER}{REL},1,99999999999999999999,a\n"),
    "train.csv lists nothing": dict(csv=HEADER),
    "sign map not JSON": dict(sign_map="{a: 0,"),
    "sign map not a bijection": dict(sign_map='{"a": 0, "b": 0}'),
    "sign map indices not 0..n-1": dict(sign_map='{"a": 0, "b": 5}'),
    "sign map a list": dict(sign_map='["a", "b"]'),
}


def test_bad_data_through_prepare_and_train(tmp_path, cache_env, ledger):
    cases = parquet_cases(tmp_path) | CSV_CASES
    for i, (name, spec) in enumerate(cases.items()):
        with ledger.case("bad input", name, command="prepare"):
            root = dataset(tmp_path / f"case{i}", **spec)
            out = runner.invoke(app, ["prepare", str(root), "--cache-dir", str(tmp_path / "cache"), "--workers", "1"])
            assert out.exit_code == EXIT_DATA, (name, out.exit_code, out.stderr)
            assert out.exception is None or isinstance(out.exception, SystemExit), name
            line = one_error_line(out.stderr)
            named = {"train.csv": "train.csv", "sign map": "sign_to_prediction_index_map.json"}.get(
                name.split(" ")[0] if name.startswith("train.csv") else " ".join(name.split(" ")[:2]), REL)
            assert named in line, (name, line)
    # The same path through `asl train --data` (two samples: a parquet and a train.csv problem).
    for name in ("truncated parquet", "train.csv path escaping with .."):
        with ledger.case("bad input", name + " (train)", command="train"):
            i = list(cases).index(name)
            out = runner.invoke(app, train_args(tmp_path / f"case{i}", tmp_path / "runs", f"bad{i}"))
            assert out.exit_code == EXIT_DATA, (name, out.stderr)
            one_error_line(out.stderr)


@pytest.mark.parametrize("frames,nan", [(1, False), (10_000, False), (4, True)],
                         ids=["1 frame", "10000 frames", "all-NaN frames"])
def test_extreme_but_valid_sequences_prepare_to_finite_features(frames, nan, tmp_path, ledger):
    from asl_cli.data.cache import open_cache
    from asl_cli.data.preprocess import preprocess

    name = {1: "1 frame", 10_000: "10,000 frames"}.get(frames, "all-NaN frames")
    with ledger.case("bad input", name, command="prepare", expect="accepted"):
        a = frames_array(frames).astype(np.float32)
        if nan:
            a[:] = np.nan
        root = dataset(tmp_path / "d", landmark_table(a, row_id=False, placed=frames < 1000))
        out = runner.invoke(app, ["prepare", str(root), "--cache-dir", str(tmp_path / "cache"), "--workers", "1"])
        assert out.exit_code == 0, out.stderr
        cache = open_cache(data_dir=root, cache_dir=tmp_path / "cache")
        features = preprocess(cache.points(0), max_len=384)
        assert np.isfinite(features).all() and features.shape[0] >= 1


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """A finished one-epoch run folder to corrupt (copied per test)."""
    root = tmp_path_factory.mktemp("bad-ckpt")
    mp = pytest.MonkeyPatch()
    mp.setenv("ASL_CACHE", str(root / "cache"))
    out = runner.invoke(app, train_args(tiny_data, root / "runs", "done", epochs=1))
    mp.undo()
    assert out.exit_code == 0, out.stderr
    pq.write_table(pa.table(landmark_table(frames_array(8))), root / "seq.parquet")
    return root


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('ASL_PWNED', '/tmp/asl-pwned')}",))


def test_bad_checkpoints_through_resume(finished_run, tmp_path, monkeypatch, ledger):
    import torch

    from asl_cli.engine.checkpoint import load_checkpoint, save_checkpoint

    monkeypatch.setenv("ASL_CACHE", str(finished_run / "cache"))
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("ASL_PWNED", str(pwned))
    good = load_checkpoint(finished_run / "runs/done/checkpoints/last.pt")

    def other_version(p):
        save_checkpoint({k: v for k, v in good.items() if k not in ("format", "toolkit_version")}, p)
        raw = torch.load(p, weights_only=True)
        raw["toolkit_version"] = "99.0.0"
        torch.save(raw, p)

    cases = {
        "checkpoint from another toolkit version": (other_version, []),
        "checkpoint of another model size": (None, ["--set", "model.dim=64"]),
        "checkpoint that is not a checkpoint (text)": (lambda p: p.write_text("hello"), []),
        "checkpoint that is a plain tensor file": (lambda p: torch.save({"w": torch.zeros(2)}, p), []),
        "checkpoint truncated": (lambda p: p.write_bytes(p.read_bytes()[:1000]), []),
        "checkpoint with a malicious pickle": (lambda p: p.write_bytes(pickle.dumps({"model": _Payload()})), []),
        "checkpoint zip with a malicious pickle": (lambda p: torch.save({"model": _Payload()}, p), []),
    }
    for i, (name, (corrupt, extra)) in enumerate(cases.items()):
        with ledger.case("bad input", name, command="train --resume"):
            run = tmp_path / f"run{i}"
            shutil.copytree(finished_run / "runs/done", run)
            if corrupt is not None:
                corrupt(run / "checkpoints/last.pt")
            out = runner.invoke(app, ["train", "--resume", str(run), "--plain", "--epochs", "2", *extra])
            assert out.exit_code == EXIT_CHECKPOINT, (name, out.exit_code, out.stderr)
            assert "last.pt" in one_error_line(out.stderr)
            assert not pwned.exists(), "the pickle's code ran"
        if corrupt is None:
            continue
        for command in (["predict", str(run / "checkpoints/last.pt"), str(finished_run / "seq.parquet")],
                        ["evaluate", str(run / "checkpoints/last.pt"), "--device", "cpu"]):
            with ledger.case("bad input", name, command=command[0]):
                out = runner.invoke(app, command)
                assert out.exit_code == EXIT_CHECKPOINT, (name, command[0], out.exit_code, out.stderr)
                assert "last.pt" in one_error_line(out.stderr)
                assert not pwned.exists(), "the pickle's code ran"


def test_bad_sequences_through_predict(finished_run, tmp_path, monkeypatch, ledger):
    monkeypatch.setenv("ASL_CACHE", str(finished_run / "cache"))
    ckpt = finished_run / "runs/done/checkpoints/last.pt"
    good = runner.invoke(app, ["predict", str(ckpt), str(finished_run / "seq.parquet")])
    assert good.exit_code == 0, good.stderr  # the refusals below are about the inputs only
    for i, (name, spec) in enumerate(parquet_cases(tmp_path).items()):
        with ledger.case("bad input", name, command="predict"):
            path = tmp_path / f"bad{i}.parquet"
            if "raw" in spec:
                path.write_bytes(spec["raw"])
            else:
                pq.write_table(pa.table(spec["table"]), path)
            out = runner.invoke(app, ["predict", str(ckpt), str(path)])
            assert out.exit_code == EXIT_DATA, (name, out.exit_code, out.stderr)
            assert path.name in one_error_line(out.stderr)


PRESETS = {
    "preset with an unknown key": "[train]\nepochz = 3\n",
    "preset with an unknown section": "[trainer]\nepochs = 3\n",
    "preset with a wrong type": "[train]\nepochs = \"three\"\n",
    "preset with an out-of-range value": "[train]\nbatch_size = 0\n",
    "preset that is not TOML": "[train\nepochs = 3\n",
    "preset with a list for a number": "[optim]\nlr = [1, 2]\n",
}


def test_bad_presets_and_overrides(tmp_path, ledger):
    for i, (name, text) in enumerate(PRESETS.items()):
        with ledger.case("bad input", name, command="train --preset"):
            preset = tmp_path / f"bad{i}.toml"
            preset.write_text(text)
            out = runner.invoke(app, ["train", "--preset", str(preset), "--print-config"])
            assert out.exit_code == EXIT_USAGE, (name, out.stderr)
            assert f"bad{i}.toml" in one_error_line(out.stderr)
    for name, sets in {"--set with an unknown key": "train.nope=1", "--set with a wrong type": "train.epochs=x"}.items():
        with ledger.case("bad input", name, command="train --set"):
            out = runner.invoke(app, ["train", "--set", sets, "--print-config"])
            assert out.exit_code == EXIT_USAGE, (name, out.stderr)
            one_error_line(out.stderr)


def test_run_names_cannot_leave_the_runs_folder(tmp_path, ledger):
    for name in ("../escape", "a/b", "..", "/abs"):
        with ledger.case("bad input", f"run name {name!r}", command="train --name"):
            out = runner.invoke(app, ["train", "--name", name, "--runs-dir", str(tmp_path / "runs"), "--max-steps", "1"])
            assert out.exit_code == EXIT_USAGE, (name, out.stderr)
            one_error_line(out.stderr)
            assert not (tmp_path / "escape").exists()


def test_wrong_paths_and_option_clashes_say_what_is_wrong(tmp_path, cache_env, ledger, finished_run):
    """A path that is missing, a file, or a folder of the wrong kind is named with that problem (not the
    problem of a file it would have held); a fold count the data cannot fill names its setting."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases = {"missing": (tmp_path / "nowhere", "data folder not found"),
             "a file": (tmp_path / "notes.txt", "not a folder"),
             "an empty folder": (tmp_path / "empty", "not an asl-signs data folder")}
    for kind, (path, problem) in cases.items():
        for command in (["prepare", str(path)], train_args(path, tmp_path / "runs", "x")):
            with ledger.case("bad input", f"data folder {kind}", command=command[0]):
                out = runner.invoke(app, command)
                assert out.exit_code == EXIT_DATA, (kind, command[0], out.stderr)
                line = one_error_line(out.stderr)
                assert str(path.name) in line and problem in line, line
    for kind, (path, problem) in {"missing": (tmp_path / "nowhere", "no such run folder or checkpoint file"),
                                  "an empty folder": (tmp_path / "empty", "not a run folder")}.items():
        with ledger.case("bad input", f"run folder {kind}", command="evaluate"):
            out = runner.invoke(app, ["evaluate", str(path), "--device", "cpu"])
            assert out.exit_code == EXIT_CHECKPOINT, (kind, out.stderr)
            assert problem in one_error_line(out.stderr)
    with ledger.case("bad input", "more folds than participants", command="train --set"):
        data = dataset(tmp_path / "one-participant")
        out = runner.invoke(app, train_args(data, tmp_path / "runs", "folds"))
        assert out.exit_code == EXIT_USAGE, out.stderr
        assert one_error_line(out.stderr).startswith("error: data.n_folds = 3: ")
    with ledger.case("bad input", "--json with --ndjson", command="predict"):
        out = runner.invoke(app, ["predict", str(finished_run / "runs/done"), str(finished_run / "seq.parquet"),
                                  "--json", "--ndjson"])
        assert out.exit_code == EXIT_USAGE and out.stderr == ""  # asked for JSON: the error is one JSON object
        assert json.loads(out.stdout)["error"].startswith("--json and --ndjson")


def test_a_file_training_accepts_predict_accepts(tmp_path, cache_env, ledger, finished_run):
    """One reader rule: frame, x, y required, z optional; a file without z prepares and predicts alike."""
    with ledger.case("bad input", "no z column", command="prepare + predict", expect="accepted"):
        cols = drop(landmark_table(frames_array(5)), "z")
        root = dataset(tmp_path / "noz", cols)
        out = runner.invoke(app, ["prepare", str(root), "--workers", "1"])
        assert out.exit_code == 0, out.stderr
        out = runner.invoke(app, ["predict", str(finished_run / "runs/done"), str(root / REL)])
        assert out.exit_code == 0, out.stderr
