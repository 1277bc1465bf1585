"""`asl gpu-watch`: a live view of every GPU (the replacement for `watch -n 1 nvidia-smi`).

Output follows where it goes: a full-screen Rich view on a terminal; plain log lines per
sample through a pipe (a Live view would print nothing there until the end); NDJSON with
`--json`. `--run DIR` / `--latest-run` add the training status of a run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, user_errors
from asl_cli.cli.options import JsonOpt

FakeGpuOpt = Annotated[Optional[Path], typer.Option(
    "--fake-gpu", metavar="demo|FILE",
    help="Scripted fake GPUs instead of NVML, to try the view without a GPU: demo (shipped: an RTX 4070 under "
         "load, a T4, a lost A100) or a JSON file (format: docs/gpu-watch.md); also $ASL_FAKE_GPU.")]


@app.command("gpu-watch")
def gpu_watch(
    interval: Annotated[float, typer.Option("--interval", "-n", min=0.05, help="Seconds between samples.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one sample and exit.")] = False,
    json_out: JsonOpt = False,
    run: Annotated[Optional[Path], typer.Option(
        "--run", help="A run folder: also show its training status (status.json).")] = None,
    latest_run: Annotated[bool, typer.Option(
        "--latest-run", help="Like --run, for the most recently updated run under --runs-dir.")] = False,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where --latest-run looks.")] = Path("runs"),
    count: Annotated[Optional[int], typer.Option("--count", min=1, help="Stop after N samples.")] = None,
    idle_after: Annotated[float, typer.Option(
        "--idle-after", min=1, max=86400, metavar="SECONDS",
        help="Mark a GPU IDLE once a job has held its memory at <= 5% utilisation for this long.")] = 60.0,
    fake_gpu: FakeGpuOpt = None,
) -> None:
    """Live GPU memory, utilisation, temperature, power, clocks and processes (+ a run's progress)."""
    with user_errors(json_out):
        _watch(interval=interval, once=once, json_out=json_out, run=run, latest_run=latest_run,
               runs_dir=runs_dir, count=1 if once else count, fake_gpu=fake_gpu, idle_after=idle_after)


def _watch(*, interval: float, once: bool, json_out: bool, run: Path | None, latest_run: bool,
           runs_dir: Path, count: int | None, fake_gpu: Path | None, idle_after: float) -> None:
    import math
    import os
    import socket
    import sys
    from datetime import datetime

    from asl_cli.errors import ConfigError, NoGPUError
    from asl_cli.monitor import GPUSampler, open_backend
    from asl_cli.monitor.idle import idle_marks, idle_seconds
    from asl_cli.monitor.nvml import deprecated_pynvml_warning
    from asl_cli.monitor.status import StatusReader, check_run_dir, find_latest_run, pick_gpu, status_summary
    from asl_cli.ui.gpu import gpu_line, mig_lines, watch_frame
    from asl_cli.ui.ndjson import ndjson_line
    from asl_cli.ui.training import plain_line

    if run is not None and latest_run:
        raise ConfigError("use either --run RUN_DIR or --latest-run, not both")
    run_dir = find_latest_run(runs_dir) if latest_run else (check_run_dir(run) if run is not None else None)
    status_reader = StatusReader(run_dir) if run_dir is not None else None

    if not (fake_gpu or os.environ.get("ASL_FAKE_GPU")):
        warning = deprecated_pynvml_warning()  # before NVML starts: it matters with or without a driver
        if warning:
            print(warning, file=sys.stderr)
    backend = open_backend(fake_gpu)
    try:
        if backend.device_count() == 0:
            raise NoGPUError("NVML sees no GPU (the driver is loaded but lists no device); "
                             "hint: check `nvidia-smi -L` and CUDA_VISIBLE_DEVICES/container --gpus")
        console = make_console()
        host = socket.gethostname()
        source = "fake GPUs" if backend.fake else ""
        # the history covers the idle window (and the last minute of sparklines)
        sampler = GPUSampler(backend, interval=interval, history_len=max(60, math.ceil(idle_after / interval) + 2))

        def frame(fit: bool = False):
            status = status_reader.read() if status_reader is not None else None
            snaps, history = sampler.latest(), sampler.history()
            tips = _advice(status, snaps)
            idle = idle_marks(history, idle_after)
            for detail in (2, 1, 0) if (fit and status is not None) else (2,):
                view = watch_frame(snaps, history, status=status, run_detail=detail, advice=tips, idle=idle,
                                   status_path=None if status_reader is None else str(status_reader.path),
                                   host=host, interval=None if once else interval, source=source)
                # a full screen crops what does not fit: drop the static panels before the live ones
                if detail == 0 or len(console.render_lines(view, console.options, pad=False)) <= console.height:
                    return view
            return view

        def emit_line() -> None:
            snaps, history = sampler.latest(), sampler.history()
            idle = idle_marks(history, idle_after)
            status = status_reader.read() if status_reader is not None else None
            if json_out:
                # idle_s: how long a job has held the GPU unused (0 when it is used or free); idle: past --idle-after
                gpus = [s.to_dict() | {"idle_s": round(idle_seconds(history.get(s.index, [])), 1),
                                       "idle": s.index in idle} for s in snaps]
                obj = {"time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
                       "gpus": gpus}
                if status_reader is not None:
                    obj["run"] = str(status_reader.run_dir)
                    obj["status"] = status_summary(status)
                    obj["advice"] = [a.to_dict() for a in _advice(status, snaps)]
                print(ndjson_line(obj), flush=True)
                return
            stamp = datetime.now().strftime("%H:%M:%S")
            lines = [f"[{stamp}] {line}" for s in snaps for line in [gpu_line(s, idle.get(s.index)), *mig_lines(s)]]
            if status_reader is not None:
                lines.append(f"[{stamp}] {status_reader.run_dir.name}: " + (
                    plain_line(status, pick_gpu(status, snaps)) if status else "no status.json yet"))
                lines += [f"[{stamp}] advice {a.rule}: {a.message}" for a in _advice(status, snaps)]
            print("\n".join(lines), flush=True)

        try:
            if once:
                sampler.sample_once()
                if json_out:
                    emit_line()
                else:
                    console.print(frame())
                return
            # a dumb terminal (TERM=dumb) cannot draw a full-screen view: Rich would show nothing there
            live_view = console.is_terminal and not console.is_dumb_terminal and not json_out
            with sampler:
                if live_view:
                    from asl_cli.ui.live import SyncedLive

                    with SyncedLive(console=console, screen=True, auto_refresh=False, transient=False) as live:
                        _loop(sampler, count, interval, lambda: live.update(frame(fit=True), refresh=True))
                else:
                    _loop(sampler, count, interval, emit_line)
        except KeyboardInterrupt:
            return  # Live's context has already restored the terminal
        except BrokenPipeError:  # `asl gpu-watch --json | head -1`
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return
    finally:
        backend.shutdown()


def _advice(status: dict | None, snaps) -> list:
    """The advice for a watched run: its own measurements plus the GPU it runs on (throttling,
    utilisation, memory), only while the run is running."""
    from asl_cli.engine.advice import advise
    from asl_cli.monitor.status import pick_gpu

    if not status or status.get("state") != "running":
        return []
    return advise(status, pick_gpu(status, snaps))


def _loop(sampler, count: int | None, interval: float, show) -> None:
    """Show each new sample as it arrives, until `count` samples were shown (or Ctrl-C).

    Samples that pile up while one is shown (a slow pipe or render) are shown as one, the latest.
    """
    seen = shown = 0
    while count is None or shown < count:
        now = sampler.wait_for_sample(seen, timeout=max(5 * interval, 2.0))
        if now == seen:
            continue  # a slow poll: keep waiting
        seen = now
        shown += 1
        show()
