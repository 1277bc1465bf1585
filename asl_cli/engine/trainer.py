"""`ASLTrainer`: one training run, read top to bottom as setup / train loop / evaluate / save / close.

    trainer = ASLTrainer(cfg)            # setup: data, model, optimizer, schedule, precision, run folder
    summary = trainer.fit()              # the loop: epochs of accumulation windows; eval; checkpoints

Who owns what: `TrainStep` (engine/step.py) one optimizer update with exact accumulation;
`DistributedTrainStep` (engine/distributed.py) the same over DDP; `TimePlan`/`BudgetLR`
(engine/budget.py) a time-budgeted schedule; `WindowRewind` (engine/window.py) what a window that
does not land undoes; `RunDir` (engine/run_dir.py) the run folder. The trainer wires them and
keeps the run's progress and its checkpoint round trip (over 500 lines for that reason: the state
a resume must restore has one owner). GPU sync points are marked `# SYNC`: one per
optimizer update (the non-finite loss check), one per log point, one per evaluation, and
checkpoint saves. See docs/engine.md.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from asl_cli.config import RunConfig, validate
from asl_cli.data.cache import skipped_summary
from asl_cli.engine import distributed, tensorboard_log
from asl_cli.engine.budget import BudgetLR, TimePlan
from asl_cli.engine.checkpoint import (all_finite, load_checkpoint, model_fingerprint, rng_state,
                                       save_checkpoint, set_rng_state, unwrap_model)
from asl_cli.engine.compiled import CompiledForward, bucket_lengths
from asl_cli.engine.device import configure_backends, cuda_device_uuid, gpu_memory_mb, seed_everything
from asl_cli.engine.faults import out_of_memory_error, worker_crash_error
from asl_cli.engine.metrics import SmoothedValue, Throughput, time_forward, topk_correct
from asl_cli.engine.precision import Precision, choose_precision
from asl_cli.engine.report import run_status, run_summary
from asl_cli.engine.run_dir import FolderLock, RunDir, find_checkpoint
from asl_cli.engine.window import WindowRewind
from asl_cli.errors import CheckpointError, ConfigError, NonFiniteLossError, TrainingInterrupted

log = logging.getLogger("asl.engine")

RESUME_KEYS = ("model", "optimizer", "progress", "rng", "sampler")  # what a resume reads back


class ASLTrainer:
    """Trains one run. See the module docstring and docs/engine.md."""

    def __init__(self, cfg: RunConfig, *, run_dir: str | Path | None = None, resume: str | Path | None = None,
                 callbacks: Iterable[Callable[[dict], None]] = (), use_augmentations: bool | None = None,
                 use_mixed_precision: bool | None = None, gradient_clip_val: float | None = None,
                 gradient_accumulation_steps: int | None = None):
        cfg = copy.deepcopy(cfg)
        if use_augmentations is not None:
            cfg.aug.use_augmentations = bool(use_augmentations)
        if use_mixed_precision is not None:
            cfg.train.use_mixed_precision = bool(use_mixed_precision)
        if gradient_clip_val is not None:
            cfg.train.gradient_clip_val = float(gradient_clip_val)
        if gradient_accumulation_steps is not None:
            cfg.train.gradient_accumulation_steps = int(gradient_accumulation_steps)
        validate(cfg, source="trainer")
        # config.json must work from any folder (evaluate, resume): relative data paths made absolute
        for key in ("data_dir", "cache_dir"):
            value = getattr(cfg.data, key)
            if value:
                setattr(cfg.data, key, os.path.abspath(os.path.expanduser(value)))
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.warnings: list[str] = []
        self._stop_signum: int | None = None
        t = cfg.train

        tensorboard_log.check_available(t.tensorboard)  # before any folder is made
        self.dist = distributed.setup(t.device)  # torchrun: process group, cuda:LOCAL_RANK; else one process
        self.dist.check_config(cfg)
        self.device = self.dist.device
        self.gpu_uuid = cuda_device_uuid(self.device)
        self.gpu_mem_total_mb = gpu_memory_mb(self.device)  # the card's memory (advice: VRAM headroom)
        configure_backends(t, self.device)
        seed_everything(t.seed)
        # A folder named by the caller (a resume, `run_dir`) is held from here, so a second trainer on
        # it is refused before spending seconds on data and model; a new folder is made and held after
        # the set-up, so a set-up that fails leaves no empty run folder behind. One trainer per folder
        # until fit() returns: a second one would interleave metrics and checkpoints.
        ckpt_path, ckpt_run = (find_checkpoint(resume) if resume is not None else (None, None))
        named = RunDir.open(run_dir) if run_dir is not None else ckpt_run
        self._folder_lock: FolderLock | None = None
        if named is not None:
            self._use_run(named)
        try:
            self._build(cfg)
            if self.plan is not None and ckpt_path is None:
                self._plan_from_probe()  # a budget too short for this run is refused before any training
            if named is None:
                self._use_run(self.dist.shared_run_dir(
                    lambda: RunDir.create(cfg.runs_dir, cfg.name, preset=cfg.preset)))
            if ckpt_path is not None:
                # Loaded to the CPU: RNG states must stay CPU tensors (torch.set_rng_state refuses CUDA ones),
                # and load_state_dict moves weights and optimizer moments to the model's device (not `step`).
                self._restore(load_checkpoint(ckpt_path, expect_fingerprint=self.fingerprint,
                                              map_location="cpu"), path=ckpt_path)
            if self.cache.skipped:  # --skip-bad: name the files (the first few here, all in skipped.txt)
                self._warn(skipped_summary(self.cache.skipped_files, self.cache.skipped,
                                           listing=self.run.write_skipped(self.cache.skipped_files)))
            if self.nothing_left() is None:  # a finished run resumed without more epochs keeps its files
                self.run.write_config(cfg.to_dict())
                board = (tensorboard_log.tensorboard_for(t.tensorboard, self.run.tensorboard_dir)
                         if self.dist.is_main else None)
                if board is not None:  # event files beside the run's own (its writer thread does the I/O)
                    self.callbacks.append(board)
                if ckpt_path is not None:  # updates logged after this checkpoint are about to be redone
                    self.run.drop_metrics_after(self.step)
            self.status: dict[str, Any] = {"state": "running"}
            self.status = run_status(self, "running")
        except BaseException:
            if self._folder_lock is not None:
                self._folder_lock.release()  # a traceback may keep this half-built trainer alive
            raise

    def _use_run(self, run: RunDir) -> None:
        self.run = self.dist.run_view(run)  # only rank 0 writes the run folder
        self.run_dir = self.run.path
        self._folder_lock = self.run.hold()

    def _build(self, cfg: RunConfig) -> None:
        """Threads and workers, data, model, optimizer, schedule, precision, train step; progress at 0."""
        t = cfg.train
        # Workers and compute threads share the cores (loader.num_workers -1 = auto). The config
        # keeps -1, so a resume works it out again for its machine; status.json has the numbers.
        from asl_cli.engine import parallelism
        self.parallel = parallelism.plan_here(cfg.loader.num_workers, device_type=self.device.type,
                                              local_processes=self.dist.local_world_size)
        log.info("loader: %s", self.parallel.reason)

        # Data: cache -> loaders (the loaders pin memory and use workers as cfg.loader says).
        self.cache = self.dist.main_first(self._prepare_cache)
        augment = None
        if cfg.aug.use_augmentations:
            from asl_cli.augment import ASLAugmentations
            augment = ASLAugmentations.from_config(cfg.aug, max_len=cfg.data.max_len)
        self.train_loader, self.val_loader = self.dist.build_loaders(cfg, self.cache, augment=augment,
                                                                     device_type=self.device.type,
                                                                     num_workers=self.parallel.num_workers)
        # Loader iteration must not draw from the global RNG (it would shift dropout after a resume).
        for loader in (self.train_loader, self.val_loader):
            if loader is not None:
                loader.generator = torch.Generator().manual_seed(t.seed)
        self.sampler = self.train_loader.batch_sampler
        self.data_path = "numpy"  # status.json's data_path: the one sample path (kept for scripts reading it)
        self.num_classes = self.cache.num_classes
        self.accum = t.gradient_accumulation_steps
        self.batches_per_epoch = len(self.train_loader)
        self.updates_per_epoch = math.ceil(self.batches_per_epoch / self.accum)
        # The LR schedule's length without a time budget: the epochs, or max_steps where no epoch count is set
        self.total_updates = t.epochs * self.updates_per_epoch if t.epochs else t.max_steps
        caps = [n for n in (self.total_updates, t.max_steps) if n]
        self.total_steps = min(caps) if caps else None  # None: only the time budget ends the run

        # Model, optimizer, schedule, precision.
        from asl_cli.engine.optim import build_optimizer, build_scheduler
        from asl_cli.model import build_model
        self.model = build_model(cfg.model, self.num_classes).to(self.device)
        self.dist.prepare_model(self.model, sync_bn=t.sync_bn)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.plan: TimePlan | None = None
        if t.time_budget:  # the budget plans the schedule (engine/budget.py); epochs / max_steps cap it
            self.plan = TimePlan(t.time_budget, update_cap=self.total_steps,
                                 warmup_updates=round(cfg.optim.warmup_epochs * self.updates_per_epoch))
            self.scheduler = BudgetLR(self.optimizer, self.plan, min_lr=cfg.optim.min_lr,
                                      schedule=cfg.optim.schedule, clock=self._budget_clock,
                                      scaled_decay=cfg.optim.weight_decay_mode == "lr_scaled")
        else:
            self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.total_updates, self.updates_per_epoch)
        choice = choose_precision(self.device.type, mixed=t.use_mixed_precision, requested=t.precision,
                                  device=self.device)
        if choice.note:
            self._warn(choice.note)
        self.precision = Precision(self.device.type, choice.name)
        forward: Callable = self.model
        if t.compile:  # one graph per bucket length (engine/compiled.py), evaluation's apart
            d = cfg.data
            forward = CompiledForward(self.model, t.compile_mode, self._warn,
                                      lengths=bucket_lengths(d.max_len, d.bucket_step, d.length_bucketing),
                                      on_compile=self._on_compile)
        awp = None
        if cfg.optim.awp_lambda > 0:
            from asl_cli.engine.awp import AWP
            awp = AWP(self.model, cfg.optim.awp_lambda)
        self.step_fn = self.dist.make_train_step(self.model, self.optimizer, self.precision,
                                                 clock=self.local_budget_clock,
                                                 nominal_window=t.batch_size * self.accum,
                                                 clip_val=t.gradient_clip_val,
                                                 label_smoothing=cfg.optim.label_smoothing,
                                                 scheduler=self.scheduler, forward=forward, awp=awp)
        self.window = WindowRewind(self.model, self.device, self.accum)
        self.fingerprint = model_fingerprint(cfg.model, self.num_classes, self.model)

        # Progress (restored by a resume).
        self.step = 0  # optimizer updates
        self.epoch = 0  # epoch in progress (0-based)
        self.batch_in_epoch = 0  # micro-batches of `epoch` already consumed (a window boundary)
        self.samples_seen = 0
        self.best_top1: float | None = None
        self.best_top5: float | None = None
        self.nonfinite_skipped = 0
        self.overflow_skipped = 0  # fp16 updates the GradScaler skipped (inf/NaN gradients)
        self.final_train_loss: float | None = None
        self.compile_s = 0.0  # this session's seconds of training micro-steps that compiled a graph
        self.compile_samples = 0  # and their samples
        self.resumed_from: dict[str, int] | None = None  # a resume: the checkpoint's step, epoch, batch_in_epoch
        self.loss_smooth = SmoothedValue(0.9)
        self._pending_rng: dict | None = None
        self._budget_used_before = 0.0  # seconds of the time budget used by earlier sessions (a resume)
        self._evaluated_clock = 0.0  # the budget clock at the latest evaluation
        self._evaluated_at: tuple | None = None  # the _position() of the latest evaluation / last.pt
        self._saved_at: tuple | None = None
        self.val_metrics: dict[str, float | None] = {"val_loss": None, "val_top1": None, "val_top5": None}
        self.measured: dict[str, Any] = dict.fromkeys(("loss", "lr", "grad_norm", "samples_per_s", "data_wait",
                                                        "amp_scale"))

    # -- setup helpers --------------------------------------------------------------------------

    def _prepare_cache(self):
        from asl_cli.data.cache import prepare
        d = self.cfg.data
        data_dir = d.data_dir
        if data_dir is None:
            from asl_cli.data.synth import ensure_default_dataset
            data_dir = ensure_default_dataset(self.cfg.synth, progress=None)
        return prepare(data_dir, d.cache_dir, skip_bad=d.skip_bad, limit=d.limit, progress=False)

    def _plan_from_probe(self) -> None:
        """Seed the time plan from a timed forward pass of a typical batch (zeros, mean length rounded
        up to a bucket); refuse a budget that cannot fit. Rank 0 measures, every rank uses its figure."""
        from asl_cli.data.landmarks import NUM_FEATURES

        d, t = self.cfg.data, self.cfg.train
        lengths = np.minimum(np.asarray(self.cache.lengths)[self.train_loader.dataset.indices], d.max_len)
        length = int(math.ceil(float(np.mean(lengths)) / d.bucket_step) * d.bucket_step) if len(lengths) else d.max_len
        features = torch.zeros(t.batch_size, max(1, min(length, d.max_len)), NUM_FEATURES, device=self.device)
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=self.device)
        forward_s = time_forward(self.model, features, mask, autocast=self.precision.autocast,
                                 threads=self.parallel.torch_threads)
        self.plan.seed_from_forward(self.dist.broadcast_object(forward_s), micro_batches=self.accum,
                                    eval_batches=len(self.val_loader) if self.val_loader is not None else 0,
                                    weight_bytes=sum(p.numel() * p.element_size() for p in self.model.parameters()))

    def _budget_clock(self) -> float:
        """Seconds of the time budget used so far (under torchrun: rank 0's, handed to every rank)."""
        shared = getattr(getattr(self, "step_fn", None), "shared_clock", None)  # DistributedTrainStep's
        return shared if shared is not None else self.local_budget_clock()

    def local_budget_clock(self) -> float:
        start = getattr(self, "_t_start", None)
        return self._budget_used_before + (time.perf_counter() - start if start is not None else 0.0)

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    # -- public API -----------------------------------------------------------------------------

    def request_stop(self, signum: int = 2) -> None:
        """Ask the loop to save `last` at the next safe point and raise TrainingInterrupted.

        Only sets a flag (safe from a signal handler or another thread).
        """
        if self.dist.enabled:  # several processes: all stop after the same update, agreed at a window end
            self.step_fn.stop_vote = int(signum)
            return
        self._stop_signum = int(signum)

    def nothing_left(self) -> str | None:
        """Why this (resumed) run has nothing to train, or None: its epochs or `max_steps` are done."""
        t = self.cfg.train
        if self.plan is not None and self.plan.finished:
            return f"already used its time budget of {t.time_budget:g} s ({self.step} steps)"
        if t.epochs and self.epoch >= t.epochs:
            return f"already finished its {t.epochs} epochs ({self.step} steps)"
        if t.max_steps and self.step >= t.max_steps:
            return f"already reached max_steps {t.max_steps}"
        return None

    def fit(self) -> dict:
        if not self._folder_lock.held:  # a second fit() of this trainer: hold the folder again
            self._folder_lock = self.run.hold()
        threads_before = torch.get_num_threads()
        if self.parallel.torch_threads != threads_before:
            torch.set_num_threads(self.parallel.torch_threads)
        try:
            reason = self.nothing_left()
            if reason is not None:  # writing status.json now would replace the run's final figures
                return run_summary(self, "already_finished", wall=0.0, samples=0) | {"reason": reason}
            return self._fit()
        finally:
            if torch.get_num_threads() != threads_before:  # a process-wide setting: give it back
                torch.set_num_threads(threads_before)
            self._folder_lock.release()  # the run folder is free for a resume or another tool

    def _fit(self) -> dict:
        self._start_session()
        try:
            self._train()
        except TrainingInterrupted:
            self._finish("interrupted")
            raise
        except torch.cuda.OutOfMemoryError:
            self.optimizer.zero_grad(set_to_none=True)
            self._finish("failed")
            t = self.cfg.train
            raise out_of_memory_error(self.step, t.batch_size, self.accum, self.cfg.data.max_len,
                                      self.run.last_checkpoint) from None
        except KeyboardInterrupt:
            self._finish("interrupted")
            raise
        except BaseException:
            self._finish("failed")
            raise
        return self._finish("finished")

    def _start_session(self) -> None:
        """Clocks, meters and log accumulators of this session (a resume is a new session)."""
        self._t_start = time.perf_counter()
        self.meter = Throughput()
        self.meter.pause()  # it runs inside _train_epoch only: evaluation and checkpoints are not training
        self._steps_at_start = self.step
        self._samples_at_start = self.samples_seen
        self.compile_s, self.compile_samples = 0.0, 0  # this session's (the summary's wall is the session's)
        self._log_loss: torch.Tensor | float = 0.0  # summed per-sample losses since the last log point
        self._log_samples = 0
        self._grad_norm: torch.Tensor | None = None
        if self._pending_rng is not None:  # a resume continues the saved random streams
            set_rng_state(self._pending_rng, self.device)
            self._pending_rng = None
        if self.plan is not None:
            self.plan.resumed()  # start-up time is not an update interval
        self._emit("start", config=self.cfg.to_dict())

    # -- the loop ---------------------------------------------------------------------------------

    def _train(self) -> None:
        """Epochs of accumulation windows; at each epoch end evaluate (when due) and save; at the end
        the final weights are evaluated and saved whatever stopped the run."""
        if not self.run.last_checkpoint.is_file():  # a run killed in its first epoch can still resume
            self._save("last")
        while not self._epochs_done() and not self._budget_reached():
            self.meter.resume()
            self._train_epoch()
            self.meter.pause()
            if self._log_samples:  # off the log_every grid: an epoch's (or a stop's) last updates
                self._log_step()  # get their own log point, before the evaluation reports on them
            if self.batch_in_epoch < self.batches_per_epoch:
                break  # stopped mid-epoch (max_steps / time budget)
            self._end_epoch()
        # Stopped early (max_steps / time budget), mid-epoch or at an epoch end that skipped eval or
        # checkpoint (eval_every / checkpoint_every > 1): evaluate the final weights, save them.
        if self._evaluated_at != self._position() or self._saved_at != self._position():
            improved = self._evaluated_at != self._position() and self._evaluate()
            self._save_checkpoints(last=self._saved_at != self._position(), best=improved)

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        final = self._epochs_done() or self._budget_reached()
        evaluate = self._eval_due(final)
        improved = evaluate and self._evaluate()  # SYNC (one per evaluation)
        self._save_checkpoints(last=self.epoch % self.cfg.train.checkpoint_every == 0 or final, best=improved)
        if self.plan is not None:  # the epoch end's time is known now (rank 0's clock on every rank)
            self.plan.boundary(self.dist.broadcast_object(self.local_budget_clock()), with_eval=evaluate)
            self.scheduler.replan()

    def _train_epoch(self) -> None:
        """Accumulation windows to the epoch's end, a step limit or a stop (a resume starts mid-epoch)."""
        self.sampler.set_epoch(self.epoch)  # keeps a resumed mid-epoch position of this epoch
        self.model.train()
        self._set_switches()
        batches = iter(self.train_loader)
        while True:
            if self.batch_in_epoch % self.accum == 0:
                self.window.open(self.batch_in_epoch)  # a skipped update or a stop inside the window rewinds here
            batch = self._next_batch(batches)  # timed as data wait
            if batch is None:
                return
            done = self.batch_in_epoch + 1
            window_end = done % self.accum == 0 or done == self.batches_per_epoch
            self._micro_step(batch, window_end)  # forward + backward; DDP all-reduces at the window end
            self.batch_in_epoch = done
            if window_end:
                self._apply_update()  # SYNC: the non-finite loss check (one per update)
            signum = self._stop_requested()
            if signum:
                self._interrupt(signum, inside_window=not window_end)
            if window_end and self._budget_reached():
                return

    def _next_batch(self, batches) -> dict | None:
        self.meter.wait_start()
        try:
            batch = next(batches, None)
        except RuntimeError as exc:
            raise worker_crash_error(exc, self.train_loader, self.epoch, self.batch_in_epoch,
                                     self.cache.data_dir) from None
        self.meter.wait_end()
        return batch

    def _micro_step(self, batch: dict, window_end: bool) -> None:
        dev = self.device
        nb = self.cfg.loader.non_blocking and dev.type == "cuda"
        self.step_fn.micro_step(batch["features"].to(dev, non_blocking=nb), batch["mask"].to(dev, non_blocking=nb),
                                batch["labels"].to(dev, non_blocking=nb), window_end=window_end)
        samples = int(batch["labels"].shape[0])
        if self.step_fn.compile_s_last:
            self._compiled_now(self.step_fn.compile_s_last, samples)
        else:
            self.meter.add(samples)
        every = self.cfg.train.empty_cache_every
        if every and dev.type == "cuda" and (self.batch_in_epoch + 1) % every == 0:
            torch.cuda.empty_cache()

    def _stop_requested(self) -> int | None:
        """The signal to stop on: this process's (request_stop), or the one all ranks agreed on."""
        return self._stop_signum or getattr(self.step_fn, "agreed_stop", None)

    def _on_compile(self, what: str) -> None:
        """A call is about to compile a graph (minutes on a big model): say so in status and dashboard."""
        if hasattr(self, "status"):
            self._emit("compile", compiling=what)

    def _compiled_now(self, seconds: float, samples: int) -> None:
        """The latest micro-step compiled a graph: its time and samples are not training throughput,
        not part of the ETA's rate nor of the time plan's step-rate estimate."""
        self.compile_s += seconds
        self.compile_samples += samples
        self.meter.exclude(seconds)
        if self.plan is not None:
            self.plan.exclude_interval()
        self._emit("compile", compiled_s=seconds)

    def _set_switches(self) -> None:
        """Late dropout and AWP from their start epoch (a share of the plan under a time budget)."""
        m, o = self.cfg.model, self.cfg.optim
        if self.plan is None:
            late, awp = self.epoch >= m.late_dropout_start, self.epoch >= o.awp_start_epoch
        else:
            epochs = self.cfg.train.epochs
            late = self.plan.switch_on(m.late_dropout_start, epochs, self.epoch)
            awp = self.plan.switch_on(o.awp_start_epoch, epochs, self.epoch)
        self.model.set_late_dropout(late)
        self.step_fn.awp_active = o.awp_lambda > 0 and awp

    def _apply_update(self) -> None:
        samples = self.step_fn.window_samples
        applied, grad_norm, loss = self.step_fn.update()
        if not applied:
            self.window.undo_statistics()  # the skipped window's forward passes moved the running statistics
            if self.step_fn.skip_reason == "overflow":  # fp16: the scaler lowered the scale; normal, not a fault
                self.overflow_skipped += 1
                log.debug("fp16 gradient overflow at step %d: update skipped, loss scale lowered (%d so far)",
                          self.step + 1, self.overflow_skipped)
                return
            self.nonfinite_skipped += 1
            if self.cfg.train.nonfinite == "stop":
                raise NonFiniteLossError(f"non-finite loss at step {self.step + 1} (epoch {self.epoch + 1}); "
                                         f"stopped. The last checkpoint holds the previous good weights")
            self._warn_nonfinite()
            return
        self.step += 1
        if self.plan is not None:  # the plan moved on with this update: switches keyed to its progress
            self._set_switches()
        self.samples_seen += samples
        self._log_loss = self._log_loss + loss  # device tensor: no sync
        self._log_samples += samples
        self._grad_norm = grad_norm
        if self.step % self.cfg.train.log_every == 0:
            self._log_step()

    def _warn_nonfinite(self) -> None:
        log.warning("non-finite loss at step %d (epoch %d): update skipped (%d so far)",
                    self.step + 1, self.epoch + 1, self.nonfinite_skipped)
        if self.nonfinite_skipped == 1:
            self._warn(f"non-finite loss at step {self.step + 1}: update skipped (see nonfinite_skipped)")

    def _budget_reached(self) -> bool:
        t = self.cfg.train
        if t.max_steps and self.step >= t.max_steps:
            return True
        return self.plan is not None and self.plan.finished

    def _epochs_done(self) -> bool:
        epochs = self.cfg.train.epochs
        return bool(epochs) and self.epoch >= epochs

    def _eval_due(self, final: bool) -> bool:
        """Evaluate at this epoch end? Every `eval_every` epochs, and always at the end; under a time
        budget as the plan says (on its clock, the same on every rank)."""
        if final:
            return True
        if self.epoch % self.cfg.train.eval_every:
            return False
        return self.plan is None or self.plan.eval_due(self._evaluated_clock)

    # -- metrics ----------------------------------------------------------------------------------

    def _log_step(self) -> None:
        # SYNC (one per log point): read the loss sum and grad norm together.
        values = [self._log_loss if torch.is_tensor(self._log_loss) else torch.tensor(float(self._log_loss))]
        if self._grad_norm is not None:
            values.append(self._grad_norm.detach().float().reshape(()).to(values[0].device))
        read = torch.stack([v.detach().float() for v in values]).tolist()  # stacked on the device: one transfer
        loss = read[0] / max(1, self._log_samples)
        self.final_train_loss = loss
        samples_per_s, wait, _ = self.meter.read()
        self.measured.update(
            loss=loss, grad_norm=read[1] if len(read) > 1 else None, lr=self._logged_lr(),
            samples_per_s=samples_per_s, data_wait=wait, amp_scale=self.precision.scale)
        self.loss_smooth.update(loss)
        self._log_loss, self._log_samples = 0.0, 0
        self.meter.reset()
        self._emit("step")

    def _logged_lr(self) -> float:
        """The rate of the latest update (what produced the logged loss), not the next one's."""
        used = getattr(self.step_fn, "last_lr", None)
        return float(self.optimizer.param_groups[0]["lr"]) if used is None else used

    @torch.no_grad()
    def evaluate(self) -> dict[str, float | None]:
        """Validation loss (training criterion) and top-1/top-5 over the whole validation split."""
        if self.val_loader is None:
            return {"val_loss": None, "val_top1": None, "val_top5": None}
        dev = self.device
        nb = self.cfg.loader.non_blocking and dev.type == "cuda"
        was_training = self.model.training
        self.model.eval()
        totals = torch.zeros(3, device=dev, dtype=torch.float64)  # loss sum, top1, top5 (on device)
        n = 0
        batches = iter(self.val_loader)
        for batch_no in range(len(self.val_loader)):
            try:
                batch = next(batches)
            except RuntimeError as exc:
                raise worker_crash_error(exc, self.val_loader, 0, batch_no, self.cache.data_dir) from None
            features = batch["features"].to(dev, non_blocking=nb)
            mask = batch["mask"].to(dev, non_blocking=nb)
            labels = batch["labels"].to(dev, non_blocking=nb)
            with self.precision.autocast():
                logits = self.step_fn.forward(features, mask).float()
            loss = F.cross_entropy(logits, labels, reduction="sum", label_smoothing=self.cfg.optim.label_smoothing)
            totals[0] += loss
            totals[1:] += topk_correct(logits, labels, (1, 5))
            n += int(labels.shape[0])
        self.model.train(was_training)
        totals, n = self.dist.reduce_eval(totals, n)  # several processes: sum the shards
        loss_sum, top1, top5 = totals.tolist()  # SYNC (one per evaluation)
        return {"val_loss": loss_sum / max(1, n), "val_top1": top1 / max(1, n), "val_top5": top5 / max(1, n)}

    def _position(self) -> tuple[int, int, int]:
        return self.step, self.epoch, self.batch_in_epoch

    def _evaluate(self) -> bool:
        """Validate, record the metrics, emit `eval`; True when top-1 improved (the caller saves `best`)."""
        if self.plan is not None:
            self._evaluated_clock = self.plan.clock
        self.val_metrics = self.evaluate()
        self._evaluated_at = self._position()
        top1 = self.val_metrics["val_top1"]
        improved = top1 is not None and (self.best_top1 is None or top1 > self.best_top1)
        if improved:
            self.best_top1, self.best_top5 = top1, self.val_metrics["val_top5"]
        self._emit("eval")
        return improved

    # -- status, callbacks, files -------------------------------------------------------------------

    def _emit(self, event: str, **extra: Any) -> None:
        """Refresh the status, write status.json (+ metrics.jsonl for step/eval), call the callbacks."""
        self.status = run_status(self, self.status["state"])
        record = {"event": event, **self.status}
        if event in ("step", "eval"):
            self.run.append_metrics({k: v for k, v in record.items()
                                     if k not in ("aug", "warnings", "skipped_files", "advice")} | {"time": time.time()})
        self.run.write_status(self.status)
        for callback in self.callbacks:
            callback({**record, **extra})

    def _finish(self, state: str) -> dict:
        if state in ("finished", "interrupted") and getattr(self, "_log_samples", 0):
            self._log_step()  # the updates since the last log point: the final train loss includes them
        self.status["state"] = state
        try:
            self._emit("end")
        except Exception:  # noqa: BLE001 - on the way out of a failure, the original error matters
            if state == "finished":
                raise
        return run_summary(self, state, wall=time.perf_counter() - self._t_start,
                             samples=self.samples_seen - self._samples_at_start)

    # -- checkpoints ----------------------------------------------------------------------------------

    def _interrupt(self, signum: int, *, inside_window: bool) -> None:
        """Save `last` as of the last optimizer update and raise TrainingInterrupted."""
        rng = None
        if inside_window:  # drop the window's gradients, rewind to its start
            self.optimizer.zero_grad(set_to_none=True)
            self.step_fn.reset_window()
            self.batch_in_epoch, rng = self.window.rewind()
        path = self._save("last", rng=rng)
        name = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")
        raise TrainingInterrupted(f"stopped by {name} at step {self.step}; saved {path} "
                                  f"(resume with --resume {self.run_dir})", signum=signum)

    def _save_checkpoints(self, *, last: bool, best: bool) -> None:
        """`last` before `best`: on a disk that fills up, the checkpoint a run resumes from comes first."""
        if last:
            self._save("last")
        if best:
            self._save("best")

    def _save(self, kind: str, *, rng: dict | None = None) -> Path:
        model = unwrap_model(self.model)
        state = model.state_dict()
        if not all_finite(state):  # SYNC: never write non-finite weights over a good checkpoint
            raise NonFiniteLossError(f"weights became non-finite by step {self.step}; {kind} checkpoint not "
                                     f"written (the previous one is intact)")
        payload = {
            "fingerprint": self.fingerprint, "config": self.cfg.to_json(), "model": state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "precision": self.precision.state_dict(),
            "progress": {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                         "samples_seen": self.samples_seen, "best_top1": self.best_top1,
                         "best_top5": self.best_top5, "nonfinite_skipped": self.nonfinite_skipped,
                         "budget_used_s": self.local_budget_clock() if self.plan is not None else None,
                         "overflow_skipped": self.overflow_skipped, "loss_smooth": self.loss_smooth.state_dict(),
                         "kind": kind},
            "sampler": self.sampler.state_dict(self.batch_in_epoch) | {"epoch": self.epoch},
            "rng": rng if rng is not None else rng_state(self.device),
            "sign_map": dict(self.cache.sign_map), "metrics": dict(self.val_metrics),
        }
        path = self.run.best_checkpoint if kind == "best" else self.run.last_checkpoint
        if self.dist.is_main:
            save_checkpoint(payload, path)
        if kind == "last":
            self._saved_at = self._position()
        self._emit("checkpoint", path=str(path), kind=kind)
        return path

    def _restore(self, ckpt: dict, *, path: Path | None = None) -> None:
        missing = [k for k in RESUME_KEYS if not isinstance(ckpt.get(k), dict)]
        if missing:  # a file with the asl header but not written by the trainer (or cut down by hand)
            raise CheckpointError(f"cannot resume from it: no {', '.join(missing)} in the checkpoint", path=path)
        unwrap_model(self.model).load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        saved_schedule = ckpt.get("scheduler") or {}
        if self.plan is None and "plan" in saved_schedule:
            raise ConfigError(f"this run was planned for a time budget of {saved_schedule['plan']['budget_s']:g} s; "
                              f"resume it without --epochs/--max-steps/--time-budget 0 (its budget goes on), "
                              f"or start a new run", path=path)
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.precision.load_state_dict(ckpt.get("precision") or {})
        p = ckpt["progress"]
        self.step, self.epoch, self.batch_in_epoch = int(p["step"]), int(p["epoch"]), int(p["batch_in_epoch"])
        self.resumed_from = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}
        self.samples_seen = int(p.get("samples_seen", 0))
        self.best_top1, self.best_top5 = p.get("best_top1"), p.get("best_top5")
        self.nonfinite_skipped = int(p.get("nonfinite_skipped", 0))
        self.overflow_skipped = int(p.get("overflow_skipped", 0))  # absent from checkpoints before it existed
        if self.plan is not None:  # the clock goes on from the checkpoint (evaluation and saving included)
            self._budget_used_before = float(p.get("budget_used_s") or self.plan.clock)
        self.loss_smooth.load_state_dict(p["loss_smooth"])
        self.val_metrics.update(ckpt.get("metrics") or {})
        if self.batch_in_epoch:  # mid-epoch: the sampler continues after the consumed batches
            self.sampler.load_state_dict(ckpt["sampler"])
        self._pending_rng = ckpt["rng"]


def run_worker(cfg: RunConfig, *, resume: str | Path | None = None) -> int:
    """Rank > 0 under `asl train --nproc N`: train silently (rank 0 renders and writes); the exit code.

    Ctrl-C / SIGTERM (torchrun forwards them to every rank) ask the trainer to stop at its next
    safe point, as on rank 0.
    """
    trainer = ASLTrainer(cfg, run_dir=resume, resume=resume)
    previous = {s: signal.signal(s, lambda signum, _frame: trainer.request_stop(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        trainer.fit()
    except TrainingInterrupted as exc:
        return exc.exit_code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        distributed.cleanup()
    return 0


__all__ = ["ASLTrainer", "run_worker", "RESUME_KEYS"]
