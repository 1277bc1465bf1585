"""A configuration from its sources and back to text: the layers a command applies, a run's own
configuration to resume it, and the TOML / JSON a configuration prints as.

Resolution order (one rule for every command and for library callers): defaults -> preset -> named
flags -> `--set`. `--set` comes last because it is the explicit `section.key=value` form. Every
value goes through `asl_cli.config` as a `key=value` string, so a named flag is checked exactly like
`--set` (type, range, choices) and a bad value is one `ConfigError` line (exit 2) naming the option.

    cfg = resolve_config("cpu", ["train.epochs=3"], {"lr": 1e-3})     # what `asl train` trains
    cfg = config_for_resume("runs/cpu-2026...", None, {"epochs": 40})  # a run's config.json + overrides
    print(config_text(cfg))                                            # TOML that load_config reads back

No torch and no typer here: `asl --help` stays fast and a script needs no CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asl_cli.config import RunConfig, apply_overrides, budget_yields, load_config, overridden_keys, validate

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


def apply_cli(cfg: RunConfig, sets: list[str] | None, flags: dict[str, Any] | None = None) -> RunConfig:
    """Named flags, then --set, onto `cfg` (in place); errors name the option that caused them.

    Each value is checked as it is applied; the rules between fields (min_lr <= lr, ...) only once
    all are applied, so that a later --set may complete what a named flag started.
    """
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


def resolve_config(preset: str, sets: list[str] | None, flags: dict[str, Any] | None = None) -> RunConfig:
    """Defaults -> preset -> named flags -> --set, validated (raises ConfigError)."""
    return apply_cli(load_config(preset), sets, flags)


def config_for_resume(run_dir: str | Path, sets: list[str] | None, flags: dict[str, Any] | None = None, *,
                      preset: str | None = None) -> RunConfig:
    """The run's own config.json with overrides on top (e.g. more --epochs). A resume continues a run
    with its own configuration: a `preset` is refused (ConfigError), other overrides apply."""
    from asl_cli.engine.run_dir import RunDir
    from asl_cli.errors import ConfigError

    if preset is not None:
        raise ConfigError(f"--resume continues a run with its own {RunDir.CONFIG}; "
                          "leave out --preset (other overrides are applied on top)")
    run = RunDir(run_dir)
    cfg = RunConfig.from_dict(run.read_config(), source=str(run.config_path))
    return apply_cli(cfg, sets, flags)


# --- writing a configuration ------------------------------------------------------------------

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


def config_text(cfg: RunConfig, *, as_json: bool = False) -> str:
    """The resolved configuration as TOML (ends in a newline) or as indented JSON (does not)."""
    d = cfg.to_dict()
    return json.dumps(d, indent=2) if as_json else config_to_toml(d)
