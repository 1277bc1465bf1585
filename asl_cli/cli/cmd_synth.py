"""`asl synth OUT_DIR`: write a synthetic data set in the Kaggle asl-signs format.

Thin: options -> `asl_cli.data.synth.generate` -> a summary line. The result is an ordinary
asl-signs folder (`asl prepare OUT_DIR`, `asl train --data OUT_DIR`). `asl train` without
`--data` generates (and caches) the default set by itself, so this command is optional.
The set appears in OUT_DIR only when complete: Ctrl-C (exit 130) or SIGTERM (143) leaves nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import stderr_console, stop_at_once_on_signals, user_errors
from asl_cli.config import SynthConfig

_DEFAULTS = SynthConfig()


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class _LazyBar:
    """A Rich progress bar that appears with the first sequence (not before a usage error)."""

    def __init__(self, total: int, console) -> None:
        self.total, self.console, self.bar = total, console, None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("[bold]Generating"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("synth", total=total)
        self.bar.update(self.task, completed=done)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command("synth")
def synth_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to create (must be empty or absent).",
                                            show_default=False)],
    signs: Annotated[int, typer.Option("--signs", help="Number of signs (classes).")] = _DEFAULTS.num_signs,
    participants: Annotated[int, typer.Option("--participants", help="Number of signers.")]
    = _DEFAULTS.num_participants,
    repetitions: Annotated[int, typer.Option("--repetitions", help="Sequences per sign and signer.")]
    = _DEFAULTS.repetitions,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files (byte for byte).")] = _DEFAULTS.seed,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Generator processes "
                       "(default: one per CPU, up to 8); the output does not depend on it.")] = None,
) -> None:
    """Write a synthetic asl-signs data set: parquet per sequence, train.csv, sign map."""
    with user_errors():
        from asl_cli.config import RunConfig, validate
        from asl_cli.data.synth import generate

        # The same ranges as the config's [synth] section (one owner of the limits).
        cfg = RunConfig()
        cfg.synth = SynthConfig(num_signs=signs, num_participants=participants, repetitions=repetitions,
                                seed=seed)
        validate(cfg, source="asl synth")
        total = signs * participants * repetitions
        console = stderr_console()
        bar = _LazyBar(total, console)
        # Ctrl-C / SIGTERM: generate() removes its temporary folder on the way out; one line, exit 130 / 143
        with stop_at_once_on_signals(f"nothing written to {out_dir}"):
            try:
                summary = generate(out_dir, num_signs=signs, num_participants=participants,
                                   repetitions=repetitions, seed=seed, workers=workers, progress=bar.update)
            finally:
                bar.stop()
        typer.echo(f"wrote {summary.sequences:,} sequences ({signs} signs x {participants} participants x "
                   f"{repetitions} repetitions), {summary.frames:,} frames, {_human_bytes(summary.bytes)} "
                   f"in {summary.seconds:.1f} s -> {summary.out_dir}")
        typer.echo(f"  train on it: asl train --data {summary.out_dir}")
