"""Ablations: a baseline and variants (one optimisation switched off each) under one budget.

The variants are data (`VARIANTS`: name -> config overrides). `plan_ablation` resolves each one
into a full `RunConfig` that differs from the baseline only by its overrides (same seed, data and
budget); `run_ablation` trains them one after another with `ASLTrainer`, writing `results.json`
and `results.csv` after each variant, so an interrupted ablation resumes without redoing finished
variants (and a variant interrupted mid-run continues from its own `last` checkpoint).
`comparison_rows` turns results into table data with deltas against the baseline; `write_chart`
draws a PNG when matplotlib (the optional `plot` extra) is installed.

torch is imported only inside functions that need the engine (planning notes, running).
"""

from __future__ import annotations

import copy
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from asl_cli.config import RunConfig, set_value, validate, without_retired
from asl_cli.errors import ConfigError, RunIOError
from asl_cli.engine.parallelism import AUTO
from asl_cli.tempfiles import atomic_write_text

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
CHART_PNG = "results.png"
BASELINE = "baseline"


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: dict[str, Any]
    cuda_only: bool = False  # the setting does nothing without CUDA


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("no-aug", "augmentations off", {"aug.use_augmentations": False}),
    Variant("no-amp", "mixed precision off (fp32)", {"train.use_mixed_precision": False}),
    Variant("no-compile", "torch.compile off", {"train.compile": False}),
    Variant("no-accum", "no gradient accumulation (same per-step batch, smaller effective batch)",
            {"train.gradient_accumulation_steps": 1}),
    Variant("no-clip", "gradient clipping off", {"train.gradient_clip_val": 0.0}),
    Variant("no-bucketing", "pad every batch to max_len instead of length buckets",
            {"data.length_bucketing": False}),
    Variant("no-cudnn-benchmark", "cudnn.benchmark off", {"train.cudnn_benchmark": False}, cuda_only=True),
    Variant("empty-cache", "torch.cuda.empty_cache() every 50 batches (the seed's habit)",
            {"train.empty_cache_every": 50}, cuda_only=True),
    Variant("no-workers", "DataLoader in the main process (num_workers=0)", {"loader.num_workers": 0}),
    Variant("no-pin", "pin_memory off", {"loader.pin_memory": False}, cuda_only=True),
)}

# Variants earlier versions had: an ablation folder that lists one still resumes, without it.
RETIRED_VARIANTS = frozenset({"no-compiled-data"})  # the numba data path is gone (issue 17)

# What the comparison shows, in order: (result key, column title, higher is better).
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("best_top1", "top-1", True),
    ("best_top5", "top-5", True),
    ("final_train_loss", "train loss", False),
    ("samples_per_s", "samples/s", True),
    ("peak_mem_mb", "peak MiB", False),
    ("wall_s", "wall s", False),
)
# What each metric is, in words (the chart's titles; the table's columns are kept short for 80 columns).
METRIC_NAMES = {"best_top1": "val top-1", "best_top5": "val top-5", "final_train_loss": "train loss",
                "samples_per_s": "samples/s", "peak_mem_mb": "peak memory (MiB)", "wall_s": "wall time (s)"}


def direction_legend() -> str:
    """Which way is better, for every metric at once (under the table, above the chart). Pure."""
    up = ", ".join(METRIC_NAMES[k] for k, _, hib in METRICS if hib)
    down = ", ".join(METRIC_NAMES[k] for k, _, hib in METRICS if not hib)
    return f"higher is better: {up}; lower is better: {down}"


def chart_titles() -> list[str]:
    """One title per chart panel: what the metric is and which way is better. Pure."""
    return [f"{METRIC_NAMES[key]} {'↑ higher' if hib else '↓ lower'} is better" for key, _title, hib in METRICS]


def _get(cfg: RunConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def variant_config(base: RunConfig, variant: Variant) -> RunConfig:
    """The baseline with the variant's overrides (validated; the baseline is not modified)."""
    cfg = copy.deepcopy(base)
    for key, value in variant.overrides.items():
        set_value(cfg, key, value, source=f"variant {variant.name}")
    validate(cfg, source=f"variant {variant.name}")
    return cfg


def amp_active(cfg: RunConfig, device_type: str) -> bool:
    """Whether a config really computes in reduced precision on this device type, by the
    engine's own rule (`choose_precision`: on a CPU only an explicit bf16 autocasts)."""
    from asl_cli.engine.precision import choose_precision

    # bf16_supported=True: only "reduced or not" matters here, not which of bf16/fp16.
    choice = choose_precision(device_type, mixed=cfg.train.use_mixed_precision, requested=cfg.train.precision,
                              bf16_supported=True)
    return choice.name != "fp32"


def variant_note(base: RunConfig, variant: Variant, device_type: str) -> str:
    """Why a variant may measure nothing new here ("" when it changes something real)."""
    cfg = variant_config(base, variant)
    if cfg.to_dict() == base.to_dict():
        settings = ", ".join(f"{k}={_get(base, k)!r}" for k in variant.overrides)
        return f"same as baseline ({settings} already)"
    if variant.name == "no-amp" and not amp_active(base, device_type):
        return f"same as baseline on {device_type.upper()} (AMP is off there)"
    if variant.cuda_only and device_type != "cuda":
        return f"same as baseline on {device_type.upper()} (CUDA-only setting)"
    if variant.name == "no-compile" and not base.train.compile:
        return "same as baseline (compile is off)"
    if variant.name == "no-workers" and base.loader.num_workers == AUTO:
        return _auto_workers_note(device_type)
    return ""


def _auto_workers_note(device_type: str) -> str:
    """`no-workers` against a baseline with auto workers: what auto chose on this machine."""
    import torch

    from asl_cli.engine.parallelism import plan_here

    threads = torch.get_num_threads()
    auto = plan_here(AUTO, device_type=device_type)  # what the baseline's trainer will plan
    if auto.num_workers == 0:
        return f"same as baseline here (auto chose no worker: {auto.reason.removeprefix('auto: ')})"
    if auto.torch_threads != threads:  # the baseline also gave up compute threads for its worker
        return (f"baseline: {auto.num_workers} worker(s) and {auto.torch_threads} compute thread(s); "
                f"this variant: none and {threads}")
    return ""


def resolve_variants(names: Iterable[str]) -> list[Variant]:
    out = []
    for name in names:
        if name in RETIRED_VARIANTS:
            continue
        if name not in VARIANTS:
            raise ConfigError(f"unknown ablation variant {name!r} (known: {', '.join(VARIANTS)})")
        if VARIANTS[name] not in out:
            out.append(VARIANTS[name])
    return out


@dataclass
class Plan:
    """An ablation: its folder, in order the (variant name, description, config, note) to run, and the
    variants left out because they change nothing on this device: (name, reason)."""

    out_dir: Path
    base: RunConfig
    entries: list[tuple[str, str, RunConfig, str]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    force: bool = False  # run them anyway (asl ablate --force)

    @property
    def names(self) -> list[str]:
        return [e[0] for e in self.entries]


def changes_nothing(note: str) -> bool:
    """Whether a variant note (`variant_note`) says the variant trains exactly the baseline here."""
    return note.startswith("same as baseline")


def plan_ablation(base: RunConfig, variant_names: Iterable[str], *, device_type: str,
                  out_dir: str | Path | None = None, force: bool = False) -> Plan:
    """Resolve the baseline and each variant; every run lives in `<out_dir>/<variant>`.

    A variant that changes nothing on this device (`variant_note` says "same as baseline": no-amp on a
    CPU, a CUDA-only setting without CUDA, ...) is not run but listed in `Plan.skipped` with the reason,
    unless `force`: it would measure the baseline again at the cost of a whole run.
    """
    from asl_cli.engine.run_dir import check_run_name

    variants = resolve_variants(variant_names)
    name = check_run_name(base.name) if base.name else f"{base.preset or 'custom'}"
    out = Path(out_dir) if out_dir else Path(base.runs_dir) / f"ablate-{name}"
    entries = [(BASELINE, "the preset as configured", _named(base, out, BASELINE), "")]
    skipped: list[tuple[str, str]] = []
    for v in variants:
        note = variant_note(base, v, device_type)
        if changes_nothing(note) and not force:
            skipped.append((v.name, note))
            continue
        entries.append((v.name, v.description, _named(variant_config(base, v), out, v.name), note))
    return Plan(out_dir=out, base=base, entries=entries, skipped=skipped, force=force)


def skipped_lines(skipped: list[tuple[str, str]] | dict[str, str]) -> list[str]:
    """One line per variant left out, with why and how to run it anyway (pure)."""
    items = list(skipped.items()) if isinstance(skipped, dict) else list(skipped)
    return [f"not run: {name}: {reason}; --force runs it anyway" for name, reason in items]


def _named(cfg: RunConfig, out: Path, variant: str) -> RunConfig:
    cfg = copy.deepcopy(cfg)
    cfg.name = variant
    cfg.runs_dir = str(out)
    return cfg


# --- results on disk --------------------------------------------------------------------------

def _comparable(cfg_dict: dict) -> dict:
    """A config dict without what may differ between two invocations of the same ablation."""
    d = without_retired(copy.deepcopy(cfg_dict))  # an older version's results.json has them
    for key in ("name", "runs_dir"):
        d.pop(key, None)
    return d


def load_results(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / RESULTS_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the ablation results: {exc}", path=path) from None


def check_resumable(plan: Plan, previous: dict | None) -> dict[str, dict]:
    """The finished results to keep; a different baseline config is an error (not silently mixed)."""
    if not previous:
        return {}
    if _comparable(previous.get("base_config", {})) != _comparable(plan.base.to_dict()):
        raise ConfigError("this ablation was started with a different configuration; "
                          "use another --name or delete the folder", path=plan.out_dir / RESULTS_JSON)
    return {k: v for k, v in previous.get("results", {}).items() if v.get("status") == "done"}


# The options of `asl ablate` that define an ablation (its baseline, budget, variants, folder): a resume
# takes them from results.json, so giving one with --resume would be silently ignored; the command
# refuses them instead. Display options stay allowed.
RESUME_FIXED = ("preset", "sets", "epochs", "max_steps", "time_budget", "data", "name", "device", "workers", "seed",
                "runs_dir", "no_aug", "no_amp", "no_compile", "no_accum", "no_clip", "no_bucketing",
                "no_cudnn_benchmark", "empty_cache", "no_workers", "no_pin", "all_variants",
                "force")


def resume_from(folder: str | Path) -> tuple[RunConfig, list[str], Path, bool]:
    """(baseline config, variants, folder, force) to continue the ablation in `folder` from its
    results.json; plan them with `plan_ablation(base, variants, ..., out_dir=folder, force=force)`.
    Finished variants are kept by `run_ablation`; those left out as no-ops are planned again (and
    left out again on the same device)."""
    folder = Path(folder)
    previous = load_results(folder)
    if previous is None:
        raise ConfigError("not an ablation folder (no results.json)", path=folder)
    base = RunConfig.from_dict(previous["base_config"], source=str(folder / RESULTS_JSON))
    ran = [v for v in previous.get("variants", []) if v != BASELINE]
    return base, ran + list(previous.get("skipped") or {}), folder, bool(previous.get("force"))


def write_results(plan: Plan, results: dict[str, dict], *, device: str = "") -> None:
    """results.json (atomically) and results.csv; called after every variant."""
    doc = {
        "ablation": plan.out_dir.name,
        "preset": plan.base.preset,
        "device": device,
        "variants": plan.names,
        "skipped": dict(plan.skipped),  # variants not run (they change nothing here): name -> why
        "force": plan.force,
        "base_config": plan.base.to_dict(),
        "results": {n: results[n] for n in plan.names if n in results},
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan.out_dir / RESULTS_JSON, json.dumps(doc, indent=2))
        with open(plan.out_dir / RESULTS_CSV, "w", newline="") as fh:
            rows = comparison_rows(results, plan.names)
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["variant"])
            writer.writeheader()
            writer.writerows(rows)
    except OSError as exc:
        raise RunIOError(f"cannot write the ablation results: {exc.strerror}", path=plan.out_dir) from None


def comparison_rows(results: dict[str, dict], order: list[str]) -> list[dict]:
    """One flat row per finished variant: each metric and its delta against the baseline
    (absolute for accuracy/loss, relative % for speed, memory and time), and whether it was
    resumed. Pure."""
    base = results.get(BASELINE)
    rows = []
    for name in order:
        r = results.get(name)
        if not r:
            continue
        row: dict[str, Any] = {"variant": name, "status": r.get("status", ""), "note": r.get("note", "")}
        for key, _title, _hib in METRICS:
            value = r.get(key)
            row[key] = value
            row[f"{key}_delta"] = metric_delta(key, value, None if base is None else base.get(key)) \
                if name != BASELINE else None
        row["steps"] = r.get("steps")
        row["run_dir"] = r.get("run_dir", "")
        # continued from an interrupted ablation's checkpoint: its speed, memory and wall time are partial
        row["resumed"] = bool(r.get("resumed"))
        rows.append(row)
    return rows


RELATIVE = {"samples_per_s", "peak_mem_mb", "wall_s"}


def metric_delta(key: str, value: Any, base: Any) -> float | None:
    """value - base (accuracy, loss) or the relative change in % (speed, memory, time)."""
    if not isinstance(value, (int, float)) or not isinstance(base, (int, float)):
        return None
    if key in RELATIVE:
        return None if base == 0 else 100.0 * (value - base) / base
    return float(value) - float(base)


def format_delta(key: str, delta: float | None) -> str:
    if delta is None:
        return ""
    if key in RELATIVE:
        return f"{delta:+.0f}%"
    if key in ("best_top1", "best_top5"):
        return f"{100 * delta:+.1f}pt"
    return f"{delta:+.3f}"


def format_value(key: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "n/a"
    if key in ("best_top1", "best_top5"):
        return f"{100 * value:.1f}%"
    if key == "final_train_loss":
        return f"{value:.3f}"
    if key == "wall_s":
        return f"{value:.1f}"
    return f"{value:.0f}"


def write_chart(results: dict[str, dict], order: list[str], path: str | Path) -> Path | None:
    """A PNG with one bar chart per metric; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [n for n in order if n in results]
    cols = 3
    rows = -(-len(METRICS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(METRICS):]:
        ax.set_visible(False)
    for ax, (key, _title, _hib), title in zip(axes.flat, METRICS, chart_titles()):
        values = [results[n].get(key) if isinstance(results[n].get(key), (int, float)) else 0.0 for n in names]
        colors = ["#4c72b0" if n == BASELINE else "#dd8452" for n in names]
        ax.bar(range(len(names)), values, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"baseline (blue) vs. variants; {direction_legend()}", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --- running ----------------------------------------------------------------------------------

def warm_up(plan: Plan, steps: int) -> None:
    """A few untimed steps of the baseline configuration in a throw-away folder (no validation)."""
    import shutil
    import tempfile

    from asl_cli.engine.trainer import ASLTrainer

    cfg = copy.deepcopy(plan.base)
    cfg.train.max_steps, cfg.train.epochs, cfg.train.time_budget = int(steps), 1, 0.0
    cfg.data.val_fold = -1
    tmp = tempfile.mkdtemp(prefix="asl-warmup-")
    try:
        cfg.runs_dir, cfg.name = tmp, "warmup"
        ASLTrainer(cfg).fit()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def result_from_summary(summary: dict, *, note: str, description: str) -> dict:
    keep = ("best_top1", "best_top5", "final_train_loss", "samples_per_s", "peak_mem_mb", "wall_s",
            "steps", "epochs_done", "run_dir", "best_checkpoint", "last_checkpoint", "skipped", "state")
    out = {k: _plain(summary.get(k)) for k in keep}
    out.update(status="done", note=note, description=description)
    return out


def _plain(v: Any) -> Any:
    """JSON-safe: paths as strings, numpy/torch scalars as Python numbers."""
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and callable(v.item):
        return v.item()
    return v


def run_ablation(plan: Plan, *, callbacks: Iterable[Callable[[dict], None]] = (),
                 on_variant: Callable[[str, str, int, int], None] | None = None,
                 on_trainer: Callable[[Any], None] | None = None,
                 on_result: Callable[[str, dict], None] | None = None,
                 warmup_steps: int = 2) -> dict[str, dict]:
    """Train each variant not finished yet; returns {variant: result}.

    `on_variant(name, note, i, n)` is called before each variant (also for skipped finished ones,
    with note "done earlier"), `on_trainer(trainer)` with each live trainer (the CLI uses it to
    route Ctrl-C to `request_stop`), `on_result(name, result)` after each. A TrainingInterrupted
    from the trainer propagates after the finished results are on disk. `warmup_steps` untimed
    steps run first, so the first variant does not pay the process's one-time costs (allocator,
    kernel selection, page cache) that the later ones would not.
    """
    from asl_cli.engine.run_dir import FolderLock

    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunIOError(f"cannot create the ablation folder ({exc.strerror or exc})", path=plan.out_dir) from None
    with FolderLock(plan.out_dir, holder="asl ablate"):  # one ablation writes results.json at a time
        return _run_variants(plan, callbacks=callbacks, on_variant=on_variant, on_trainer=on_trainer,
                             on_result=on_result, warmup_steps=warmup_steps)


def _run_variants(plan: Plan, *, callbacks, on_variant, on_trainer, on_result, warmup_steps: int) -> dict[str, dict]:
    from asl_cli.engine.run_dir import RunDir
    from asl_cli.engine.trainer import ASLTrainer

    previous = load_results(plan.out_dir)
    results = check_resumable(plan, previous)
    device = ""
    # results.json (the plan and its configuration) exists before the first variant trains, so an
    # ablation stopped in its first variant can be resumed, and a different configuration is refused.
    write_results(plan, results, device=(previous or {}).get("device", ""))
    if warmup_steps and any(name not in results for name in plan.names):
        warm_up(plan, warmup_steps)
    for n, (name, description, cfg, note) in enumerate(plan.entries):
        if name in results:
            if on_variant:
                on_variant(name, "done earlier", n, len(plan.entries))
            continue
        if on_variant:
            on_variant(name, note, n, len(plan.entries))
        run = RunDir.named(cfg.runs_dir, cfg.name)
        run_dir = run.path
        resume = run_dir if run.last_checkpoint.is_file() else None
        trainer = ASLTrainer(cfg, run_dir=run_dir, resume=resume, callbacks=tuple(callbacks))
        device = str(trainer.device)
        if on_trainer:
            on_trainer(trainer)
        summary = trainer.fit()
        if summary["state"] == "already_finished":  # stopped after its last checkpoint, before results.json
            summary = {**summary, "state": "finished"}
        results[name] = result_from_summary(summary, note=note, description=description)
        # A resumed variant's speed and wall time cover only the part after the resume.
        results[name]["resumed"] = resume is not None
        write_results(plan, results, device=device)
        if on_result:
            on_result(name, results[name])
    if not device:
        previous = load_results(plan.out_dir) or {}
        device = previous.get("device", "")
    write_results(plan, results, device=device)
    return results
