"""`asl ablate`: the baseline and each named variant under one budget, then a comparison table.

Options -> baseline `RunConfig` (`config_io.resolve_config`, or `ablation.resume_from` for --resume)
-> `ablation.plan_ablation` -> `ablation.run_ablation` (one `ASLTrainer` per variant, same
seed/data/budget) -> comparison table (`ui.ablation`) + results.json/.csv/.png.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, name_the_remedy, setup_note, user_errors
from asl_cli.cli.options import (DataOpt, DeviceOpt, EpochsOpt, JsonOpt, MaxStepsOpt, NameOpt, PresetOpt,
                                 PrintConfigOpt, RunsDirOpt, SeedOpt, SetOpt, TimeBudgetOpt, WorkersOpt,
                                 print_config)

DEFAULT_VARIANTS = ("no-aug", "no-amp")


def _switch(flag: str, what: str):
    return Annotated[bool, typer.Option(flag, help=what, rich_help_panel="Variants")]


def _given_with_resume(ctx: typer.Context) -> list[str]:
    """The ablation-defining options given on the command line (their first flag, e.g. --max-steps)."""
    from asl_cli.tools.ablation import RESUME_FIXED

    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name in RESUME_FIXED else None
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):  # command line or env
            given.append(param.opts[0])
    return given


@app.command("ablate")
def ablate_cmd(
    ctx: typer.Context,
    preset: PresetOpt = "cpu",
    sets: SetOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    time_budget: TimeBudgetOpt = None,
    data: DataOpt = None,
    name: NameOpt = None,
    device: DeviceOpt = None,
    workers: WorkersOpt = None,
    seed: SeedOpt = None,
    runs_dir: RunsDirOpt = None,
    no_aug: _switch("--no-aug", "augmentations off") = False,
    no_amp: _switch("--no-amp", "mixed precision off") = False,
    no_compile: _switch("--no-compile", "torch.compile off") = False,
    no_accum: _switch("--no-accum", "gradient accumulation off (accum 1, same per-step batch)") = False,
    no_clip: _switch("--no-clip", "gradient clipping off") = False,
    no_bucketing: _switch("--no-bucketing", "pad to max_len instead of length buckets") = False,
    no_cudnn_benchmark: _switch("--no-cudnn-benchmark", "cudnn.benchmark off") = False,
    empty_cache: _switch("--empty-cache", "torch.cuda.empty_cache() every 50 batches") = False,
    no_workers: _switch("--no-workers", "DataLoader in the main process") = False,
    no_pin: _switch("--no-pin", "pin_memory off") = False,
    all_variants: _switch("--all", "every variant above") = False,
    force: Annotated[bool, typer.Option(
        "--force", rich_help_panel="Variants",
        help="Also run variants that change nothing on this device (e.g. --no-amp on a CPU); without it they "
             "are listed as not run, with the reason.")] = False,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", help="Continue an ablation folder (runs/ablate-NAME); finished variants are kept.")] = None,
    print_cfg: PrintConfigOpt = False,
    as_json: JsonOpt = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain log lines even in a terminal.")] = False,
    log_interval: Annotated[float, typer.Option("--log-interval", min=0.1,
                                                help="Seconds between plain progress lines.")] = 10.0,
    fake_gpu: Annotated[Optional[str], typer.Option("--fake-gpu", hidden=True,
                                                    help="Scripted GPUs (JSON) instead of NVML.")] = None,
) -> None:
    """Train the baseline and variants with one optimisation off each; compare them with deltas.

    Same seed, data and budget for every variant; the table shows val top-1/top-5, train loss,
    samples/s, peak memory and wall time. With no variant named: --no-aug and --no-amp.
    """
    from asl_cli.config import device_type_of
    from asl_cli.config_io import resolve_config
    from asl_cli.tools import ablation

    chosen = {"no-aug": no_aug, "no-amp": no_amp, "no-compile": no_compile, "no-accum": no_accum,
              "no-clip": no_clip, "no-bucketing": no_bucketing, "no-cudnn-benchmark": no_cudnn_benchmark,
              "empty-cache": empty_cache, "no-workers": no_workers, "no-pin": no_pin}
    flags = dict(epochs=epochs, max_steps=max_steps, time_budget=time_budget, data=data, name=name,
                 device=device, workers=workers, seed=seed, runs_dir=runs_dir)
    with user_errors(as_json), name_the_remedy("--set data.skip_bad=true"):
        if resume is not None:
            given = _given_with_resume(ctx)
            if given:
                from asl_cli.errors import ConfigError

                raise ConfigError(f"--resume continues the ablation with its own configuration and variants "
                                  f"(results.json); leave out {', '.join(given)} (to change them, use another "
                                  f"--name)")
            base, variants, out_dir, force = ablation.resume_from(resume)
        else:
            variants = list(ablation.VARIANTS) if all_variants else [v for v, on in chosen.items() if on]
            variants = variants or list(DEFAULT_VARIANTS)
            base = resolve_config(preset, sets, flags)
            out_dir = None
        if print_cfg:
            print_config(base, as_json=as_json)
            return
        plan = ablation.plan_ablation(base, variants, device_type=device_type_of(base.train.device),
                                      out_dir=out_dir, force=force)
        _run(plan, as_json=as_json, plain=plain, log_interval=log_interval,
             fake_gpu=fake_gpu or os.environ.get("ASL_FAKE_GPU") or None)


def _run(plan, *, as_json: bool, plain: bool, log_interval: float, fake_gpu: str | None) -> None:
    from asl_cli.cli.common import tidy_warnings
    from asl_cli.cli.signals import StopRequests, stop_on_signals
    from asl_cli.errors import EXIT_SIGINT, TrainingInterrupted
    from asl_cli.monitor import open_sampler
    from asl_cli.tools import ablation
    from asl_cli.ui.ablation import comparison_table, notes_lines, variants_line
    from asl_cli.ui.dashboard import JSON, PLAIN, TrainDashboard, choose_mode
    from asl_cli.ui.ndjson import ndjson_line

    mode = choose_mode(as_json=as_json, plain=plain)
    progress: dict[str, str] = {n: "pending" for n in plan.names}

    dashboard = TrainDashboard(mode, log_interval=log_interval, sampler=open_sampler(fake_gpu),
                               extra=lambda: variants_line(plan.out_dir.name, progress, plan.skipped), static=False)
    requests = StopRequests(dashboard)

    def on_variant(name: str, note: str, i: int, n: int) -> None:
        progress[name] = "done" if note == "done earlier" else "running"
        dashboard.status = {}
        text = f"variant {i + 1}/{n} {name}" + (f" ({note})" if note else "")
        if mode == JSON:
            typer.echo(ndjson_line({"event": "variant", "variant": name, "index": i, "of": n, "note": note}))
        elif mode == PLAIN:
            typer.echo(text)

    def on_trainer(trainer) -> None:
        requests.attach(trainer)

    def on_result(name: str, result: dict) -> None:
        progress[name] = "done"

    for name, reason in plan.skipped:  # before the first run: what is left out, and why
        if mode == JSON:
            typer.echo(ndjson_line({"event": "variant_skipped", "variant": name, "reason": reason}))
        elif mode == PLAIN:
            typer.echo(ablation.skipped_lines([(name, reason)])[0])
    try:
        with tidy_warnings(), stop_on_signals(requests), dashboard:
            note, worth_a_line = setup_note(plan.base)
            if worth_a_line:  # the first variant's set-up will generate the default set
                dashboard.set_note(note)
            results = ablation.run_ablation(plan, callbacks=(dashboard,), on_variant=on_variant,
                                            on_trainer=on_trainer, on_result=on_result)
    except TrainingInterrupted as exc:
        typer.echo(f"stopped: finished variants are in {plan.out_dir / ablation.RESULTS_JSON}"
                   f" (the running one saved a checkpoint); continue with: asl ablate --resume {plan.out_dir}",
                   err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:  # a second Ctrl-C, or a signal while no variant was training
        code = getattr(exc, "exit_code", EXIT_SIGINT)
        typer.echo(f"stopped without a new checkpoint; continue with: asl ablate --resume {plan.out_dir}", err=True)
        raise typer.Exit(code) from None
    finally:
        dashboard.close()

    rows = ablation.comparison_rows(results, plan.names)
    chart = ablation.write_chart(results, plan.names, plan.out_dir / ablation.CHART_PNG)
    from asl_cli.cli import nextsteps

    steps = nextsteps.after_ablate(plan.out_dir, [n for n in plan.names if n in results],
                                   example=nextsteps.example_from_data(plan.base.data.data_dir, plan.base.synth))
    if mode == JSON:
        typer.echo(ndjson_line({"event": "ablation", "dir": str(plan.out_dir), "rows": rows,
                                "skipped": [{"variant": n, "reason": r} for n, r in plan.skipped],
                                "chart": None if chart is None else str(chart), "next": nextsteps.as_json(steps)}))
        return
    console = make_console()
    console.print(comparison_table(rows, title=f"ablation {plan.out_dir.name} (deltas against the baseline)"))
    console.print(f"{ablation.direction_legend()} (deltas: green better, red worse)", highlight=False, markup=False)
    for line in notes_lines(rows) + ablation.skipped_lines(plan.skipped):
        console.print(line, highlight=False, markup=False)
    # markup=False: "[plot]" and paths with brackets are text, not Rich markup
    console.print(f"results: {plan.out_dir / ablation.RESULTS_JSON}, {plan.out_dir / ablation.RESULTS_CSV}",
                  highlight=False, markup=False)
    if chart is None:
        console.print("chart skipped: matplotlib is not installed (pip install 'asl-cli[plot]')", highlight=False,
                      markup=False)
    else:
        console.print(f"chart: {chart}", highlight=False, markup=False)
    for line in nextsteps.lines(steps):
        console.print(line, highlight=False, markup=False)
