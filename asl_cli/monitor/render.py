"""Pure renderers: snapshots and status dicts in, Rich renderables or plain strings out.

Nothing here polls, sleeps or reads files, so every view is testable by printing it to a
recording console. None means N/A for a GPU field and "—" for a training field; a lost GPU is
shown as LOST. The training status dict is the one the trainer writes to `status.json`
(keys listed in `STATUS_KEYS`); any key may be missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from asl_cli.monitor.base import MIB, GPUSnapshot

NA = "N/A"
DASH = "—"
SPARKS = "▁▂▃▄▅▆▇█"

STATUS_KEYS = ("run", "state", "epoch", "epochs", "step", "total_steps", "eta_s", "time_budget_s", "budget_used_s",
               "schedule_progress", "loss", "loss_smooth", "lr",
               "grad_norm", "samples_per_s", "data_wait", "val_top1", "val_top5", "best_top1", "peak_mem_mb",
               "amp_scale", "precision", "device", "aug", "config")


# --- small formatters -------------------------------------------------------------------------

def _num(value: Any) -> float | None:
    """A finite number, or None (missing, None, NaN, a string...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_mib(nbytes: int | None, na: str = NA) -> str:
    return na if nbytes is None else f"{nbytes / MIB:,.0f} MiB"


def fmt_duration(seconds: Any) -> str:
    s = _num(seconds)
    if s is None or s < 0:
        return DASH
    s = int(round(s))
    days, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    return f"{days}d {h:02d}:{m:02d}:{sec:02d}" if days else f"{h}:{m:02d}:{sec:02d}"


def fmt_value(value: Any, spec: str = "", suffix: str = "", none: str = DASH) -> str:
    v = _num(value)
    return none if v is None else f"{v:{spec}}{suffix}"


def fmt_pct(value: Any, none: str = DASH, digits: int = 1) -> str:
    """A 0..1 share as a percentage."""
    v = _num(value)
    return none if v is None else f"{100 * v:.{digits}f}%"


def _level_style(fraction: float | None) -> str:
    if fraction is None:
        return "dim"
    return "green" if fraction < 0.6 else "yellow" if fraction < 0.85 else "red"


def bar(fraction: float | None, width: int = 24) -> Text:
    """A horizontal bar (█ filled, ░ empty) coloured by level; all ░ when unknown."""
    if fraction is None:
        return Text("░" * width, style="dim")
    f = min(max(fraction, 0.0), 1.0)
    filled = int(round(f * width))
    t = Text("█" * filled, style=_level_style(f))
    t.append("░" * (width - filled), style="bright_black")
    return t


def sparkline(values: Iterable[float | None], width: int = 30, lo: float = 0.0, hi: float = 100.0) -> str:
    """The last `width` values as block characters on a fixed scale (space for N/A)."""
    vals = list(values)[-width:]
    out = []
    span = (hi - lo) or 1.0
    for v in vals:
        if v is None or not math.isfinite(v):
            out.append(" ")
            continue
        k = int(round((min(max(v, lo), hi) - lo) / span * (len(SPARKS) - 1)))
        out.append(SPARKS[k])
    return "".join(out).rjust(width)


def _temp_style(t: int | None) -> str:
    if t is None:
        return "dim"
    return "green" if t < 70 else "yellow" if t < 83 else "bold red"


# --- GPUs -------------------------------------------------------------------------------------

def gpu_title(s: GPUSnapshot) -> Text:
    t = Text()
    t.append(f"GPU {s.index}", style="bold")
    t.append(f"  {s.name or 'unknown GPU'}", style="bold cyan" if not s.lost else "bold red")
    if s.fake:
        t.append("  (fake)", style="magenta")
    return t


def gpu_subtitle(s: GPUSnapshot) -> str:
    parts = []
    if s.compute_capability:
        cc = s.compute_capability
        parts.append(f"cc {cc[0]}.{cc[1]}" + (" · bf16" if s.bf16 else " · no bf16"))
    if s.pcie_gen is not None:
        parts.append(f"PCIe gen {s.pcie_gen}")
    if s.uuid:
        parts.append(s.uuid[:12] + "…" if len(s.uuid) > 13 else s.uuid)
    return "  ·  ".join(parts)


def _memory_text(s: GPUSnapshot) -> Text:
    if s.memory_total is None:
        return Text(NA, style="dim")
    frac = s.memory_fraction
    t = Text(f"{(s.memory_used or 0) / MIB:,.0f}", style="bold " + _level_style(frac))
    t.append(f" / {s.memory_total / MIB:,.0f} MiB")
    if frac is not None:
        t.append(f"  {100 * frac:3.0f}%", style=_level_style(frac))
    return t


def _na(value: Any, fmt: str = "{}", style: str = "") -> Text:
    return Text(NA, style="dim") if value is None else Text(fmt.format(value), style=style)


def _history_series(history: Sequence[GPUSnapshot] | None, what: str) -> list[float | None]:
    if not history:
        return []
    if what == "util":
        return [None if h.util_gpu is None else float(h.util_gpu) for h in history]
    return [None if h.memory_fraction is None else 100 * h.memory_fraction for h in history]


class GPUCard:
    """One GPU as a panel whose bars and sparklines fit the width it is given (80 columns or 200)."""

    LABEL, VALUE = 4, 26  # "util"; "10,502 / 12,282 MiB   86%"

    def __init__(self, snapshot: GPUSnapshot, history: Sequence[GPUSnapshot] | None = None, *,
                 spark_width: int = 60):
        self.snapshot = snapshot
        self.history = history
        self.spark_width = spark_width

    def widths(self, max_width: int) -> tuple[int, int]:
        """(bar, sparkline) widths for a card `max_width` columns wide; sparkline 0 = left out."""
        room = max_width - 4 - self.LABEL - self.VALUE - 3  # borders + padding, 3 column gaps
        bar_w = max(6, min(24, int(room * 0.45)))
        spark_w = min(self.spark_width, room - bar_w)
        return bar_w, (spark_w if spark_w >= 6 else 0)

    def __rich_console__(self, console, options):
        yield self.panel(*self.widths(options.max_width))

    def panel(self, bar_width: int = 24, spark_width: int = 60) -> Panel:
        s, history = self.snapshot, self.history
        if s.lost:
            body = Group(Text("LOST", style="bold white on red"),
                         Text(s.error or "NVML: GPU is lost", style="red"))
            return Panel(body, title=gpu_title(s), title_align="left", subtitle=gpu_subtitle(s) or None,
                         subtitle_align="right", border_style="red", box=box.HEAVY)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True, min_width=self.LABEL)
        grid.add_column(no_wrap=True, min_width=bar_width)
        grid.add_column(no_wrap=True, min_width=self.VALUE)
        if spark_width:
            grid.add_column(no_wrap=True, style="cyan")
        util_frac = None if s.util_gpu is None else s.util_gpu / 100
        util = _na(s.util_gpu, "{:3d}%", "bold " + _level_style(util_frac))
        if s.util_mem is not None:
            util.append("   mem ctl ", style="dim")
            util.append(f"{s.util_mem}%")
        mem_row = ["mem", bar(s.memory_fraction, bar_width), _memory_text(s)]
        util_row = ["util", bar(util_frac, bar_width), util]
        if spark_width:
            mem_row.append(sparkline(_history_series(history, "mem"), spark_width))
            util_row.append(sparkline(_history_series(history, "util"), spark_width))
        grid.add_row(*mem_row)
        grid.add_row(*util_row)

        sensors = Text()
        sensors.append("temp ", style="dim")
        sensors.append_text(_na(s.temperature, "{}°C", _temp_style(s.temperature)))
        sensors.append("   power ", style="dim")
        if s.power_usage is None and s.power_limit is None:
            sensors.append(NA, style="dim")
        else:
            pf = (s.power_usage / s.power_limit) if (s.power_usage is not None and s.power_limit) else None
            sensors.append(NA if s.power_usage is None else f"{s.power_usage:.0f}", style=_level_style(pf))
            sensors.append(" / " + (NA if s.power_limit is None else f"{s.power_limit:.0f}") + " W")
        sensors.append("   fan ", style="dim")
        sensors.append_text(_na(s.fan, "{}%"))
        sensors.append("   clocks ", style="dim")
        sensors.append(f"sm {NA if s.clock_sm is None else s.clock_sm} · "
                       f"mem {NA if s.clock_mem is None else s.clock_mem} MHz")
        border = "magenta" if s.fake else "blue"
        parts = [grid, sensors, processes_view(s)]
        if s.mig is not None:
            parts.append(mig_view(s))
        return Panel(Group(*parts), title=gpu_title(s), title_align="left",
                     subtitle=gpu_subtitle(s) or None, subtitle_align="right", border_style=border,
                     box=box.ROUNDED, padding=(0, 1))


def gpu_card(s: GPUSnapshot, history: Sequence[GPUSnapshot] | None = None, *, spark_width: int = 60) -> GPUCard:
    """One GPU: memory and utilisation bars with sparklines, sensors, clocks and processes."""
    return GPUCard(s, history, spark_width=spark_width)


def processes_view(s: GPUSnapshot, limit: int = 5) -> RenderableType:
    if s.processes is None:
        return Text.assemble(("processes ", "dim"), (NA, "dim"))
    if not s.processes:
        return Text("no processes", style="dim")
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="dim", pad_edge=False)
    t.add_column("pid", justify="right", no_wrap=True)
    t.add_column("type", no_wrap=True)
    t.add_column("process", no_wrap=True, max_width=28)
    t.add_column("gpu memory", justify="right", no_wrap=True)
    for p in s.processes[:limit]:
        t.add_row(str(p.pid), p.kind or "?", p.name or "?", fmt_mib(p.used_memory))
    if len(s.processes) > limit:
        t.add_row("", "", f"… {len(s.processes) - limit} more", "")
    return t


def mig_view(s: GPUSnapshot) -> RenderableType:
    """A GPU's MIG slices under its card: slot, profile name, memory, processes, UUID."""
    if not s.mig:
        return Text("MIG on, no slices", style="dim")
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="dim", pad_edge=False)
    t.add_column("MIG", justify="right", no_wrap=True)
    t.add_column("slice", no_wrap=True, max_width=28)
    t.add_column("gpu memory", justify="right", no_wrap=True)
    t.add_column("procs", justify="right", no_wrap=True)
    t.add_column("uuid", no_wrap=True)
    for m in s.mig:
        profile = (m.name or "?").rsplit(" MIG ", 1)[-1]  # "NVIDIA A100-SXM4-40GB MIG 3g.20gb" -> "3g.20gb"
        mem = NA if m.memory_total is None else f"{(m.memory_used or 0) / MIB:,.0f} / {m.memory_total / MIB:,.0f} MiB"
        procs = NA if m.processes is None else str(len(m.processes))
        uuid = m.uuid or NA
        t.add_row(str(m.slot), profile, mem, procs, uuid[:16] + "…" if len(uuid) > 17 else uuid)
    return t


def mig_lines(s: GPUSnapshot) -> list[str]:
    """One plain line per MIG slice of a GPU (after its `gpu_line`)."""
    lines = []
    for m in s.mig or ():
        mem = NA if m.memory_total is None else f"{(m.memory_used or 0) / MIB:.0f}/{m.memory_total / MIB:.0f}MiB"
        procs = NA if m.processes is None else str(len(m.processes))
        lines.append(f"gpu{s.index}/mig{m.slot} {m.name or 'unknown'}: mem {mem}  procs {procs}  uuid {m.uuid or NA}")
    return lines


def gpu_panel(snapshots: Sequence[GPUSnapshot], history: Mapping[int, Sequence[GPUSnapshot]] | None = None,
              *, spark_width: int = 60) -> RenderableType:
    """Every GPU as a card (history: the sampler's per-index snapshots, for the sparklines)."""
    if not snapshots:
        return Panel(Text("no GPU found", style="yellow"), title="GPUs", title_align="left")
    history = history or {}
    return Group(*(gpu_card(s, history.get(s.index), spark_width=spark_width) for s in snapshots))


def watch_header(snapshots: Sequence[GPUSnapshot], *, host: str = "", interval: float | None = None,
                 now: datetime | None = None, source: str = "") -> Text:
    """The top line of `asl gpu-watch`: host, driver, time, refresh interval."""
    now = now or datetime.now()
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" asl gpu-watch ", style="bold white on blue")
    if host:
        t.append(f" {host}", style="bold")
    driver = next((s.driver for s in snapshots if s.driver), None)
    t.append(f"  driver {driver or NA}  {len(snapshots)} GPU" + ("s" if len(snapshots) != 1 else ""), style="dim")
    if source:
        t.append(f"  {source}", style="magenta")
    t.append(f"  {now:%H:%M:%S}")
    if interval:
        t.append(f"  every {interval:g}s, Ctrl-C quits", style="dim")
    return t


def watch_frame(snapshots: Sequence[GPUSnapshot], history: Mapping[int, Sequence[GPUSnapshot]] | None = None, *,
                status: Mapping[str, Any] | None = None, status_path: str | None = None, host: str = "",
                interval: float | None = None, now: datetime | None = None, source: str = "",
                run_detail: int = 2) -> RenderableType:
    """One `asl gpu-watch` frame: header, GPU cards and (with a run) its training panels.

    `status_path` set but `status` None means the run has not written its status yet.
    `run_detail`: 2 shows training, augmentations and configuration; 1 drops the configuration;
    0 keeps only the training panel (for short terminals).
    """
    parts: list[RenderableType] = [watch_header(snapshots, host=host, interval=interval, now=now, source=source),
                                   gpu_panel(snapshots, history)]
    if status is not None:
        parts.append(training_view(status, with_config=run_detail >= 2, with_aug=run_detail >= 1))
    elif status_path is not None:
        parts.append(Text(f"waiting for {status_path} …", style="dim"))
    return Group(*parts)


def gpu_line(s: GPUSnapshot) -> str:
    """One plain line per GPU (logs, pipes): nvidia-smi's facts in greppable key-value form."""
    name = s.name or "unknown"
    if s.lost:
        return f"gpu{s.index} {name}: LOST ({s.error or 'GPU is lost'})"
    frac = s.memory_fraction
    mem = NA if s.memory_total is None else f"{(s.memory_used or 0) / MIB:.0f}/{s.memory_total / MIB:.0f}MiB" + (
        "" if frac is None else f" ({100 * frac:.0f}%)")
    power = NA if s.power_usage is None else f"{s.power_usage:.0f}" + (
        "" if s.power_limit is None else f"/{s.power_limit:.0f}") + "W"

    def v(x: Any, unit: str = "") -> str:
        return NA if x is None else f"{x}{unit}"

    procs = NA if s.processes is None else str(len(s.processes))
    return (f"gpu{s.index} {name}{' (fake)' if s.fake else ''}: mem {mem}  util {v(s.util_gpu, '%')}  "
            f"temp {v(s.temperature, 'C')}  power {power}  fan {v(s.fan, '%')}  "
            f"sm {v(s.clock_sm, 'MHz')}  procs {procs}")


# --- training ---------------------------------------------------------------------------------

def _kv(grid: Table, *pairs: tuple[str, str | Text]) -> None:
    cells: list[str | Text] = []
    for key, value in pairs:
        cells += [Text(key, style="dim"), value if isinstance(value, Text) else Text(value)]
    grid.add_row(*cells)


def _progress(done: Any, total: Any, width: int = 28) -> Text:
    d, t = _num(done), _num(total)
    frac = None if d is None or not t else min(max(d / t, 0.0), 1.0)
    filled = 0 if frac is None else int(round(frac * width))
    out = Text("━" * filled, style="bold cyan")
    out.append("━" * (width - filled), style="bright_black")
    return out


def _int_of(value: Any) -> str:
    v = _num(value)
    return DASH if v is None else f"{int(v):,}"


def _length_cell(train: Mapping[str, Any]) -> tuple[str, str]:
    """(label, value) for what sizes the run: its epochs, or its time budget (with an epoch cap)."""
    budget, epochs = _num(train.get("time_budget")), _num(train.get("epochs"))
    if not budget:
        return "epochs", _int_of(epochs)
    return "budget", fmt_duration(budget) + (f" ≤{int(epochs)} ep" if epochs else "")


def _approx_steps(st: Mapping[str, Any]) -> str:
    """The step total; under a time budget an estimate from the measured rate, shown as ~N."""
    total = _int_of(st.get("total_steps"))
    return f"~{total}" if _num(st.get("time_budget_s")) is not None and total != DASH else total


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
    if _num(st.get("time_budget_s")) is not None:  # a time-planned run: the clock is the progress bar
        head.add_row("time", _progress(st.get("budget_used_s"), st.get("time_budget_s")),
                     f"{fmt_duration(st.get('budget_used_s'))} / {fmt_duration(st.get('time_budget_s'))}   "
                     f"schedule {fmt_pct(st.get('schedule_progress'), digits=0)}")

    grid = Table.grid(padding=(0, 1))
    for _ in range(3):
        grid.add_column(no_wrap=True, justify="right")
        grid.add_column(no_wrap=True, min_width=10)
    loss = Text(fmt_value(st.get("loss"), ".4f"), style="bold")
    if _num(st.get("loss_smooth")) is not None:
        loss.append(f" ({fmt_value(st.get('loss_smooth'), '.4f')})", style="dim")
    _kv(grid, ("loss", loss), ("lr", fmt_value(st.get("lr"), ".2e")),
        ("grad norm", fmt_value(st.get("grad_norm"), ".3f")))
    wait = _num(st.get("data_wait"))
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
    graphs = int(_num(st.get("compile_graphs")) or 0)
    if "compiling" in state:
        return Text("compiling" + (f" #{graphs + 1}" if graphs else ""), style="yellow")
    if state.startswith("fallback"):
        return Text("eager (fell back)", style="red")
    if state.startswith("on"):
        eager = int(_num(st.get("compile_eager_batches")) or 0)
        if eager:
            return Text(f"on · {eager} eager", style="yellow")
        return Text(f"on · {graphs} graph{'s' if graphs != 1 else ''}" if graphs else "on")
    return Text(state, style="dim" if state == "off" else "")


def _count_text(value: Any, style: str) -> Text:
    n = _num(value)
    return Text(DASH if n is None else f"{int(n)}", style=style if n else "dim")


def _range(v: Any) -> str:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{_num(v[0]):g}–{_num(v[1]):g}" if _num(v[0]) is not None and _num(v[1]) is not None else DASH
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
    batch, accum = _num(train.get("batch_size")), _num(train.get("gradient_accumulation_steps"))
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
        x, y = _num(st.get(a)), _num(st.get(b))
        return f"{DASH if x is None else int(x)}/{DASH if y is None else int(y)}"

    budget = ""
    if _num(st.get("time_budget_s")) is not None:
        budget = f"  time {fmt_duration(st.get('budget_used_s'))}/{fmt_duration(st.get('time_budget_s'))}"

    loss = fmt_value(st.get("loss"), ".4f")
    if _num(st.get("loss_smooth")) is not None:
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
        if _num(st.get(key)):
            extra += f"  {label} {int(st[key])}"
    return (f"eta {fmt_duration(st.get('eta_s'))}{budget}  epoch {frac('epoch', 'epochs')}  step {steps}"
            f"  loss {loss}  lr {fmt_value(st.get('lr'), '.2e')}"
            f"  samples/s {fmt_value(st.get('samples_per_s'), '.1f')}  data {fmt_pct(st.get('data_wait'), digits=0)}"
            f"  val top1 {fmt_pct(st.get('val_top1'))}  max_mem {fmt_value(st.get('peak_mem_mb'), '.0f', 'MiB')}"
            f"  gpu mem {gpu_mem}  util {util}{extra}")


# --- JSON -------------------------------------------------------------------------------------

def json_safe(obj: Any) -> Any:
    """Plain JSON types: dataclasses and snapshots as dicts, paths as strings, NaN/inf as null."""
    if isinstance(obj, GPUSnapshot):
        return json_safe(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return json_safe(obj.item())
    return str(obj)


def ndjson_line(obj: Any) -> str:
    """One compact JSON object on one line (no trailing newline), strict JSON (no NaN)."""
    return json.dumps(json_safe(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# --- check-env --------------------------------------------------------------------------------

def _yes_no(ok: Any, yes: str = "yes", no: str = "no") -> Text:
    if ok is None:
        return Text(NA, style="dim")
    return Text(yes, style="green") if ok else Text(no, style="yellow")


def env_report_view(report: Mapping[str, Any]) -> RenderableType:
    """The `asl check-env` report (a dict from `asl_cli.env_report.collect_report`) as tables."""
    sysf, tf, nv = report.get("system", {}), report.get("torch", {}), report.get("nvml", {})
    parts: list[RenderableType] = []

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    facts.add_row("python", f"{sysf.get('python', NA)} ({sysf.get('implementation', '')})  {sysf.get('executable', '')}")
    facts.add_row("platform", f"{sysf.get('platform', NA)}  {sysf.get('cpu_count', '?')} CPUs")
    facts.add_row("torch", Text(str(tf.get("version") or "not importable"),
                                style="" if tf.get("version") else "bold red"))
    cuda = _yes_no(tf.get("cuda_available"))
    if tf.get("cuda_version"):
        cuda.append(f"  (built for CUDA {tf['cuda_version']})", style="default")
    facts.add_row("CUDA available", cuda)
    facts.add_row("cuDNN", str(tf.get("cudnn_version") or NA))
    nvml_text = Text(str(nv.get("status", NA)), style="green" if nv.get("status") == "ok" else "yellow")
    if nv.get("message"):
        nvml_text.append(f"  {nv['message']}", style="dim")
    facts.add_row("NVML", nvml_text)
    facts.add_row("driver", str(nv.get("driver") or NA))
    comp = report.get("compile", {})
    for dev in ("cpu", "cuda"):
        c = comp.get(dev, {})
        t = _yes_no(c.get("ok"))
        t.append(f"  {c.get('why', '')}", style="dim")
        facts.add_row(f"torch.compile {dev}", t)
    parts.append(Panel(facts, title=Text("environment", style="bold"), title_align="left", box=box.ROUNDED))

    gpus = report.get("gpus") or []
    gt = Table(box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left",
               title="GPUs" + (" (fake)" if report.get("fake_gpus") else ""))
    for col, just in (("#", "right"), ("name", "left"), ("memory", "right"), ("cc", "right"), ("bf16", "left"),
                      ("driver", "left"), ("from", "left")):
        gt.add_column(col, justify=just, no_wrap=True)
    for g in gpus:
        if g.get("lost"):
            gt.add_row(str(g.get("index")), Text(f"{g.get('name') or 'unknown'}  LOST", style="bold red"),
                       NA, NA, NA, str(g.get("driver") or NA), str(g.get("source")))
            continue
        mem = g.get("memory_total_mib")
        gt.add_row(str(g.get("index")), str(g.get("name") or NA), NA if mem is None else f"{mem:,} MiB",
                   str(g.get("compute_capability") or NA), _yes_no(g.get("bf16")), str(g.get("driver") or NA),
                   Text(str(g.get("source")), style="magenta" if g.get("source") == "fake" else "dim"))
    parts.append(gt if gpus else Text("GPUs: none found", style="yellow"))

    pk = Table.grid(padding=(0, 2))
    pk.add_column(style="dim")
    pk.add_column()
    for name, ver in (report.get("packages") or {}).items():
        pk.add_row(name, Text(ver, style="") if ver else Text("not installed", style="yellow"))
    parts.append(Panel(pk, title=Text("packages", style="bold"), title_align="left", box=box.ROUNDED))

    extras = report.get("extras")
    if extras:
        ex = Table.grid(padding=(0, 2))
        ex.add_column(style="bold", no_wrap=True)
        ex.add_column(no_wrap=True)
        ex.add_column()
        for e in extras:
            state = (Text("installed", style="green") if e.get("installed") else
                     Text("not installed", style="yellow"))
            what = Text(str(e.get("enables", "")))
            if not e.get("installed"):
                what.append(f"\n→ {e.get('install', '')}", style="bold")
            ex.add_row(str(e.get("name")), state, what)
        missing = [e for e in extras if not e.get("installed")]
        foot = Text.assemble(("all extras at once: ", "dim"), (str(report.get("install_all", "")), "bold" if missing
                                                                  else "dim"))
        parts.append(Panel(Group(ex, foot), title=Text("optional extras", style="bold"), title_align="left",
                           box=box.ROUNDED, border_style="yellow" if missing else "green"))

    default = report.get("default_data")
    if default:
        from asl_cli.units import human_bytes

        dd = Table.grid(padding=(0, 2))
        dd.add_column(style="dim", no_wrap=True)
        dd.add_column()
        dd.add_row("folder", str(default.get("dir")))
        if default.get("generated"):
            total = (default.get("bytes") or 0) + (default.get("cache_bytes") or 0)
            size = f"{default.get('sequences', 0):,} sequences, {human_bytes(default.get('bytes') or 0)}"
            if default.get("cache_ready"):
                size += f" + prepared cache {human_bytes(default.get('cache_bytes') or 0)} = {human_bytes(total)}"
            dd.add_row("size", size)
            if default.get("cache_ready"):
                dd.add_row("cache", str(default.get("cache_dir")))
        else:
            dd.add_row("size", Text(f"not generated yet ({default.get('sequences', 0):,} sequences on the first "
                                    f"asl train without --data)", style="yellow"))
        dd.add_row("", Text("asl train without --data uses it; $ASL_CACHE moves it", style="dim"))
        parts.append(Panel(dd, title=Text("synthetic default set", style="bold"), title_align="left",
                           box=box.ROUNDED))

    data = report.get("data")
    if data is not None:
        dt = Table.grid(padding=(0, 2))
        dt.add_column(style="dim")
        dt.add_column()
        dt.add_row("folder", str(data.get("dir")))
        if data.get("index_error"):
            dt.add_row("index", Text(str(data["index_error"]), style="red"))
        else:
            dt.add_row("sequences", f"{data.get('sequences', 0):,} ({data.get('signs', '?')} signs, "
                                    f"{data.get('participants', '?')} participants)")
            dt.add_row("files OK", Text(f"{data.get('ok_files', 0):,}", style="green"))
            dt.add_row("files bad", Text(f"{data.get('bad_files', 0):,}",
                                         style="red" if data.get("bad_files") else "green"))
            for err in data.get("errors") or []:
                dt.add_row("", Text(err, style="red"))
        parts.append(Panel(dt, title=Text("data", style="bold"), title_align="left", box=box.ROUNDED,
                           border_style="green" if data.get("ok") else "red"))

    for w in report.get("warnings") or []:
        parts.append(Text.assemble(("warning: ", "bold yellow"), w))
    for p in report.get("problems") or []:
        parts.append(Text.assemble(("problem: ", "bold red"), p))
    rec = report.get("recommendation") or {}
    line = Text.assemble(("recommended preset: ", "bold"), (str(rec.get("preset", NA)), "bold cyan"),
                         ("  " + str(rec.get("why", "")), "dim"))
    if rec.get("with_cuda_torch"):
        line.append(f"  (with a CUDA build of torch: {rec['with_cuda_torch']})", style="dim")
    parts.append(line)
    return Group(*parts)
