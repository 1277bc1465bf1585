"""Training views (the `asl train` / `asl ablate` dashboard, the run panels of `asl gpu-watch`):
a run's status dict in, Rich panels or the plain log line out.

The status dict is the one the trainer writes to `status.json` (keys listed in `STATUS_KEYS`);
any key may be missing, and a missing or non-numeric value is shown as "—". Nothing here polls,
sleeps or reads files.
"""

from __future__ import annotations

from typing import Any, Mapping

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from asl_cli.monitor.base import GPUSnapshot
from asl_cli.ui.widgets import NA
from asl_cli.units import DASH, MIB, fmt_duration, fmt_pct, fmt_value, num

STATUS_KEYS = ("run", "state", "epoch", "epochs", "step", "total_steps", "eta_s", "time_budget_s", "budget_used_s",
               "schedule_progress", "loss", "loss_smooth", "lr",
               "grad_norm", "samples_per_s", "data_wait", "val_top1", "val_top5", "best_top1", "peak_mem_mb",
               "amp_scale", "precision", "device", "aug", "config")


def _kv(grid: Table, *pairs: tuple[str, str | Text]) -> None:
    cells: list[str | Text] = []
    for key, value in pairs:
        cells += [Text(key, style="dim"), value if isinstance(value, Text) else Text(value)]
    grid.add_row(*cells)


def _progress(done: Any, total: Any, width: int = 28) -> Text:
    d, t = num(done), num(total)
    frac = None if d is None or not t else min(max(d / t, 0.0), 1.0)
    filled = 0 if frac is None else int(round(frac * width))
    out = Text("━" * filled, style="bold cyan")
    out.append("━" * (width - filled), style="bright_black")
    return out


def _int_of(value: Any) -> str:
    v = num(value)
    return DASH if v is None else f"{int(v):,}"


def _length_cell(train: Mapping[str, Any]) -> tuple[str, str]:
    """(label, value) for what sizes the run: its epochs, or its time budget (with an epoch cap)."""
    budget, epochs = num(train.get("time_budget")), num(train.get("epochs"))
    if not budget:
        return "epochs", _int_of(epochs)
    return "budget", fmt_duration(budget) + (f" ≤{int(epochs)} ep" if epochs else "")


def _approx_steps(st: Mapping[str, Any]) -> str:
    """The step total; under a time budget an estimate from the measured rate, shown as ~N."""
    total = _int_of(st.get("total_steps"))
    return f"~{total}" if num(st.get("time_budget_s")) is not None and total != DASH else total


def train_panel(status: Mapping[str, Any] | None) -> Panel:
    """The training side of the dashboard: progress, loss, speed, validation, memory, precision."""
    st = dict(status or {})
    state = str(st.get("state") or DASH)
    state_style = {"running": "bold green", "finished": "bold blue", "interrupted": "bold yellow",
                   "failed": "bold red"}.get(state, "dim")
    title = Text.assemble(("run ", "dim"), (str(st.get("run") or DASH), "bold"), "  ", (state, state_style))

    head = Table.grid(padding=(0, 1))
    head.add_column(style="dim", no_wrap=True)
    head.add_column(no_wrap=True)
    head.add_column(no_wrap=True)
    head.add_row("epoch", _progress(st.get("epoch"), st.get("epochs")),
                 f"{_int_of(st.get('epoch'))} / {_int_of(st.get('epochs'))}")
    head.add_row("step", _progress(st.get("step"), st.get("total_steps")),
                 f"{_int_of(st.get('step'))} / {_approx_steps(st)}   eta {fmt_duration(st.get('eta_s'))}")
    if num(st.get("time_budget_s")) is not None:  # a time-planned run: the clock is the progress bar
        head.add_row("time", _progress(st.get("budget_used_s"), st.get("time_budget_s")),
                     f"{fmt_duration(st.get('budget_used_s'))} / {fmt_duration(st.get('time_budget_s'))}   "
                     f"schedule {fmt_pct(st.get('schedule_progress'), digits=0)}")

    grid = Table.grid(padding=(0, 1))
    for _ in range(3):
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(no_wrap=True, min_width=10)
    loss = Text(fmt_value(st.get("loss"), ".4f"), style="bold")
    if num(st.get("loss_smooth")) is not None:
        loss.append(f" ({fmt_value(st.get('loss_smooth'), '.4f')})", style="dim")
    _kv(grid, ("loss", loss), ("lr", fmt_value(st.get("lr"), ".2e")),
        ("grad norm", fmt_value(st.get("grad_norm"), ".3f")))
    wait = num(st.get("data_wait"))
    wait_text = Text(fmt_pct(wait, digits=0), style="yellow" if wait is not None and wait > 0.2 else "")
    _kv(grid, ("samples/s", fmt_value(st.get("samples_per_s"), ",.1f")), ("data wait", wait_text),
        ("amp scale", fmt_value(st.get("amp_scale"), ".0f")))
    _kv(grid, ("val top1", Text(fmt_pct(st.get("val_top1")), style="bold")), ("top5", fmt_pct(st.get("val_top5"))),
        ("best", Text(fmt_pct(st.get("best_top1")), style="bold green")))
    _kv(grid, ("peak mem", fmt_value(st.get("peak_mem_mb"), ",.0f", " MiB")),
        ("precision", str(st.get("precision") or DASH)), ("device", str(st.get("device") or DASH)))
    _kv(grid, ("compile", compile_text(st)), ("fp16 skips", _count_text(st.get("overflow_skipped"), "dim")),
        ("non-finite", _count_text(st.get("nonfinite_skipped"), "yellow")))
    return Panel(Group(head, grid), title=title, title_align="left", border_style="green", box=box.ROUNDED,
                 padding=(0, 1))


def compile_text(st: Mapping[str, Any]) -> Text:
    """torch.compile in a few characters: off, compiling (yellow), on with its graphs, eager (red)."""
    state = str(st.get("compile") or DASH)
    graphs = int(num(st.get("compile_graphs")) or 0)
    if "compiling" in state:
        return Text("compiling" + (f" #{graphs + 1}" if graphs else ""), style="yellow")
    if state.startswith("fallback"):
        return Text("eager (fell back)", style="red")
    if state.startswith("on"):
        eager = int(num(st.get("compile_eager_batches")) or 0)
        if eager:
            return Text(f"on · {eager} eager", style="yellow")
        return Text(f"on · {graphs} graph{'s' if graphs != 1 else ''}" if graphs else "on")
    return Text(state, style="dim" if state == "off" else "")


def _count_text(value: Any, style: str) -> Text:
    n = num(value)
    return Text(DASH if n is None else f"{int(n)}", style=style if n else "dim")


def _range(v: Any) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{num(v[0]):g}–{num(v[1]):g}" if num(v[0]) is not None and num(v[1]) is not None else DASH
    return DASH


def aug_panel(aug: Mapping[str, Any] | None) -> Panel:
    """The augmentation settings (an `AugConfig` as a dict), by group with its probability."""
    a = dict(aug or {})
    title = Text.assemble(("augmentations", "bold"), ("  profile ", "dim"), str(a.get("profile", DASH)))
    if not a:
        return Panel(Text(DASH, style="dim"), title=title, title_align="left", box=box.ROUNDED)
    if a.get("use_augmentations") is False:
        return Panel(Text("off (inputs unchanged)", style="yellow"), title=title, title_align="left",
                     box=box.ROUNDED)

    def item(flag: str, text: str) -> Text:
        if flag not in a:
            return Text(f"{text}?", style="dim")
        return Text(text) if a.get(flag) else Text(text, style="dim strike")

    modes = ",".join(a.get("resample_modes") or []) or DASH
    groups = [
        ("temporal", "temporal_prob", [item("resample", f"resample {_range(a.get('resample_rate'))}× ({modes})"),
                                       item("temporal_mask", f"mask {_range(a.get('temporal_mask_frac'))}"),
                                       item("random_crop", "random crop")]),
        ("spatial", "spatial_prob", [item("rotate", f"rotate ±{fmt_value(a.get('rotate_deg'), 'g')}°"),
                                     item("scale", f"scale {_range(a.get('scale_range'))}"),
                                     item("shear", f"shear {fmt_value(a.get('shear_max'), 'g')}"),
                                     item("translate", f"shift {fmt_value(a.get('translate_max'), 'g')}"),
                                     item("flip", f"flip p={fmt_value(a.get('flip_prob'), 'g')}")]),
        ("noise", "noise_prob", [item("noise", f"gaussian σ={fmt_value(a.get('noise_std'), 'g')}")]),
        ("masking", "mask_prob", [item("feature_mask", f"features {fmt_value(a.get('feature_mask_frac'), 'g')}"),
                                  item("landmark_dropout",
                                       f"landmarks p={fmt_value(a.get('landmark_dropout_prob'), 'g')}"),
                                  item("spatial_mask", f"region {_range(a.get('spatial_mask_size'))}")]),
    ]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column()
    for name, pkey, items in groups:
        grid.add_row(name, f"p={fmt_value(a.get(pkey), 'g')}", Text(" · ").join(items))
    return Panel(grid, title=title, title_align="left", border_style="yellow", box=box.ROUNDED, padding=(0, 1))


def config_panel(cfg: Mapping[str, Any] | None) -> Panel:
    """The run configuration people compare runs by (a `RunConfig.to_dict()`)."""
    c = dict(cfg or {})

    def sec(name: str) -> dict:
        v = c.get(name)
        return v if isinstance(v, dict) else {}

    data, model, optim, train, loader = (sec(n) for n in ("data", "model", "optim", "train", "loader"))
    batch, accum = num(train.get("batch_size")), num(train.get("gradient_accumulation_steps"))
    effective = DASH if batch is None or accum is None else f"{int(batch * accum)}"
    amp = train.get("use_mixed_precision")
    precision = DASH if amp is None else (str(train.get("precision", "auto")) + " AMP" if amp else "fp32")
    grid = Table.grid(padding=(0, 1))
    for _ in range(2):
        grid.add_column(style="dim", justify="right", no_wrap=True)
        grid.add_column(no_wrap=True)
    rows = [
        ("preset", str(c.get("preset") or DASH), "data", str(data.get("data_dir") or "synthetic")),
        ("model", f"dim {_int_of(model.get('dim'))} × {_int_of(model.get('blocks'))} blocks",
         "max len", _int_of(data.get("max_len"))),
        ("batch", f"{_int_of(batch)} × {_int_of(accum)} accum = {effective}", *_length_cell(train)),
        ("optimizer", f"{optim.get('optimizer', DASH)} lr {fmt_value(optim.get('lr'), '.1e')}",
         "schedule", str(optim.get("schedule", DASH))),
        ("precision", precision, "clip", fmt_value(train.get("gradient_clip_val"), "g")),
        ("workers", "auto" if loader.get("num_workers") == -1 else _int_of(loader.get("num_workers")),
         "seed", _int_of(train.get("seed"))),
        ("compile", DASH if "compile" not in train else ("on" if train.get("compile") else "off"),
         "device", str(train.get("device", DASH))),
    ]
    for r in rows:
        grid.add_row(*r)
    return Panel(grid, title=Text("configuration", style="bold"), title_align="left", box=box.ROUNDED,
                 padding=(0, 1))


def training_view(status: Mapping[str, Any] | None, *, with_config: bool = True,
                  with_aug: bool = True) -> RenderableType:
    """train + aug + config panels for one run's status dict (the last two optional)."""
    st = status or {}
    parts: list[RenderableType] = [train_panel(st)]
    if with_aug:
        parts.append(aug_panel(st.get("aug") if isinstance(st.get("aug"), dict) else None))
    if with_config and isinstance(st.get("config"), dict):
        parts.append(config_panel(st["config"]))
    return Group(*parts)


def plain_line(status: Mapping[str, Any], gpu: GPUSnapshot | None = None) -> str:
    """The classic one-line training log (detectron2 style); `gpu` adds NVML memory and utilisation."""
    st = dict(status or {})

    def frac(a: str, b: str) -> str:
        x, y = num(st.get(a)), num(st.get(b))
        return f"{DASH if x is None else int(x)}/{DASH if y is None else int(y)}"

    budget = ""
    if num(st.get("time_budget_s")) is not None:
        budget = f"  time {fmt_duration(st.get('budget_used_s'))}/{fmt_duration(st.get('time_budget_s'))}"

    loss = fmt_value(st.get("loss"), ".4f")
    if num(st.get("loss_smooth")) is not None:
        loss += f" ({fmt_value(st.get('loss_smooth'), '.4f')})"
    if gpu is not None and not gpu.lost and gpu.memory_total is not None:
        gpu_mem = f"{(gpu.memory_used or 0) / MIB:.0f}/{gpu.memory_total / MIB:.0f}MiB"
    else:
        gpu_mem = NA if gpu is not None else DASH
    util = DASH if gpu is None else (NA if gpu.util_gpu is None else f"{gpu.util_gpu}%")
    steps = frac('step', 'total_steps') if budget == "" else f"{_int_of(st.get('step'))}/{_approx_steps(st)}"
    extra = ""  # only what is unusual: a compile in progress or not running, skipped updates
    comp = str(st.get("compile") or "")
    if comp and comp not in ("off", "on"):
        extra += f"  compile {comp}"
    for key, label in (("overflow_skipped", "fp16 skips"), ("nonfinite_skipped", "non-finite skips")):
        if num(st.get(key)):
            extra += f"  {label} {int(st[key])}"
    return (f"eta {fmt_duration(st.get('eta_s'))}{budget}  epoch {frac('epoch', 'epochs')}  step {steps}"
            f"  loss {loss}  lr {fmt_value(st.get('lr'), '.2e')}"
            f"  samples/s {fmt_value(st.get('samples_per_s'), '.1f')}  data {fmt_pct(st.get('data_wait'), digits=0)}"
            f"  val top1 {fmt_pct(st.get('val_top1'))}  max_mem {fmt_value(st.get('peak_mem_mb'), '.0f', 'MiB')}"
            f"  gpu mem {gpu_mem}  util {util}{extra}")


def advice_text(advice) -> Text | None:
    """The advice that holds now (`asl_cli.engine.advice.Advice` items), one line each; None for none."""
    if not advice:
        return None
    text = Text()
    for i, a in enumerate(advice):
        text.append(("\n" if i else "") + "advice ", style="bold yellow")
        text.append(f"{a.rule}: ", style="yellow")
        text.append(a.message)
    return text
