"""Reading asl-signs: the real sample, format variants, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from realdata import LONG_FILE, PARTICIPANTS, SEQUENCES
from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.data.reader import read_index, read_landmarks, read_sign_map
from asl_cli.errors import EXIT_DATA, DataError

TYPES = np.array([t for t in TYPE_OFFSETS for _ in range(TYPE_SIZES[t])])
LANDMARK_INDEX = np.concatenate([np.arange(TYPE_SIZES[t]) for t in TYPE_OFFSETS]).astype(np.int16)


def frames_array(T: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((T, ROWS_PER_FRAME, 3))
    a[:, 468:489] = np.nan  # a missing left hand
    return a


def landmark_table(a: np.ndarray, *, first_frame: int = 0, frame_type=pa.int16(), row_id=True,
                   placed=True) -> dict:
    """Columns of a Kaggle-style landmark file for the (T, 543, 3) array `a`."""
    T = a.shape[0]
    frame = np.repeat(np.arange(first_frame, first_frame + T), ROWS_PER_FRAME)
    cols = {"frame": pa.array(frame, type=frame_type)}
    if row_id:
        cols["row_id"] = pa.array([f"{f}-{t}-{i}" for f, t, i in zip(frame, np.tile(TYPES, T),
                                                                      np.tile(LANDMARK_INDEX, T))])
    if placed:
        cols["type"] = pa.array(np.tile(TYPES, T))
        cols["landmark_index"] = pa.array(np.tile(LANDMARK_INDEX, T))
    flat = a.reshape(-1, 3)
    cols.update(x=pa.array(flat[:, 0]), y=pa.array(flat[:, 1]), z=pa.array(flat[:, 2]))
    return cols


def write(path: Path, cols: dict, order=None) -> Path:
    names = order or list(cols)
    pq.write_table(pa.table({k: cols[k] for k in names}), path)
    return path


def expect_error(path, fragment: str, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        read_landmarks(path, **kw)
    err = info.value
    assert err.path == str(path) and str(path) in str(err)
    assert fragment in err.message, err.message
    assert "\n" not in str(err) and err.exit_code == EXIT_DATA
    return err


# --- the real sample --------------------------------------------------------------------------

def test_real_sample_index(sample_dir):
    index = read_index(sample_dir)
    assert len(index) == SEQUENCES and index.num_classes == 250
    assert set(index.signs) == {"hello", "thankyou"}
    assert len(set(index.participants.tolist())) == PARTICIPANTS
    hello = index.sign_map["hello"]
    assert (index.labels[np.array(index.signs) == "hello"] == hello).all()
    assert index.classes[hello] == "hello"
    assert all(index.file(i).is_file() for i in range(len(index)))


def test_real_sample_landmarks_match_pandas(sample_dir):
    import pandas as pd

    index = read_index(sample_dir)
    for i in (0, SEQUENCES // 2, SEQUENCES - 1):
        a = read_landmarks(index.file(i))
        df = pd.read_parquet(index.file(i))
        ref = df[["x", "y", "z"]].to_numpy().reshape(-1, ROWS_PER_FRAME, 3).astype(np.float32)
        assert a.dtype == np.float32 and a.shape == ref.shape
        np.testing.assert_array_equal(a, ref)  # NaN in the same places
        assert np.isnan(a).any()
    xy = read_landmarks(index.file(0), columns=("x", "y"))
    np.testing.assert_array_equal(xy, read_landmarks(index.file(0))[..., :2])
    assert read_landmarks(sample_dir / LONG_FILE).shape == (52, 543, 3)  # frames 0..51 of a 52-frame file


# --- accepted variants ------------------------------------------------------------------------

def test_variants_read_the_same(tmp_path):
    a = frames_array(4)
    ref = a.astype(np.float32)
    cols = landmark_table(a, first_frame=0)
    write(tmp_path / "std.parquet", cols)
    np.testing.assert_array_equal(read_landmarks(tmp_path / "std.parquet"), ref)
    # Other column order, no row_id, frame int64 starting at 1000, no type/landmark_index.
    v = landmark_table(a, first_frame=1000, frame_type=pa.int64(), row_id=False, placed=False)
    write(tmp_path / "v.parquet", v, order=["z", "y", "frame", "x"])
    np.testing.assert_array_equal(read_landmarks(tmp_path / "v.parquet"), ref)
    # Float32 / integer coordinates are numbers too.
    v32 = dict(v, x=pa.array(a.reshape(-1, 3)[:, 0].astype(np.float32)))
    write(tmp_path / "f32.parquet", v32)
    np.testing.assert_array_equal(read_landmarks(tmp_path / "f32.parquet"), ref)


def test_shuffled_rows_are_placed(tmp_path):
    a = frames_array(3, seed=1)
    cols = landmark_table(a, first_frame=7)
    perm = np.random.default_rng(0).permutation(3 * ROWS_PER_FRAME)
    shuffled = {k: v.take(pa.array(perm)) for k, v in cols.items()}
    write(tmp_path / "s.parquet", shuffled)
    np.testing.assert_array_equal(read_landmarks(tmp_path / "s.parquet"), a.astype(np.float32))
    # Without type/landmark_index only whole frames can be reordered (rows keep their order).
    frame_perm = np.concatenate([np.arange(ROWS_PER_FRAME) + f * ROWS_PER_FRAME for f in (2, 0, 1)])
    plain = landmark_table(a, placed=False)
    write(tmp_path / "f.parquet", {k: v.take(pa.array(frame_perm)) for k, v in plain.items()})
    np.testing.assert_array_equal(read_landmarks(tmp_path / "f.parquet"), a.astype(np.float32))


def test_float_landmark_index_still_places_shuffled_rows(tmp_path):
    # pandas stores an integer column that had gaps as float64: the rows must still be placed by it.
    a = frames_array(2, seed=3)
    cols = landmark_table(a)
    cols["landmark_index"] = pa.array(np.asarray(cols["landmark_index"].to_numpy(), dtype=np.float64))
    perm = np.random.default_rng(1).permutation(2 * ROWS_PER_FRAME)
    write(tmp_path / "s.parquet", {k: v.take(pa.array(perm)) for k, v in cols.items()})
    np.testing.assert_array_equal(read_landmarks(tmp_path / "s.parquet"), a.astype(np.float32))
    li = np.asarray(cols["landmark_index"].to_numpy()).copy()
    li[5] = 4.5
    cols["landmark_index"] = pa.array(li)
    expect_error(write(tmp_path / "h.parquet", cols), "landmark_index 4.5 (row 6) is not a whole number")


def test_null_coordinates_become_nan(tmp_path):
    a = frames_array(2)
    cols = landmark_table(a)
    x = a.reshape(-1, 3)[:, 0].tolist()
    x[5] = None
    cols["x"] = pa.array(x, type=pa.float64())
    out = read_landmarks(write(tmp_path / "n.parquet", cols))
    assert np.isnan(out[0, 5, 0]) and not np.isnan(out[0, 5, 1])


# --- bad parquet files ------------------------------------------------------------------------

def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.parquet", "not found")


def test_not_a_parquet(tmp_path):
    p = tmp_path / "text.parquet"
    p.write_text("path,participant_id\n")
    expect_error(p, "not a readable parquet file")


def test_truncated_parquet(tmp_path):
    good = write(tmp_path / "g.parquet", landmark_table(frames_array(3)))
    data = good.read_bytes()
    p = tmp_path / "t.parquet"
    p.write_bytes(data[: len(data) // 2])
    expect_error(p, "not a readable parquet file")


def test_corrupt_parquet(tmp_path):
    good = write(tmp_path / "g.parquet", landmark_table(frames_array(3)))
    data = good.read_bytes()
    p = tmp_path / "c.parquet"
    p.write_bytes(data[:4] + b"\x00" * (len(data) - 8) + data[-4:])  # magic intact, footer zeroed
    expect_error(p, "parquet")


def test_missing_columns(tmp_path):
    cols = landmark_table(frames_array(2))
    del cols["y"]
    err = expect_error(write(tmp_path / "m.parquet", cols), "missing column(s) y")
    assert "found:" in err.message
    cols = landmark_table(frames_array(2))
    del cols["frame"]
    expect_error(write(tmp_path / "f.parquet", cols), "missing column(s) frame")


def test_z_is_optional_x_and_y_are_not(tmp_path):
    """One rule for every reader: frame, x, y required; z optional (NaN when asked for and absent)."""
    from asl_cli.data.reader import COORDINATES

    a = frames_array(3)
    cols = landmark_table(a)
    full = read_landmarks(write(tmp_path / "full.parquet", cols))
    del cols["z"]
    p = write(tmp_path / "noz.parquet", cols)
    got = read_landmarks(p)
    assert got.shape == (3, ROWS_PER_FRAME, 3) and np.isnan(got[..., 2]).all()
    np.testing.assert_array_equal(got[..., :2], full[..., :2])
    np.testing.assert_array_equal(read_landmarks(p, columns=COORDINATES), full[..., :2])
    np.testing.assert_array_equal(read_landmarks(p, columns=("x", "z", "y"))[..., [0, 2]], full[..., :2])
    cols = landmark_table(a)
    del cols["x"]
    expect_error(write(tmp_path / "nox.parquet", cols), "missing column(s) x", columns=("y",))  # x always needed
    cols = landmark_table(a)
    cols["z"] = pa.array(["?"] * len(cols["z"]))  # z that is not numbers: refused when asked for, else unread
    p = write(tmp_path / "badz.parquet", cols)
    expect_error(p, "column 'z' has type string")
    np.testing.assert_array_equal(read_landmarks(p, columns=COORDINATES), full[..., :2])


def test_rows_not_multiple_of_543(tmp_path):
    cols = {k: v.slice(0, 2 * ROWS_PER_FRAME - 3) for k, v in landmark_table(frames_array(2)).items()}
    expect_error(write(tmp_path / "r.parquet", cols), "not a multiple of 543")


def test_frame_with_wrong_row_count(tmp_path):
    cols = landmark_table(frames_array(2), placed=False)
    frame = np.repeat([0, 1], ROWS_PER_FRAME)
    frame[ROWS_PER_FRAME: ROWS_PER_FRAME + 10] = 0  # frame 0 has 553 rows, frame 1 has 533
    cols["frame"] = pa.array(frame.astype(np.int16))
    expect_error(write(tmp_path / "w.parquet", cols), "frame 0 has 553 rows, expected 543")


def test_zero_frames(tmp_path):
    cols = {k: v.slice(0, 0) for k, v in landmark_table(frames_array(1)).items()}
    expect_error(write(tmp_path / "z.parquet", cols), "no frames")


def test_non_numeric_coordinates(tmp_path):
    cols = landmark_table(frames_array(1))
    cols["x"] = pa.array([str(v) for v in range(ROWS_PER_FRAME)])
    expect_error(write(tmp_path / "s.parquet", cols), "column 'x' has type string")


def test_non_integer_frame(tmp_path):
    cols = landmark_table(frames_array(1))
    cols["frame"] = pa.array(np.zeros(ROWS_PER_FRAME))
    expect_error(write(tmp_path / "f.parquet", cols), "column 'frame' has type double")


def test_infinite_coordinates(tmp_path):
    a = frames_array(3)
    a[2, 10, 1] = np.inf
    err = expect_error(write(tmp_path / "i.parquet", landmark_table(a, first_frame=40)), "infinite")
    assert "'y'" in err.message and "frame 42" in err.message


def test_duplicate_frames(tmp_path):
    a = frames_array(2)
    cols = landmark_table(np.concatenate([a, a[:1]]), placed=False)
    cols["frame"] = pa.array(np.repeat([5, 6, 5], ROWS_PER_FRAME).astype(np.int16))
    expect_error(write(tmp_path / "d.parquet", cols), "duplicate frame: frame 5 appears 2 times")


def test_duplicate_landmark_rows(tmp_path):
    cols = landmark_table(frames_array(2))
    li = np.tile(LANDMARK_INDEX, 2)
    li[3] = li[4]  # face landmark 4 twice, 3 never
    cols["landmark_index"] = pa.array(li)
    expect_error(write(tmp_path / "l.parquet", cols), "each of the 543 landmarks exactly once")


def test_unknown_landmark_type(tmp_path):
    cols = landmark_table(frames_array(1))
    t = np.tile(TYPES, 1).astype(object)
    t[0] = "tail"
    cols["type"] = pa.array(t.tolist())
    expect_error(write(tmp_path / "u.parquet", cols), "unknown landmark type 'tail'")


# --- train.csv and the sign map ---------------------------------------------------------------

def make_data_dir(root: Path, rows: list[str] | None = None, header="path,participant_id,sequence_id,sign",
                  sign_map=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sign_to_prediction_index_map.json").write_text(
        json.dumps(sign_map if sign_map is not None else {"hello": 0, "bye": 1}))
    rows = rows if rows is not None else ["train_landmark_files/1/10.parquet,1,10,hello",
                                          "train_landmark_files/2/20.parquet,2,20,bye"]
    (root / "train.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def expect_index_error(root: Path, file: str, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        read_index(root)
    assert info.value.path == str(root / file), info.value
    assert fragment in info.value.message, info.value.message


def test_index_any_column_order(tmp_path):
    root = make_data_dir(tmp_path / "d", rows=["hello,10,train_landmark_files/1/10.parquet,1"],
                         header="sign,sequence_id,path,participant_id")
    index = read_index(root)
    assert index.paths == ["train_landmark_files/1/10.parquet"]
    assert index.participants.tolist() == [1] and index.sequence_ids.tolist() == [10]
    assert index.labels.tolist() == [0]


def test_index_missing_columns(tmp_path):
    root = make_data_dir(tmp_path / "d", rows=["a.parquet,1,hello"], header="path,participant_id,sign")
    expect_index_error(root, "train.csv", "missing column(s) sequence_id")


def test_index_unknown_sign(tmp_path):
    root = make_data_dir(tmp_path / "d", rows=["a.parquet,1,1,hello", "b.parquet,1,2,goodbye"])
    expect_index_error(root, "train.csv", "line 3: sign 'goodbye' is not in")


def test_index_duplicate_rows(tmp_path):
    root = make_data_dir(tmp_path / "d", rows=["a/1.parquet,1,1,hello", "a/./1.parquet,1,1,hello"])
    expect_index_error(root, "train.csv", "line 3: duplicate row")


@pytest.mark.parametrize("bad", ["../outside.parquet", "a/../../outside.parquet", "/etc/passwd"])
def test_index_path_outside_root(tmp_path, bad):
    root = make_data_dir(tmp_path / "d", rows=["a.parquet,1,1,hello", f"{bad},1,2,bye"])
    expect_index_error(root, "train.csv", "points outside the data folder")


def test_index_non_integer_id(tmp_path):
    root = make_data_dir(tmp_path / "d", rows=["a.parquet,one,1,hello"])
    expect_index_error(root, "train.csv", "participant_id 'one' is not an integer")


def test_index_missing_files(tmp_path):
    root = make_data_dir(tmp_path / "d")
    (root / "train.csv").unlink()
    expect_index_error(root, "train.csv", "not found")
    root = make_data_dir(tmp_path / "e")
    (root / "sign_to_prediction_index_map.json").unlink()
    expect_index_error(root, "sign_to_prediction_index_map.json", "not found")


def test_index_wrong_folder_says_what_is_wrong_with_the_folder(tmp_path):
    """A missing path, a file and a folder that is no data set each get their own message naming the
    folder (not "sign map not found" for a folder that does not exist, nor "not found" for a file)."""
    for path, fragment in ((tmp_path / "nowhere", "data folder not found"),
                           (make_data_dir(tmp_path / "d") / "train.csv", "not a folder"),
                           (tmp_path / "empty", "not an asl-signs data folder: it holds neither train.csv nor "
                                                "sign_to_prediction_index_map.json")):
        if path.name == "empty":
            path.mkdir()
        with pytest.raises(DataError) as info:
            read_index(path)
        assert info.value.path == str(path) and fragment in info.value.message, info.value
        assert info.value.exit_code == EXIT_DATA and "\n" not in str(info.value)


def test_sign_map_not_json(tmp_path):
    root = make_data_dir(tmp_path / "d")
    (root / "sign_to_prediction_index_map.json").write_text("{'hello': 0,")
    expect_index_error(root, "sign_to_prediction_index_map.json", "not valid JSON")


@pytest.mark.parametrize("mapping,fragment", [
    ({"hello": 0, "bye": 0}, "index 0 is used by both 'hello' and 'bye'"),
    ({"hello": 0, "bye": 2}, "indices must be 0..1"),
    ({"hello": 0, "bye": "1"}, "expected an integer"),
    ([["hello", 0]], "expected a non-empty JSON object"),
    ({}, "expected a non-empty JSON object"),
])
def test_sign_map_not_a_bijection(tmp_path, mapping, fragment):
    p = tmp_path / "map.json"
    p.write_text(json.dumps(mapping))
    with pytest.raises(DataError) as info:
        read_sign_map(p)
    assert fragment in info.value.message and info.value.path == str(p)


def test_pandas_categorical_shuffled_row_groups(sample_dir, tmp_path):
    import pandas as pd

    src = read_index(sample_dir).file(0)
    df = pd.read_parquet(src)
    df["type"] = df["type"].astype("category")
    df = df.sample(frac=1.0, random_state=0)  # rows of all frames mixed
    p = tmp_path / "cat.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), p, row_group_size=1000)
    assert pq.ParquetFile(p).num_row_groups > 1
    np.testing.assert_array_equal(read_landmarks(p), read_landmarks(src))


def test_landmark_index_out_of_range(tmp_path):
    cols = landmark_table(frames_array(1))
    li = np.tile(LANDMARK_INDEX, 1)
    li[470] = 30  # a left-hand row claiming index 30 (a hand has 21)
    cols["landmark_index"] = pa.array(li)
    expect_error(write(tmp_path / "o.parquet", cols), "landmark_index 30 is out of range for type 'left_hand'")


def test_non_text_type_column_is_ignored(tmp_path):
    a = frames_array(2)
    cols = landmark_table(a)
    cols["type"] = pa.array(np.zeros(2 * ROWS_PER_FRAME, dtype=np.int8))  # not names: rows keep their order
    np.testing.assert_array_equal(read_landmarks(write(tmp_path / "t.parquet", cols)), a.astype(np.float32))


def test_float64_beyond_float32_is_one_clean_error(tmp_path, recwarn):
    a = frames_array(3)
    a[1, 7, 0] = 1e300  # finite in the file, infinite as float32
    err = expect_error(write(tmp_path / "big.parquet", landmark_table(a, first_frame=10)), "out-of-range")
    assert "'x'" in err.message and "frame 11" in err.message
    # One error, nothing else: no numpy RuntimeWarning printed beside it on stderr.
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in recwarn]


def test_index_with_utf8_bom(tmp_path):
    # Spreadsheet programs save "CSV UTF-8" (and JSON editors on Windows) with a byte-order mark.
    root = make_data_dir(tmp_path / "d")
    for name in ("train.csv", "sign_to_prediction_index_map.json"):
        p = root / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    index = read_index(root)
    assert index.paths == ["train_landmark_files/1/10.parquet", "train_landmark_files/2/20.parquet"]
    assert index.sign_map == {"hello": 0, "bye": 1} and index.labels.tolist() == [0, 1]


@pytest.mark.parametrize("value", ["99999999999999999999", "-9223372036854775809"])
def test_index_id_outside_int64(tmp_path, value):
    root = make_data_dir(tmp_path / "d", rows=[f"a.parquet,1,{value},hello"])
    expect_index_error(root, "train.csv", f"line 2: sequence_id '{value}' is out of range")
