"""`asl synth OUT_DIR`: write a synthetic data set in the Kaggle asl-signs format.

Thin: options -> `asl_cli.data.synth.generate` -> a summary line. The result is an ordinary
asl-signs folder (`asl prepare OUT_DIR`, `asl train --data OUT_DIR`). `asl train` without
`--data` generates (and caches) the default set by itself, so this command is optional.
The set appears in OUT_DIR only when complete: Ctrl-C (exit 130) or SIGTERM (143) leaves nothing.
`--hard` makes the signers' recordings differ (camera, handedness, tracking loss, tempo;
asl_cli/data/synth/hard.py); `--holdout-signers N` writes OUT_DIR/train and OUT_DIR/test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import stderr_console, stop_at_once_on_signals, user_errors
from asl_cli.config import SynthConfig
from asl_cli.units import human_bytes

_DEFAULTS = SynthConfig()
_HARD = {"num_signs": 64, "num_participants": 40, "repetitions": 2}  # = synth.HARD_DEFAULTS (tested)


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
    signs: Annotated[Optional[int], typer.Option("--signs", help=f"Number of signs (classes) (default "
                     f"{_DEFAULTS.num_signs}; {_HARD['num_signs']} with --hard).", show_default=False)] = None,
    participants: Annotated[Optional[int], typer.Option("--participants", help=f"Number of signers, held-out "
                            f"ones included (default {_DEFAULTS.num_participants}; "
                            f"{_HARD['num_participants']} with --hard).", show_default=False)] = None,
    repetitions: Annotated[Optional[int], typer.Option("--repetitions", help=f"Sequences per sign and signer "
                           f"(default {_DEFAULTS.repetitions}; {_HARD['repetitions']} with --hard).",
                           show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same files (byte for byte).")] = _DEFAULTS.seed,
    hard: Annotated[bool, typer.Option("--hard", help="Signers whose recordings differ: own camera angle, "
                    "distance and offset, left-handers (mirrored), more tracking loss, wider tempo "
                    "(docs/synthetic.md).")] = False,
    holdout_signers: Annotated[int, typer.Option("--holdout-signers", min=0, help="Hold N signers out: write "
                               "OUT_DIR/train and OUT_DIR/test (the N signers, never in train).")] = 0,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Generator processes "
                       "(default: one per CPU, up to 8); the output does not depend on it.")] = None,
) -> None:
    """Write a synthetic asl-signs data set: parquet per sequence, train.csv, sign map."""
    with user_errors():
        from asl_cli.config import RunConfig, validate
        from asl_cli.data.synth import generate
        from asl_cli.errors import ConfigError

        defaults = _HARD if hard else {"num_signs": _DEFAULTS.num_signs,
                                       "num_participants": _DEFAULTS.num_participants,
                                       "repetitions": _DEFAULTS.repetitions}
        signs = defaults["num_signs"] if signs is None else signs
        participants = defaults["num_participants"] if participants is None else participants
        repetitions = defaults["repetitions"] if repetitions is None else repetitions
        # The same ranges as the config's [synth] section (one owner of the limits).
        cfg = RunConfig()
        cfg.synth = SynthConfig(num_signs=signs, num_participants=participants, repetitions=repetitions,
                                seed=seed)
        validate(cfg, source="asl synth")
        if holdout_signers >= participants:
            raise ConfigError(f"--holdout-signers {holdout_signers} leaves no training signer of the "
                              f"{participants} participants (at most {participants - 1})")
        total = signs * participants * repetitions
        console = stderr_console()
        bar = _LazyBar(total, console)
        kwargs: dict = {}
        if hard:
            from asl_cli.data.synth.hard import HARD_VERSION, make_hard_participants

            kwargs = dict(signers=make_hard_participants, about={"difficulty": "hard", "hard_version": HARD_VERSION})
        # Ctrl-C / SIGTERM: generate() removes its temporary folder on the way out; one line, exit 130 / 143
        with stop_at_once_on_signals(f"nothing written to {out_dir}"):
            try:
                summary = generate(out_dir, num_signs=signs, num_participants=participants,
                                   repetitions=repetitions, seed=seed, workers=workers, progress=bar.update,
                                   holdout_signers=holdout_signers, **kwargs)
            finally:
                bar.stop()
        typer.echo(f"wrote {summary.sequences:,} sequences ({signs} signs x {participants} participants x "
                   f"{repetitions} repetitions{', hard' if hard else ''}), {summary.frames:,} frames, "
                   f"{human_bytes(summary.bytes)} in {summary.seconds:.1f} s -> {summary.out_dir}")
        for split, people, sequences in summary.splits:
            typer.echo(f"  {split}: {summary.out_dir / split} ({people} participants, {sequences:,} sequences)")
        from asl_cli.cli import nextsteps

        if summary.splits:
            train, test = (summary.out_dir / split for split, _, _ in summary.splits)
            steps = nextsteps.after_data(train) + [nextsteps.Step(
                "evaluate", f"asl evaluate RUN --data {nextsteps.quote(test)} --split all",
                "then: the trained RUN on the held-out signers")]
        else:
            steps = nextsteps.after_data(summary.out_dir)
        for line in nextsteps.lines(steps):
            typer.echo(line)
