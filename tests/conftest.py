"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

# The tests run tiny models: one intra-op thread is faster than two, and it avoids OpenMP threads
# spinning against the subprocesses many tests start (which made single tests 10x slower on 2 cores).
# Set before torch is imported, so the toolkit's subprocesses inherit it too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest

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
