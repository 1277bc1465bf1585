"""Property-based tests (hypothesis) of the reader and the preprocessing, at the input boundary:

- any finite landmarks of a valid shape (NaN allowed as "not detected") -> finite features;
- any parquet that is not a valid landmark file -> the toolkit's DataError (one line, naming the
  file), never a pyarrow/numpy exception.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# A dev extra: without it (a bare GPU machine running `pytest -m gpu tests`) this file is skipped,
# not a collection error that stops the whole run.
pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from asl_cli.data.cache import load_sequence
from asl_cli.data.landmarks import NUM_POINTS, ROWS_PER_FRAME
from asl_cli.data.preprocess import preprocess
from asl_cli.data.reader import read_landmarks
from asl_cli.errors import DataError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
coordinate = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, width=32), st.just(float("nan")))


@FAST
@given(points=arrays(np.float32, st.tuples(st.integers(1, 40), st.just(NUM_POINTS), st.just(2)),
                     elements=coordinate),
       max_len=st.integers(1, 64))
def test_finite_points_give_finite_features(points, max_len):
    features = preprocess(points, max_len=max_len)
    assert features.ndim == 2 and 1 <= features.shape[0] <= max_len
    assert np.isfinite(features).all()


def write_frames(path: Path, coords: np.ndarray, frames: np.ndarray) -> None:
    pq.write_table(pa.table({"frame": pa.array(frames, type=pa.int16()), "x": coords[:, 0],
                             "y": coords[:, 1], "z": coords[:, 2]}), path)


@FAST
@given(T=st.integers(1, 3), seed=st.integers(0, 2**31 - 1),
       big=st.sampled_from([1.0, 1e3, 1e6]))
def test_any_finite_valid_file_reads_to_finite_features(T, seed, big):
    rng = np.random.default_rng(seed)
    coords = (rng.standard_normal((T * ROWS_PER_FRAME, 3)) * big).astype(np.float32)
    coords[rng.random(len(coords)) < 0.3] = np.nan
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ok.parquet"
        write_frames(path, coords, np.repeat(np.arange(T), ROWS_PER_FRAME))
        points = load_sequence(str(path))
    assert np.isfinite(preprocess(points, max_len=32)).all()


def _invalid(data: st.DataObject) -> tuple[str, np.ndarray | bytes, np.ndarray | None]:
    kind = data.draw(st.sampled_from(["rows", "inf", "bytes", "duplicate", "truncated"]))
    T = data.draw(st.integers(1, 3))
    rows = T * ROWS_PER_FRAME
    if kind == "rows":
        rows = data.draw(st.integers(1, 3 * ROWS_PER_FRAME).filter(lambda r: r % ROWS_PER_FRAME))
    coords = np.zeros((rows, 3), dtype=np.float32)
    frames = np.repeat(np.arange(T), ROWS_PER_FRAME)[:rows] if kind != "rows" else np.zeros(rows, dtype=np.int64)
    if kind == "inf":
        coords[data.draw(st.integers(0, rows - 1)), data.draw(st.integers(0, 1))] = data.draw(
            st.sampled_from([np.inf, -np.inf]))
    if kind == "duplicate":
        frames = np.repeat(np.zeros(T + 1, dtype=np.int64), ROWS_PER_FRAME)
        coords = np.zeros((len(frames), 3), dtype=np.float32)
    if kind == "bytes":
        return kind, data.draw(st.binary(max_size=256)), None
    return kind, coords, frames


@FAST
@given(data=st.data())
def test_any_invalid_file_gives_a_data_error(data):
    kind, payload, frames = _invalid(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.parquet"
        if kind == "bytes":
            path.write_bytes(payload)
        else:
            write_frames(path, payload, frames)
            if kind == "truncated":
                raw = path.read_bytes()
                cut = data.draw(st.integers(0, len(raw) - 1))
                path.write_bytes(raw[:cut])
        try:
            read_landmarks(path)
        except DataError as exc:
            assert exc.path == str(path) and "\n" not in str(exc)
        else:
            raise AssertionError(f"{kind}: accepted")
