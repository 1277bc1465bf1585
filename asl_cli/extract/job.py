"""`asl extract` as a library: videos and `.pose` files -> an asl-signs folder.

    train_landmark_files/<participant_id>/<sequence_id>.parquet   one per input (data/landmark_writer.py)
    train.csv, sign_to_prediction_index_map.json                  when inputs have signs (labels)
    extract.csv                                                   every sequence: its source file, frames, sign
    extract.json                                                  how it was extracted (MediaPipe settings, versions)

Sequence ids come from the input's content (the first 53 bits of its SHA-256: an integer that JSON and
float64 hold exactly), so the same file gives the same id wherever it lies and under whatever name, and a
rerun finds what it already wrote. An input whose parquet file exists is skipped unless `force`
(resume); each file is written to a temporary sibling and renamed, so a killed job leaves no partial file.
`extract.csv` is the folder's record: a rerun with more inputs adds to it, and train.csv and the sign
map are rewritten from it (labelled rows only).

A bad input (unreadable video or .pose file, no person found) stops the job with its DataError (exit 3),
unless `skip_bad`: then it is reported and the others go on. Videos are read in `workers` spawned
processes (`data.pool.imap_ordered`), each with one MediaPipe graph per video.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from asl_cli.data.landmark_writer import write_index
from asl_cli.data.pool import imap_ordered
from asl_cli.data.reader import SIGN_MAP, TRAIN_CSV
from asl_cli.errors import ConfigError, DataError, RunIOError, first_line
from asl_cli.extract.holistic import HolisticSettings
from asl_cli.extract.load import POSE_SUFFIXES, VIDEO_SUFFIXES, source_kind
from asl_cli.tempfiles import abandoned, atomic_write_text, temp_sibling

FILES_DIR = "train_landmark_files"
MANIFEST = "extract.csv"
MANIFEST_COLUMNS = ("path", "participant_id", "sequence_id", "sign", "frames", "source")
SETTINGS_FILE = "extract.json"
SUFFIXES = VIDEO_SUFFIXES + POSE_SUFFIXES
LABELS_PARENT = "parent"
ID_BITS = 53
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Input:
    """One file to extract: its sign (None: unlabelled) and participant."""

    source: Path
    sign: str | None
    participant: int


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: "extracted", "existing" (already there, skipped) or "bad"."""

    source: str
    status: str
    path: str = ""  # relative to the output folder
    participant: int = 0
    sequence_id: int = 0
    sign: str | None = None
    frames: int = 0
    seconds: float = 0.0  # reading the input (MediaPipe for a video), in its worker
    error: str | None = None  # bad: what is wrong; duplicate: which input holds the same content


@dataclass
class Summary:
    out: Path
    outcomes: list[Outcome] = field(default_factory=list)
    sequences: int = 0  # rows of extract.csv (this run's and earlier runs')
    labelled: int = 0  # rows of train.csv
    signs: int = 0
    seconds: float = 0.0  # the whole job
    extract_seconds: float = 0.0  # wall time of the extraction (worker start-up included)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def frames_extracted(self) -> int:
        return sum(o.frames for o in self.outcomes if o.status == "extracted")

    @property
    def frames_per_second(self) -> float | None:
        """Frames extracted per second of wall time, all workers together."""
        frames = self.frames_extracted
        return frames / self.extract_seconds if frames and self.extract_seconds > 0 else None


ProgressFn = Callable[[int, int, Outcome], None]


# --- inputs and labels ------------------------------------------------------------------------

def find_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """The video and .pose files named, and those inside the folders named (recursively, sorted; hidden
    files and folders left out), each once, in the order given."""
    found: dict[Path, None] = {}
    for given in map(Path, paths):
        if given.is_dir():
            inside = sorted(p for p in given.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                            and not any(part.startswith(".") for part in p.relative_to(given).parts))
            if not inside:
                raise DataError(f"no video or .pose file in this folder (looked for {', '.join(SUFFIXES)})",
                                path=given)
            found.update(dict.fromkeys(inside))
        elif given.is_file():
            if given.suffix.lower() not in SUFFIXES:
                raise DataError(f"not a video or .pose file (asl extract reads {', '.join(SUFFIXES)})", path=given)
            found[given] = None
        else:
            raise DataError("input not found", path=given)
    return list(found)


def read_labels_csv(path: str | Path) -> dict[Path, tuple[str, int | None]]:
    """`file,sign[,participant_id]` -> {resolved file: (sign, participant or None)}; relative files are
    relative to the CSV's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("labels file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the labels file ({first_line(exc)})", path=path) from None
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]] if rows else []
    if "file" not in header or "sign" not in header:
        found = ", ".join(header) or "nothing"
        raise DataError(f"a labels CSV needs the columns file,sign[,participant_id] (found: {found})", path=path)
    col = {name: header.index(name) for name in header}
    labels: dict[Path, tuple[str, int | None]] = {}
    lines: dict[Path, int] = {}  # where each file was listed first
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"line {line_no}: {len(row)} fields, expected {len(header)}", path=path)
        file, sign = row[col["file"]].strip(), row[col["sign"]].strip()
        if not file or not sign:
            raise DataError(f"line {line_no}: empty {'file' if not file else 'sign'}", path=path)
        participant = None
        if "participant_id" in col:
            text = row[col["participant_id"]].strip()
            try:
                participant = int(text)
            except ValueError:
                raise DataError(f"line {line_no}: participant_id {text!r} is not an integer", path=path) from None
        key = _key(path.parent / file)
        if key in labels and labels[key] != (sign, participant):
            raise DataError(f"line {line_no}: {file} is listed again with sign {sign!r} / participant {participant} "
                            f"(line {lines[key]}: {labels[key][0]!r} / {labels[key][1]}): one file, one label",
                            path=path)
        labels[key], lines[key] = (sign, participant), line_no
    if not labels:
        raise DataError("the labels file lists no file", path=path)
    return labels


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path))


def label_inputs(files: Sequence[Path], labels: str | None, participant: int) -> list[Input]:
    """Each file with its sign: none (`labels` None), its parent folder's name ("parent"), or its row
    of the labels CSV `labels` (whose participant_id, when given, wins over `participant`)."""
    if labels is None:
        return [Input(f, None, participant) for f in files]
    if labels == LABELS_PARENT:
        return [Input(f, _key(f).parent.name, participant) for f in files]
    table = read_labels_csv(labels)
    out = []
    for f in files:
        if _key(f) not in table:
            raise DataError(f"not listed in the labels file {labels} (list it there, or leave it out)", path=f)
        sign, pid = table[_key(f)]
        out.append(Input(f, sign, participant if pid is None else pid))
    return out


def labelled_files(labels: str | Path) -> list[Path]:
    """The files a labels CSV lists (its order), for a job given no INPUT."""
    return list(read_labels_csv(labels))


def sequence_id(path: Path) -> int:
    """A stable id from the file's content: the first 53 bits of its SHA-256."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path, skippable=True) from None
    return int.from_bytes(digest.digest()[:8], "big") >> (64 - ID_BITS)


# --- one input (in a worker process or this one) ----------------------------------------------

@dataclass(frozen=True)
class _Task:
    source: str
    target: str  # absolute parquet path
    settings: HolisticSettings


@functools.cache
def _writer():
    """One LandmarkWriter per process (its per-row columns are built once)."""
    from asl_cli.data.landmark_writer import LandmarkWriter

    return LandmarkWriter()


def _extract_one(task: _Task) -> tuple[int, float, str | None]:
    """Extract and write one input: (frames, seconds, None), or (0, seconds, what is wrong) for a bad input."""
    from asl_cli.extract.load import load_landmarks

    started = time.perf_counter()
    try:
        landmarks = load_landmarks(task.source, settings=task.settings)
    except DataError as exc:
        if not exc.skippable:
            raise
        return 0, time.perf_counter() - started, exc.message
    seconds = time.perf_counter() - started
    target = Path(task.target)
    tmp = temp_sibling(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _writer().write(tmp, landmarks, first_frame=0)
        os.replace(tmp, target)
    except BaseException as exc:  # Ctrl-C too: no half-written file stays behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise RunIOError(f"cannot write the landmark file ({exc.strerror or exc})", path=target) from None
        raise
    return int(landmarks.shape[0]), seconds, None


def _frames_in(path: Path) -> int | None:
    """Frames of a file this command wrote before; None when it cannot be read (then it is written again)."""
    import pyarrow.parquet as pq

    from asl_cli.data.landmarks import ROWS_PER_FRAME

    try:
        return pq.ParquetFile(path).metadata.num_rows // ROWS_PER_FRAME
    except Exception:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ... on a damaged file
        return None


# --- the job ----------------------------------------------------------------------------------

def extract(inputs: Sequence[Input], out: str | Path, *, settings: HolisticSettings = HolisticSettings(),
            workers: int = 1, force: bool = False, skip_bad: bool = False,
            progress: ProgressFn | None = None) -> Summary:
    """Extract every input into the asl-signs folder `out` (created), resuming what is there.

    `progress(done, total, outcome)` after each input. DataError (exit 3) for the first bad input unless
    `skip_bad` (then only when every input is bad), for two inputs with the same content but another
    sign or participant, and for an `out` that holds another data set; RunIOError (exit 8) when `out`
    cannot be written; MissingExtraError (exit 1) without the `video` extra. What was extracted before a
    stop (a bad input, Ctrl-C) is recorded, so a rerun goes on from there.
    """
    started = time.perf_counter()
    out = Path(out)
    check_job(inputs, out, settings=settings, force=force)
    for tmp in abandoned((out / FILES_DIR).glob("*/.*.tmp-*")):  # files of a job killed mid-write
        tmp.unlink(missing_ok=True)
    outcomes: list[Outcome] = []
    report = _reporter(len(inputs), outcomes, progress)
    pending: list[tuple[Input, Outcome]] = []
    holder: dict[int, Input] = {}  # sequence id -> the input that holds it
    for item in inputs:
        try:
            sid = sequence_id(item.source)
        except DataError as exc:
            report(_bad(item, exc.message, skip_bad))
            continue
        if sid in holder:
            _check_same_labels(holder[sid], item)
            report(Outcome(str(item.source), "duplicate", error=f"same content as {holder[sid].source}"))
            continue
        holder[sid] = item
        rel = f"{FILES_DIR}/{item.participant}/{sid}.parquet"
        outcome = Outcome(str(item.source), "extracted", rel, item.participant, sid, item.sign)
        frames = None if force or not (out / rel).is_file() else _frames_in(out / rel)
        if frames is not None:
            report(replace(outcome, status="existing", frames=frames))
        else:  # new, --force, or a damaged file of ours
            pending.append((item, outcome))
    _check_forced_settings(out, settings, force, set(holder))
    tasks = [_Task(str(item.source), str(out / o.path), settings) for item, o in pending]
    extract_started = time.perf_counter()
    try:
        results = imap_ordered(_extract_one, tasks, min(max(1, workers), max(1, len(tasks))))
        for (item, outcome), (frames, seconds, error) in zip(pending, results):
            report(_bad(item, error, skip_bad) if error is not None else
                   replace(outcome, frames=frames, seconds=seconds))
    except BaseException:
        try:  # record what was done so far, so that train.csv matches the files and a rerun goes on
            _write_records(out, outcomes, settings, Summary(out))
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    summary = Summary(out, outcomes, extract_seconds=time.perf_counter() - extract_started)
    bad = [o for o in outcomes if o.status == "bad"]
    if bad and not any(o.status in ("extracted", "existing") for o in outcomes):  # duplicates of bad ones too
        more = f"; none of the {len(bad)} inputs could be read" if len(bad) > 1 else ""
        raise DataError(f"{bad[0].error}{more}", path=bad[0].source)
    _write_records(out, outcomes, settings, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _reporter(total: int, outcomes: list[Outcome], progress: ProgressFn | None) -> Callable[[Outcome], None]:
    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if progress is not None:
            progress(len(outcomes), total, outcome)
    return report


def _bad(item: Input, message: str, skip_bad: bool) -> Outcome:
    """A bad input: its DataError (skippable: the CLI names --skip-bad), or with `skip_bad` its outcome."""
    if not skip_bad:
        raise DataError(message, path=item.source, skippable=True)
    return Outcome(str(item.source), "bad", sign=item.sign, participant=item.participant, error=message)


def _check_same_labels(first: Input, again: Input) -> None:
    if (first.sign, first.participant) != (again.sign, again.participant):
        raise DataError(f"same content as {first.source}, but labelled sign {again.sign!r} / participant "
                        f"{again.participant} there {first.sign!r} / {first.participant}: one of the two is "
                        "mislabelled", path=again.source)


def check_job(inputs: Sequence[Input], out: Path, *, settings: HolisticSettings, force: bool) -> None:
    """What stops a job before any work (`extract` checks it too; the CLI first, before its progress
    bar): the output folder, other Holistic settings than the folder's, a missing extra."""
    _check_output_folder(out)
    if not force:
        _check_same_settings(out, settings)
    _require_extras({source_kind(i.source) for i in inputs})


def _check_same_settings(out: Path, settings: HolisticSettings) -> None:
    """One folder, one set of Holistic settings: files made with others are not mixed in silently."""
    try:
        before = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["holistic"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # a new folder (or no record of the settings)
    if before != settings.as_dict():
        said = ", ".join(f"{k} {v}" for k, v in before.items())
        raise ConfigError(f"{out} was extracted with {said}: rerun with those options, or add --force to extract "
                          "the inputs again with the new ones")


def _check_forced_settings(out: Path, settings: HolisticSettings, force: bool, given: set[int]) -> None:
    """--force with other Holistic settings than the folder's re-extracts only the inputs given: every
    sequence of the folder must be among them, or the folder would mix settings its extract.json hides."""
    if not force:
        return
    try:
        before = json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["holistic"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if before == settings.as_dict():
        return
    left = [r for r in read_manifest(out) if int(r["sequence_id"]) not in given]
    if left:
        raise ConfigError(f"--force with other Holistic settings extracts only the inputs given, and {len(left)} "
                          f"sequence(s) of {out} (e.g. {left[0]['source']}) would keep the old ones: give every "
                          "input of the folder, or extract into another --out")


def _require_extras(kinds: set[str]) -> None:
    """Fail before any work when an input needs an extra that is missing (one line, exit 1)."""
    if "video" in kinds:
        from asl_cli.extract.holistic import require_mediapipe
        require_mediapipe()
    if "pose" in kinds:
        from asl_cli.extract.pose_file import require_pose_format
        require_pose_format()


def _check_output_folder(out: Path) -> None:
    """`out` may be absent, empty, or a folder this command wrote (it has extract.csv)."""
    if out.exists() and not out.is_dir():
        raise RunIOError("the output is a file, not a folder (choose another --out)", path=out)
    if (out / TRAIN_CSV).exists() and not (out / MANIFEST).exists():
        raise DataError(f"holds a {TRAIN_CSV} that asl extract did not write (no {MANIFEST}): choose another "
                        "--out folder", path=out)
    read_manifest(out)  # a damaged record stops the job before any work
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunIOError(f"cannot create the output folder ({exc.strerror or exc})", path=out) from None


def read_manifest(out: Path) -> list[dict[str, str]]:
    path = out / MANIFEST
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the folder's record ({first_line(exc)}); remove it to start over",
                        path=path) from None
    if rows and set(MANIFEST_COLUMNS) - set(rows[0]):
        raise DataError(f"not a record asl extract wrote (columns: {', '.join(rows[0])})", path=path)
    return rows


def _write_records(out: Path, outcomes: list[Outcome], settings: HolisticSettings, summary: Summary) -> None:
    """extract.csv (earlier rows kept, this run's replace those of the same sequence), train.csv and the
    sign map from its labelled rows, extract.json."""
    rows = {int(r["sequence_id"]): r for r in read_manifest(out)}
    for o in outcomes:
        if o.status not in ("extracted", "existing"):
            continue
        old = rows.get(o.sequence_id)
        if old is not None and old["path"] != o.path:  # relabelled to another participant: one file only
            (out / old["path"]).unlink(missing_ok=True)
        # a rerun without --labels (a resume) keeps the sign recorded before
        sign = o.sign if o.sign is not None else (old["sign"] if old is not None else "")
        rows[o.sequence_id] = {"path": o.path, "participant_id": str(o.participant), "sequence_id": str(o.sequence_id),
                               "sign": sign, "frames": str(o.frames), "source": o.source}
    ordered = sorted(rows.values(), key=lambda r: (int(r["participant_id"]), r["path"]))
    text = io.StringIO()
    writer = csv.DictWriter(text, MANIFEST_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(ordered)
    labelled = [r for r in ordered if r["sign"]]
    try:
        atomic_write_text(out / MANIFEST, text.getvalue())
        if labelled:
            signs = sorted({r["sign"] for r in labelled})
            write_index(out, [(r["path"], int(r["participant_id"]), int(r["sequence_id"]), r["sign"])
                              for r in labelled], signs)
            summary.signs = len(signs)
        else:  # no labelled sequence left: no train.csv that would contradict the record
            for name in (TRAIN_CSV, SIGN_MAP):
                (out / name).unlink(missing_ok=True)
        atomic_write_text(out / SETTINGS_FILE, json.dumps(_about(settings), indent=1) + "\n")
    except OSError as exc:
        raise RunIOError(f"cannot write the folder's records ({exc.strerror or exc})", path=out) from None
    summary.sequences, summary.labelled = len(ordered), len(labelled)


def _about(settings: HolisticSettings) -> dict:
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"holistic": settings.as_dict(), "mediapipe": version("mediapipe"), "pose_format": version("pose-format"),
            "frame_numbers": "0-based index of the decoded frame", "sequence_id": f"first {ID_BITS} bits of the "
            "input file's SHA-256"}


def unlabelled_note(summary: Summary) -> str | None:
    """Why there is no train.csv, when there is none."""
    if summary.labelled:
        return None
    return (f"no labels: no {TRAIN_CSV} or {SIGN_MAP} written (give --labels parent or --labels FILE.csv to "
            "train on the folder)")


def parse_labels(value: str | None) -> str | None:
    """--labels: None, "parent", or an existing CSV file."""
    if value is None or value == LABELS_PARENT:
        return value
    if not Path(value).is_file():
        raise ConfigError(f"--labels must be 'parent' or a CSV file (file,sign[,participant_id]); "
                          f"{value!r} is neither")
    return value
