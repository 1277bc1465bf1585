"""GPU views (`asl gpu-watch`, the GPU part of the training dashboard): snapshots in, Rich
renderables or plain lines out.

Nothing here polls, sleeps or reads files: the NVML side is `asl_cli.monitor` (snapshots, the
sampler). A field NVML could not read is N/A; a lost GPU is shown as LOST.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from asl_cli.monitor.base import GPUSnapshot
from asl_cli.ui.training import advice_text, training_view
from asl_cli.ui.widgets import NA, bar, level_style, sparkline
from asl_cli.monitor.idle import HELD_MIB
from asl_cli.units import MIB, fmt_duration, fmt_mib


def _temp_style(t: int | None) -> str:
    if t is None:
        return "dim"
    return "green" if t < 70 else "yellow" if t < 83 else "bold red"


def gpu_title(s: GPUSnapshot, idle_s: float | None = None) -> Text:
    """"GPU 0  NVIDIA GeForce RTX 4070", marked fake, and IDLE with how long (`asl_cli.monitor.idle`)."""
    t = Text()
    t.append(f"GPU {s.index}", style="bold")
    t.append(f"  {s.name or 'unknown GPU'}", style="bold cyan" if not s.lost else "bold red")
    if s.fake:
        t.append("  (fake)", style="magenta")
    if idle_s is not None:
        t.append("  ")
        t.append(f" IDLE {fmt_duration(idle_s)} ", style="bold black on yellow")
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
    t = Text(f"{(s.memory_used or 0) / MIB:,.0f}", style="bold " + level_style(frac))
    t.append(f" / {s.memory_total / MIB:,.0f} MiB")
    if frac is not None:
        t.append(f"  {100 * frac:3.0f}%", style=level_style(frac))
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
                 spark_width: int = 60, idle_s: float | None = None):
        self.snapshot = snapshot
        self.history = history
        self.spark_width = spark_width
        self.idle_s = idle_s  # set: the GPU is marked IDLE (held, unused) for that long

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
        util = _na(s.util_gpu, "{:3d}%", "bold " + level_style(util_frac))
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
            sensors.append(NA if s.power_usage is None else f"{s.power_usage:.0f}", style=level_style(pf))
            sensors.append(" / " + (NA if s.power_limit is None else f"{s.power_limit:.0f}") + " W")
        sensors.append("   fan ", style="dim")
        sensors.append_text(_na(s.fan, "{}%"))
        sensors.append("   clocks ", style="dim")
        sensors.append(f"sm {NA if s.clock_sm is None else s.clock_sm} · "
                       f"mem {NA if s.clock_mem is None else s.clock_mem} MHz")
        border = "yellow" if self.idle_s is not None else "magenta" if s.fake else "blue"
        parts = [grid, sensors, processes_view(s)]
        if s.mig is not None:
            parts.append(mig_view(s))
        return Panel(Group(*parts), title=gpu_title(s, self.idle_s), title_align="left",
                     subtitle=gpu_subtitle(s) or None, subtitle_align="right", border_style=border,
                     box=box.ROUNDED, padding=(0, 1))


def gpu_card(s: GPUSnapshot, history: Sequence[GPUSnapshot] | None = None, *, spark_width: int = 60,
             idle_s: float | None = None) -> GPUCard:
    """One GPU: memory and utilisation bars with sparklines, sensors, clocks and processes."""
    return GPUCard(s, history, spark_width=spark_width, idle_s=idle_s)


OUTSIDE = "(host PID, not visible here)"


def unlisted_memory_mib(s: GPUSnapshot) -> float | None:
    """MiB in use on a GPU whose process list is empty: held by processes NVML does not show here
    (another container's, or the host's). None when processes are listed or little memory is used."""
    if s.processes is None or s.processes or s.memory_used is None or s.memory_used < HELD_MIB * MIB:
        return None
    return s.memory_used / MIB


def processes_view(s: GPUSnapshot, limit: int = 5) -> RenderableType:
    if s.processes is None:
        return Text.assemble(("processes ", "dim"), (NA, "dim"))
    if not s.processes:
        unlisted = unlisted_memory_mib(s)
        if unlisted is not None:
            # another container's or the host's processes: NVML lists only this namespace's
            return Text(f"no processes listed; {unlisted:,.0f} MiB held by processes not visible here", style="yellow")
        return Text("no processes", style="dim")
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="dim", pad_edge=False)
    t.add_column("pid", justify="right", no_wrap=True)
    t.add_column("type", no_wrap=True)
    t.add_column("process", no_wrap=True, max_width=34)
    t.add_column("gpu memory", justify="right", no_wrap=True)
    for p in s.processes[:limit]:
        used = fmt_mib(None if p.used_memory is None else p.used_memory / MIB, na=NA)
        outside = p.in_namespace is False
        name = p.name or (OUTSIDE if outside else "?")
        t.add_row(Text(str(p.pid), style="dim" if outside else ""), p.kind or "?",
                  Text(name, style="dim" if outside else ""), used)
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
              *, spark_width: int = 60, idle: Mapping[int, float] | None = None) -> RenderableType:
    """Every GPU as a card (history: the sampler's per-index snapshots, for the sparklines; idle: GPU
    index -> seconds, the GPUs to mark IDLE)."""
    if not snapshots:
        return Panel(Text("no GPU found", style="yellow"), title="GPUs", title_align="left")
    history, idle = history or {}, idle or {}
    return Group(*(gpu_card(s, history.get(s.index), spark_width=spark_width, idle_s=idle.get(s.index))
                   for s in snapshots))


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
                run_detail: int = 2, advice: Sequence[Any] = (), idle: Mapping[int, float] | None = None
                ) -> RenderableType:
    """One `asl gpu-watch` frame: header, GPU cards and (with a run) its training panels and the
    advice that holds for it (`asl_cli.engine.advice`).

    `status_path` set but `status` None means the run has not written its status yet.
    `run_detail`: 2 shows training, augmentations and configuration; 1 drops the configuration;
    0 keeps only the training panel (for short terminals). `idle`: the GPUs to mark IDLE (index -> seconds).
    """
    parts: list[RenderableType] = [watch_header(snapshots, host=host, interval=interval, now=now, source=source),
                                   gpu_panel(snapshots, history, idle=idle)]
    if status is not None:
        parts.append(training_view(status, with_config=run_detail >= 2, with_aug=run_detail >= 1))
        tips = advice_text(advice)
        if tips is not None:
            parts.append(tips)
    elif status_path is not None:
        parts.append(Text(f"waiting for {status_path} …", style="dim"))
    return Group(*parts)


def processes_note(s: GPUSnapshot) -> str:
    """The plain form of the process count: "2", "2 (1 host PID)", "0 (9731MiB unlisted)", N/A."""
    if s.processes is None:
        return NA
    outside = sum(p.in_namespace is False for p in s.processes)
    unlisted = unlisted_memory_mib(s)
    return str(len(s.processes)) + (f" ({outside} host PID{'s' if outside != 1 else ''})" if outside else "") + (
        f" ({unlisted:.0f}MiB unlisted)" if unlisted is not None else "")


def gpu_line(s: GPUSnapshot, idle_s: float | None = None) -> str:
    """One plain line per GPU (logs, pipes): nvidia-smi's facts in greppable key-value form, and
    `IDLE 0:01:05` when the GPU is marked idle."""
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

    return (f"gpu{s.index} {name}{' (fake)' if s.fake else ''}: mem {mem}  util {v(s.util_gpu, '%')}  "
            f"temp {v(s.temperature, 'C')}  power {power}  fan {v(s.fan, '%')}  "
            f"sm {v(s.clock_sm, 'MHz')}  procs {processes_note(s)}"
            + ("" if idle_s is None else f"  IDLE {fmt_duration(idle_s)}"))
