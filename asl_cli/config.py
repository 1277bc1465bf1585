"""The one run configuration: dataclasses, preset loading, overrides and validation.

A preset is a TOML file whose tables match the sections below (`[train]`, `[aug]`, ...).
Resolution order: defaults -> preset -> `--set section.key=value` / named CLI flags.
Unknown keys, wrong types and out-of-range values raise `ConfigError` with one clear line.
Retired keys (`RETIRED_KEYS`) are accepted and dropped, so that old config.json files still load.
This module imports no torch: `asl --help` and `asl presets` stay fast.

Foundation layer (with errors, units and tempfiles): every other package imports it, it imports only
`asl_cli.errors`. Over 500 lines on purpose: every setting with its default, range and help text is
declared here once, beside the rules that read them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from asl_cli.errors import ConfigError


RUN_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def check_run_name(name: str) -> str:
    """`name` if it is a safe run folder name (it can never point outside runs_dir), else ConfigError."""
    if not RUN_NAME_RE.match(name or "") or name in (".", "..") or name.startswith(".."):
        raise ConfigError(f"run name {name!r} is not allowed: use 1-128 of A-Z a-z 0-9 . _ - "
                          f"(no slashes, not '.' or '..')")
    return name


def device_type_of(device: str) -> str:
    """"cuda" or "cpu" for a train.device setting ("auto": CUDA when available; imports torch only then)."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device.startswith("cuda") else "cpu"


def _f(default: Any, lo: float | None = None, hi: float | None = None, choices: tuple | None = None,
       help: str = "") -> Any:
    """A field with its allowed range/choices, checked by `validate`."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    data_dir: str | None = _f(None, help="asl-signs folder (train.csv, sign map, parquet); none: the synthetic set")
    cache_dir: str | None = _f(None, help="where prepared caches live (default: ~/.cache/asl or $ASL_CACHE)")
    max_len: int = _f(384, 1, 10000, help="frames kept per sequence (truncate / random crop)")
    n_folds: int = _f(5, 2, 100, help="participant-grouped folds")
    val_fold: int = _f(0, -1, 99, help="fold used for validation; -1 trains on everything")
    bucket_step: int = _f(16, 1, 1024, help="batch lengths are rounded up to a multiple of this")
    length_bucketing: bool = _f(True, help="group similar lengths in a batch (else pad to max_len)")
    skip_bad: bool = _f(False, help="skip unreadable sequences (counted) instead of stopping")
    limit: int = _f(0, 0, None, help="use only the first N sequences (0: all)")


@dataclass
class SynthConfig:
    num_signs: int = _f(20, 2, 250)
    num_participants: int = _f(12, 3, 1000)
    repetitions: int = _f(10, 1, 1000)
    seed: int = _f(0, 0, None)


@dataclass
class AugConfig:
    use_augmentations: bool = _f(True, help="master switch: off means bitwise-unchanged inputs")
    profile: str = _f("seed", choices=("seed", "winner"), help="group probabilities and order")
    temporal_prob: float = _f(0.5, 0.0, 1.0)
    spatial_prob: float = _f(0.7, 0.0, 1.0)
    noise_prob: float = _f(0.3, 0.0, 1.0)
    mask_prob: float = _f(0.2, 0.0, 1.0)
    # temporal
    resample: bool = _f(True)
    resample_rate: list = _f([0.5, 1.5])
    resample_modes: list = _f(["linear", "cubic", "nearest"])
    temporal_mask: bool = _f(True)
    temporal_mask_frac: list = _f([0.2, 0.4])
    random_crop: bool = _f(True)
    # spatial
    rotate: bool = _f(True)
    rotate_deg: float = _f(30.0, 0.0, 180.0)
    scale: bool = _f(True)
    scale_range: list = _f([0.8, 1.2])
    shear: bool = _f(True)
    shear_max: float = _f(0.15, 0.0, 1.0)
    translate: bool = _f(True)
    translate_max: float = _f(0.1, 0.0, 1.0)
    flip: bool = _f(True)
    flip_prob: float = _f(0.5, 0.0, 1.0)
    # noise and masking
    noise: bool = _f(True)
    noise_std: float = _f(0.01, 0.0, 1.0)
    feature_mask: bool = _f(True)
    feature_mask_frac: float = _f(0.1, 0.0, 1.0)
    landmark_dropout: bool = _f(True)
    landmark_dropout_prob: float = _f(0.05, 0.0, 1.0)
    spatial_mask: bool = _f(True)
    spatial_mask_size: list = _f([0.2, 0.4])
    # per-op probabilities of the "winner" profile (the notebook's; flip uses flip_prob)
    resample_prob: float = _f(0.8, 0.0, 1.0, help="winner profile: temporal resample")
    affine_prob: float = _f(0.75, 0.0, 1.0, help="winner profile: scale+shear+rotate+shift together")
    temporal_mask_prob: float = _f(0.5, 0.0, 1.0, help="winner profile: temporal mask")
    spatial_mask_prob: float = _f(0.5, 0.0, 1.0, help="winner profile: spatial mask")


@dataclass
class ModelConfig:
    dim: int = _f(192, 8, 4096, help="model width (192 or 384 in the winner's solution)")
    blocks: int = _f(2, 1, 32, help="[3 x Conv1DBlock + TransformerBlock] repeats (2 at dim 192, 4 at 384)")
    kernel_size: int = _f(17, 1, 255)
    num_heads: int = _f(4, 1, 64)
    expand: int = _f(2, 1, 16)
    drop_rate: float = _f(0.2, 0.0, 0.99, help="drop-path and attention dropout")
    late_dropout: float = _f(0.8, 0.0, 0.99)
    late_dropout_start: int = _f(15, 0, None, help="epoch from which late dropout is active")


@dataclass
class OptimConfig:
    optimizer: str = _f("radam_lookahead", choices=("radam_lookahead", "adamw", "radam"))
    lr: float = _f(5e-4, 0.0, 10.0)
    min_lr: float = _f(1e-6, 0.0, 10.0)
    weight_decay: float = _f(0.1, 0.0, 10.0, help="decoupled, as a multiple of lr (winner: 0.1 x lr)")
    weight_decay_mode: str = _f("decoupled", choices=("decoupled", "lr_scaled"),
                                help="decoupled: torch's p -= lr_t*wd*p; lr_scaled: wd itself follows lr_t "
                                     "(p -= lr_t*(wd*lr_t)*p), the winner's TF-Addons reading (docs/model.md)")
    warmup_epochs: float = _f(0.0, 0.0, None)
    schedule: str = _f("cosine", choices=("cosine", "constant"))
    label_smoothing: float = _f(0.1, 0.0, 1.0)
    lookahead_k: int = _f(5, 1, 1000)
    lookahead_alpha: float = _f(0.5, 0.0, 1.0)
    awp_lambda: float = _f(0.0, 0.0, 10.0, help="0 disables AWP (winner: 0.2)")
    awp_start_epoch: int = _f(15, 0, None)


@dataclass
class TrainConfig:
    epochs: int = _f(10, 0, 100000, help="epochs of the schedule; with a time budget a cap (0: none, the "
                                          "budget alone sizes the run)")
    max_steps: int = _f(0, 0, None, help="stop after N optimizer updates (0: no limit)")
    time_budget: float = _f(0.0, 0.0, 30 * 24 * 3600.0,
                            help="seconds for the whole run: the schedule is planned to end in them (0: none, "
                                 "epochs size the run); docs/train.md#time-budget")
    batch_size: int = _f(64, 1, 1 << 20)
    gradient_accumulation_steps: int = _f(1, 1, 4096)
    use_mixed_precision: bool = _f(False)
    precision: str = _f("auto", choices=("auto", "bf16", "fp16", "fp32"),
                        help="with mixed precision: auto picks bf16 where supported, else fp16")
    gradient_clip_val: float = _f(1.0, 0.0, None, help="0 disables clipping")
    compile: bool = _f(False)
    compile_mode: str = _f("default", choices=("default", "reduce-overhead", "max-autotune",
                                                "max-autotune-no-cudagraphs"))
    deterministic: bool = _f(False)
    cudnn_benchmark: bool = _f(True)
    tf32: bool = _f(True, help="CUDA on Ampere and later: fp32 matmuls and convolutions use TF32 tensor cores "
                               "(false: full fp32, e.g. for an exact --no-amp baseline); no effect elsewhere")
    empty_cache_every: int = _f(0, 0, None, help="torch.cuda.empty_cache() every N batches (0: never)")
    device: str = _f("auto", help="auto, cpu, cuda, cuda:N")
    seed: int = _f(42, 0, 2**64 - 1, help="torch.manual_seed takes at most 2**64 - 1")
    nonfinite: str = _f("skip", choices=("skip", "stop"), help="on a NaN/Inf loss: skip the step or stop")
    log_every: int = _f(10, 1, None, help="gather metrics every N optimizer updates (one GPU sync)")
    eval_every: int = _f(1, 1, None, help="validate every N epochs")
    checkpoint_every: int = _f(1, 1, None, help="save `last` every N epochs")
    sync_bn: bool = _f(False, help="torchrun: batch-norm statistics over all processes' batches")
    tensorboard: str = _f("auto", choices=("auto", "on", "off"),
                          help="TensorBoard event files in RUN/tensorboard (extra `tensorboard`): auto = when "
                               "the package is installed, on = required, off = never")


@dataclass
class LoaderConfig:
    num_workers: int = _f(0, -1, 256, help="DataLoader worker processes; -1: auto (on a CPU one worker "
                                           "given 3+ cores, beside a GPU up to 8; docs/presets.md)")
    pin_memory: bool = _f(False, help="only takes effect with CUDA")
    persistent_workers: bool = _f(True)
    prefetch_factor: int = _f(2, 1, 64)
    non_blocking: bool = _f(True)


@dataclass
class RunConfig:
    name: str = _f("", help="run folder name (default: preset + timestamp)")
    runs_dir: str = _f("runs")
    preset: str = _f("")
    data: DataConfig = field(default_factory=DataConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "config") -> "RunConfig":
        cfg = cls()
        apply_mapping(cfg, d, source=source)
        validate(cfg, source=source)
        return cfg


SECTIONS = ("data", "synth", "aug", "model", "optim", "train", "loader")

# Keys earlier versions had, which no longer do anything: accepted with any value and dropped, from a
# file (an old run's config.json, a checkpoint, a preset, ablation results) or --set alike, so that
# old run folders still resume. key -> why it went (docs/presets.md "Retired settings").
RETIRED_KEYS: dict[str, str] = {
    "data.compiled": "the compiled (numba) data path was removed; the numpy path is the only one (issue 17)",
}


def retired_key(key: str) -> str | None:
    """The retired `section.name` that `key` (dotted, or a bare name no current setting has) names, else None."""
    key = key.strip()
    if "." in key:
        return key if key in RETIRED_KEYS else None
    matches = [k for k in RETIRED_KEYS if k.split(".", 1)[1] == key]
    if len(matches) != 1 or any(k.rsplit(".", 1)[-1] == key for k in _known_keys(RunConfig())):
        return None  # not retired, or the bare name of a current setting too
    return matches[0]


def without_retired(d: dict) -> dict:
    """A config dict (`RunConfig.to_dict()` layout) without the retired keys (a copy)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for key in RETIRED_KEYS:
        section, name = key.split(".", 1)
        if isinstance(out.get(section), dict):
            out[section].pop(name, None)
    return out


def _field_type(obj: Any, name: str) -> Any:
    return get_type_hints(type(obj))[name]


def _coerce(value: Any, typ: Any, key: str, source: str) -> Any:
    """Check/convert `value` to the field type `typ`; strings come from `--set`."""
    origin = get_origin(typ)
    args = [a for a in get_args(typ) if a is not type(None)]
    if origin is not None and type(None) in get_args(typ):  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(value, args[0], key, source)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is list or origin is list:
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:  # a,b or [a, b] without JSON's quotes
                text = value.strip()
                if text.startswith("[") and text.endswith("]"):
                    text = text[1:-1]
                parsed = [_list_item(v.strip().strip("'\"")) for v in text.split(",") if v.strip()]
            if isinstance(parsed, list):
                return parsed
    tname = getattr(typ, "__name__", str(typ))
    raise ConfigError(f"{key}: expected {tname}, got {value!r}", path=source)


def _list_item(text: str) -> Any:
    """One unquoted list item from `--set`: a number where it reads as one, else the text."""
    try:
        item = json.loads(text)
    except json.JSONDecodeError:
        return text
    return item if isinstance(item, (int, float)) and not isinstance(item, bool) else text


def apply_mapping(cfg: RunConfig, mapping: dict, *, source: str) -> None:
    """Apply a nested mapping (a parsed preset) onto `cfg`; unknown keys are errors."""
    for key, value in mapping.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"[{key}] must be a table", path=source)
            for sub, v in value.items():
                set_value(cfg, f"{key}.{sub}", v, source=source)
        else:
            set_value(cfg, key, value, source=source)


def _known_keys(cfg: RunConfig) -> list[str]:
    keys = [f.name for f in fields(cfg) if f.name not in SECTIONS]
    for s in SECTIONS:
        keys += [f"{s}.{f.name}" for f in fields(getattr(cfg, s))]
    return keys


def resolve_key(cfg: RunConfig, key: str, *, source: str = "--set") -> tuple[Any, str]:
    """Map `section.name` (or a unique bare `name`) to (owner object, field name)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(f"unknown section {section!r} in {key!r} (sections: {', '.join(SECTIONS)})",
                              path=source)
        owner = getattr(cfg, section)
    else:
        name = key
        owners = [getattr(cfg, s) for s in SECTIONS if name in {f.name for f in fields(getattr(cfg, s))}]
        if name in {f.name for f in fields(cfg)} and name not in SECTIONS:
            owners.append(cfg)
        if len(owners) > 1:
            raise ConfigError(f"{key!r} is ambiguous: write section.{key}", path=source)
        owner = owners[0] if owners else None
    if owner is None or name not in {f.name for f in fields(owner)}:
        import difflib
        close = difflib.get_close_matches(key, _known_keys(cfg), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {key!r}{hint}", path=source)
    return owner, name


def set_value(cfg: RunConfig, key: str, value: Any, *, source: str = "--set") -> None:
    if retired_key(key):
        return  # no effect any more (RETIRED_KEYS)
    owner, name = resolve_key(cfg, key, source=source)
    setattr(owner, name, _coerce(value, _field_type(owner, name), key, source))


def overridden_keys(cfg: RunConfig, overrides: list[str]) -> set[str]:
    """The `section.name` keys that `key=value` strings set (bare names resolved)."""
    keys = set()
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if retired_key(key):
            continue
        owner, name = resolve_key(cfg, key)
        section = next((s for s in SECTIONS if getattr(cfg, s) is owner), "")
        keys.add(f"{section}.{name}" if section else name)
    return keys


def budget_yields(cfg: RunConfig, keys: set[str]) -> None:
    """A preset's time budget gives way to an epoch count or step limit set on top of it without a
    budget of its own: `--epochs 5` alone trains 5 epochs on the epoch schedule, as it always did.
    Both given: the budget plans, the epochs (or steps) cap (docs/train.md#time-budget)."""
    if keys & {"train.epochs", "train.max_steps"} and "train.time_budget" not in keys:
        cfg.train.time_budget = 0.0


def apply_overrides(cfg: RunConfig, overrides: list[str], *, source: str = "--set", cross: bool = True) -> None:
    """Apply `key=value` strings (from `--set`); `cross=False` leaves the cross-field rules to a
    later `validate` (when more overrides follow that may complete the configuration)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got {item!r}", path=source)
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value.strip(), source=source)
    validate(cfg, source=source, cross=cross)


def validate(cfg: RunConfig, *, source: str = "config", cross: bool = True) -> None:
    """Range/choice checks from field metadata, plus (with `cross`) cross-field rules."""
    owners = [("", cfg)] + [(s + ".", getattr(cfg, s)) for s in SECTIONS]
    for prefix, owner in owners:
        for f in fields(owner):
            if f.name in SECTIONS:
                continue
            v = getattr(owner, f.name)
            lo, hi, choices = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices")
            key = prefix + f.name
            if choices and v not in choices:
                raise ConfigError(f"{key}: {v!r} is not one of {', '.join(map(str, choices))}", path=source)
            if isinstance(v, float) and not math.isfinite(v):  # NaN passes every comparison
                raise ConfigError(f"{key}: {v} is not a finite number", path=source)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if lo is not None and v < lo:
                    raise ConfigError(f"{key}: {v} is below the minimum {lo}", path=source)
                if hi is not None and v > hi:
                    raise ConfigError(f"{key}: {v} is above the maximum {hi}", path=source)
    device = str(cfg.train.device or "auto").strip().lower()
    if not DEVICE_RE.match(device):
        raise ConfigError(f"train.device: {cfg.train.device!r} is not a device (auto, cpu, cuda, cuda:N)", path=source)
    if cfg.name:
        try:
            check_run_name(cfg.name)
        except ConfigError as exc:
            raise ConfigError(str(exc), path=source) from None
    a = cfg.aug
    for key in ("resample_rate", "temporal_mask_frac", "scale_range", "spatial_mask_size"):
        v = getattr(a, key)
        if len(v) != 2 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                  for x in v) \
                or v[0] > v[1] or v[0] < 0:
            raise ConfigError(f"aug.{key}: expected [low, high] with 0 <= low <= high, got {v!r}", path=source)
    bad = [m for m in a.resample_modes if m not in ("linear", "cubic", "nearest")]
    if bad or not a.resample_modes:
        raise ConfigError(f"aug.resample_modes: expected some of linear, cubic, nearest, got {a.resample_modes!r}",
                          path=source)
    if not cross:
        return
    if cfg.model.dim % cfg.model.num_heads:
        raise ConfigError(f"model.dim ({cfg.model.dim}) must be divisible by model.num_heads "
                          f"({cfg.model.num_heads})", path=source)
    if cfg.optim.min_lr > cfg.optim.lr:
        raise ConfigError(f"optim.min_lr ({cfg.optim.min_lr}) is above optim.lr ({cfg.optim.lr})", path=source)
    if cfg.train.epochs == 0 and not cfg.train.time_budget and not cfg.train.max_steps:
        raise ConfigError("train.epochs = 0 (no epoch limit) needs a time budget or a step limit "
                          "(--time-budget S, --max-steps N, or --epochs N)", path=source)
    if cfg.data.val_fold >= cfg.data.n_folds:
        raise ConfigError(f"data.val_fold ({cfg.data.val_fold}) must be below data.n_folds ({cfg.data.n_folds}) "
                          "(-1: no validation)", path=source)


# --- presets -----------------------------------------------------------------------------------

def presets_dir() -> Path:
    """Presets ship inside the wheel (asl_cli/presets); an editable checkout uses ./presets."""
    packaged = Path(__file__).resolve().parent / "presets"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(presets_dir().glob("*.toml"))}


def looks_like_preset_path(name_or_path: str) -> bool:
    """A .toml file name or anything with a path separator is a file; preset names are neither."""
    separators = {"/", os.sep, os.altsep} - {None}
    return name_or_path.endswith(".toml") or any(sep in name_or_path for sep in separators)


def read_preset(name_or_path: str) -> tuple[dict, str]:
    """Parsed TOML of a preset given by name or path, and the source label used in errors."""
    path = Path(name_or_path)
    if looks_like_preset_path(name_or_path):
        if not path.exists():  # "unknown preset" would send the user to `asl presets` for a typo in a path
            raise ConfigError("preset file not found", path=path)
    else:
        available = list_presets()
        if name_or_path not in available:
            import difflib
            close = difflib.get_close_matches(name_or_path.lower(), list(available), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"unknown preset {name_or_path!r} ({hint}available: {', '.join(available)})")
        path = available[name_or_path]
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), str(path)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read preset: {exc.strerror}", path=path) from None


def load_config(preset: str | None = "cpu", overrides: list[str] | None = None) -> RunConfig:
    """Defaults -> preset -> overrides, validated."""
    cfg = RunConfig()
    if preset:
        mapping, source = read_preset(preset)
        mapping = {k: v for k, v in mapping.items() if k != "description"}
        apply_mapping(cfg, mapping, source=source)
        cfg.preset = Path(preset).stem
        validate(cfg, source=source)
    if overrides:
        apply_overrides(cfg, overrides, cross=False)
        budget_yields(cfg, overridden_keys(cfg, overrides))
        validate(cfg, source="--set")
    return cfg


def preset_description(name: str) -> str:
    mapping, _ = read_preset(name)
    return str(mapping.get("description", ""))
