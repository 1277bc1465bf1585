"""`asl prepare`: the asl-signs parquet tree, converted once into a compact memory-mapped cache.

Layout of one cache folder (`<cache root>/<data folder name>-<hash of its absolute path>/`):

    points.npy   float32 (total_frames, 118, 2): the winner's 118 points, x and y, every sequence's
                 frames one after another (all-NaN frames already dropped, see below)
    index.npz    offsets, lengths (frames), labels, participants, sequence_ids, paths (train.csv order)
    meta.json    format version, source fingerprint, sign map, counts, skipped sequences
    complete     written last: a folder without it is never used

z is not stored: the features are built from x and y only (the winner's step 5), and the
centre/scale statistics are per coordinate, so z never influences them. Dropping it saves a third.

Frames in which all 118 points are NaN are dropped here, once, as the winner does before
augmentation (a sequence with no valid frame keeps one all-NaN frame, which becomes zeros).

A build is written into a temporary sibling folder and renamed into place, with `complete` written
last, so an interrupted prepare never leaves a cache that looks complete; the next prepare
removes the leftovers and rebuilds. Re-running is a no-op while the fingerprint (format version,
train.csv and sign map contents, every listed file's path, size and mtime, the `limit`) matches.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from asl_cli.data.landmarks import NUM_POINTS
from asl_cli.data.preprocess import POINT_INDEX, valid_frames
from asl_cli.data.reader import COORDINATES, SIGN_MAP, TRAIN_CSV, SignIndex, read_index, read_landmarks
from asl_cli.data.pool import imap_ordered
from asl_cli.errors import DataError, RunIOError, first_line
from asl_cli.tempfiles import abandoned, temp_sibling

CACHE_FORMAT_VERSION = 1
POINTS_FILE, INDEX_FILE, META_FILE, COMPLETE_FILE = "points.npy", "index.npz", "meta.json", "complete"
NPY_HEADER_BYTES = 128  # reserved in front of points.npy, rewritten once the frame count is known
MAX_REPORTED_ERRORS = 10


def skipped_summary(files: list[str], count: int | None = None, *, listing: str | Path | None = None,
                    shown: int = 3) -> str:
    """`3 unreadable files skipped: a.parquet, b.parquet, c.parquet (+2 more; all in LISTING)`. Pure."""
    n = len(files) if count is None else int(count)
    names = ", ".join(files[:shown]) + (f" (+{n - min(shown, len(files))} more)" if n > shown else "")
    where = f"; the list: {listing}" if listing else ""
    return f"{n} unreadable file{'s' if n != 1 else ''} skipped (--skip-bad): {names}{where}"
# Starting reader processes costs about a second (imports); below this many files it is not worth it.
POOL_MIN_FILES = 1000


# --- locations --------------------------------------------------------------------------------

def default_cache_root() -> Path:
    env = os.environ.get("ASL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "asl"


def cache_path(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of `data_dir` under `cache_dir` (default $ASL_CACHE or ~/.cache/asl)."""
    data_dir = Path(data_dir).expanduser().resolve()
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_root()
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return root / f"{data_dir.name or 'data'}-{digest}"


# --- the opened cache -------------------------------------------------------------------------

class PreparedCache:
    """A complete cache, opened read-only: numpy arrays and one memory map, nothing per sequence."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / COMPLETE_FILE).is_file():
            raise DataError("no complete prepared cache here (run `asl prepare DATA_DIR`)", path=self.path)
        try:
            self.meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text())
            with np.load(self.path / INDEX_FILE, allow_pickle=False) as z:
                self.offsets = z["offsets"]
                self.lengths = z["lengths"]
                self.labels = z["labels"]
                self.participants = z["participants"]
                self.sequence_ids = z["sequence_ids"]
                self.paths = z["paths"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"damaged prepared cache ({first_line(exc)}); run `asl prepare --force`",
                            path=self.path) from None
        if self.meta.get("format") != CACHE_FORMAT_VERSION:
            raise DataError(f"cache format {self.meta.get('format')} is not {CACHE_FORMAT_VERSION}; "
                            "run `asl prepare` again", path=self.path)
        self._points: np.ndarray | None = None
        self._open_points()
        self.reused = False  # set by `prepare` when the cache was current and nothing was built

    def _open_points(self) -> None:
        try:
            mm = np.load(self.path / POINTS_FILE, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"damaged prepared cache ({exc}); run `asl prepare --force`",
                            path=self.path) from None
        if mm.shape[1:] != (NUM_POINTS, 2) or mm.shape[0] != int(self.lengths.sum()):
            raise DataError(f"damaged prepared cache: points.npy has shape {mm.shape}", path=self.path)
        # A plain ndarray view of the map: slices stay cheap views without np.memmap's overhead.
        self._points = np.asarray(mm)

    # Pickled (spawned DataLoader workers): reopen the memory map instead of copying the data.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_points"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open_points()

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def points(self, i: int) -> np.ndarray:
        """Sequence `i` as a read-only `(T, 118, 2)` float32 view into the memory map."""
        o = int(self.offsets[i])
        return self._points[o: o + int(self.lengths[i])]

    @property
    def all_points(self) -> np.ndarray:
        return self._points

    @property
    def sign_map(self) -> dict[str, int]:
        return self.meta["sign_map"]

    @property
    def num_classes(self) -> int:
        return len(self.meta["sign_map"])

    @property
    def classes(self) -> list[str]:
        m = self.sign_map
        return sorted(m, key=m.__getitem__)

    @property
    def skipped(self) -> int:
        """How many listed sequences were skipped as unreadable (`skip_bad`)."""
        return int(self.meta.get("skipped", 0))

    @property
    def skipped_errors(self) -> list[str]:
        """The first few skip reasons, one line each."""
        return list(self.meta.get("skipped_errors", []))

    @property
    def skipped_files(self) -> list[str]:
        """Every skipped file (`skipped_errors` names only the first few; a cache built before this list
        existed has only those)."""
        listed = self.meta.get("skipped_files")
        if isinstance(listed, list):
            return [str(p) for p in listed]
        return [line.split(": ", 1)[0] for line in self.skipped_errors]

    @property
    def data_dir(self) -> str:
        return self.meta.get("data_dir", "")

    @property
    def total_frames(self) -> int:
        return int(self._points.shape[0])

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def __repr__(self) -> str:
        return (f"PreparedCache({str(self.path)!r}, sequences={len(self)}, frames={self.total_frames}, "
                f"skipped={self.skipped})")


def open_cache(path: str | Path | None = None, *, data_dir: str | Path | None = None,
               cache_dir: str | Path | None = None) -> PreparedCache:
    """Open a complete cache: its folder, or the cache of `data_dir` (under `cache_dir`).

    Opening does not check whether the sources changed since; `prepare` does.
    """
    if path is None:
        if data_dir is None:
            raise TypeError("open_cache needs a cache folder or data_dir=")
        path = cache_path(data_dir, cache_dir)
    return PreparedCache(path)


# --- building ---------------------------------------------------------------------------------

def fingerprint(index: SignIndex, *, limit: int = 0) -> str:
    """Hash of everything a cache depends on: format, listing, sign map, each file's size and mtime."""
    h = hashlib.sha256()
    h.update(f"asl-cache-{CACHE_FORMAT_VERSION}|limit={limit}|".encode())
    for name in (TRAIN_CSV, SIGN_MAP):
        h.update((index.root / name).read_bytes())
    for rel in index.paths:
        try:
            st = os.stat(index.root / rel)
            h.update(f"|{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"|{rel}|missing".encode())
    return h.hexdigest()


def load_sequence(path: str) -> np.ndarray:
    """One parquet -> the `(T, 118, 2)` float32 points stored in the cache (all-NaN frames dropped)."""
    frames = read_landmarks(path, columns=COORDINATES)
    points = frames[:, POINT_INDEX]
    keep = valid_frames(points)
    return points if keep.all() else points[keep]


def _load_or_error(path: str) -> tuple[np.ndarray | None, str | None, str | None]:
    """Worker body: the points, or the DataError's (message, path), picklable either way."""
    try:
        return load_sequence(path), None, None
    except DataError as exc:
        return None, exc.message, exc.path


def _iter_loaded(files: list[str], workers: int) -> Iterator[tuple[np.ndarray | None, str | None, str | None]]:
    if workers <= 1 or len(files) < POOL_MIN_FILES:
        for f in files:
            yield _load_or_error(f)
        return
    yield from imap_ordered(_load_or_error, files, workers, chunksize=32)


@dataclass
class _Progress:
    """A Rich progress bar (or nothing); `advance()` once per sequence."""

    total: int
    enabled: Any = False
    description: str = "Preparing"

    def __enter__(self) -> Callable[[], None]:
        self._bar = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            console = self.enabled if isinstance(self.enabled, Console) else Console(stderr=True)
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self.advance

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


def _is_current(path: Path, fp: str, skip_bad: bool) -> bool:
    if not (path / COMPLETE_FILE).is_file():
        return False
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError):
        return False
    # A cache that skipped bad files is not reused by a run that must stop at the first bad file.
    return (meta.get("format") == CACHE_FORMAT_VERSION and meta.get("fingerprint") == fp
            and (skip_bad or not meta.get("skipped")))


def _remove_leftovers(target: Path) -> None:
    """Delete temporary build (and swapped-out) folders of `target` whose process is gone."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for tmp in abandoned(leftovers):  # another prepare may be running right now: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    header = buf.getvalue()
    if len(header) > NPY_HEADER_BYTES:  # pragma: no cover - needs > 10^40 frames
        raise RuntimeError("npy header too long")
    # Pad inside the header (spaces before the newline) so the data starts at NPY_HEADER_BYTES.
    pad = NPY_HEADER_BYTES - len(header)
    header_len = int.from_bytes(header[8:10], "little") + pad
    return header[:8] + header_len.to_bytes(2, "little") + header[10:-1] + b" " * pad + b"\n"


def prepare(data_dir: str | Path, cache_dir: str | Path | None = None, *, skip_bad: bool = False,
            limit: int = 0, progress: Any = False, workers: int | None = None,
            force: bool = False) -> PreparedCache:
    """Build (or reuse) the prepared cache of an asl-signs folder and open it.

    `skip_bad`: skip unreadable sequences (counted in `.skipped`, first reasons in
    `.skipped_errors`) instead of raising the first one's DataError. `limit`: only the first N
    sequences of train.csv. `progress`: True (or a Rich Console) shows a progress bar.
    `workers`: reader processes (default: up to 8, one per CPU; 1 reads in this process).
    """
    index = read_index(data_dir).head(limit)
    target = cache_path(data_dir, cache_dir)
    fp = fingerprint(index, limit=limit)
    if not force and _is_current(target, fp, skip_bad):
        cache = PreparedCache(target)
        cache.reused = True
        return cache
    tmp = temp_sibling(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(target)
        tmp.mkdir()
    except OSError as exc:
        raise RunIOError(f"cannot create the cache folder ({exc.strerror or exc})", path=target.parent) from None
    try:
        _build(index, tmp, fp, skip_bad=skip_bad, progress=progress,
               workers=workers if workers is not None else min(8, os.cpu_count() or 1))
        # Swap into place: the old cache (if any) is moved aside first, then removed.
        old = None
        if target.exists():
            old = temp_sibling(target, "old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # disk full, permissions: not the data's fault
        shutil.rmtree(tmp, ignore_errors=True)
        raise RunIOError(f"cannot write the prepared cache ({exc.strerror or exc})", path=target) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedCache(target)


def _build(index: SignIndex, out: Path, fp: str, *, skip_bad: bool, progress: Any, workers: int) -> None:
    files = [str(index.file(i)) for i in range(len(index))]
    n = len(files)
    lengths = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    errors: list[str] = []
    bad_files: list[str] = []
    total = 0
    started = time.time()
    with open(out / POINTS_FILE, "wb") as fh, _Progress(n, progress) as advance:
        fh.write(b"\0" * NPY_HEADER_BYTES)
        for i, (points, message, where) in enumerate(_iter_loaded(files, workers)):
            if points is None:
                if not skip_bad:  # one unreadable file: skip_bad would have skipped it (the CLI names the option)
                    raise DataError(message, path=where, skippable=True)
                bad_files.append(str(where))
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(f"{where}: {message}")
            else:
                fh.write(np.ascontiguousarray(points, dtype=np.float32).tobytes())
                lengths[i] = points.shape[0]
                ok[i] = True
                total += points.shape[0]
            advance()
        fh.seek(0)
        fh.write(_npy_header((total, NUM_POINTS, 2)))
    if not ok.any():
        raise DataError(f"none of the {n} sequences could be read (first: {errors[0] if errors else '?'})",
                        path=index.root / TRAIN_CSV)
    keep = np.flatnonzero(ok)
    lengths = lengths[keep]
    offsets = np.zeros(len(keep), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    np.savez(out / INDEX_FILE, offsets=offsets, lengths=lengths, labels=index.labels[keep],
             participants=index.participants[keep], sequence_ids=index.sequence_ids[keep],
             paths=np.asarray(index.paths)[keep])
    meta = {
        "format": CACHE_FORMAT_VERSION,
        "fingerprint": fp,
        "build_id": uuid.uuid4().hex,
        "data_dir": str(Path(index.root).resolve()),
        "sign_map": index.sign_map,
        "sequences": int(len(keep)),
        "frames": int(total),
        "listed": n,
        "skipped": int(n - len(keep)),
        "skipped_errors": errors,
        "skipped_files": bad_files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 2),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    for name in (POINTS_FILE, INDEX_FILE, META_FILE):
        _fsync(out / name)
    (out / COMPLETE_FILE).write_text(fp + "\n")  # last: marks the folder usable
    _fsync(out / COMPLETE_FILE)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
