"""Options shared by `train` and `ablate`: --preset, --set, the named flags, --print-config.

Resolution order (one rule for every command): defaults -> preset -> named flags -> `--set`.
`--set` comes last because it is the explicit `section.key=value` form. Every value goes through
`asl_cli.config` as a `key=value` string, so a named flag is checked exactly like `--set` (type,
range, choices) and a bad value is one `ConfigError` line (exit 2).

Only typer is imported here: no torch, so `asl --help` stays fast.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

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

# Named flag -> config key. Valued flags override when given (not None); switches when set.
VALUED_FLAGS: dict[str, str] = {
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "accum": "train.gradient_accumulation_steps",
    "lr": "optim.lr",
    "max_steps": "train.max_steps",
    "time_budget": "train.time_budget",
    "data": "data.data_dir",
    "name": "name",
    "device": "train.device",
    "workers": "loader.num_workers",
    "seed": "train.seed",
    "runs_dir": "runs_dir",
}
SWITCH_FLAGS: dict[str, str] = {
    "no_aug": "aug.use_augmentations=false",
    "no_amp": "train.use_mixed_precision=false",
    "compile": "train.compile=true",
    "no_compile": "train.compile=false",
    "deterministic": "train.deterministic=true",
    "skip_bad": "data.skip_bad=true",
}


def flag_overrides(flags: dict[str, Any]) -> list[tuple[str, str]]:
    """(option name, `key=value`) for the named flags that were given (pure; stable order)."""
    out: list[tuple[str, str]] = []
    for name, key in VALUED_FLAGS.items():
        value = flags.get(name)
        if value is not None:
            out.append(("--" + name.replace("_", "-"), f"{key}={value}"))
    for name, assignment in SWITCH_FLAGS.items():
        if flags.get(name):
            out.append(("--" + name.replace("_", "-"), assignment))
    unknown = set(flags) - set(VALUED_FLAGS) - set(SWITCH_FLAGS)
    if unknown:  # a programming error in a command module, not a user error
        raise KeyError(f"no config key for flag(s) {sorted(unknown)}")
    return out


def apply_cli(cfg, sets: list[str] | None, flags: dict[str, Any] | None = None):
    """Named flags, then --set, onto `cfg` (in place); errors name the option that caused them.

    Each value is checked as it is applied; the rules between fields (min_lr <= lr, ...) only once
    all are applied, so that a later --set may complete what a named flag started.
    """
    from asl_cli.config import apply_overrides, budget_yields, overridden_keys, validate
    from asl_cli.engine.budget import check_budget

    if (flags or {}).get("time_budget") is not None:  # 0 or an absurd value on the command line is a mistake
        check_budget(flags["time_budget"])
    steps = [(option, [assignment]) for option, assignment in flag_overrides(flags or {})]
    if sets:
        steps.append(("--set", list(sets)))
    for option, assignments in steps:
        apply_overrides(cfg, assignments, source=option, cross=False)
    if steps:
        budget_yields(cfg, set().union(*(overridden_keys(cfg, a) for _, a in steps)))
        validate(cfg, source=steps[-1][0])
    return cfg


def resolve_config(preset: str, sets: list[str] | None, flags: dict[str, Any] | None = None):
    """Defaults -> preset -> named flags -> --set, validated (raises ConfigError)."""
    from asl_cli.config import load_config

    return apply_cli(load_config(preset), sets, flags)


# --- printing a configuration -----------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON-escaped text
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def config_to_toml(cfg_dict: dict) -> str:
    """A RunConfig dict as TOML that `load_config` reads back (None values are left out:
    TOML has no null, and leaving a key out means its default, which is None for those keys)."""
    lines: list[str] = []
    for key, value in cfg_dict.items():
        if not isinstance(value, dict) and value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in cfg_dict.items():
        if isinstance(value, dict):
            lines.append("")
            lines.append(f"[{key}]")
            for sub, v in value.items():
                if v is None:
                    lines.append(f"# {sub} = (none)")
                else:
                    lines.append(f"{sub} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def print_config(cfg, *, as_json: bool = False) -> None:
    """Write the resolved configuration to stdout, uncoloured, so it can be redirected to a file."""
    d = cfg.to_dict()
    typer.echo(json.dumps(d, indent=2) if as_json else config_to_toml(d), nl=as_json)
