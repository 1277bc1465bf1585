"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/asl-signs-sample"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real asl-signs sample (read-only), next to the repository; skipped when absent."""
    if not (SAMPLE_DIR / "train.csv").is_file():
        pytest.skip(f"real asl-signs sample not found at {SAMPLE_DIR}")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_cache(sample_dir, tmp_path_factory):
    """The real sample prepared once per test session (in-process reader, no pool)."""
    from asl_cli.data.cache import prepare

    return prepare(sample_dir, tmp_path_factory.mktemp("asl-cache"), workers=1)
