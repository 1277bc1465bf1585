"""Optimizers and the learning-rate schedule: the winner's RAdam + Lookahead, plain RAdam, AdamW.

Weight decay. The winner's notes say "decoupled, 0.1 x lr, following the same cosine". torch's
decoupled decay (AdamW, RAdam(decoupled_weight_decay=True)) already multiplies the decay factor
by the *current* lr: `p <- p - lr_t * weight_decay * p`. So `optim.weight_decay = 0.1` gives a
per-update decay of 0.1 x lr_t, which follows the lr schedule with no extra machinery.
(Caveat, see docs/model.md: TF-Addons' RectifiedAdam, which the notebook used, also multiplies its
`weight_decay` by lr_t; if the notebook passed the schedule 0.1 x lr_t as that argument, its real
per-update decay was 0.1 x lr_t^2, far weaker. We follow the notes' reading.)
Decay applies to weight matrices and convolution kernels only; biases and BatchNorm gamma/beta
(every 1-D parameter) are not decayed, the usual practice for decoupled decay (timm, nanoGPT).

The schedule counts optimizer UPDATES (one per accumulation window), never micro-batches.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn
from torch.optim import Optimizer

from asl_cli.errors import ConfigError

# Keras' default epsilon, as in the winner's TF-Addons RectifiedAdam (torch's RAdam default is 1e-8).
RADAM_EPS = 1e-7


class Lookahead(Optimizer):
    """Lookahead (Zhang et al. 2019) around any optimizer: every `k` updates, slow <- slow + alpha*(fast - slow), fast <- slow.

    The slow weights start as the weights before the first update (as in TF-Addons, which the
    winner used), not at the first sync. `param_groups` is the wrapped optimizer's own list, so LR
    schedulers, GradScaler.unscale_ and gradient clipping see the real groups. `state_dict()` is
    the wrapped optimizer's state dict plus a `lookahead` entry (update counter and slow weights,
    tensors and numbers only, so it loads with `torch.load(weights_only=True)`); loading it
    continues bitwise as if never interrupted.
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5):
        if k < 1:
            raise ValueError(f"lookahead k must be >= 1, got {k}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"lookahead alpha must be in [0, 1], got {alpha}")
        self.optimizer = optimizer
        self.k = int(k)
        self.alpha = float(alpha)
        self.updates = 0  # wrapped-optimizer steps taken so far
        self._initialising = True
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self._initialising = False
        self.param_groups = optimizer.param_groups  # share the very list (and dicts) with the base

    def __getstate__(self) -> dict:
        return self.__dict__.copy()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None):
        params = self._params()
        for p in params:
            if "slow" not in self.state[p]:
                self.state[p]["slow"] = p.detach().clone()
        loss = self.optimizer.step(closure)
        self.updates += 1
        if self.updates % self.k == 0:
            slow = [self.state[p]["slow"] for p in params]
            torch._foreach_lerp_(slow, params, self.alpha)
            torch._foreach_copy_(params, slow)
        return loss

    def add_param_group(self, param_group: dict) -> None:
        # Optimizer.__init__ passes the base's groups through here once (they are already registered
        # there); any later group is registered with the wrapped optimizer, i.e. in the shared list.
        if self._initialising:
            super().add_param_group(param_group)
        else:
            self.optimizer.add_param_group(param_group)

    def state_dict(self) -> dict:
        state = self.optimizer.state_dict()
        slow = {i: self.state[p]["slow"] for i, p in enumerate(self._params()) if "slow" in self.state[p]}
        state["lookahead"] = {"k": self.k, "alpha": self.alpha, "updates": self.updates, "slow": slow}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        lookahead = state_dict.pop("lookahead", None)
        if lookahead is None:
            raise ValueError("not a Lookahead state dict (no 'lookahead' entry)")
        self.optimizer.load_state_dict(state_dict)
        self.param_groups = self.optimizer.param_groups  # load_state_dict replaced the base's list
        self.updates = int(lookahead["updates"])
        params = self._params()
        self.state.clear()
        for i, tensor in lookahead["slow"].items():
            p = params[int(i)]
            if tensor.shape != p.shape:
                raise ValueError(f"lookahead slow weight {i} has shape {tuple(tensor.shape)}, "
                                 f"parameter has {tuple(p.shape)}")
            self.state[p]["slow"] = tensor.detach().to(device=p.device, dtype=p.dtype).clone()

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, {self.optimizer!r})"


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: matrices and kernels (decayed) and 1-D parameters: biases, BN gamma/beta (not decayed)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, optim_cfg, *, lr_scale: float = 1.0) -> Optimizer:
    """The optimizer named by `optim_cfg.optimizer` (asl_cli.config.OptimConfig) at lr = optim_cfg.lr * lr_scale.

    radam_lookahead (winner): Lookahead(RAdam(decoupled_weight_decay=True), k, alpha);
    radam: the same without Lookahead; adamw: torch AdamW. `weight_decay` is torch's decoupled
    factor: per update p <- p - lr_t * weight_decay * p (see the module docstring).
    """
    lr = float(optim_cfg.lr) * float(lr_scale)
    groups = weight_decay_groups(model, float(optim_cfg.weight_decay))
    name = optim_cfg.optimizer
    if name in ("radam_lookahead", "radam"):
        base: Optimizer = torch.optim.RAdam(groups, lr=lr, eps=RADAM_EPS, decoupled_weight_decay=True)
        if name == "radam":
            return base
        return Lookahead(base, k=optim_cfg.lookahead_k, alpha=optim_cfg.lookahead_alpha)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"optim.optimizer: unknown optimizer {name!r} (radam_lookahead, radam, adamw)")


def lr_factor(update: int, *, total_updates: int, warmup_updates: int = 0, floor: float = 0.0,
              schedule: str = "cosine") -> float:
    """Multiplier of the peak lr for the update with index `update` (0-based).

    Linear warm-up over `warmup_updates` (the first update uses peak/warmup_updates, update
    warmup_updates-1 the peak), then either constant or a half cosine from 1 down to `floor` at
    `update == total_updates` (the state after the last update); it stays at `floor` beyond.
    """
    if warmup_updates > 0 and update < warmup_updates:
        return (update + 1) / warmup_updates
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    progress = min(1.0, (update - warmup_updates) / max(1, total_updates - warmup_updates))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def follow_lr_with_decay(optimizer: Optimizer) -> None:
    """`weight_decay_mode = "lr_scaled"`: each group's decay factor is its base factor x the group's
    current lr, so the per-update decay is lr_t x (weight_decay x lr_t), the winner's TF-Addons reading
    (see the module docstring). Call after every change of the lrs."""
    for group in optimizer.param_groups:
        base = group.setdefault("base_weight_decay", group["weight_decay"])
        group["weight_decay"] = base * group["lr"]


class _LambdaLRScaledDecay(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR whose groups' weight decay follows their lr (`follow_lr_with_decay`)."""

    def __init__(self, optimizer: Optimizer, lr_lambda: Any):
        super().__init__(optimizer, lr_lambda)
        follow_lr_with_decay(optimizer)

    def step(self, epoch: int | None = None) -> None:  # noqa: D102 - torch's signature
        super().step(epoch)
        follow_lr_with_decay(self.optimizer)


def build_scheduler(optimizer: Optimizer, optim_cfg, total_updates: int,
                    updates_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR for `optim_cfg.schedule`: warm-up of `warmup_epochs`, then cosine to `min_lr` (absolute) or constant.

    Step it once per optimizer update. Each group ends at `min_lr` whatever its peak lr (lr_scale
    included). The lambdas are closures rebuilt from the config, so a checkpoint stores only the
    update counter and base lrs.
    """
    warmup = int(round(float(optim_cfg.warmup_epochs) * max(1, int(updates_per_epoch))))
    total = max(1, int(total_updates))
    warmup = min(warmup, total)
    schedule = str(optim_cfg.schedule)
    if schedule not in ("cosine", "constant"):
        raise ConfigError(f"optim.schedule: unknown schedule {schedule!r} (cosine, constant)")
    lambdas = []
    for group in optimizer.param_groups:
        peak = float(group.get("initial_lr", group["lr"]))
        floor = min(1.0, float(optim_cfg.min_lr) / peak) if peak > 0 else 0.0

        def factor(update: int, floor: float = floor) -> float:
            return lr_factor(update, total_updates=total, warmup_updates=warmup, floor=floor,
                             schedule=schedule)
        lambdas.append(factor)
    if getattr(optim_cfg, "weight_decay_mode", "decoupled") == "lr_scaled":
        return _LambdaLRScaledDecay(optimizer, lr_lambda=lambdas)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambdas)


__all__ = ["Lookahead", "build_optimizer", "build_scheduler", "follow_lr_with_decay", "lr_factor",
           "weight_decay_groups", "RADAM_EPS"]
