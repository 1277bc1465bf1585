"""Packaging: the console script, start-up cost, presets inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kit import ROOT, run_asl


def test_help_and_version_do_not_import_torch():
    code = ("import sys; sys.argv=['asl','--help']\n"
            "from asl_cli.cli import app\n"
            "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'asl --help imported torch'\n"
            "assert 'pandas' not in sys.modules, 'asl --help imported pandas'\n"
            "heavy = {'mediapipe', 'cv2', 'pose_format'} & set(sys.modules)\n"
            "assert not heavy, f'asl --help imported {heavy}'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout
    ver = run_asl("--version")
    assert ver.returncode == 0 and ver.stdout.startswith("asl ")


def test_wheel_ships_the_presets(tmp_path):
    hatchling = pytest.importorskip("hatchling")
    del hatchling
    out = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(n).name for n in names if n.startswith("asl_cli/presets/")}
    expected = {p.name for p in (ROOT / "presets").glob("*.toml")}
    assert expected and expected <= shipped
    assert any(n.endswith("entry_points.txt") for n in names)
    assert "asl_cli/testing/demo_gpus.json" in names  # `asl gpu-watch --fake-gpu demo` works after pip install
    assert not any(n.startswith("tests/") for n in names)  # the committed test data stays out of the wheel
