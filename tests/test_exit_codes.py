"""docs/exit-codes.md tells the truth: one row per code in asl_cli/errors.py, each error class it
names has that code, and the commands that return a code are named in its row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asl_cli import errors
from asl_cli.serve import export

DOC = Path(__file__).resolve().parents[1] / "docs" / "exit-codes.md"


def rows() -> dict[int, tuple[str, str]]:
    """code -> (meaning, raised as)."""
    out = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            out[int(cells[0])] = (cells[1], cells[2])
    return out


def test_one_row_per_code():
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert set(rows()) == codes


def test_the_classes_named_have_that_code():
    for code, (_meaning, raised) in rows().items():
        for name in re.findall(r"`(\w+)`", raised):
            cls = getattr(errors, name, None) or getattr(export, name, None)
            if cls is None or not issubclass(cls, errors.ASLError):
                continue  # KeyboardInterrupt, Typer's own
            if cls is errors.TrainingInterrupted:
                got = cls("stopped", signum=15 if code == errors.EXIT_SIGTERM else 2).exit_code
            else:
                got = cls("x").exit_code
            assert got == code, (name, got, code)


@pytest.mark.parametrize("code, commands", [
    (errors.EXIT_PROBLEM, ["check-env", "test-fix", "export", "show"]),  # export/show: missing extras
    (errors.EXIT_NO_GPU, ["gpu-watch", "check-env --require-gpu", "train", "ablate", "evaluate", "predict"]),
    (errors.EXIT_IO, ["synth", "evaluate --out", "export --out", "show --out"]),
    (errors.EXIT_SIGINT, ["train", "ablate", "synth", "prepare"]),
])
def test_commands_returning_a_code_are_named_in_its_row(code, commands):
    meaning = rows()[code][0]
    for command in commands:
        assert f"`{command}`" in meaning, (code, command)
