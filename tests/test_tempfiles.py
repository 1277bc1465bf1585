"""Temp siblings: named after their writer; only abandoned ones are offered for deletion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asl_cli.errors import RunIOError
from asl_cli.tempfiles import abandoned, atomic_write_text, temp_sibling


def test_abandoned_keeps_live_writers_and_foreign_names(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    target = tmp_path / "last.pt"
    mine = temp_sibling(target)
    assert mine.parent == tmp_path and mine.name.startswith(".last.pt.tmp-") and str(os.getpid()) in mine.name
    live = tmp_path / f".last.pt.tmp-{os.getppid()}-abcd1234"   # the test runner's parent: alive
    gone = tmp_path / f".last.pt.tmp-{dead_pid}-abcd1234"
    foreign = tmp_path / ".last.pt.tmp-notapid"
    assert set(abandoned([mine, live, gone, foreign])) == {mine, gone}


def test_atomic_write_text_replaces_whole_or_reports_one_line(tmp_path):
    path = tmp_path / "status.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunIOError, match="cannot write") as info:
        atomic_write_text(Path(blocker) / "status.json", "x")
    assert "\n" not in str(info.value)


def test_opening_a_run_folder_sweeps_status_and_config_temps_of_killed_writers(tmp_path):
    from asl_cli.engine.run_dir import RunDir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    run = tmp_path / "r1"
    run.mkdir()
    gone = [run / f".status.json.tmp-{int(dead.stdout)}-abcd1234", run / f".config.json.tmp-{int(dead.stdout)}-ef01"]
    live = run / f".status.json.tmp-{os.getppid()}-abcd1234"  # a writer that still runs: left alone
    for p in (*gone, live):
        p.write_text("{")
    RunDir.open(run)
    assert not any(p.exists() for p in gone) and live.exists()
