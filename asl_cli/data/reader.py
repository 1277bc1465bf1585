"""Reading and validating Kaggle asl-signs data: `train.csv`, the sign map, one parquet per sequence.

Every problem becomes one `DataError` whose `path` names the offending file and whose message says
what is wrong; nothing from pyarrow or the csv module leaks out as a traceback, and nothing is
silently repaired. Parquet files are read with pyarrow directly (only the needed columns), so the
reader does not depend on column order, tolerates a missing `row_id`, `frame` as any integer type,
frame numbers that do not start at 0, NaN (or null) landmarks, and a missing `z` column.

One rule for every reader of landmark files: a file needs `frame`, `x` and `y` (`REQUIRED_COLUMNS`);
`z` is optional, because nothing uses it (the features are built from x and y). Training (the
cache), `asl check-env --data`, `asl predict` and `asl show` read exactly `COORDINATES` (x, y), so
a file one of them accepts, all accept; a caller that asks for `z` (the default, (T, 543, 3), e.g.
`asl export`'s verification) gets NaN for it when the file has none.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.errors import DataError, first_line

TRAIN_CSV = "train.csv"
SIGN_MAP = "sign_to_prediction_index_map.json"
CSV_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
COORDINATES = ("x", "y")  # what the model uses: the coordinates training, predict and show read
REQUIRED_COLUMNS = ("frame", *COORDINATES)  # every landmark file has these
OPTIONAL_COLUMNS = ("z",)  # read when asked for and present; NaN when the file has none


# --- train.csv and the sign map ---------------------------------------------------------------

@dataclass(frozen=True)
class SignIndex:
    """The labelled sequences listed in `train.csv`, in file order, and the sign map.

    `paths` are as written in train.csv (relative to `root`); `file(i)` is the absolute path.
    """

    root: Path
    paths: list[str]
    participants: np.ndarray  # int64
    sequence_ids: np.ndarray  # int64
    signs: list[str]
    labels: np.ndarray  # int64, the sign map's index of each sign
    sign_map: dict[str, int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.sign_map)

    @property
    def classes(self) -> list[str]:
        """Sign names ordered by their prediction index."""
        return sorted(self.sign_map, key=self.sign_map.__getitem__)

    def file(self, i: int) -> Path:
        return self.root / self.paths[i]

    def head(self, n: int) -> "SignIndex":
        """The first `n` sequences (all of them when n <= 0)."""
        if n <= 0 or n >= len(self):
            return self
        return SignIndex(self.root, self.paths[:n], self.participants[:n], self.sequence_ids[:n],
                         self.signs[:n], self.labels[:n], self.sign_map)


def read_sign_map(path: str | Path) -> dict[str, int]:
    """`{sign: index}` whose indices are exactly 0..n-1, one per sign."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark (Windows editors) is dropped
    except FileNotFoundError:
        raise DataError("sign map not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the sign map ({first_line(exc)})", path=path) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                        path=path) from None
    if not isinstance(obj, dict) or not obj:
        raise DataError("expected a non-empty JSON object {sign: index}", path=path)
    owner: dict[int, str] = {}
    for sign, idx in obj.items():
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise DataError(f"index of sign {sign!r} is {idx!r}, expected an integer", path=path)
        if idx in owner:
            raise DataError(f"index {idx} is used by both {owner[idx]!r} and {sign!r} "
                            "(each sign needs its own index)", path=path)
        owner[idx] = sign
    n = len(obj)
    outside = sorted(i for i in owner if not 0 <= i < n)
    if outside:
        raise DataError(f"indices must be 0..{n - 1} for {n} signs, but sign {owner[outside[0]]!r} "
                        f"has {outside[0]}", path=path)
    return dict(obj)


def read_index(data_dir: str | Path) -> SignIndex:
    """Read and check `train.csv` + the sign map of an asl-signs folder.

    Checks: the folder exists and is a folder; both files exist and parse; train.csv has the four
    columns (any order); ids are integers; every sign is in the map; no path is listed twice; no
    path leaves the data folder. The parquet files themselves are checked when read (`read_landmarks`).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError("data folder not found" if not root.exists() else
                        f"not a folder (a data folder holds {TRAIN_CSV}, {SIGN_MAP} and the parquet files)",
                        path=root)
    if not (root / SIGN_MAP).exists() and not (root / TRAIN_CSV).exists():
        raise DataError(f"not an asl-signs data folder: it holds neither {TRAIN_CSV} nor {SIGN_MAP}", path=root)
    sign_map = read_sign_map(root / SIGN_MAP)
    csv_path = root / TRAIN_CSV
    try:
        # utf-8-sig: spreadsheet programs save "CSV UTF-8" with a byte-order mark, which would
        # otherwise stick to the first column's name.
        fh = open(csv_path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("train.csv not found", path=csv_path) from None
    except OSError as exc:
        raise DataError(f"cannot read train.csv ({first_line(exc)})", path=csv_path) from None

    # Lexical containment (no symlink resolution): an absolute path or `..` is rejected, while a
    # data folder whose subfolders are symlinks to another disk stays usable.
    root_norm = os.path.normpath(os.path.abspath(root))
    paths: list[str] = []
    participants: list[int] = []
    sequence_ids: list[int] = []
    signs: list[str] = []
    seen: dict[str, int] = {}
    with fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DataError("train.csv is empty", path=csv_path)
            header = [h.strip() for h in header]
            missing = [c for c in CSV_COLUMNS if c not in header]
            if missing:
                raise DataError(f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})",
                                path=csv_path)
            col = {c: header.index(c) for c in CSV_COLUMNS}
            width = len(header)
            for line_no, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != width:
                    raise DataError(f"line {line_no}: {len(row)} fields, expected {width}", path=csv_path)
                rel, sign = row[col["path"]], row[col["sign"]]
                pid = _int_field(row[col["participant_id"]], "participant_id", line_no, csv_path)
                sid = _int_field(row[col["sequence_id"]], "sequence_id", line_no, csv_path)
                if sign not in sign_map:
                    raise DataError(f"line {line_no}: sign {sign!r} is not in {SIGN_MAP}", path=csv_path)
                if not rel:
                    raise DataError(f"line {line_no}: empty path", path=csv_path)
                full = os.path.normpath(os.path.join(root_norm, rel))
                if os.path.isabs(rel) or not full.startswith(root_norm + os.sep):
                    raise DataError(f"line {line_no}: path {rel!r} points outside the data folder",
                                    path=csv_path)
                key = os.path.relpath(full, root_norm)
                if key in seen:
                    raise DataError(f"line {line_no}: duplicate row, {rel!r} is already listed on line "
                                    f"{seen[key]}", path=csv_path)
                seen[key] = line_no
                paths.append(rel)
                participants.append(pid)
                sequence_ids.append(sid)
                signs.append(sign)
        except csv.Error as exc:
            raise DataError(f"not a valid CSV file ({exc})", path=csv_path) from None
        except UnicodeDecodeError:
            raise DataError("not a UTF-8 text file", path=csv_path) from None
    if not paths:
        raise DataError("train.csv lists no sequences", path=csv_path)
    return SignIndex(
        root=root,
        paths=paths,
        participants=np.asarray(participants, dtype=np.int64),
        sequence_ids=np.asarray(sequence_ids, dtype=np.int64),
        signs=signs,
        labels=np.fromiter((sign_map[s] for s in signs), dtype=np.int64, count=len(signs)),
        sign_map=sign_map,
    )


def _int_field(text: str, name: str, line_no: int, path: Path) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DataError(f"line {line_no}: {name} {text!r} is not an integer", path=path) from None
    if not -2 ** 63 <= value < 2 ** 63:  # stored as int64
        raise DataError(f"line {line_no}: {name} {text!r} is out of range (a 64-bit integer)", path=path)
    return value


# --- one landmark parquet ---------------------------------------------------------------------

def read_landmarks(path: str | Path, columns: Sequence[str] = ("x", "y", "z")) -> np.ndarray:
    """One sequence's landmarks as float32 `(T, 543, len(columns))`, frames in ascending order.

    The file needs `REQUIRED_COLUMNS` (frame, x, y) and the requested columns, except those in
    `OPTIONAL_COLUMNS` (`z`): one of these that the file lacks is returned as NaN. NaN (or null)
    stays NaN. Rows are grouped by `frame`; within a frame they must be the 543 landmarks in the
    standard order, or, when `type` and `landmark_index` columns exist, each
    landmark exactly once in any order (they are then used to place the rows).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    columns = tuple(columns)
    if not path.is_file():
        raise DataError("landmark file not found" if not path.exists() else "not a file", path=path)
    try:
        try:  # `type` read as a dictionary (as it is stored) is much cheaper than as strings
            pf = pq.ParquetFile(path, read_dictionary=["type"])
        except KeyError:  # no `type` column
            pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged footer
        raise DataError(f"not a readable parquet file ({first_line(exc)})", path=path) from None
    names = schema.names
    missing = [c for c in dict.fromkeys((*REQUIRED_COLUMNS, *columns))
               if c not in names and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DataError(f"missing column(s) {', '.join(missing)} (found: {', '.join(names)})", path=path)
    present = [c for c in columns if c in names]  # the others are optional ones the file lacks: NaN
    ftype = schema.field("frame").type
    if not pa.types.is_integer(ftype):
        raise DataError(f"column 'frame' has type {ftype}, expected integers", path=path)
    for c in present:
        t = schema.field(c).type
        if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
            raise DataError(f"column {c!r} has type {t}, expected numeric coordinates", path=path)
    # landmark_index may be float (pandas stores an int column with gaps as float64): whole numbers only
    placed = ("type" in names and "landmark_index" in names
              and (pa.types.is_integer(schema.field("landmark_index").type)
                   or pa.types.is_floating(schema.field("landmark_index").type))
              and _is_text(schema.field("type").type, pa))
    read_cols = ["frame", *dict.fromkeys(present)] + (["type", "landmark_index"] if placed else [])
    try:
        table = pf.read(columns=read_cols, use_threads=False)
    except Exception as exc:  # damaged pages, bad compression, ...
        raise DataError(f"cannot read the parquet data ({first_line(exc)})", path=path) from None

    n = table.num_rows
    if n == 0:
        raise DataError("no frames (the file has 0 rows)", path=path)
    if n % ROWS_PER_FRAME:
        raise DataError(f"{n} rows is not a multiple of {ROWS_PER_FRAME} landmarks per frame", path=path)
    frame_col = table.column("frame")
    if frame_col.null_count:
        raise DataError(f"column 'frame' has {frame_col.null_count} missing values", path=path)
    frame = np.asarray(frame_col.to_numpy(), dtype=np.int64)
    coords = np.empty((n, len(columns)), dtype=np.float32)
    with np.errstate(over="ignore"):  # a float64 beyond float32 becomes inf, reported below
        for j, c in enumerate(columns):
            coords[:, j] = table.column(c).to_numpy() if c in names else np.nan  # nulls arrive as NaN

    flat = _flat_landmark_index(table, path) if placed else None
    # Fast path: frames already ascending and (when known) landmarks in the standard order.
    ordered = bool(np.all(frame[1:] >= frame[:-1]))
    if not ordered:
        order = np.lexsort((flat, frame)) if flat is not None else np.argsort(frame, kind="stable")
        frame, coords = frame[order], coords[order]
        flat = flat[order] if flat is not None else None
    starts = np.flatnonzero(np.r_[True, frame[1:] != frame[:-1]])
    counts = np.diff(np.r_[starts, n])
    bad = np.flatnonzero(counts != ROWS_PER_FRAME)
    if bad.size:
        f, c = int(frame[starts[bad[0]]]), int(counts[bad[0]])
        if c % ROWS_PER_FRAME == 0:
            raise DataError(f"duplicate frame: frame {f} appears {c // ROWS_PER_FRAME} times "
                            f"({c} rows)", path=path)
        raise DataError(f"frame {f} has {c} rows, expected {ROWS_PER_FRAME}", path=path)
    T = starts.size
    if flat is not None:
        expected = np.tile(np.arange(ROWS_PER_FRAME, dtype=np.int64), T)
        if not np.array_equal(flat, expected):
            if ordered:  # rows of a frame in a non-standard order: place them by landmark
                order = np.lexsort((flat, frame))
                frame, coords, flat = frame[order], coords[order], flat[order]
            if not np.array_equal(flat, expected):
                t = int(np.flatnonzero((flat != expected).reshape(T, -1).any(1))[0])
                raise DataError(f"frame {int(frame[t * ROWS_PER_FRAME])} does not hold each of the "
                                f"{ROWS_PER_FRAME} landmarks exactly once (duplicate landmark rows)",
                                path=path)
    if np.isinf(coords).any():
        r = int(np.flatnonzero(np.isinf(coords).any(1))[0])
        c = columns[int(np.flatnonzero(np.isinf(coords[r]))[0])]
        raise DataError(f"infinite or out-of-range coordinate in column {c!r} (frame {int(frame[r])})",
                        path=path)
    return coords.reshape(T, ROWS_PER_FRAME, len(columns))


def _is_text(t, pa) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _flat_landmark_index(table, path: Path) -> np.ndarray:
    """Flat 0..542 position of each row from its `type` and `landmark_index`."""
    import pyarrow as pa

    types = table.column("type")
    if pa.types.is_dictionary(types.type):
        # Chunks (row groups, pandas categoricals) may each carry their own dictionary.
        types = types.chunk(0) if types.num_chunks == 1 else types.unify_dictionaries().combine_chunks()
    else:
        types = types.combine_chunks().dictionary_encode()
    lidx = table.column("landmark_index")
    if types.null_count or lidx.null_count:
        raise DataError("columns 'type'/'landmark_index' have missing values", path=path)
    names = types.dictionary.to_pylist()
    offset_of = np.asarray([TYPE_OFFSETS.get(n, -1) for n in names], dtype=np.int64)
    size_of = np.asarray([TYPE_SIZES.get(n, 0) for n in names], dtype=np.int64)
    codes = np.asarray(types.indices.to_numpy(), dtype=np.int64)
    offsets = offset_of[codes]
    if (offsets < 0).any():
        name = names[int(codes[np.flatnonzero(offsets < 0)[0]])]
        raise DataError(f"unknown landmark type {name!r} (expected one of {', '.join(TYPE_OFFSETS)})",
                        path=path)
    raw = np.asarray(lidx.to_numpy())
    if raw.dtype.kind == "f":
        whole = np.isfinite(raw) & (raw == np.round(raw))
        if not whole.all():
            r = int(np.flatnonzero(~whole)[0])
            raise DataError(f"landmark_index {float(raw[r])!r} (row {r + 1}) is not a whole number", path=path)
    idx = raw.astype(np.int64)
    size = size_of[codes]
    if ((idx < 0) | (idx >= size)).any():
        r = int(np.flatnonzero((idx < 0) | (idx >= size))[0])
        raise DataError(f"landmark_index {int(idx[r])} is out of range for type {names[codes[r]]!r}",
                        path=path)
    return offsets + idx

