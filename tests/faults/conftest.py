"""Fixtures of the fault suite: a tiny data set, the `asl train` arguments for it, and the ledger.

The ledger counts every fault injected and every bad input tried, with its outcome, and writes
them as JSON at the end of the session (to $ASL_FAULTS_SUMMARY, else `faults-summary.json` in
pytest's temporary folder); `python tests/faults/report.py FILE` prints the table that
docs/reliability.md quotes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]



class Ledger:
    """Outcomes by category: `with ledger.case("kill", "mid-step seed 3", step=12): ...`."""

    def __init__(self) -> None:
        self.cases: list[dict] = []

    @contextlib.contextmanager
    def case(self, category: str, name: str, **detail):
        entry = {"category": category, "name": name, "ok": False, **detail}
        self.cases.append(entry)
        started = time.perf_counter()
        try:
            yield entry
            entry["ok"] = True
        finally:
            entry["seconds"] = round(time.perf_counter() - started, 2)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                    "cases": self.cases}, indent=1) + "\n")


@pytest.fixture(scope="session")
def ledger(tmp_path_factory):
    book = Ledger()
    yield book
    target = os.environ.get("ASL_FAULTS_SUMMARY")
    book.write(Path(target) if target else tmp_path_factory.getbasetemp() / "faults-summary.json")


@pytest.fixture(scope="session")
def tiny_data(tiny_sets) -> Path:
    """A tiny asl-signs folder (4 signs x 6 signers x 3 repetitions, 72 parquet files), read-only:
    the CLI tests' set (tests/conftest.py)."""
    return tiny_sets().data


@pytest.fixture()
def cache_env(tmp_path, monkeypatch) -> dict:
    """An isolated cache folder for this test, in-process ($ASL_CACHE) and for subprocesses."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ASL_CACHE", str(cache))
    monkeypatch.delenv("ASL_FAKE_GPU", raising=False)
    return dict(os.environ, ASL_CACHE=str(cache), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                PYTHONPATH=str(ROOT))
