"""What to fix: a small rule set over what a run already measures, each rule a one-line suggestion.

    advise(status, gpu=None, cores=None) -> [Advice(rule, message), ...]

`status` is the training status (status.json's keys; any may be missing), `gpu` an NVML snapshot of
the GPU the run uses (`asl_cli.monitor.base.GPUSnapshot`, or anything with its fields; None on a CPU
or where no sampler runs). A rule holds or not at each call: advice is shown only while it holds.
Pure functions, no torch, no NVML: the trainer records the training-side rules in status.json
(`advice`), the dashboard and `asl gpu-watch --run` add the GPU-side ones from their snapshots.

Thresholds (docs/train.md#advice):

| rule | holds when |
|---|---|
| `data-starved` | the step waits for data >= 25 % of its wall time (the latest log window); on a CPU only with >= 3 cores (with fewer, the auto plan keeps the data work in the training process on purpose: a worker would slow the compute more) |
| `gpu-underused` | CUDA, GPU utilisation < 60 % while the data wait is < 25 % (the model, not the loader, is small) |
| `vram-pressure` | peak memory >= 92 % of the GPU's |
| `vram-headroom` | CUDA, after 50 updates, peak memory < 45 % of the GPU's |
| `throttling` | NVML reports a thermal or power slowdown of the clocks |
| `recompiling` | torch.compile fell back to eager, or ran batches eagerly past its recompile limit |
| `non-finite` | updates were skipped for a non-finite loss, or fp16 overflows are >= 5 % of the updates |
| `cpu-oversubscribed` | on a CPU, compute threads + loader workers > the cores this process may use |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from asl_cli.units import MIB

DATA_WAIT = 0.25
GPU_UTIL_LOW = 60
VRAM_PRESSURE = 0.92
VRAM_HEADROOM = 0.45
HEADROOM_AFTER_STEPS = 50
OVERFLOW_SHARE = 0.05
THERMAL = {0x20: "software thermal slowdown", 0x40: "hardware thermal slowdown"}
POWER = {0x4: "software power cap", 0x8: "hardware slowdown", 0x80: "hardware power brake"}


@dataclass(frozen=True)
class Advice:
    rule: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _memory_share(status: Mapping[str, Any], gpu: Any) -> tuple[float, float] | None:
    """(peak or used MiB, total MiB) on a GPU: the run's own peak against the card's memory, else
    the memory NVML sees in use."""
    total = _num(status.get("gpu_mem_total_mb"))
    peak = _num(status.get("peak_mem_mb")) if status.get("peak_mem_source") != "rss" else None
    if total and peak is not None:
        return peak, total
    if gpu is not None and _num(getattr(gpu, "memory_total", None)) and _num(getattr(gpu, "memory_used", None)) is not None:
        return gpu.memory_used / MIB, gpu.memory_total / MIB
    return None


def data_starved(status: Mapping[str, Any], cores: int | None = None) -> Advice | None:
    wait = _num(status.get("data_wait"))
    if wait is None or wait < DATA_WAIT:
        return None
    if status.get("device") == "cpu" and (cores is None or cores < 3):
        return None
    workers = status.get("num_workers")
    now = f", now {workers}" if isinstance(workers, int) else ""
    return Advice("data-starved", f"the model waits for data {wait:.0%} of the time: more loader workers "
                                  f"(--workers N{now}), a prepared cache (asl prepare), "
                                  f"--set loader.pin_memory=true on a GPU")


def gpu_underused(status: Mapping[str, Any], gpu: Any) -> Advice | None:
    util = _num(getattr(gpu, "util_gpu", None)) if gpu is not None else None
    wait = _num(status.get("data_wait"))
    if util is None or util >= GPU_UTIL_LOW or (wait is not None and wait >= DATA_WAIT):
        return None
    if not str(status.get("device", "cuda")).startswith("cuda") or status.get("state") not in (None, "running"):
        return None
    batch, accum = status.get("batch_size"), status.get("accumulation") or 1
    more = f" than {batch}" if isinstance(batch, int) else ""
    fewer = (f" with less accumulation (--set train.gradient_accumulation_steps={max(1, accum // 2)})"
             if isinstance(accum, int) and accum > 1 else "")
    return Advice("gpu-underused", f"the GPU is {util:.0f} % busy and the loader keeps up: a larger batch"
                                   f"{more} (--batch-size){fewer}")


def vram(status: Mapping[str, Any], gpu: Any) -> Advice | None:
    share = _memory_share(status, gpu)
    if share is None:
        return None
    used, total = share
    batch, accum = status.get("batch_size"), status.get("accumulation") or 1
    if used >= VRAM_PRESSURE * total:
        split = (f": --batch-size {max(1, batch // 2)} --set train.gradient_accumulation_steps={2 * accum} "
                 f"keeps the update the same" if isinstance(batch, int) and isinstance(accum, int) else "")
        return Advice("vram-pressure", f"GPU memory at {used / total:.0%} of {total / 1024:.1f} GiB, an out-of-memory "
                                       f"error is near{split}")
    step = status.get("step")
    if (used < VRAM_HEADROOM * total and isinstance(step, int) and step >= HEADROOM_AFTER_STEPS
            and isinstance(batch, int) and str(status.get("device", "")).startswith("cuda") and used > 0):
        fits = int(batch * (0.8 * total) / used) // 8 * 8  # a multiple of 8, 80 % of the card
        if fits > batch:
            return Advice("vram-headroom", f"batch {batch} uses {used / total:.0%} of {total / 1024:.1f} GiB: "
                                           f"about --batch-size {fits} would fit")
    return None


def throttling(gpu: Any) -> Advice | None:
    reasons = getattr(gpu, "throttle_reasons", None) if gpu is not None else None
    if not isinstance(reasons, int) or isinstance(reasons, bool):
        return None
    thermal = [name for bit, name in THERMAL.items() if reasons & bit]
    power = [name for bit, name in POWER.items() if reasons & bit]
    if thermal:
        return Advice("throttling", f"the GPU slows its clocks ({', '.join(thermal)}): check its cooling and "
                                    f"airflow; the run is slower than the card can be")
    if power:
        return Advice("throttling", f"the GPU slows its clocks ({', '.join(power)}): it is at its power limit "
                                    f"(nvidia-smi -q -d POWER); expected under full load on a laptop")
    return None


def recompiling(status: Mapping[str, Any]) -> Advice | None:
    state = str(status.get("compile") or "off")
    eager = status.get("eager_batches")
    if state.startswith("fallback"):
        why = status.get("eager_reason")
        return Advice("recompiling", "torch.compile fell back to eager" + (f" ({why})" if why else "") +
                      ": --no-compile saves its start-up time")
    if isinstance(eager, int) and eager > 0:
        return Advice("recompiling", f"{eager} batches ran eagerly past torch.compile's recompile limit: keep "
                                     f"length bucketing on (--set data.length_bucketing=true) or raise "
                                     f"--set data.bucket_step")
    return None


def non_finite(status: Mapping[str, Any]) -> Advice | None:
    skipped = status.get("nonfinite_skipped") or 0
    overflow = status.get("overflow_skipped") or 0
    step = status.get("step") or 0
    if isinstance(skipped, int) and skipped > 0:
        return Advice("non-finite", f"{skipped} updates skipped for a non-finite loss: a lower learning rate "
                                    f"(--set optim.lr=...), gradient clipping (--set train.gradient_clip_val=1), "
                                    f"bf16 rather than fp16 (--set train.precision=bf16)")
    if isinstance(overflow, int) and overflow >= max(3, OVERFLOW_SHARE * (step + overflow)):
        return Advice("non-finite", f"{overflow} fp16 updates overflowed (skipped by the loss scaler): bf16 "
                                    f"where the GPU has it (--set train.precision=bf16)")
    return None


def cpu_oversubscribed(status: Mapping[str, Any], cores: int | None) -> Advice | None:
    if cores is None or status.get("device") != "cpu":
        return None
    threads, workers = status.get("torch_threads"), status.get("num_workers")
    if not isinstance(threads, int) or not isinstance(workers, int) or threads + workers <= cores:
        return None
    return Advice("cpu-oversubscribed", f"{threads} compute thread{'s' * (threads != 1)} + {workers} loader "
                                        f"worker{'s' * (workers != 1)} on {cores} cores: they slow each other; "
                                        f"--workers -1 (auto) shares the cores")


def advise(status: Mapping[str, Any], gpu: Any = None, *, cores: int | None = None) -> list[Advice]:
    """Every rule that holds now, most urgent first (`cores`: the status's `cpus` when not given)."""
    if cores is None and isinstance(status.get("cpus"), int):
        cores = status["cpus"]
    found = [vram(status, gpu), non_finite(status), throttling(gpu), data_starved(status, cores),
             gpu_underused(status, gpu), recompiling(status), cpu_oversubscribed(status, cores)]
    return [a for a in found if a is not None]


__all__ = ["Advice", "advise", "DATA_WAIT", "GPU_UTIL_LOW", "VRAM_PRESSURE", "VRAM_HEADROOM"]
