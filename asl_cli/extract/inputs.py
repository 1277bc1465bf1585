"""What `asl extract` reads: the input files named (or inside the folders named), their labels, their ids.

Pure of the job: `find_inputs` (videos and .pose files, each once), `read_labels_csv` / `label_inputs`
(`--labels parent` or a CSV `file,sign[,participant_id]`), and `sequence_id` (the first 53 bits of the
file's SHA-256: an integer JSON and float64 hold exactly, the same for the same content wherever it lies).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from asl_cli.errors import ConfigError, DataError, first_line
from asl_cli.extract.load import POSE_SUFFIXES, VIDEO_SUFFIXES

SUFFIXES = VIDEO_SUFFIXES + POSE_SUFFIXES
LABELS_PARENT = "parent"
ID_BITS = 53
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Input:
    """One file to extract: its sign (None: unlabelled) and participant (None: not given: the one the
    folder's record holds for this content, else 0)."""

    source: Path
    sign: str | None
    participant: int | None


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


def label_inputs(files: Sequence[Path], labels: str | None, participant: int | None) -> list[Input]:
    """Each file with its sign: none (`labels` None), its parent folder's name ("parent"), or its row
    of the labels CSV `labels` (whose participant_id, when given, wins over `participant`; None: not
    given, see `Input`)."""
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


def parse_labels(value: str | None) -> str | None:
    """--labels: None, "parent", or an existing CSV file."""
    if value is None or value == LABELS_PARENT:
        return value
    if not Path(value).is_file():
        raise ConfigError(f"--labels must be 'parent' or a CSV file (file,sign[,participant_id]); "
                          f"{value!r} is neither")
    return value
