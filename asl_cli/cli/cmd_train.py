"""`asl train`: resolve the configuration, run `ASLTrainer` under the live dashboard.

Options -> `RunConfig` (defaults -> preset -> named flags -> --set) -> `ASLTrainer(cfg).fit()`.
Ctrl-C / SIGTERM ask the trainer to stop at the next safe point; it saves `last` and raises
`TrainingInterrupted`, which becomes one line (where the checkpoint is, how to resume) and exit
130 / 143. A second Ctrl-C quits at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import name_the_remedy, setup_note, user_errors
from asl_cli.cli.options import (AccumOpt, BatchSizeOpt, CompileOpt, DataOpt, DeterministicOpt, DeviceOpt,
                                 EpochsOpt, JsonOpt, LrOpt, MaxStepsOpt, NameOpt, NoAmpOpt, NoAugOpt, NoCompileOpt,
                                 PrintConfigOpt, RunsDirOpt, SeedOpt, SetOpt, SkipBadOpt, TimeBudgetOpt,
                                 WorkersOpt, print_config)

LogIntervalOpt = Annotated[float, typer.Option(
    "--log-interval", min=0.1, metavar="SECONDS",
    help="Seconds between plain log lines (no terminal); also one per eval.")]
PlainOpt = Annotated[bool, typer.Option("--plain", help="Plain log lines even in a terminal.")]
FakeGpuOpt = Annotated[Optional[str], typer.Option("--fake-gpu", hidden=True,
                                                   help="Scripted GPUs (JSON) instead of NVML.")]
NprocOpt = Annotated[Optional[int], typer.Option(
    "--nproc", min=1, metavar="N",
    help="Processes on this machine (one per GPU; gloo on the CPU): runs torchrun with the same arguments. "
         "See docs/distributed.md.")]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The end-of-run report: what was reached and where everything is (pure)."""
    from asl_cli.units import fmt_pct, fmt_value

    run_dir = Path(str(summary.get("run_dir", "")))

    def pct(v: Any) -> str:
        return fmt_pct(v, none="n/a")

    def num(v: Any, fmt: str) -> str:
        return fmt_value(v, fmt, none="n/a")

    best = (f"best val top-1 {pct(summary.get('best_top1'))}, top-5 {pct(summary.get('best_top5'))}")
    if summary.get("state") == "already_finished":  # a resume with nothing left: nothing was run
        reason = str(summary.get("reason", "is finished"))
        more = ("a higher --max-steps (0: no limit)" if "max_steps" in reason
                else f"--epochs N (N > {summary.get('epochs', '?')})")
        if "time budget" in reason:  # a plan cannot be stretched: its schedule ended at min_lr
            lines = [f"nothing to train: run {run_dir.name} {reason}; its schedule is complete (for a longer "
                     f"run, start a new one with a larger --time-budget)", best]
        else:
            lines = [f"nothing to train: run {run_dir.name} {reason}; to train further, resume with {more}", best]
    else:
        progress = summary.get("epochs_progress", summary.get("epochs_done", "?"))
        if isinstance(progress, float):  # stopped mid-epoch: how far into it, e.g. "0.18 of 20 epochs"
            progress = f"{progress:.0f}" if progress.is_integer() else f"{progress:.2f}"
        of = f" of {summary['epochs']}" if summary.get("stopped_by") and summary.get("epochs") else ""
        why = {"max_steps": " (stopped at --max-steps)", "time_budget": ""}
        budget = summary.get("time_budget_s")
        if isinstance(budget, (int, float)):  # a planned run: the schedule ended inside its budget
            why["time_budget"] = why[""] = f" (time budget {budget:g} s, schedule completed)"
        session = (f"{num(summary.get('wall_s'), '.1f')} s ({num(summary.get('samples_per_s'), '.0f')} samples/s, "
                   f"peak memory {num(summary.get('peak_mem_mb'), '.0f')} MiB)")
        if summary.get("resumed_from_step") is not None:  # the run's totals, then what this session did
            done = (f"done: {progress}{of} epochs, {summary.get('steps', '?')} steps in all; this session (resumed "
                    f"at step {summary['resumed_from_step']}): {summary.get('session_steps', '?')} steps in {session}")
        else:
            done = f"done: {progress}{of} epochs, {summary.get('steps', '?')} steps in {session}"
        lines = [
            done + why.get(summary.get('stopped_by') or '', ''),
            f"{best}; final train loss {num(summary.get('final_train_loss'), '.4f')}",
        ]
    if summary.get("skipped"):
        from asl_cli.data.cache import skipped_summary

        lines.append(skipped_summary(list(summary.get("skipped_files") or []), summary["skipped"],
                                     listing=summary.get("skipped_list")))
    if summary.get("best_checkpoint"):
        lines.append(f"best checkpoint: {summary['best_checkpoint']}")
    if summary.get("last_checkpoint"):
        lines.append(f"last checkpoint: {summary['last_checkpoint']}")
    from asl_cli.engine.run_dir import RunDir

    lines.append(f"metrics: {RunDir(run_dir).metrics_path} ({RunDir.CONFIG} and {RunDir.STATUS} beside it)")
    return lines


def resume_line(run: str, *, step: int, epoch: int, batch_in_epoch: int = 0, batches_per_epoch: int = 0,
                total_steps: int | None = None, budget_used_s: float | None = None,
                time_budget_s: float | None = None) -> str:
    """`resuming RUN from epoch E, step S (of N)`: where a resumed run continues (pure). E is the epoch
    it trains in next (1-based); mid-epoch with the batch it continues after; a time-planned run says
    how much of its budget is used instead of a step total."""
    where = f"epoch {epoch + 1}"
    if batch_in_epoch:
        where += f" (after batch {batch_in_epoch} of {batches_per_epoch})" if batches_per_epoch else \
            f" (after batch {batch_in_epoch})"
    if time_budget_s:
        of = f" (time budget: {budget_used_s or 0:.0f} of {time_budget_s:g} s used)"
    else:
        of = f" (of {total_steps})" if total_steps else ""
    return f"resuming {run} from {where}, step {step}{of}"


def trainer_resume_line(trainer) -> str:
    plan = getattr(trainer, "plan", None)
    return resume_line(trainer.run.name, step=trainer.step, epoch=trainer.epoch, batch_in_epoch=trainer.batch_in_epoch,
                       batches_per_epoch=trainer.batches_per_epoch, total_steps=trainer.total_steps,
                       budget_used_s=getattr(trainer, "_budget_used_before", None) if plan is not None else None,
                       time_budget_s=plan.budget_s if plan is not None else None)


def next_steps(summary: dict[str, Any], trainer) -> list:
    """The commands to run after this run (asl_cli/cli/nextsteps.py): evaluate, predict and show a file
    of its data set that exists (a validation sequence when there is one), export, the GPU monitor."""
    from asl_cli.cli import nextsteps

    val = getattr(trainer, "val_loader", None)
    indices = getattr(getattr(val, "dataset", None), "indices", None) if val is not None else None
    example = nextsteps.example_file(trainer.cache, indices)
    return nextsteps.after_train(summary.get("run_dir") or trainer.run_dir, example=example,
                                 device=str(summary.get("device") or ""))


def _last_checkpoint(run_dir: Path | None) -> Path | None:
    from asl_cli.engine.run_dir import RunDir

    return RunDir(run_dir).last_checkpoint if run_dir else None


def interrupted_line(exc, run_dir: Path | None) -> str:
    """Where the checkpoint is and how to go on, in one line."""
    name = "SIGTERM" if exc.exit_code == 143 else "Ctrl-C"
    path = getattr(exc, "path", None) or _last_checkpoint(run_dir)
    where = f"checkpoint saved to {path}" if path else "checkpoint saved"
    how = f"; resume with: asl train --resume {run_dir}" if run_dir else ""
    return f"stopped by {name}: {where}{how}"


def interrupted_summary(exc, run_dir: Path | None, trainer) -> dict[str, Any]:
    """The `--json` summary of a stopped run (pure but for reading the trainer's counters)."""
    path = getattr(exc, "path", None) or _last_checkpoint(run_dir)
    return {"event": "summary", "state": "interrupted", "signal": "SIGTERM" if exc.exit_code == 143 else "SIGINT",
            "exit_code": exc.exit_code, "run_dir": str(run_dir) if run_dir else None,
            "last_checkpoint": str(path) if path else None,
            "resume": f"asl train --resume {run_dir}" if run_dir else None,
            "steps": getattr(trainer, "step", None), "best_top1": getattr(trainer, "best_top1", None)}


@app.command("train")
def train_cmd(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name (see `asl presets`) "
                                                  "or a .toml path (default: cpu).")] = None,
    sets: SetOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchSizeOpt = None,
    accum: AccumOpt = None,
    lr: LrOpt = None,
    max_steps: MaxStepsOpt = None,
    time_budget: TimeBudgetOpt = None,
    data: DataOpt = None,
    name: NameOpt = None,
    device: DeviceOpt = None,
    workers: WorkersOpt = None,
    seed: SeedOpt = None,
    runs_dir: RunsDirOpt = None,
    no_aug: NoAugOpt = False,
    no_amp: NoAmpOpt = False,
    compile: CompileOpt = False,
    no_compile: NoCompileOpt = False,
    deterministic: DeterministicOpt = False,
    skip_bad: SkipBadOpt = False,
    resume: Annotated[Optional[Path], typer.Option(
        "--resume", help="Continue this run folder from its last checkpoint (its config.json, plus "
                         "any overrides given here).")] = None,
    print_cfg: PrintConfigOpt = False,
    as_json: JsonOpt = False,
    plain: PlainOpt = False,
    log_interval: LogIntervalOpt = 10.0,
    fake_gpu: FakeGpuOpt = None,
    nproc: NprocOpt = None,
) -> None:
    """Train a recogniser with a live dashboard (plain log lines without a terminal, --json: NDJSON).

    With no --data the embedded synthetic data set is used. Ctrl-C saves a checkpoint and says how to
    resume (exit 130).
    """
    flags = dict(epochs=epochs, batch_size=batch_size, accum=accum, lr=lr, max_steps=max_steps,
                 time_budget=time_budget, data=data, name=name, device=device, workers=workers, seed=seed,
                 runs_dir=runs_dir, no_aug=no_aug, no_amp=no_amp, compile=compile,
                 no_compile=no_compile, deterministic=deterministic, skip_bad=skip_bad)
    with user_errors(as_json), name_the_remedy("--skip-bad"):
        if nproc is not None and nproc > 1:  # relaunch this command under torchrun, --nproc removed
            from asl_cli.engine.distributed import launch, train_args_from_argv
            raise typer.Exit(launch(nproc, train_args_from_argv(sys.argv)))
        from asl_cli.config_io import config_for_resume, resolve_config

        if resume is not None:
            cfg = config_for_resume(resume, sets, flags, preset=preset)
        else:
            cfg = resolve_config(preset or "cpu", sets, flags)
        if print_cfg:
            print_config(cfg, as_json=as_json)
            return
        if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):  # under torchrun
            from asl_cli.engine.distributed import cleanup, env_rank
            from asl_cli.engine.trainer import run_worker
            if env_rank() != 0:  # only rank 0 renders and writes
                code = run_worker(cfg, resume=resume)
                # gloo's threads can abort in a C++ destructor during the interpreter's teardown once the
                # job is done (SIGABRT, exit -6, seen under load), which torchrun reports as a failed job.
                # A rank > 0 wrote no file and has left the process group: it leaves at once.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            try:
                _train(cfg, resume=resume, as_json=as_json, plain=plain, log_interval=log_interval,
                       fake_gpu=fake_gpu or os.environ.get("ASL_FAKE_GPU") or None)
            finally:
                cleanup()
            return
        _train(cfg, resume=resume, as_json=as_json, plain=plain, log_interval=log_interval,
               fake_gpu=fake_gpu or os.environ.get("ASL_FAKE_GPU") or None)


def _train(cfg, *, resume: Path | None, as_json: bool, plain: bool, log_interval: float,
           fake_gpu: str | None) -> None:
    from asl_cli.cli.common import tidy_warnings
    from asl_cli.cli.signals import StopBeforeStart, StopRequests, stop_on_signals
    from asl_cli.monitor import open_sampler
    from asl_cli.ui.dashboard import JSON, TrainDashboard, choose_mode
    from asl_cli.engine.trainer import ASLTrainer
    from asl_cli.errors import EXIT_SIGINT, TrainingInterrupted

    mode = choose_mode(as_json=as_json, plain=plain)
    dashboard = TrainDashboard(mode, log_interval=log_interval, sampler=open_sampler(fake_gpu))
    requests = StopRequests(dashboard)
    run_dir: Path | None = resume
    trainer = None
    try:
        with tidy_warnings(), stop_on_signals(requests), dashboard:
            note, worth_a_line = setup_note(cfg)
            dashboard.set_note(note, live_only=not worth_a_line)
            fresh_synth = cfg.data.data_dir is None and worth_a_line  # this run generates the default set
            # The trainer holds the run folder (one writer per folder) until fit() returns.
            trainer = ASLTrainer(cfg, run_dir=resume, resume=resume, callbacks=(dashboard,))
            run_dir = Path(str(trainer.run_dir))
            if fresh_synth:
                from asl_cli.data.synth import default_dataset_facts, describe_default_dataset

                dashboard.say("synthetic default set written: "
                              + describe_default_dataset(default_dataset_facts(cfg.synth)))
            if trainer.resumed_from is not None and trainer.nothing_left() is None:
                dashboard.say(trainer_resume_line(trainer))
            requests.attach(trainer)
            summary = trainer.fit()
    except TrainingInterrupted as exc:
        if mode == JSON:  # the stream still ends with its summary: where the checkpoint is, how to go on
            from asl_cli.ui.ndjson import ndjson_line

            typer.echo(ndjson_line(interrupted_summary(exc, run_dir, trainer)))
        typer.echo(interrupted_line(exc, run_dir), err=True)
        raise typer.Exit(exc.exit_code) from None
    except StopBeforeStart as exc:
        name = "SIGTERM" if exc.exit_code == 143 else "Ctrl-C"
        typer.echo(f"stopped by {name} before training started (nothing to save)", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        last = _last_checkpoint(run_dir)
        saved = f"; the last saved checkpoint is {last}" if last and last.is_file() else ""
        typer.echo(f"stopped by a second Ctrl-C without a new checkpoint{saved}", err=True)
        raise typer.Exit(EXIT_SIGINT) from None
    finally:
        dashboard.close()
    from asl_cli.cli import nextsteps

    steps = next_steps(summary, trainer)
    if mode == JSON:
        from asl_cli.ui.ndjson import ndjson_line

        typer.echo(ndjson_line({"event": "summary", **{k: (str(v) if isinstance(v, Path) else v)
                                                       for k, v in summary.items()},
                                "next": nextsteps.as_json(steps)}))
    else:
        for line in summary_lines(summary) + nextsteps.lines(steps):
            typer.echo(line)
    sys.stdout.flush()
