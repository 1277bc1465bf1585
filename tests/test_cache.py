"""The prepared cache: contents, no-op reruns, rebuilds, interrupted builds, skip-bad."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from realdata import SEQUENCES
from asl_cli.data import cache as cache_mod
from asl_cli.data.cache import cache_path, open_cache, prepare
from asl_cli.data.preprocess import select_points
from asl_cli.data.reader import read_index, read_landmarks
from asl_cli.errors import DataError


def small_copy(sample_dir: Path, dest: Path, n: int = 12) -> Path:
    """A writable copy of the first `n` sequences of the real sample."""
    dest.mkdir(parents=True)
    shutil.copy(sample_dir / "sign_to_prediction_index_map.json", dest)
    lines = (sample_dir / "train.csv").read_text().splitlines()
    keep = [lines[0]] + lines[1: n + 1]
    (dest / "train.csv").write_text("\n".join(keep) + "\n")
    for line in keep[1:]:
        rel = line.split(",")[0]
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_dir / rel, dest / rel)
    return dest


def build_id(cache) -> str:
    """The id of the build currently on disk at the cache's folder."""
    return open_cache(cache.path).meta["build_id"]


def test_real_sample_contents(sample_dir, sample_cache):
    index = read_index(sample_dir)
    c = sample_cache
    assert len(c) == len(index) == SEQUENCES and c.skipped == 0 and c.num_classes == 250
    assert c.sign_map == index.sign_map and c.classes[c.labels[0]] == index.signs[0]
    np.testing.assert_array_equal(c.labels, index.labels)
    np.testing.assert_array_equal(c.participants, index.participants)
    np.testing.assert_array_equal(c.sequence_ids, index.sequence_ids)
    assert int(c.lengths.sum()) == c.total_frames == c.all_points.shape[0]
    for i in (0, SEQUENCES // 2, SEQUENCES - 1):
        pts = select_points(read_landmarks(index.file(i), columns=("x", "y")))
        kept = pts[~np.isnan(pts).all(axis=(1, 2))]
        got = c.points(i)
        assert got.shape == kept.shape and got.dtype == np.float32 and not got.flags.writeable
        np.testing.assert_array_equal(got, kept)
    # Compact: x, y of 118 points per frame plus a small index.
    assert c.size_bytes() < c.total_frames * 118 * 2 * 4 + 200_000


def test_open_is_cheap_and_pickles_without_data(sample_cache):
    c = open_cache(sample_cache.path)
    assert isinstance(c.lengths, np.ndarray) and len(c) == SEQUENCES
    assert open_cache(data_dir=c.data_dir, cache_dir=c.path.parent).path == c.path
    blob = pickle.dumps(c)
    assert len(blob) < 100_000  # the memory map is reopened, not copied
    c2 = pickle.loads(blob)
    np.testing.assert_array_equal(c2.points(5), c.points(5))


def test_rerun_is_noop_and_change_rebuilds(sample_dir, tmp_path):
    data = small_copy(sample_dir, tmp_path / "data")
    root = tmp_path / "cache"
    first = prepare(data, root, workers=1)
    before = build_id(first)
    mtime = (first.path / "points.npy").stat().st_mtime_ns
    again = prepare(data, root, workers=1)
    assert build_id(again) == before  # nothing rewritten
    assert (again.path / "points.npy").stat().st_mtime_ns == mtime
    # A source file changes (new mtime): rebuilt.
    f = data / read_index(data).paths[3]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    rebuilt = prepare(data, root, workers=1)
    assert build_id(rebuilt) != before
    assert rebuilt.meta["fingerprint"] != first.meta["fingerprint"]
    # train.csv changes (one row fewer): rebuilt with the new listing.
    lines = (data / "train.csv").read_text().splitlines()
    (data / "train.csv").write_text("\n".join(lines[:-1]) + "\n")
    shorter = prepare(data, root, workers=1)
    assert len(shorter) == 11
    # --force rebuilds even when current; limit is part of the fingerprint.
    current = build_id(shorter)
    assert build_id(prepare(data, root, workers=1, force=True)) != current
    assert len(prepare(data, root, workers=1, limit=4)) == 4


def test_interrupted_prepare_never_looks_complete(sample_dir, tmp_path, monkeypatch):
    data = small_copy(sample_dir, tmp_path / "data")
    root = tmp_path / "cache"
    calls = {"n": 0}
    real = cache_mod.load_sequence

    def dies_midway(path):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(cache_mod, "load_sequence", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        prepare(data, root, workers=1)
    target = cache_path(data, root)
    assert not target.exists() and list(root.iterdir()) == []  # no half-written cache left
    monkeypatch.setattr(cache_mod, "load_sequence", real)
    good = prepare(data, root, workers=1)
    assert len(good) == 12

    # A process killed mid-build leaves its temporary folder; a cache folder without the marker
    # (e.g. from a crash during the swap) is not used either. Both are cleaned up and rebuilt.
    (good.path / "complete").unlink()
    stale = root / f".{target.name}.tmp-999999999-deadbeef"
    stale.mkdir()
    with pytest.raises(DataError, match="no complete prepared cache"):
        open_cache(good.path)
    rebuilt = prepare(data, root, workers=1)
    assert (rebuilt.path / "complete").is_file() and len(rebuilt) == 12
    assert not stale.exists()


def test_skip_bad(sample_dir, tmp_path):
    data = small_copy(sample_dir, tmp_path / "data")
    index = read_index(data)
    bad = data / index.paths[2]
    bad.write_bytes(bad.read_bytes()[:100])  # truncated
    missing = data / index.paths[7]
    missing.unlink()
    root = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        prepare(data, root, workers=1)
    assert info.value.path == str(bad) and "parquet" in info.value.message
    assert info.value.skippable  # one unreadable file: the CLI names --skip-bad as the remedy
    c = prepare(data, root, workers=1, skip_bad=True)
    assert len(c) == 10 and c.skipped == 2
    assert c.skipped_files == [str(bad), str(missing)]  # all of them (skipped_errors: the first few reasons)
    assert str(bad) in c.skipped_errors[0] and str(missing) in c.skipped_errors[1]
    assert "not found" in c.skipped_errors[1]
    assert index.sequence_ids[2] not in c.sequence_ids.tolist()
    np.testing.assert_array_equal(c.labels, np.delete(index.labels, [2, 7]))
    # A run that must stop at bad files does not silently reuse the cache that skipped them.
    with pytest.raises(DataError):
        prepare(data, root, workers=1)


def test_worker_pool_matches_in_process(sample_dir, sample_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_mod, "POOL_MIN_FILES", 1)  # the sample is too small for a pool by default
    pooled = prepare(sample_dir, tmp_path / "pooled", workers=2)
    np.testing.assert_array_equal(pooled.lengths, sample_cache.lengths)
    np.testing.assert_array_equal(pooled.all_points, sample_cache.all_points)


def test_default_location_and_progress(sample_dir, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    data = small_copy(sample_dir, tmp_path / "data", n=3)
    monkeypatch.setenv("ASL_CACHE", str(tmp_path / "envcache"))
    assert cache_path(data).parent == tmp_path / "envcache"
    out = io.StringIO()
    c = prepare(data, workers=1, progress=Console(file=out, force_terminal=False, width=100))
    assert c.path.parent == tmp_path / "envcache" and "Preparing" in out.getvalue()


def test_bad_index_is_not_skipped(sample_dir, tmp_path):
    data = small_copy(sample_dir, tmp_path / "data", n=3)
    with open(data / "train.csv", "a") as fh:
        fh.write("train_landmark_files/1/1.parquet,1,1,not-a-sign\n")
    with pytest.raises(DataError, match="not-a-sign"):
        prepare(data, tmp_path / "cache", workers=1, skip_bad=True)


# --- asl prepare ------------------------------------------------------------------------------

def test_cli_prepare(sample_dir, tmp_path):
    from typer.testing import CliRunner

    from asl_cli.cli.app import app

    runner = CliRunner()
    data = small_copy(sample_dir, tmp_path / "data", n=5)
    args = ["prepare", str(data), "--cache-dir", str(tmp_path / "c"), "--workers", "1"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "sequences 5" in first.stdout and "skipped 0" in first.stdout and "built in" in first.stdout
    assert f"next:\n  asl train --data {data}" in first.stdout
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "up to date" in second.stdout
    # A bad file: one error line naming it, exit code 3; with --skip-bad: counted and listed.
    bad = data / read_index(data).paths[1]
    bad.write_bytes(b"not parquet")
    failed = runner.invoke(app, args)
    assert failed.exit_code == 3 and "Traceback" not in failed.output
    assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {bad}: not a readable parquet file")
    assert failed.stderr.strip().endswith("(rerun with --skip-bad to skip unreadable files)")  # the remedy
    skipped = runner.invoke(app, args + ["--skip-bad"])
    assert skipped.exit_code == 0 and "skipped 1" in skipped.stdout and str(bad) in skipped.stderr


def test_unwritable_cache_location(sample_dir, tmp_path):
    from asl_cli.errors import EXIT_IO, RunIOError

    data = small_copy(sample_dir, tmp_path / "data", n=2)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(RunIOError) as info:
        prepare(data, blocker, workers=1)
    assert info.value.exit_code == EXIT_IO and "cannot create the cache folder" in info.value.message


@pytest.mark.parametrize("damage", ["truncated", "flipped bytes"])
def test_damaged_index_is_a_data_error(sample_dir, tmp_path, damage):
    data = small_copy(sample_dir, tmp_path / "data", n=3)
    good = prepare(data, tmp_path / "cache", workers=1)
    index = good.path / "index.npz"
    blob = bytearray(index.read_bytes())
    if damage == "truncated":
        blob = blob[:300]  # the zip's central directory is gone
    else:
        blob[200:400] = bytes(b ^ 0x55 for b in blob[200:400])  # a member's CRC no longer matches
    index.write_bytes(bytes(blob))
    for opener in (lambda: open_cache(good.path), lambda: prepare(data, tmp_path / "cache", workers=1)):
        with pytest.raises(DataError, match="damaged prepared cache") as info:
            opener()
        assert info.value.path == str(good.path) and "\n" not in str(info.value)


def test_cli_prepare_stopped_by_ctrl_c_says_so_and_writes_nothing(sample_dir, tmp_path, monkeypatch):
    """A real SIGINT mid-build: one line on stderr, exit 130, no cache and no temp folder left."""
    import signal

    from typer.testing import CliRunner

    from asl_cli.cli.app import app

    data = small_copy(sample_dir, tmp_path / "data", n=5)
    root = tmp_path / "c"
    calls = {"n": 0}
    real = cache_mod.load_sequence

    def ctrl_c_midway(path):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as a terminal's Ctrl-C: the handler runs here
        return real(path)

    monkeypatch.setattr(cache_mod, "load_sequence", ctrl_c_midway)
    res = CliRunner().invoke(app, ["prepare", str(data), "--cache-dir", str(root), "--workers", "1"])
    assert res.exit_code == 130, res.output
    assert res.stderr.strip().splitlines()[-1] == "stopped by Ctrl-C: nothing written (the cache folder is as it was)"
    assert "Traceback" not in res.output and res.stdout == ""
    assert not root.exists() or list(root.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
