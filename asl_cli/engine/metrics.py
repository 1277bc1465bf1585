"""Training metrics that cost nothing between log points: top-k counts stay on the device,
timers use the host clock, the smoothed loss is updated only with values already read.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from typing import Any

import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """Number of samples whose label is among the top-k logits, for each k (a device tensor, no sync).

    k larger than the number of classes counts every sample (top-5 of 3 classes is always right).
    """
    kmax = min(max(ks), logits.shape[-1])
    top = logits.topk(kmax, dim=-1).indices  # (B, kmax)
    hit = top.eq(labels.unsqueeze(-1))  # (B, kmax), at most one True per row
    return torch.stack([hit[:, : min(k, kmax)].any(dim=-1).sum() for k in ks])


def accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[float]:
    """Top-k accuracies as fractions (syncs: for tests and small evaluations)."""
    counts = topk_correct(logits, labels, ks)
    return [float(c) / max(1, labels.numel()) for c in counts.tolist()]


class SmoothedValue:
    """Exponential moving average with bias correction (the first value is reported as is)."""

    def __init__(self, beta: float = 0.9):
        self.beta = beta
        self._avg = 0.0
        self._n = 0

    def update(self, value: float) -> float:
        if math.isfinite(value):
            self._n += 1
            self._avg = self.beta * self._avg + (1 - self.beta) * value
        return self.value

    @property
    def value(self) -> float | None:
        return self._avg / (1 - self.beta ** self._n) if self._n else None

    def state_dict(self) -> dict:
        return {"avg": self._avg, "n": self._n}

    def load_state_dict(self, state: dict) -> None:
        self._avg, self._n = float(state["avg"]), int(state["n"])


class Throughput:
    """Samples/s and the share of wall time spent waiting for the next batch, between log points.

    The trainer calls `wait_start()` before asking the loader for a batch and `wait_end()` after it,
    and `add(samples)` once a batch is processed. On CUDA the compute side is asynchronous, so the
    wait share is only exact at the log point's sync; it is a good indicator between them.
    `pause()` / `resume()` leave out time spent outside the training loop (evaluation, checkpoints),
    `exclude(seconds)` a stretch inside it that is not training (a torch.compile graph being made).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        now = time.perf_counter()
        paused = getattr(self, "_paused_at", None) is not None
        self._t0 = now
        self._wait = 0.0
        self._samples = 0
        self._mark = now
        # A reset while paused (a log point at an epoch end) stays paused: evaluation comes next.
        self._paused_at: float | None = now if paused else None

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.perf_counter()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._t0 += time.perf_counter() - self._paused_at  # the paused time does not count
            self._paused_at = None

    def wait_start(self) -> None:
        self._mark = time.perf_counter()

    def wait_end(self) -> None:
        self._wait += time.perf_counter() - self._mark

    def add(self, samples: int) -> None:
        self._samples += int(samples)

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` just spent out of the elapsed time (a micro-step that compiled a graph;
        the caller does not `add` its samples either)."""
        self._t0 += max(0.0, float(seconds))

    def read(self) -> tuple[float, float, float]:
        """(samples per second, data-wait share 0..1, elapsed seconds) since the last reset."""
        now = time.perf_counter() if self._paused_at is None else self._paused_at
        elapsed = max(now - self._t0, 1e-9)
        return self._samples / elapsed, min(1.0, self._wait / elapsed), elapsed


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(peak memory in MiB, what it measures): CUDA allocated by tensors, or the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "cpu_peak_rss"


def time_forward(model: torch.nn.Module, features: torch.Tensor, mask: torch.Tensor, *, autocast: Any,
                 threads: int, rounds: int = 3) -> float:
    """Seconds of the fastest forward pass of `model` on (features, mask), the first one left out
    (allocators, kernels); in eval mode under no_grad (no random numbers drawn, no BatchNorm
    statistics moved), on `threads` torch threads (more threads beside a busy core can be many times
    slower, so it is timed as training will run). `autocast`: a context-manager factory."""
    was_training, before = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(threads)
    seconds = []
    try:
        with torch.no_grad(), autocast():
            for _ in range(rounds):
                begin = time.perf_counter()
                model(features, mask)
                if features.device.type == "cuda":
                    torch.cuda.synchronize(features.device)
                seconds.append(time.perf_counter() - begin)
    finally:
        torch.set_num_threads(before)
        model.train(was_training)
    return min(seconds[1:] or seconds)
