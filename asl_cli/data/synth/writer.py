"""Writing a synthetic set in the asl-signs folder layout (`generate`), optionally split by signer.

    train_landmark_files/<participant_id>/<sequence_id>.parquet   one per sequence (data/landmark_writer.py)
    train.csv                                                     path,participant_id,sequence_id,sign
    sign_to_prediction_index_map.json                             {sign: index}, signs sorted by name
    synth.json                                                    how it was made (parameters, sign recipes)

The work is split into tasks (one participant's repetitions of one sign), run in order in up to 8
spawned processes (`asl_cli.data.pool`); every sequence's generator is seeded from (seed, 4,
participant, sign, repetition), so the files do not depend on the process count. A set is built in a
temporary sibling folder and renamed into place (`building`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from asl_cli.data.landmark_writer import LandmarkWriter, write_index
from asl_cli.data.pool import imap_ordered
from asl_cli.data.synth.motion import synth_sequence
from asl_cli.data.synth.signers import Participant, make_participants
from asl_cli.data.synth.templates import Recipes, make_recipes
from asl_cli.errors import DataError, RunIOError
from asl_cli.tempfiles import abandoned, temp_sibling

GENERATOR_VERSION = 2  # bump when the output for a given seed changes (invalidates cached sets)
FILES_DIR = "train_landmark_files"
INFO_FILE = "synth.json"
POOL_MIN_SEQUENCES = 200  # below this, starting worker processes costs more than it saves

ProgressFn = Callable[[int, int], None]
# (num_participants, pool size K, seed) -> participants; a module-level function (workers pickle it).
SignersFn = Callable[[int, int, int], "list[Participant]"]
SPLITS = ("train", "test")  # the two folders of a set with held-out signers


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    sequences: int
    signs: int
    participants: int
    frames: int
    bytes: int
    seconds: float
    # With held-out signers: ((folder name, participants, sequences), ...) for train and test.
    splits: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class _Task:
    """One participant's repetitions of one sign: the unit of work of a generator process."""

    out: str
    num_signs: int
    num_participants: int
    seed: int
    participant: int
    sign: int
    seq_ids: tuple[int, ...]  # one per repetition
    signers: SignersFn | None = None  # None: make_participants


_WORKER_STATE: dict[tuple, tuple[Recipes, list[Participant], LandmarkWriter]] = {}


def _run_task(task: _Task) -> tuple[list[tuple[str, int, int, str]], int]:
    """Generate and write one task's sequences; returns their train.csv rows and frame count."""
    key = (task.num_signs, task.num_participants, task.seed, task.signers)
    if key not in _WORKER_STATE:
        recipes = make_recipes(task.num_signs, task.seed)
        _WORKER_STATE.clear()
        make_people = task.signers or make_participants
        _WORKER_STATE[key] = (recipes, make_people(task.num_participants, len(recipes.pool), task.seed),
                              LandmarkWriter())
    recipes, people, writer = _WORKER_STATE[key]
    person, name = people[task.participant], recipes.signs[task.sign].name
    rows, frames = [], 0
    for rep, sid in enumerate(task.seq_ids):
        rng = np.random.default_rng([task.seed, 4, task.participant, task.sign, rep])
        seq = synth_sequence(recipes, task.sign, person, rng)
        rel = f"{FILES_DIR}/{person.pid}/{sid}.parquet"
        writer.write(Path(task.out) / rel, seq, first_frame=int(rng.integers(1, 200)))
        rows.append((rel, person.pid, sid, name))
        frames += seq.shape[0]
    return rows, frames


def generate(out_dir: str | Path, *, num_signs: int = 20, num_participants: int = 12, repetitions: int = 10,
             seed: int = 0, workers: int | None = None, progress: ProgressFn | None = None,
             signers: SignersFn | None = None, holdout_signers: int = 0,
             about: dict | None = None) -> SynthSummary:
    """Write the synthetic set into `out_dir` (created; must be empty or absent) and return a summary.

    `workers`: generator processes (default: one per CPU, at most 8; 1 generates in this process;
    the output does not depend on it). `progress(done, total)` is called as sequences are written.

    `signers`: how the participants are made (default `make_participants`; the hard set's is
    `hard.make_hard_participants`). `holdout_signers` N > 0: N of the `num_participants`
    (drawn with the seed) are held out, and `out_dir` gets two complete asl-signs folders,
    `train/` (the others) and `test/` (those N), with the same sign map and distinct sequence ids.
    `about`: extra entries for synth.json (e.g. the difficulty). With the defaults the files are
    those of earlier versions, byte for byte.

    The set is built in a temporary sibling folder (`.<name>.tmp-<pid>-<random>`) and renamed into
    place when complete, so an interrupted or failed generation (Ctrl-C, a full disk) leaves
    `out_dir` as it was; the temporary folder of a killed one is removed by the next generation
    beside it. DataError (exit 3) for a non-empty `out_dir`, RunIOError (exit 8) when it cannot be
    written.
    """
    if num_signs < 2 or num_participants < 1 or repetitions < 1:
        raise DataError(f"need >= 2 signs, >= 1 participant, >= 1 repetition (got {num_signs}, "
                        f"{num_participants}, {repetitions})")
    if num_signs > math.factorial(8):
        raise DataError(f"at most {math.factorial(8)} signs (got {num_signs})")
    if not 0 <= holdout_signers < num_participants:
        raise DataError(f"held-out signers must be 0 to participants - 1 = {num_participants - 1} "
                        f"(got {holdout_signers})")
    out = Path(out_dir)
    _check_empty_or_absent(out)
    kwargs = dict(num_signs=num_signs, num_participants=num_participants, repetitions=repetitions, seed=seed,
                  workers=workers, signers=signers, about=about)
    with building(out, "output folder") as tmp:
        if holdout_signers:
            summary = _write_split(tmp, out, holdout_signers, progress=progress, **kwargs)
        else:
            summary = write_set(tmp, out, progress=progress, **kwargs)
        _check_empty_or_absent(out)  # nothing appeared there meanwhile
        try:
            os.replace(tmp, out)  # over an empty folder too (POSIX rename)
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=out) from None
    return dataclasses.replace(summary, out_dir=out)


def _check_empty_or_absent(out: Path) -> None:
    try:
        if not out.exists():
            return
        if not out.is_dir():
            raise DataError("output path is a file, not a folder", path=out)
        if any(out.iterdir()):
            raise DataError("output folder is not empty", path=out)
    except OSError as exc:
        raise RunIOError(f"cannot use the output folder ({exc.strerror or exc})", path=out) from None


@contextlib.contextmanager
def building(target: Path, what: str) -> Iterator[Path]:
    """A fresh temporary sibling of `target` to build a set in, for renaming into place.

    Leftovers of generators that no longer run are removed first; the temporary folder is removed
    on the way out unless it was renamed into place (also on Ctrl-C: nothing half-written stays).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunIOError(f"cannot create the {what} ({exc.strerror or exc})", path=target) from None
    _remove_leftovers(target)
    tmp = temp_sibling(target)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise RunIOError(f"cannot create the {what} ({exc.strerror or exc})", path=target) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone when it was renamed into place


def heldout_participants(num_participants: int, holdout_signers: int, seed: int) -> np.ndarray:
    """Indices (into the participant list, sorted) of the signers a split holds out for testing."""
    rng = np.random.default_rng([seed, 6])
    return np.sort(rng.choice(num_participants, size=holdout_signers, replace=False))


def _write_split(out: Path, name: Path, holdout_signers: int, *, num_signs: int, num_participants: int,
                 repetitions: int, seed: int, progress: ProgressFn | None, **kwargs: Any) -> SynthSummary:
    """`out/train` and `out/test`: the same set, its participants split (`holdout_signers` to test)."""
    started = time.perf_counter()
    test = heldout_participants(num_participants, holdout_signers, seed)
    members = {"train": np.setdiff1d(np.arange(num_participants), test), "test": test}
    grand_total = num_signs * num_participants * repetitions
    done = 0
    parts = []
    for split in SPLITS:
        def relay(d: int, t: int, offset: int = done) -> None:
            if progress is not None:
                progress(offset + d, grand_total)

        try:
            (out / split).mkdir()
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=name) from None
        parts.append(write_set(out / split, name / split, num_signs=num_signs, num_participants=num_participants,
                          repetitions=repetitions, seed=seed, progress=relay, members=members[split],
                          holdout_signers=holdout_signers, **kwargs))
        done += parts[-1].sequences
    return SynthSummary(out, sum(p.sequences for p in parts), num_signs, num_participants,
                        sum(p.frames for p in parts), sum(p.bytes for p in parts), time.perf_counter() - started,
                        splits=tuple((split, p.participants, p.sequences) for split, p in zip(SPLITS, parts)))


def write_set(out: Path, name: Path, *, num_signs: int, num_participants: int, repetitions: int, seed: int,
              workers: int | None, progress: ProgressFn | None, signers: SignersFn | None = None,
              about: dict | None = None, members: np.ndarray | None = None,
              holdout_signers: int = 0) -> SynthSummary:
    """Generate the set into the existing empty folder `out`; errors name `name` (the final folder).

    `members`: only these participants (indices into the participant list; a held-out split).
    """
    started = time.perf_counter()
    recipes = make_recipes(num_signs, seed)
    people = (signers or make_participants)(num_participants, len(recipes.pool), seed)
    members = np.arange(num_participants) if members is None else np.asarray(members)
    total = num_signs * len(members) * repetitions
    # Sequence ids are drawn for every participant, so a train/test split's ids are distinct.
    seq_ids = _distinct_ids(np.random.default_rng([seed, 3]), num_signs * num_participants * repetitions)
    seq_ids = seq_ids.reshape(num_participants, num_signs, repetitions)
    tasks = [_Task(str(out), num_signs, num_participants, seed, int(p), s, tuple(int(v) for v in seq_ids[p, s]),
                   signers)
             for p in members for s in range(num_signs)]
    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, workers)
    rows: list[tuple[str, int, int, str]] = []
    frames_total = 0
    try:
        (out / FILES_DIR).mkdir()
        for p in members:
            (out / FILES_DIR / str(people[p].pid)).mkdir()
        for task_rows, frames in _map(_run_task, tasks, workers if total >= POOL_MIN_SEQUENCES else 1):
            rows += task_rows
            frames_total += frames
            if progress is not None:
                progress(len(rows), total)
        write_index(out, rows, [r.name for r in recipes.signs])
        info = {"generator_version": GENERATOR_VERSION, "num_signs": num_signs,
                "num_participants": num_participants, "repetitions": repetitions, "seed": seed,
                "keypose_pool": recipes.pool.round(4).tolist(), "second_pool": recipes.second_pool.round(4).tolist(),
                "signs": [{"name": r.name, "order": list(r.order), "two_handed": r.two_handed,
                           "second_order": list(r.second_order) if r.two_handed else None}
                          for r in recipes.signs]}
        info.update(about or {})
        if holdout_signers:
            info.update(split=out.name, holdout_signers=holdout_signers,
                        split_participants=[people[p].pid for p in members])
        if any(people[p].view is not None for p in members):
            info["signers"] = [{"participant_id": people[p].pid, **people[p].view.describe()} for p in members]
        (out / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    except OSError as exc:
        raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=name) from None
    return SynthSummary(out, total, num_signs, len(members), frames_total, size,
                        time.perf_counter() - started)


def _map(fn: Callable, tasks: list, workers: int):
    """`map(fn, tasks)` in order, in `workers` spawned processes when more than one."""
    return imap_ordered(fn, tasks, workers, chunksize=4)


def _distinct_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct sequence ids in the uint32 range, like Kaggle's."""
    ids = np.unique(rng.integers(1_000_000, 4_294_967_295, size=n + n // 10 + 16))
    while len(ids) < n:  # pragma: no cover - astronomically unlikely
        ids = np.unique(np.concatenate([ids, rng.integers(1_000_000, 4_294_967_295, size=n)]))
    return rng.permutation(ids)[:n]


def _remove_leftovers(target: Path) -> None:
    """Delete temporary/swapped-out folders of `target` whose generating process is gone."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for tmp in abandoned(leftovers):
        shutil.rmtree(tmp, ignore_errors=True)
