"""Helpers of the fault suite (imported by its tests; a unique name, unlike conftest)."""

from __future__ import annotations

from pathlib import Path

DRIVER = Path(__file__).resolve().parent / "driver.py"


def train_args(data: Path, runs: Path, name: str, *extra: str, epochs: int = 4, plain: bool = True) -> list[str]:
    """`asl train` on the tiny set: a 32-wide model, batches of 8 (6 updates per epoch), deterministic."""
    return ["train", "--data", str(data), "--runs-dir", str(runs), "--name", name, "--device", "cpu",
            "--epochs", str(epochs), "--batch-size", "8", "--deterministic", "--workers", "0",
            *(["--plain"] if plain else []),
            "--set", "model.dim=32", "--set", "data.n_folds=3", "--set", "data.max_len=32",
            "--set", "train.log_every=1", *extra]


def one_error_line(stderr: str) -> str:
    """The single `error: ...` line of a failed command (the last line; a progress bar may precede it)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    return errors[0]
