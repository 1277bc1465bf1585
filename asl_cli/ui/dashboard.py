"""The live training display: a trainer callback that shows what the run is doing.

Three modes, one callback (`TrainDashboard(event)`):

- `live`  (a terminal): a Rich `Live` (screen=False, so the last frame stays in the scrollback)
  composed from the pure renderers of `asl_cli.ui`: the train panel, the GPU panel (NVML snapshots from
  the monitor's background sampler, never queried in the training step), the augmentation panel
  and the configuration panel.
- `plain` (pipe, CI, nohup): one `plain_line` every `log_interval` seconds, on each eval and at
  the end, flushed at once, so a log file shows progress while the run goes on.
- `json`  (`--json`): one NDJSON object per trainer event (and a `gpu` object with the latest
  samples at most every `log_interval` seconds).

Nothing here trains or measures: the dashboard renders what the trainer and the sampler hand it
(`asl_cli.monitor.open_sampler`). The signal handling that posts its "stopping" note is the CLI's
(`asl_cli.cli.signals`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from typing import Any, Callable, TextIO

from asl_cli.monitor.base import find_by_uuid

LIVE, PLAIN, JSON = "live", "plain", "json"


def choose_mode(*, as_json: bool, plain: bool = False, stream: TextIO | None = None) -> str:
    """json if asked; live only on a terminal (Rich Live shows nothing useful in a pipe)."""
    if as_json:
        return JSON
    stream = sys.stdout if stream is None else stream
    if plain or not stream.isatty() or os.environ.get("TERM") == "dumb":
        return PLAIN
    return LIVE


class TrainDashboard:
    """Trainer callback + display. Use as a context manager around `trainer.fit()`."""

    def __init__(self, mode: str, *, log_interval: float = 10.0, sampler=None, console=None,
                 out: TextIO | None = None, extra: Callable[[], Any] | None = None,
                 static: bool = True, clock: Callable[[], float] = time.monotonic):
        self.mode = mode
        self.log_interval = float(log_interval)
        self.sampler = sampler
        self.out = sys.stdout if out is None else out
        self.console = console
        self.extra = extra  # a renderable factory shown above the panels (ablate's variant table)
        self.static = static  # print the aug/config panels once at start (train: yes, ablate: no)
        self.clock = clock
        self.status: dict[str, Any] = {}
        self.aug: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.note = ""
        self._last_line = float("-inf")
        self._last_gpu = float("-inf")
        self._last_text = ""
        self._live = None
        self._advised: tuple[str, ...] = ()  # the rules of the advice last written (plain / JSON)
        self._lock = threading.Lock()
        self._posted: collections.deque[str] = collections.deque()  # notes from signal handlers

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> "TrainDashboard":
        if self.mode == LIVE:
            from rich.console import Console

            from asl_cli.ui.live import SyncedLive

            if self.console is None:
                self.console = Console()
            self._live = SyncedLive(console=self.console, get_renderable=self.renderable, screen=False,
                              refresh_per_second=4, transient=False, redirect_stdout=True,
                              redirect_stderr=True)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the live display (its last frame stays on screen) and the sampler."""
        self._write_posted_notes()
        if self._live is not None:
            live, self._live = self._live, None
            with contextlib.suppress(Exception):
                live.refresh()
                live.stop()
        if self.sampler is not None:
            sampler, self.sampler = self.sampler, None
            with contextlib.suppress(Exception):
                sampler.stop()
                sampler.backend.shutdown()

    # -- the trainer callback --------------------------------------------------------------------
    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        self._write_posted_notes()
        with self._lock:
            if kind == "start":
                self.note = ""  # e.g. "preparing the data": done once training starts
                self.config = event.get("config") or self.config
                self.aug = event.get("aug") or (self.config.get("aug") if self.config else {}) or {}
            status = {k: v for k, v in event.items() if k not in ("event", "config")}
            self.status = {**self.status, **status}
        if self.mode == JSON:
            self._emit_json(event)
        elif self.mode == PLAIN:
            self._emit_plain(kind, event)
        if self.mode in (JSON, PLAIN) and kind in ("step", "eval"):
            self._emit_advice()
        elif self._live is not None:
            if kind == "start" and self.static and self.console is not None:
                self.console.print(self.static_panels())  # above the live region, once
            if kind != "step":  # steps: Live's own thread redraws 4 times a second, off the training thread
                self._live.refresh()

    def set_note(self, text: str, *, live_only: bool = False) -> None:
        """A one-line notice (e.g. "stopping: saving a checkpoint"), shown in every mode
        (`live_only`: a passing state such as "preparing the data", not worth a log line)."""
        self.note = text
        if live_only and self.mode != LIVE:
            return
        if self.mode == PLAIN:
            self._write(text)
        elif self.mode == JSON:
            from asl_cli.ui.ndjson import ndjson_line

            self._write(ndjson_line({"event": "note", "message": text}))
        elif self._live is not None:
            self._live.refresh()

    def say(self, text: str) -> None:
        """A line that stays, in every mode: a plain line, an NDJSON `note`, or (live) printed above the
        live region (e.g. where a resume restarts, where the synthetic set was written)."""
        if self.mode == PLAIN:
            self._write(text)
        elif self.mode == JSON:
            from asl_cli.ui.ndjson import ndjson_line

            self._write(ndjson_line({"event": "note", "message": text}))
        elif self._live is not None and self.console is not None:
            self.console.print(text, markup=False, highlight=False)
        else:
            self._write(text)

    def post_note(self, text: str) -> None:
        """`set_note` for a signal handler: no lock, no I/O. The handler may have interrupted this
        very object holding its lock or half-way through a write; waiting for that lock would hang
        the process. The live view's refresh thread shows the note within a quarter second; plain
        and JSON output write it at the next trainer event or on close."""
        self.note = text
        self._posted.append(text)  # deque.append/popleft: atomic, safe against the main thread

    def _write_posted_notes(self) -> None:
        while self._posted:
            text = self._posted.popleft()
            if self.mode != LIVE:
                self.set_note(text)

    # -- output ----------------------------------------------------------------------------------
    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def _emit_plain(self, kind: str, event: dict[str, Any]) -> None:
        from asl_cli.ui.training import plain_line

        now = self.clock()
        if kind == "start":
            self._write(self._start_line(event))
            self._last_line = now
        elif kind == "checkpoint":
            if event.get("kind") == "best":
                self._write(f"new best checkpoint: {event.get('path', '')}")
        elif kind == "compile":  # a graph per bucket length: minutes each on a big model, said as it happens
            if event.get("compiling"):
                self._write(f"torch.compile: compiling the {event['compiling']} (left out of samples/s and eta)")
            elif event.get("compiled_s") is not None:
                self._write(f"torch.compile: {event.get('compile_graphs', '?')} graph(s) so far, this one "
                            f"{event['compiled_s']:.1f} s; {event.get('compile', '')}")
        elif kind in ("eval", "end") or now - self._last_line >= self.log_interval:
            snaps = self._run_gpus()
            on_gpu = str(self.status.get("device") or "").startswith("cuda")  # a CPU run has no GPU values
            line = plain_line(self.status, snaps[0] if snaps and on_gpu else None)
            if line != self._last_text:  # the end event repeats the last eval's numbers
                self._write(line)
                self._last_text = line
            self._last_line = now

    def advice(self) -> list:
        """The advice that holds now: the run's measurements and the GPU it runs on (engine/advice.py)."""
        from asl_cli.engine.advice import advise

        with self._lock:
            status = dict(self.status)
        snaps = self._run_gpus() if str(status.get("device") or "").startswith("cuda") else []
        return advise(status, snaps[0] if snaps else None)

    def _emit_advice(self) -> None:
        """Plain: a line for each rule that starts to hold; JSON: an `advice` event when the set changes."""
        advice = self.advice()
        rules = tuple(a.rule for a in advice)
        if rules == self._advised:
            return
        if self.mode == JSON:
            from asl_cli.ui.ndjson import ndjson_line

            self._write(ndjson_line({"event": "advice", "advice": [a.to_dict() for a in advice]}))
        else:
            for a in advice:
                if a.rule not in self._advised:
                    self._write(f"advice {a.rule}: {a.message}")
        self._advised = rules

    def _start_line(self, event: dict[str, Any]) -> str:
        t = (self.config or {}).get("train", {})
        parts = [f"run {event.get('run', '')}", f"device {event.get('device', '')}",
                 f"precision {event.get('precision', '')}"]
        if t:
            parts.append(f"batch {t.get('batch_size')}x{t.get('gradient_accumulation_steps')}")
        aug = self.aug.get("use_augmentations") if isinstance(self.aug, dict) else None
        if aug is not None:
            parts.append("augmentations " + ("on" if aug else "off"))
        return "start: " + ", ".join(str(p) for p in parts)

    def _emit_json(self, event: dict[str, Any]) -> None:
        from asl_cli.ui.ndjson import ndjson_line

        self._write(ndjson_line(event))
        now = self.clock()
        if self.sampler is not None and now - self._last_gpu >= self.log_interval:
            snaps = self._gpu_snapshots()
            if snaps:
                self._write(ndjson_line({"event": "gpu", "gpus": [s.to_dict() for s in snaps]}))
                self._last_gpu = now

    def _gpu_snapshots(self) -> list:
        if self.sampler is None:
            return []
        with contextlib.suppress(Exception):
            return list(self.sampler.latest() or [])
        return []

    def _run_gpus(self) -> list:
        """The GPU the run uses, else every GPU, at most two (the frame must stay short).

        NVML numbers GPUs in PCI bus order, CUDA in its own (and after CUDA_VISIBLE_DEVICES), so
        the run's GPU is found by the UUID the trainer reports (`gpu_uuid`), by index only as a fallback.
        """
        snaps = self._gpu_snapshots()
        device = str(self.status.get("device") or "")
        if device.startswith("cuda"):
            uuid = self.status.get("gpu_uuid")
            mine = find_by_uuid(snaps, uuid)  # a whole GPU, or the view of the MIG slice the run is on
            if mine is not None:
                return [mine]
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            mine = [s for s in snaps if s.index == index]
            if mine:
                return mine
        return snaps[:2]

    # -- the live frame --------------------------------------------------------------------------
    def static_panels(self):
        """Augmentations and configuration: printed once above the live region (they do not
        change), side by side where both fit at their natural width (each then gets a share of the
        width in proportion to it, so neither wraps nor sits half empty), else one above the other."""
        from rich.console import Console, Group
        from rich.measure import Measurement
        from rich.table import Table

        from asl_cli.ui.training import aug_panel, config_panel

        console = self.console if self.console is not None else Console(width=80)
        width = console.width
        aug, config = aug_panel(self.aug), config_panel(self.config)
        wide = console.options.update_width(10_000)
        natural = [Measurement.get(console, wide, p).maximum for p in (aug, config)]
        if sum(natural) + 1 <= width:
            side = Table.grid(expand=True, padding=(0, 1))
            side.add_column(ratio=natural[0])
            side.add_column(ratio=natural[1])
            side.add_row(aug, config)
            return side
        return Group(aug, config)

    def renderable(self):
        """The current frame (called by Live's refresh thread; only reads state)."""
        from rich.console import Group
        from rich.text import Text

        from asl_cli.ui.gpu import gpu_panel
        from asl_cli.ui.training import advice_text, train_panel

        with self._lock:
            status = dict(self.status)
        parts: list[Any] = []
        if self.extra is not None:
            parts.append(self.extra())
        parts.append(train_panel(status))
        snaps = self._run_gpus()
        if snaps:
            history = self.sampler.history() if self.sampler is not None else {}
            parts.append(gpu_panel(snaps, history, spark_width=24))
        else:
            parts.append(Text.assemble(("GPU ", "bold"), ("no NVIDIA GPU (CPU run)", "dim")))
        tips = advice_text(self.advice())
        if tips is not None:
            parts.append(tips)
        if self.note:
            parts.append(Text(self.note, style="bold yellow"))
        return Group(*parts)
