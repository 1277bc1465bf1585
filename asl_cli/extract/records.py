"""The record an output folder of `asl extract` keeps of itself, and what training reads from it.

    extract.csv                                   every sequence: path, participant, id, sign, frames, source
    extract.json                                  how it was extracted (Holistic settings, versions)
    train.csv, sign_to_prediction_index_map.json  its labelled rows, as asl-signs has them

`write_records` merges a run's outcomes into extract.csv (a rerun adds to it; without labels it keeps the
signs recorded) and rewrites train.csv and the sign map from it, so the three always agree.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from asl_cli.data.landmark_writer import write_index
from asl_cli.data.reader import SIGN_MAP, TRAIN_CSV
from asl_cli.errors import DataError, RunIOError, first_line
from asl_cli.extract.holistic import HolisticSettings
from asl_cli.extract.inputs import ID_BITS
from asl_cli.extract.load import source_kind
from asl_cli.tempfiles import atomic_write_text

FILES_DIR = "train_landmark_files"
MANIFEST = "extract.csv"
MANIFEST_COLUMNS = ("path", "participant_id", "sequence_id", "sign", "frames", "source")
SETTINGS_FILE = "extract.json"


def recorded_settings(out: Path) -> dict | None:
    """The Holistic settings extract.json records for `out`; None for a new folder, a folder of .pose
    files only (Holistic never ran), or one without a record."""
    try:
        return json.loads((out / SETTINGS_FILE).read_text(encoding="utf-8"))["holistic"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: "extracted", "existing" (already there, skipped), "bad" (`error` says
    why) or "duplicate" (the same content as another input, which `error` names)."""

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


def write_records(out: Path, outcomes: list[Outcome], settings: HolisticSettings, summary: Summary) -> None:
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
        # Holistic settings only where Holistic ran: a folder of .pose files does not bind later video runs
        ran = any(source_kind(r["source"]) == "video" for r in ordered)
        atomic_write_text(out / SETTINGS_FILE, json.dumps(_about(settings if ran else None), indent=1) + "\n")
    except OSError as exc:
        raise RunIOError(f"cannot write the folder's records ({exc.strerror or exc})", path=out) from None
    summary.sequences, summary.labelled = len(ordered), len(labelled)


def _about(settings: HolisticSettings | None) -> dict:
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {"holistic": None if settings is None else settings.as_dict(), "mediapipe": version("mediapipe"),
            "pose_format": version("pose-format"),
            "frame_numbers": "0-based index of the decoded frame", "sequence_id": f"first {ID_BITS} bits of the "
            "input file's SHA-256"}


def unlabelled_note(summary: Summary) -> str | None:
    """Why there is no train.csv, when there is none."""
    if summary.labelled:
        return None
    return (f"no labels: no {TRAIN_CSV} or {SIGN_MAP} written (give --labels parent or --labels FILE.csv to "
            "train on the folder)")
