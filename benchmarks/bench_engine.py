"""Engine benchmarks, each a side-by-side comparison in one run (figures go to docs/benchmarks.md).

    python benchmarks/bench_engine.py efficiency   # full trainer vs a bare loop, same model/shapes
    python benchmarks/bench_engine.py bucketing    # length-bucketed padding vs padding to 384 (real sample)
    python benchmarks/bench_engine.py gpu --device cuda   # fp32/fp16/bf16 x eager/compile, rtx4070 shapes
    python benchmarks/bench_engine.py all

1. efficiency: samples/s of `ASLTrainer.fit()` (data pipeline with augmentations, the loop, logging,
   status/metrics files) measured between its log points inside one epoch, divided by samples/s of
   a bare forward/backward/clip/step loop over pre-built tensors of exactly the batch shapes the
   trainer saw, same model config, same optimizer, same machine. Goal >= 0.9 on CPU.
2. bucketing: trainer samples/s with length-bucketed dynamic padding vs every batch padded to
   max_len 384 (`data.length_bucketing=false`), on the real asl-signs sample's lengths. Goal >= 10x.
3. gpu: the rtx4070 preset's shapes (batch 12 x 4 accumulation, max_len 384, dim 192) in fp32,
   fp16 and bf16, eager and torch.compile: samples/s and peak allocated memory. Needs CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1].parent / "shared/data/asl-signs-sample"


def _trainer(preset: str, sets: list[str], callbacks=()):
    from asl_cli.config import load_config
    from asl_cli.engine.trainer import ASLTrainer

    runs = tempfile.mkdtemp(prefix="asl-bench-")
    return ASLTrainer(load_config(preset, [f"runs_dir={runs}", "train.checkpoint_every=100000", *sets]),
                      callbacks=callbacks)


def _efficiency_round(sets: list[str], steps: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    from asl_cli.engine.optim import build_optimizer
    from asl_cli.model import build_model

    marks: dict[int, tuple[float, float]] = {}
    shapes: list[tuple[int, int]] = []

    def mark(e):
        if e["event"] == "step":
            marks.setdefault(e["step"], (time.perf_counter(), time.process_time()))

    trainer = _trainer("cpu", [f"train.max_steps={steps}", f"train.log_every={warmup}", *sets], callbacks=[mark])
    if steps >= trainer.updates_per_epoch:
        raise SystemExit(f"steps must stay inside one epoch ({trainer.updates_per_epoch} updates)")
    original = trainer.step_fn.micro_step

    def record(features, mask, labels):
        shapes.append(tuple(features.shape[:2]))
        original(features, mask, labels)

    trainer.step_fn.micro_step = record
    trainer.fit()
    accum = trainer.accum
    timed = shapes[warmup * accum: steps * accum]
    samples = sum(b for b, _ in timed)
    trainer_wall = marks[steps][0] - marks[warmup][0]
    trainer_cpu = marks[steps][1] - marks[warmup][1]

    # The bare loop: same model config, same optimizer, same batch shapes, tensors built beforehand.
    cfg = trainer.cfg
    torch.manual_seed(0)
    model = build_model(cfg.model, trainer.num_classes).to(trainer.device)
    model.train()
    opt = build_optimizer(model, cfg.optim)
    gen = torch.Generator().manual_seed(0)
    batches = []
    for b, length in shapes:
        lengths = torch.randint(1, length + 1, (b,), generator=gen)
        batches.append((torch.randn(b, length, 708, generator=gen).to(trainer.device),
                        (torch.arange(length) < lengths[:, None]).to(trainer.device),
                        torch.randint(0, trainer.num_classes, (b,), generator=gen).to(trainer.device)))
    clip = cfg.train.gradient_clip_val

    def bare(window):
        for i, (x, m, y) in enumerate(window):
            loss = F.cross_entropy(model(x, m), y, label_smoothing=cfg.optim.label_smoothing) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()

    bare(batches[: warmup * accum])  # the same warm-up as the trainer's
    window = batches[warmup * accum: steps * accum]
    t0, c0 = time.perf_counter(), time.process_time()
    bare(window)
    bare_wall, bare_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"trainer_sps": samples / trainer_wall, "bare_sps": samples / bare_wall,
            "ratio_wall": bare_wall / trainer_wall, "ratio_cpu": bare_cpu / trainer_cpu,
            "batch": cfg.train.batch_size, "accum": accum, "num_workers": cfg.loader.num_workers,
            "augmentations": cfg.aug.use_augmentations}


def efficiency(sets: list[str], steps: int = 50, warmup: int = 10, rounds: int = 3) -> dict:
    """Median over `rounds` of (trainer, bare) pairs; the CPU-time ratio (this process's CPU seconds
    per sample) is robust to other programs on a shared machine, the wall ratio is what a user sees
    on a quiet one. With data-loader workers, only the CPU-time ratio leaves out the workers' work."""
    import statistics

    import torch

    runs = [_efficiency_round(sets, steps, warmup) for _ in range(rounds)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("trainer_sps", "bare_sps", "ratio_wall", "ratio_cpu")}
    return {"bench": "efficiency", "trainer_samples_per_s": round(med["trainer_sps"], 1),
            "bare_samples_per_s": round(med["bare_sps"], 1), "ratio_wall": round(med["ratio_wall"], 3),
            "ratio_cpu": round(med["ratio_cpu"], 3), "ratios_wall": [round(r["ratio_wall"], 3) for r in runs],
            "updates_timed": steps - warmup, "rounds": rounds,
            **{k: runs[0][k] for k in ("batch", "accum", "num_workers", "augmentations")},
            "torch_threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2)}


def bucketing(sets: list[str], epochs: int = 3) -> dict:
    if not (SAMPLE_DIR / "train.csv").is_file():
        return {"bench": "bucketing", "skipped": f"real sample not found at {SAMPLE_DIR}"}
    out = {"bench": "bucketing"}
    common = [f"data.data_dir={SAMPLE_DIR}", "data.max_len=384", "data.val_fold=-1", f"train.epochs={epochs}",
              "train.log_every=1000", *sets]
    for label, bucketed in (("bucketed", True), ("padded_384", False)):
        trainer = _trainer("cpu", [*common, f"data.length_bucketing={str(bucketed).lower()}"])
        summary = trainer.fit()  # whole epochs, data pipeline included, no validation split
        out[f"{label}_samples_per_s"] = round(summary["samples_per_s"], 1)
    out["speedup"] = round(out["bucketed_samples_per_s"] / out["padded_384_samples_per_s"], 1)
    out["sequences"] = 168
    return out


def gpu(device: str, steps: int = 60) -> list[dict]:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return [{"bench": "gpu", "skipped": "not measured: no GPU in this environment"}]
    rows = []
    for precision in ("fp32", "fp16", "bf16"):
        for compile_ in (False, True):
            torch.cuda.reset_peak_memory_stats()
            sets = [f"train.device={device}", f"train.max_steps={steps}", f"train.precision={precision}",
                    f"train.use_mixed_precision={'false' if precision == 'fp32' else 'true'}",
                    f"train.compile={str(compile_).lower()}", "train.log_every=20", "data.val_fold=-1"]
            trainer = _trainer("rtx4070", sets)
            summary = trainer.fit()
            rows.append({"bench": "gpu", "precision": summary["precision"], "compile": trainer.status["compile"],
                         "samples_per_s": round(trainer.status["samples_per_s"] or 0, 1),
                         "peak_mem_mb": round(summary["peak_mem_mb"], 1), "device": torch.cuda.get_device_name()})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="engine benchmarks")
    parser.add_argument("which", choices=["efficiency", "bucketing", "gpu", "all"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    results = []
    args.sets = [f"train.device={args.device}", *args.sets]
    if args.which in ("efficiency", "all"):
        results.append(efficiency(args.sets))
    if args.which in ("bucketing", "all"):
        results.append(bucketing(args.sets))
    if args.which in ("gpu", "all"):
        results.extend(gpu(args.device))  # its own device setting (the rtx4070 preset's shapes)
    for r in results:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
