"""What a run reports: the status (status.json, the dashboard, JSON lines) and the end-of-run summary.

Read-only views of an `ASLTrainer`'s progress (engine/trainer.py), kept apart so that the trainer
reads as its loop. Every key here is a documented field (docs/train.md#status); scripts read them.
"""

from __future__ import annotations

import time
from typing import Any

from asl_cli.engine.advice import advise
from asl_cli.engine.compiled import CompiledForward
from asl_cli.engine.metrics import peak_memory_mb


def run_status(tr: Any, state: str) -> dict[str, Any]:
    """The full status: measured values from the last log point plus progress right now."""
    peak, source = peak_memory_mb(tr.device)
    t_start = getattr(tr, "_t_start", None)
    steps_now = tr.step - getattr(tr, "_steps_at_start", tr.step)
    eta, total_steps, budget = None, tr.total_steps, {}
    if tr.plan is not None:  # time-planned: the ETA is the clock's, the step count an estimate
        used = tr.local_budget_clock()
        eta = tr.plan.eta(used)
        left = tr.plan.updates_left()
        total_steps = None if left is None else tr.step + left
        budget = {"time_budget_s": tr.plan.budget_s, "budget_used_s": used,
                  "schedule_progress": tr.plan.progress}
    elif t_start is not None and steps_now:  # the rate without compile time
        rate_s = max(0.0, time.perf_counter() - t_start - tr.compile_s) / steps_now
        eta = rate_s * max(0, tr.total_steps - tr.step)
    epochs = tr.cfg.train.epochs
    epoch = tr.epoch + (tr.batch_in_epoch > 0 or tr.epoch == 0)
    status = {
        "run": tr.run.name, "state": state,
        # 1-based epoch in progress; at an epoch boundary the one just finished (eval, checkpoint)
        "epoch": min(epoch, epochs) if epochs else epoch, "epochs": epochs or None,
        "step": tr.step, "total_steps": total_steps, "eta_s": eta, **budget,
        **tr.measured, "loss_smooth": tr.loss_smooth.value,
        **tr.val_metrics, "best_top1": tr.best_top1,
        "peak_mem_mb": peak, "peak_mem_source": source, "precision": tr.precision.name,
        "device": str(tr.device), "gpu_uuid": tr.gpu_uuid or None, "aug": dict(tr.cfg.aug.__dict__),
        **compile_status(tr), "tf32": tr.cfg.train.tf32 if tr.device.type == "cuda" else None,
        "batch_size": tr.cfg.train.batch_size, "accumulation": tr.accum,
        "num_workers": tr.parallel.num_workers, "torch_threads": tr.parallel.torch_threads,
        "data_path": tr.data_path, "nonfinite_skipped": tr.nonfinite_skipped,
        "skipped": tr.cache.skipped, "skipped_files": tr.cache.skipped_files[:5],
        "overflow_skipped": tr.overflow_skipped, "warnings": list(tr.warnings),
        "gpu_mem_total_mb": tr.gpu_mem_total_mb, "cpus": tr.parallel.cpus or None,
    }
    # What to fix, from the run's own measurements (the GPU-side rules need NVML: the dashboard's)
    status["advice"] = [a.to_dict() for a in advise(status, None, cores=tr.parallel.cpus or None)]
    return status


def compile_status(tr: Any) -> dict[str, Any]:
    """`compile`: off | compiling | recompiling (graph N) | on | on, N batches eager (recompile
    limit) | fallback (eager); with compile on also the graphs made, the seconds of the calls that
    compiled (training micro-steps: left out of samples/s and the ETA), eager batches, why eager."""
    forward = tr.step_fn.forward if hasattr(tr, "step_fn") else None
    if not isinstance(forward, CompiledForward):
        return {"compile": "off"}
    return {"compile": forward.state, **forward.summary()}


def run_summary(tr: Any, state: str, *, wall: float, samples: int) -> dict:
    best, last = tr.run.best_checkpoint, tr.run.last_checkpoint
    t = tr.cfg.train
    stopped_by = None
    if state == "finished" and not tr._epochs_done():  # ended before its epochs: which limit
        stopped_by = "max_steps" if t.max_steps and tr.step >= t.max_steps else "time_budget"
    return {
        "run_dir": tr.run_dir, "best_checkpoint": best if best.is_file() else None,
        "last_checkpoint": last if last.is_file() else None, "best_top1": tr.best_top1,
        "best_top5": tr.best_top5, "final_train_loss": tr.final_train_loss, "epochs_done": tr.epoch,
        # fractional when stopped mid-epoch (max_steps, time budget, interrupt)
        "epochs_progress": tr.epoch + tr.batch_in_epoch / max(1, tr.batches_per_epoch),
        "epochs": t.epochs or None, "stopped_by": stopped_by,
        "time_budget_s": t.time_budget or None,
        "budget_used_s": tr.local_budget_clock() if tr.plan is not None else None,
        # samples/s leaves out the micro-steps that compiled a graph (compile_s: their seconds)
        "steps": tr.step, "wall_s": wall, "compile_s": tr.compile_s if tr.compile_s else None,
        "samples_per_s": ((samples - tr.compile_samples) / (wall - tr.compile_s)
                          if wall - tr.compile_s > 0 else None),
        # steps, wall_s and samples/s of this session (a resume continues at resumed_from_step)
        "session_steps": tr.step - getattr(tr, "_steps_at_start", tr.step),
        "resumed_from_step": None if tr.resumed_from is None else tr.resumed_from["step"],
        "peak_mem_mb": tr.status.get("peak_mem_mb"), "skipped": tr.cache.skipped,
        "skipped_files": tr.cache.skipped_files[:5],
        "skipped_list": str(tr.run.skipped_path) if tr.cache.skipped else None,
        "nonfinite_skipped": tr.nonfinite_skipped, "overflow_skipped": tr.overflow_skipped,
        "precision": tr.precision.name, "device": str(tr.device), "state": state,
    }


__all__ = ["run_status", "run_summary", "compile_status"]
