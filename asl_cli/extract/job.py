"""`asl extract` as a library: videos and `.pose` files -> an asl-signs folder.

    train_landmark_files/<participant_id>/<sequence_id>.parquet   one per input (data/landmark_writer.py)
    + the folder's record (extract.csv, extract.json) and train.csv / sign map (`records.py`)

`extract(inputs, out)` runs the job over `inputs.py`'s Input list: an input whose parquet file exists is
skipped unless `force` (resume); each file is written to a temporary sibling and renamed, so a killed job
leaves no partial file. A bad input (unreadable video or .pose file, no person found) stops the job with
its DataError (exit 3), unless `skip_bad`: then it is reported and the others go on. Videos are read in
`workers` spawned processes (`data.pool.imap_ordered`), each with one MediaPipe graph per video.
`check_job` holds what stops a job before any work (the CLI asks it before drawing its progress bar).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from asl_cli.data.pool import imap_ordered
from asl_cli.data.reader import TRAIN_CSV
from asl_cli.errors import ConfigError, DataError, RunIOError
from asl_cli.extract.holistic import HolisticSettings
from asl_cli.extract.inputs import Input, sequence_id
from asl_cli.extract.load import source_kind
from asl_cli.extract.records import (FILES_DIR, MANIFEST, Outcome, Summary, read_manifest, recorded_settings,
                                     write_records)
from asl_cli.tempfiles import abandoned, temp_sibling

ProgressFn = Callable[[int, int, Outcome], None]


# --- one input (in a worker process or this one) ----------------------------------------------

@dataclass(frozen=True)
class _Task:
    source: str
    settings: HolisticSettings


def _read_one(task: _Task):
    """Read one input (in a worker process or this one): (landmarks, seconds, None), or (None, seconds,
    what is wrong) for a bad input. The file is written by the job's process, which records it at once:
    a worker stopped by Ctrl-C leaves no file the record does not know."""
    from asl_cli.extract.load import load_landmarks

    started = time.perf_counter()
    try:
        landmarks = load_landmarks(task.source, settings=task.settings)
    except DataError as exc:
        if not exc.skippable:
            raise
        return None, time.perf_counter() - started, exc.message
    return landmarks, time.perf_counter() - started, None


@functools.cache
def _writer():
    """The LandmarkWriter (its per-row columns are built once)."""
    from asl_cli.data.landmark_writer import LandmarkWriter

    return LandmarkWriter()


def _write(landmarks, target: Path) -> None:
    """One landmark file, through a temporary sibling: whole or not at all."""
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
    recorded = {int(r["sequence_id"]): int(r["participant_id"]) for r in read_manifest(out)}
    for item in inputs:
        try:
            sid = sequence_id(item.source)
        except DataError as exc:
            report(_bad(item, exc.message, skip_bad))
            continue
        if item.participant is None:  # not given (a resume): where the record has it, else participant 0
            item = replace(item, participant=recorded.get(sid, 0))
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
    tasks = [_Task(str(item.source), settings) for item, _ in pending]
    extract_started = time.perf_counter()
    results = imap_ordered(_read_one, tasks, min(max(1, workers), max(1, len(tasks))))
    try:
        for (item, outcome), (landmarks, seconds, error) in zip(pending, results):
            if error is not None:
                report(_bad(item, error, skip_bad))
                continue
            _write(landmarks, out / outcome.path)
            report(replace(outcome, frames=int(landmarks.shape[0]), seconds=seconds))
    except BaseException:
        results.close()  # the workers stop first, so that no file is written after the record below
        try:  # record what was done so far, so that train.csv matches the files and a rerun goes on
            write_records(out, outcomes, settings, Summary(out))
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    summary = Summary(out, outcomes, extract_seconds=time.perf_counter() - extract_started)
    bad = [o for o in outcomes if o.status == "bad"]
    if bad and not any(o.status in ("extracted", "existing") for o in outcomes):  # duplicates of bad ones too
        more = f"; none of the {len(bad)} inputs could be read" if len(bad) > 1 else ""
        raise DataError(f"{bad[0].error}{more}", path=bad[0].source)
    write_records(out, outcomes, settings, summary)
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
    return Outcome(str(item.source), "bad", sign=item.sign, participant=item.participant or 0, error=message)


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
    before = recorded_settings(out)
    if before is not None and before != settings.as_dict():
        said = ", ".join(f"{k} {v}" for k, v in before.items())
        raise ConfigError(f"{out} was extracted with {said}: rerun with those options, or add --force to extract "
                          "the inputs again with the new ones")


def _check_forced_settings(out: Path, settings: HolisticSettings, force: bool, given: set[int]) -> None:
    """--force with other Holistic settings than the folder's re-extracts only the inputs given: every
    sequence of the folder must be among them, or the folder would mix settings its extract.json hides."""
    if not force:
        return
    before = recorded_settings(out)
    if before is None or before == settings.as_dict():
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

