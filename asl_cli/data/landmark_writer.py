"""Writing asl-signs files: one sequence as a parquet file, byte for byte in the real files' format, and
the folder's `train.csv` and sign map. `asl synth` and `asl extract` both write through here.

Schema as in the real data: frame int16, row_id string "<frame>-<type>-<index>", type string,
landmark_index int16, x/y/z float64 holding float32 values, pandas metadata, one row group, snappy;
543 rows per frame (face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20). Columns are built with
numpy and Arrow buffers (`_RowIds`: the row ids from a byte template), pyarrow imported on first use.
"""

from __future__ import annotations

import csv
import io
import json
from importlib import metadata
from pathlib import Path

import numpy as np

from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.data.reader import CSV_COLUMNS, SIGN_MAP, TRAIN_CSV
from asl_cli.tempfiles import atomic_write_text

TYPES = tuple(TYPE_OFFSETS)  # asl-signs' row order within a frame (data.landmarks owns it)


def _row_layout() -> tuple[np.ndarray, list[str], list[str]]:
    """Per row of one frame: landmark_index, type, "-<type>-<index>" (the row_id suffix)."""
    idx, types, suffix = [], [], []
    for name in TYPES:
        for i in range(TYPE_SIZES[name]):
            idx.append(i)
            types.append(name)
            suffix.append(f"-{name}-{i}")
    return np.asarray(idx, dtype=np.int16), types, suffix


def _pandas_metadata() -> bytes:
    """The `pandas` schema metadata pandas' `to_parquet` writes (as in the real files)."""
    import pyarrow as pa

    cols = [("frame", "int16", "int16"), ("row_id", "unicode", "object"), ("type", "unicode", "object"),
            ("landmark_index", "int16", "int16"), ("x", "float64", "float64"), ("y", "float64", "float64"),
            ("z", "float64", "float64")]
    try:
        pandas_version = metadata.version("pandas")
    except metadata.PackageNotFoundError:  # pragma: no cover - pandas is a dependency
        pandas_version = "unknown"
    meta = {"index_columns": [], "column_indexes": [],
            "columns": [{"name": n, "field_name": n, "pandas_type": pt, "numpy_type": nt, "metadata": None}
                        for n, pt, nt in cols],
            "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": pandas_version}
    return json.dumps(meta).encode()


class _RowIds:
    """The row_id column ("<frame>-<type>-<index>") built as Arrow buffers with numpy.

    Formatting ~15 000 strings per sequence in Python (or with Arrow's cast + join) cost more
    than the rest of the generator; here each frame's bytes are a fixed template with the frame
    number's digits written into known positions.
    """

    def __init__(self, suffixes: list[str]) -> None:
        enc = [x.encode("ascii") for x in suffixes]
        self.suffix_len = np.array([len(b) for b in enc])
        self.suffix_bytes = np.frombuffer(b"".join(enc), dtype=np.uint8)
        self._templates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _template(self, digits: int) -> tuple[np.ndarray, np.ndarray]:
        """One frame's bytes with zeros where the digits go, and the positions of those digits."""
        if digits not in self._templates:
            row_len = self.suffix_len + digits
            starts = np.concatenate([[0], np.cumsum(row_len)[:-1]])
            block = np.zeros(int(row_len.sum()), dtype=np.uint8)
            digit_pos = (starts[:, None] + np.arange(digits)).ravel()
            mask = np.ones(len(block), dtype=bool)
            mask[digit_pos] = False
            block[mask] = self.suffix_bytes
            self._templates[digits] = (block, digit_pos)
        return self._templates[digits]

    def build(self, frames: np.ndarray):
        import pyarrow as pa

        rows = len(self.suffix_len)
        data, lengths = [], []
        for digits in np.unique([len(str(int(f))) for f in frames]):
            group = np.array([f for f in frames if len(str(int(f))) == digits], dtype=np.int64)
            block, digit_pos = self._template(int(digits))
            chunk = np.tile(block, (len(group), 1))
            powers = 10 ** np.arange(digits - 1, -1, -1)
            ascii_digits = (group[:, None] // powers % 10 + ord("0")).astype(np.uint8)  # (m, digits)
            chunk[:, digit_pos] = np.tile(ascii_digits, (1, rows))
            data.append(chunk.ravel())
            lengths.append(np.tile(self.suffix_len + digits, len(group)))
        offsets = np.zeros(rows * len(frames) + 1, dtype=np.int32)
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), rows * len(frames),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(np.concatenate(data))])


MAX_FRAME_NUMBER = 2 ** 15 - 1  # `frame` is int16 in asl-signs


class LandmarkWriter:
    """Writes (T, 543, 3) sequences as asl-signs parquet files: columns built with numpy/arrow."""

    def __init__(self, frames: int = 256) -> None:
        import pyarrow as pa

        self.pa = pa
        self._idx, self._type_names, suffix = _row_layout()
        self.schema = pa.schema([("frame", pa.int16()), ("row_id", pa.string()), ("type", pa.string()),
                                 ("landmark_index", pa.int16()), ("x", pa.float64()), ("y", pa.float64()),
                                 ("z", pa.float64())], metadata={b"pandas": _pandas_metadata()})
        self.row_ids = _RowIds(suffix)
        self._reserve(frames)

    def _reserve(self, frames: int) -> None:
        """Per-row constant columns for `frames` frames; a sequence takes a zero-copy slice."""
        self.capacity = frames
        self.landmark_index = self.pa.array(np.tile(self._idx, frames))
        self.types = self.pa.array(self._type_names * frames, type=self.pa.string())

    def write(self, path: Path, frames: np.ndarray, first_frame: int) -> None:
        """`frames` (T, 543, 3) as frames `first_frame` .. `first_frame + T - 1` (int16, as in asl-signs)."""
        import pyarrow.parquet as pq

        pa = self.pa
        t = frames.shape[0]
        if not (0 <= first_frame and first_frame + t - 1 <= MAX_FRAME_NUMBER):
            raise ValueError(f"frame numbers {first_frame}..{first_frame + t - 1} do not fit asl-signs' int16 "
                             f"frame column (at most {MAX_FRAME_NUMBER})")
        if t > self.capacity:
            self._reserve(max(t, 2 * self.capacity))
        n = t * ROWS_PER_FRAME
        numbers = np.arange(first_frame, first_frame + t, dtype=np.int16)
        xyz = frames.reshape(n, 3).astype(np.float64)
        # NaN stays a NaN value (not a null), as in the real files.
        cols = [pa.array(np.repeat(numbers, ROWS_PER_FRAME)), self.row_ids.build(numbers), self.types.slice(0, n),
                self.landmark_index.slice(0, n), *(pa.array(np.ascontiguousarray(xyz[:, c])) for c in range(3))]
        table = pa.Table.from_arrays(cols, schema=self.schema)
        # Dictionary-encoding the unique row ids only to fall back to plain costs time for nothing.
        pq.write_table(table, path, compression="snappy", version="1.0",
                       use_dictionary=["frame", "type", "landmark_index", "x", "y", "z"])


def write_index(out: Path, rows: list[tuple[str, int, int, str]], signs: list[str]) -> dict[str, int]:
    """`train.csv` (path, participant_id, sequence_id, sign) and the sign map (signs sorted by name,
    numbered 0..n-1) of an asl-signs folder; returns the sign map. Each written whole or not at all (a
    reader of a live folder sees the old file or the new); RunIOError when they cannot be written."""
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(rows)
    sign_map = {name: i for i, name in enumerate(sorted(signs))}
    atomic_write_text(out / TRAIN_CSV, text.getvalue())
    atomic_write_text(out / SIGN_MAP, json.dumps(sign_map))
    return sign_map
