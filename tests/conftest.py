"""Shared fixtures: the committed real sample, the tiny synthetic sets and the tiny trained run (built
once a session where tests only read them; the plain functions behind them are in tests/kit.py)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

# The tests run tiny models: one intra-op thread is faster than two, and it avoids OpenMP threads
# spinning against the subprocesses many tests start (which made single tests 10x slower on 2 cores).
# Set before torch is imported, so the toolkit's subprocesses inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest

from kit import TinySet, tiny_dataset, train_tiny_run  # noqa: E402 - tests/kit.py
from realdata import SAMPLE_DIR  # noqa: E402 - the committed real subset (tests/realdata.py)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed real asl-signs subset (read-only: tests copy what they change)."""
    assert (SAMPLE_DIR / "train.csv").is_file(), f"the committed test data is missing: {SAMPLE_DIR}"
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_cache(sample_dir, tmp_path_factory):
    """The real sample prepared once per test session (in-process reader, no pool)."""
    from asl_cli.data.cache import prepare

    return prepare(sample_dir, tmp_path_factory.mktemp("asl-cache"), workers=1)


# --- tiny synthetic sets ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def tiny_sets(tmp_path_factory):
    """tiny_sets(signs=4, participants=6, repetitions=3, seed=0) -> TinySet (data and cache folders),
    generated once a session for each set of parameters: read-only, shared by every test asking."""
    made: dict[tuple, TinySet] = {}

    def tiny_set(**params) -> TinySet:
        key = tuple(sorted(params.items()))
        if key not in made:
            root = tmp_path_factory.mktemp("tiny-set")
            made[key] = TinySet(tiny_dataset(root / "data", **params), root / "cache")
        return made[key]

    return tiny_set


@pytest.fixture(scope="session")
def tiny_data(tiny_sets) -> TinySet:
    """The trainer tests' set: 5 signs x 5 participants x 6 repetitions (seed 1), read-only."""
    return tiny_sets(signs=5, participants=5, repetitions=6, seed=1)


@pytest.fixture(scope="module")
def tiny(tiny_sets, tmp_path_factory) -> TinySet:
    """The CLI tests' set (4 signs x 6 participants x 3 repetitions, read-only, its cache shared) with a
    runs folder of this test module's own."""
    return dataclasses.replace(tiny_sets(), runs=tmp_path_factory.mktemp("runs"))


@pytest.fixture()
def env(tiny, monkeypatch) -> dict:
    """The CLI, in process or not, on `tiny`'s cache and without a fake GPU: set here for CliRunner,
    returned for run_asl/start_asl (whose environment is this process's with these on top)."""
    monkeypatch.setenv("ASL_CACHE", str(tiny.cache))
    monkeypatch.delenv("ASL_FAKE_GPU", raising=False)
    return {"ASL_CACHE": str(tiny.cache), "ASL_FAKE_GPU": None}


# --- a trained run ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def trained_run(sample_dir, tmp_path_factory) -> Path:
    """A tiny model trained 3 steps on the real sample (a few seconds): a real, finished run folder with
    trained BatchNorm statistics, not yet perfect. Its checkpoints are read-only; `asl evaluate`
    writes its default outputs (eval/, eval-all/) into it."""
    return train_tiny_run(sample_dir, tmp_path_factory.mktemp("trained-run"))
