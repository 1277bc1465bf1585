"""Options shared by `train` and `ablate`: --preset, --set, the named flags, --print-config.

These are the option declarations only. What the options do to a configuration (the named flags'
config keys, the order defaults -> preset -> named flags -> `--set`, resume, TOML/JSON text) is
`asl_cli.config_io`, usable without the CLI.

Only typer is imported here: no torch, so `asl --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

# --- option types (Annotated aliases reused by several commands) ----------------------------

PresetOpt = Annotated[str, typer.Option("--preset", "-p", help="Preset name (see `asl presets`) or a .toml path.")]
SetOpt = Annotated[Optional[list[str]], typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override any setting, e.g. --set train.batch_size=16 (repeatable; applied last).")]
PrintConfigOpt = Annotated[bool, typer.Option(
    "--print-config", help="Print the resolved configuration (TOML; JSON with --json) and exit.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="train.epochs")]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", "-b", help="train.batch_size (per step)")]
AccumOpt = Annotated[Optional[int], typer.Option("--accum", help="train.gradient_accumulation_steps")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="optim.lr")]
MaxStepsOpt = Annotated[Optional[int], typer.Option("--max-steps", help="train.max_steps: stop after N optimizer updates")]
TimeBudgetOpt = Annotated[Optional[float], typer.Option(
    "--time-budget", help="train.time_budget: seconds for the run; the schedule is planned to end in them")]
DataOpt = Annotated[Optional[str], typer.Option(
    "--data", "-d", help="data.data_dir: an asl-signs folder (default: the synthetic set)")]
NameOpt = Annotated[Optional[str], typer.Option("--name", "-n", help="Run folder name under runs_dir.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="train.device: auto, cpu, cuda, cuda:N")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", "-w", help="loader.num_workers (-1: auto)")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="train.seed")]
RunsDirOpt = Annotated[Optional[str], typer.Option("--runs-dir", help="runs_dir: where run folders go")]
NoAugOpt = Annotated[bool, typer.Option("--no-aug", help="aug.use_augmentations=false")]
NoAmpOpt = Annotated[bool, typer.Option("--no-amp", help="train.use_mixed_precision=false")]
CompileOpt = Annotated[bool, typer.Option("--compile", help="train.compile=true (torch.compile)")]
NoCompileOpt = Annotated[bool, typer.Option("--no-compile", help="train.compile=false (the GPU presets compile)")]
DeterministicOpt = Annotated[bool, typer.Option("--deterministic", help="train.deterministic=true")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="data.skip_bad=true: skip unreadable sequences")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (NDJSON events / JSON).")]


def print_config(cfg, *, as_json: bool = False) -> None:
    """Write the resolved configuration to stdout, uncoloured, so it can be redirected to a file."""
    from asl_cli.config_io import config_text

    typer.echo(config_text(cfg, as_json=as_json), nl=as_json)
