"""Distributed data-parallel training (DDP under torchrun): the one owner of everything multi-process.

    torchrun --nproc-per-node N -m asl_cli train ...      (or: asl train --nproc N ...)

`setup(device_spec)` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT), joins the process group (nccl on CUDA, gloo on the CPU) and returns a `DistContext`;
without torchrun it returns a single-process context whose methods do nothing, so the trainer calls
the same hooks either way. The trainer's hooks:

- data: `ctx.build_loaders` gives each rank a disjoint, equal-count share of the SAME globally
  shuffled, length-bucketed batches (`ShardedBatchSampler`); the cache is prepared by rank 0 first.
- step: `ctx.make_train_step` returns a `DistributedTrainStep`: DDP forward, `no_sync()` on the
  non-final micro-steps of a window, and the window's loss sum and sample count all-reduced once
  per window so accumulation stays exact over all ranks' samples.
- eval: validation is sharded; `ctx.reduce_eval` sums loss / top-1 / top-5 counts and samples.
- files: only rank 0 creates the run folder and writes config, status, metrics and checkpoints
  (`ctx.run_view`, `ctx.is_main`); every rank reads the checkpoint on resume.
See docs/distributed.md.

Over 500 lines on purpose: everything that knows there are several processes lives here (and
only here), so the trainer and the train step stay process-free.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from asl_cli.data.dataset import ResumableBatchSampler
from asl_cli.engine.compiled import CompiledForward
from asl_cli.engine.step import TrainStep
from asl_cli.errors import ConfigError

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def env_world_size(environ: dict | None = None) -> int:
    """WORLD_SIZE as torchrun sets it (1 without torchrun)."""
    env = os.environ if environ is None else environ
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={env.get('WORLD_SIZE')!r} is not a number") from None


def env_rank(environ: dict | None = None) -> int:
    env = os.environ if environ is None else environ
    return int(env.get("RANK", "0") or 0)


# --- the process group ------------------------------------------------------------------------

@dataclass
class DistContext:
    """Who this process is. world_size 1: every collective is a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine (they share its cores)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (the tensor must live on `device`); returned for chaining."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        self.all_reduce_sum(tensor)
        if self.enabled:
            tensor /= self.world_size
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def main_first(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on rank 0, then on the others (e.g. preparing a shared cache without races)."""
        if self.is_main:
            result = fn()
            self.barrier()
            return result
        self.barrier()
        return fn()

    # -- trainer hooks ----------------------------------------------------------------------------

    def check_config(self, cfg) -> None:
        """Settings that several processes cannot honour (none today: a time budget runs on rank 0's
        clock, handed to every rank with each window's all-reduce)."""

    def build_loaders(self, cfg, cache, *, augment=None, device_type: str = "cpu", num_workers: int | None = None):
        """(train, val) loaders: the usual ones, or this rank's shard of the global batches."""
        from asl_cli.data.dataset import build_loaders

        if not self.enabled:
            return build_loaders(cfg, cache, augment=augment, device_type=device_type, num_workers=num_workers)
        wide = copy.deepcopy(cfg)
        wide.train.batch_size = cfg.train.batch_size * self.world_size  # the global batch
        train, val = build_loaders(wide, cache, augment=augment, device_type=device_type, num_workers=num_workers)
        return (_reloader(train, ShardedBatchSampler(train.batch_sampler, self.rank, self.world_size, train=True)),
                None if val is None else
                _reloader(val, ShardedBatchSampler(val.batch_sampler, self.rank, self.world_size, train=False)))

    def prepare_model(self, model: torch.nn.Module, *, sync_bn: bool) -> torch.nn.Module:
        """Masked BN -> synchronised masked BN (in place) when asked; returns the model."""
        if self.enabled and sync_bn:
            convert_sync_masked_bn(model)
        return model

    def make_train_step(self, model, optimizer, precision, *, clock: Callable[[], float], **kwargs) -> TrainStep:
        """`TrainStep` (one process) or `DistributedTrainStep` (DDP) with the same arguments;
        `clock`: this process's time-budget clock (rank 0's is shared with every rank)."""
        if not self.enabled:
            return TrainStep(model, optimizer, precision, **kwargs)
        return DistributedTrainStep(model, optimizer, precision, ctx=self, clock=clock, **kwargs)

    def reduce_eval(self, totals: torch.Tensor, n: int) -> tuple[torch.Tensor, int]:
        """Validation sums over all ranks' shards: (loss sum, top-1, top-5) and the sample count."""
        if not self.enabled:
            return totals, n
        both = torch.cat([totals.double(), torch.tensor([float(n)], dtype=torch.float64, device=totals.device)])
        self.all_reduce_sum(both)
        return both[:-1], int(both[-1].item())

    def shared_run_dir(self, create: Callable[[], Any]):
        """Rank 0 creates the run folder; every rank gets its path (a name with a timestamp)."""
        from asl_cli.engine.run_dir import RunDir

        path = self.broadcast_object(str(create().path) if self.is_main else None)
        return RunDir(path)

    def run_view(self, run):
        """The run folder as this rank may use it: rank 0 writes, the others only read."""
        return run if self.is_main else ReadOnlyRunDir(run.path)


def _reloader(loader, batch_sampler):
    """The same DataLoader settings with another batch sampler (a DataLoader's sampler is fixed)."""
    from torch.utils.data import DataLoader

    kwargs: dict[str, Any] = dict(num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                                  pin_memory=loader.pin_memory)
    if loader.num_workers > 0:
        kwargs.update(persistent_workers=loader.persistent_workers, prefetch_factor=loader.prefetch_factor)
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, **kwargs)


def setup(device_spec: str = "auto", *, timeout_s: float = 1800.0) -> DistContext:
    """Join torchrun's process group (or describe the single process when there is none)."""
    from asl_cli.engine.device import resolve_device

    world = env_world_size()
    if world <= 1:
        device = resolve_device(device_spec)
        if device.type == "cuda" and device.index is not None:
            # cuda:N becomes the current device: the DataLoader's pin-memory thread, default-device
            # torch.cuda calls and kernels' scratch space then use the run's GPU, not GPU 0.
            torch.cuda.set_device(device)
        return DistContext(device=device)
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start with torchrun "
                          f"(or asl train --nproc N)")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    spec = (device_spec or "auto").strip().lower()
    if spec.startswith("cuda:"):
        raise ConfigError(f"train.device {spec!r}: under torchrun each process uses cuda:LOCAL_RANK; "
                          f"give --device cuda or auto")
    base = resolve_device("cuda" if spec == "cuda" else spec)
    if base.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            from asl_cli.errors import NoGPUError
            raise NoGPUError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) on this node "
                             f"(use --nproc-per-node <= the GPU count)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                       device=device, backend=backend)


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --- run folder for ranks other than 0 ----------------------------------------------------------

class ReadOnlyRunDir:
    """Rank > 0's view of the run folder: same paths, every write is skipped (rank 0 writes)."""

    def __init__(self, path):
        from asl_cli.engine.run_dir import RunDir
        self._run = RunDir(path)

    def __getattr__(self, name: str):
        return getattr(self._run, name)

    def hold(self):
        """Rank 0 holds the folder for the whole job; a lock here would collide with it."""
        from asl_cli.engine.run_dir import FolderLock
        return FolderLock(self._run.path, acquire=False)

    def write_config(self, config: dict) -> None:
        pass

    def write_skipped(self, files: list) -> Path:
        return self._run.skipped_path

    def write_status(self, status: dict) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass

    def drop_metrics_after(self, step: int) -> int:
        return 0


# --- the sharded batch sampler --------------------------------------------------------------------

class ShardedBatchSampler(ResumableBatchSampler):
    """This rank's share of the global batches of `base` (a batch sampler built with the GLOBAL batch).

    Every rank builds the same global batch list (same seed, same epoch: same shuffle and length
    buckets) and takes part `rank` of each batch split into `world_size` near-equal parts, so one
    step of W ranks sees exactly the samples one process with batch B x W would see.

    Training (`train=True`): all ranks must run the same number of steps, so a global batch with
    fewer than `world_size` samples (the short last one, when n mod (B x W) < W) is dropped:
    at most W - 1 samples an epoch, a different random set each epoch. Nothing is repeated.
    Validation (`train=False`): nothing is dropped; a rank simply skips an empty part.

    `set_epoch`, `state_dict(batches_done)` and `load_state_dict` work as in the single-process
    samplers (batches_done counts this rank's batches); a state is only valid for the same world size.
    """

    def __init__(self, base, rank: int, world_size: int, *, train: bool):
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in 0..{world_size - 1}")
        super().__init__()
        self.base = base
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.train = bool(train)

    @property
    def batch_size(self) -> int:
        """The per-rank batch size (the global one over world_size)."""
        return -(-self.base.batch_size // self.world_size)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        epoch = self.epoch if epoch is None else int(epoch)
        shares = []
        for batch in self.base.batches(epoch):
            if self.train and len(batch) < self.world_size:
                continue
            part = np.array_split(batch, self.world_size)[self.rank]
            if len(part):
                shares.append(part)
        return shares

    def __len__(self) -> int:
        if self.train:  # the same for every rank and epoch
            n, g = self.base.n, self.base.batch_size
            full, rest = divmod(n, g)
            if self.base.drop_last:
                return full
            return full + (1 if rest >= self.world_size else 0)
        return len(self.batches(0))

    def state_dict(self, batches_done: int | None = None) -> dict[str, int]:
        return self._position(batches_done) | {"seed": self.base.seed, "n": self.base.n,
                                               "batch_size": self.base.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        world = int(state.get("world_size", 1))
        if world != self.world_size:
            raise ConfigError(f"the checkpoint stopped mid-epoch with {world} process(es); resume it with "
                              f"{world} (this run has {self.world_size}), or resume from an epoch boundary")
        if int(state.get("n", self.base.n)) != self.base.n or \
                int(state.get("batch_size", self.base.batch_size)) != self.base.batch_size:
            raise ConfigError(f"sampler state is for {state.get('n')} samples in global batches of "
                              f"{state.get('batch_size')}, not {self.base.n} in {self.base.batch_size}")
        self.base.seed = int(state.get("seed", self.base.seed))
        self._restore_position(state)


# --- the DDP train step ---------------------------------------------------------------------------

_MAX_SIGNAL = 64  # signal numbers are 1..64 on Linux (SIGRTMAX)


class DistributedTrainStep(TrainStep):
    """`TrainStep` over DDP with accumulation that stays exact over all ranks.

    Each micro-step backpropagates loss_sum / (B x accum) (the per-rank nominal window); the
    non-final micro-steps of a window run under `no_sync()`. After the window's last backward,
    one all-reduce sums [loss, samples] over ranks. DDP has averaged the gradients over the W
    ranks, so the gradient is (sum over all samples) / (W x B x accum); `update()` multiplies by
    W x B x accum / (global sample count) when the window was short, which makes it the exact mean
    over every sample of the window on every rank. The summed loss also makes the non-finite
    check agree on all ranks. After each update rank 0's buffers (BN running statistics) are
    broadcast, so every rank evaluates and resumes with the same model. A stop request (Ctrl-C,
    SIGTERM: `stop_vote`) travels in the same all-reduce, so all ranks stop after the same update
    (`agreed_stop`), and so does rank 0's time-budget clock (`shared_clock`).
    """

    def __init__(self, model, optimizer, precision, *, ctx: DistContext, clock: Callable[[], float],
                 nominal_window: int, **kwargs):
        from torch.nn.parallel import DistributedDataParallel as DDP

        super().__init__(model, optimizer, precision, nominal_window=nominal_window, **kwargs)
        self.ctx = ctx
        self.clock = clock
        self.local_nominal = int(nominal_window)
        self.nominal = self.local_nominal * ctx.world_size  # what update() rescales against
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        # broadcast_buffers=False: buffers are broadcast explicitly after each update (see above),
        # which also keeps evaluation (run on the plain module, no collectives) consistent.
        import inspect
        no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
                          else {"broadcast_buffers": False})  # the name changed in newer torch
        self.ddp = DDP(model, device_ids=ids, output_device=ids[0] if ids else None, **no_buffer_sync)
        self.train_forward: Callable = self.ddp
        if isinstance(self.forward, CompiledForward):
            # One compiled object: training through DDP, evaluation on the plain model, one status and
            # the same fallback to eager as one process (a failed compiled backward retries the batch).
            self.forward.train_with(self.ddp)
            self.train_forward = self.forward
        self._buffers = [b for b in model.buffers()]
        self.stop_vote = 0  # a signal number set by trainer.request_stop; agreed on at the window end
        self.agreed_stop: int | None = None  # the signal all ranks stop on after this update
        self.shared_clock: float | None = None  # rank 0's budget clock at the latest window end

    def _sync_context(self, last: bool):
        return contextlib.nullcontext() if last else self.ddp.no_sync()

    def loss_sum(self, features, mask, labels):
        with self.precision.autocast():
            logits = self.train_forward(features, mask)
        return F.cross_entropy(logits.float(), labels, reduction="sum", label_smoothing=self.label_smoothing)

    def micro_step(self, features, mask, labels, *, window_end: bool = True) -> None:
        last = window_end  # gradients are all-reduced at the window's last backward only
        with self._sync_context(last), self._compile_timer():
            loss = self._forward_backward(features, mask, labels, self.local_nominal)
        self.window_loss = self.window_loss + loss.detach()
        self.window_samples += int(labels.shape[0])
        if self.awp_active:
            self.window_batches.append((features, mask, labels))
        if last:
            self._reduce_window()

    def _reduce_window(self) -> None:
        loss = self.window_loss if torch.is_tensor(self.window_loss) else torch.tensor(float(self.window_loss))
        # [samples, one vote slot per signal number 1..64]: ranks asked to stop by different signals
        # (SIGINT on one, SIGTERM on another) must agree on one of them, not on their average.
        # [samples, rank 0's budget clock, one vote slot per signal number 1..64]: a time budget runs on
        # rank 0's clock (the others add 0), so every rank plans and stops at the same update.
        extra = torch.zeros(2 + _MAX_SIGNAL, dtype=torch.float64, device=self.ctx.device)
        extra[0] = float(self.window_samples)
        if self.ctx.is_main:
            extra[1] = self.clock()
        if self.stop_vote > 0:
            extra[1 + min(int(self.stop_vote), _MAX_SIGNAL)] = 1.0
        both = torch.cat([loss.detach().double().reshape(1).to(self.ctx.device), extra])
        self.ctx.all_reduce_sum(both)
        self.window_loss = both[0]
        samples, clock, *votes = both[1:].tolist()  # SYNC (one per window, with the all-reduce)
        self.window_samples = int(samples)
        self.shared_clock = clock
        voted = [signum for signum, n in enumerate(votes, start=1) if n]
        if voted:  # some rank was asked to stop: every rank stops after this same update (lowest signal)
            self.agreed_stop = voted[0]

    def update(self):
        result = super().update()
        with torch.no_grad():
            for b in self._buffers:
                dist.broadcast(b, src=0)
        return result

    def _awp_second_pass(self) -> torch.Tensor:
        """The AWP pass over DDP; returns its loss summed over ALL ranks, so that `update()` checks
        it on every rank (a non-finite loss on one rank skips the update everywhere)."""
        total = torch.zeros((), dtype=torch.float64, device=self.ctx.device)
        with self.awp.perturbed():  # restored even when the pass fails
            self.optimizer.zero_grad(set_to_none=True)
            last = len(self.window_batches) - 1
            for i, (features, mask, labels) in enumerate(self.window_batches):
                with self._sync_context(i == last):
                    loss = self.loss_sum(features, mask, labels)
                    self.precision.backward(loss / self.local_nominal)
                total = total + loss.detach().double()
        return self.ctx.all_reduce_sum(total)


# --- synchronised masked batch norm ---------------------------------------------------------------

class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; its gradient is the sum over ranks of the gradients (each rank's loss
    depends on every rank's contribution)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def _masked_sync_stats(xf: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, biased var, count) over the valid frames of ALL ranks, differentiable.

    Two all-reduces (sum+count, then centred squares) through autograd-aware collectives: the
    backward of a summing all-reduce is a summing all-reduce of the gradients, which is exactly
    the gradient of statistics over the union of the ranks' frames.
    """
    all_reduce = _AllReduceSum.apply
    zero = torch.zeros((), dtype=xf.dtype, device=xf.device)
    local_sum = torch.where(valid, xf, zero).sum(dim=(0, 1))
    local_count = valid.sum().float().reshape(1)
    summed = all_reduce(torch.cat([local_sum, local_count]))
    count = summed[-1].clamp_min(1)
    mean = summed[:-1] / count
    centred = torch.where(valid, xf - mean, zero)
    var = all_reduce(centred.square().sum(dim=(0, 1))) / count
    return mean, var, count


def _sync_masked_bn_forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
        return _MaskedBatchNorm().forward(self, x, mask)
    xf = x.float()
    mean, var, count = _masked_sync_stats(xf, mask.unsqueeze(-1))
    self.update_running_stats(mean, var, count)
    scale = self.weight * torch.rsqrt(var + self.eps)
    return ((xf - mean) * scale + self.bias).to(x.dtype)


def _MaskedBatchNorm():
    from asl_cli.model.blocks import MaskedBatchNorm
    return MaskedBatchNorm


def _sync_masked_bn_class():
    from asl_cli.model.blocks import MaskedBatchNorm

    return type("SyncMaskedBatchNorm", (MaskedBatchNorm,), {
        "__doc__": "MaskedBatchNorm whose train-mode statistics are over the valid frames of all ranks.",
        "forward": _sync_masked_bn_forward, "__module__": __name__})


SyncMaskedBatchNorm = _sync_masked_bn_class()


def convert_sync_masked_bn(model: torch.nn.Module) -> int:
    """Make every MaskedBatchNorm (and nn.BatchNorm*) synchronise its statistics over ranks.

    MaskedBatchNorm modules change class in place (same parameters, buffers and state_dict keys,
    so checkpoints stay interchangeable); torch's own BatchNorm layers, if any, become
    nn.SyncBatchNorm. Returns how many masked layers were converted.
    """
    from asl_cli.model.blocks import MaskedBatchNorm

    converted = 0
    for module in model.modules():
        if type(module) is MaskedBatchNorm:
            module.__class__ = SyncMaskedBatchNorm
            converted += 1
    for name, child in list(model.named_children()):
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            setattr(model, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
        elif not isinstance(child, MaskedBatchNorm):
            _convert_torch_bn(child)
    return converted


def _convert_torch_bn(module: torch.nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm):
            setattr(module, name, torch.nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _convert_torch_bn(child)


# --- the CLI side: launching torchrun ---------------------------------------------------------------

def strip_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` without `--nproc N` / `--nproc=N` (the launcher's own option)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        out.append(arg)
    return out


def train_args_from_argv(argv: Sequence[str]) -> list[str]:
    """The arguments after `train` in this process's command line, without --nproc."""
    argv = list(argv)
    if "train" not in argv[1:]:
        raise ConfigError("--nproc: cannot find the `train` command in the command line; "
                          "run torchrun --nproc-per-node N -m asl_cli train ... instead")
    return strip_nproc(argv[argv.index("train", 1) + 1:])


def torchrun_command(nproc: int, train_args: Sequence[str]) -> list[str]:
    """`python -m torch.distributed.run --nproc-per-node N -m asl_cli train <args>` (single node)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={int(nproc)}",
            "-m", "asl_cli", "train", *train_args]


def launch(nproc: int, train_args: Sequence[str]) -> int:
    """Run torchrun in the foreground and return its exit code (Ctrl-C reaches every rank).

    On Ctrl-C the ranks save and stop together; torchrun itself then exits 1 (with its own
    traceback), so the launcher reports 130 as a single-process `asl train` would.
    """
    from asl_cli.errors import EXIT_SIGINT

    if env_world_size() > 1:
        raise ConfigError("--nproc given inside a torchrun process: start either torchrun or asl train --nproc")
    proc = subprocess.Popen(torchrun_command(nproc, train_args))
    try:
        return proc.wait()
    except KeyboardInterrupt:
        while True:
            try:
                proc.wait()
                return EXIT_SIGINT
            except KeyboardInterrupt:  # more Ctrl-C: torchrun passes them on; keep waiting for it
                continue


__all__ = ["DistContext", "setup", "cleanup", "env_world_size", "env_rank", "ShardedBatchSampler",
           "DistributedTrainStep", "SyncMaskedBatchNorm", "convert_sync_masked_bn", "ReadOnlyRunDir",
           "strip_nproc", "train_args_from_argv", "torchrun_command", "launch"]
