"""Engine benchmarks, each a side-by-side comparison in one run (figures go to docs/benchmarks.md).

    python benchmarks/bench_engine.py efficiency   # full trainer vs a bare loop, same model/shapes
    python benchmarks/bench_engine.py bucketing    # length-bucketed padding vs padding to 384 (real sample)
    python benchmarks/bench_engine.py gpu --device cuda   # fp32/fp16/bf16 x eager/compile at 12x384, 512x384
    python benchmarks/bench_engine.py all

1. efficiency: samples/s of `ASLTrainer.fit()` (data pipeline with augmentations, the loop, log
   points writing metrics.jsonl/status.json, the per-epoch checkpoint) divided by samples/s of a
   bare forward/backward/clip/step loop over pre-built tensors of exactly the batch shapes the
   trainer saw, same model config, same optimizer, same process. The two alternate: after every
   log point of the trainer the bare loop replays that segment's shapes (see `efficiency`).
   Goal >= 0.9 on CPU. `--threads N` sets torch's intra-op threads for both.
2. bucketing: trainer samples/s with length-bucketed dynamic padding vs every batch padded to
   max_len 384 (`data.length_bucketing=false`), on the real asl-signs sample's lengths. Goal >= 10x.
3. gpu: benchmarks/bench_gpu.py's fixed shapes (12x384, the rtx4070 preset's micro-batch at its
   max_len, and 512x384, the winner's batch) at the preset's model in fp32, fp16 and bf16, eager
   and torch.compile: samples/s, peak allocated memory, graphs compiled. Needs CUDA.
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


def efficiency(sets: list[str], epochs: int = 4, warmup_segments: int = 3, loop_only: bool = False) -> dict:
    """Full trainer vs bare loop, measured in alternating segments of one process.

    The trainer runs `epochs` whole epochs of the preset (no validation split, so no evaluation
    pass, which a bare loop does not have; log points and the per-epoch `last` checkpoint are
    kept: they are part of the trainer). At each log point a callback runs the bare loop over
    exactly the batch shapes the trainer saw since the previous log point, on its own copy of the
    model and optimizer; the trainer's segment is the time between two callbacks. Pairing
    segments a fraction of a second apart cancels the slow drifts of a shared machine, which
    moved whole-run figures here by 30 % from one minute to the next.

    `loop_only`: the trainer replays batches its data pipeline built before `fit()` (the first
    epoch's, every epoch), so the ratio measures the engine alone: loop, accumulation, finiteness
    check, clipping, schedule, log points, checkpoints.
    """
    import statistics

    import torch
    import torch.nn.functional as F

    from asl_cli.engine.optim import build_optimizer
    from asl_cli.model import build_model

    shapes: list[tuple[int, int]] = []
    segments: list[tuple[float, float, int]] = []  # (trainer s, bare s, samples)
    clock = {"since": None}

    def at_log_point(event: dict) -> None:
        if event["event"] != "step":
            return
        now = time.perf_counter()
        if clock["since"] is not None:
            window = list(shapes)
            t0 = time.perf_counter()
            bare(window)
            segments.append((now - clock["since"], time.perf_counter() - t0, sum(b for b, _ in window)))
        shapes.clear()
        clock["since"] = time.perf_counter()

    trainer = _trainer("cpu", [f"train.epochs={epochs}", "data.val_fold=-1", *sets], callbacks=[at_log_point])
    micro_step = trainer.step_fn.micro_step

    def record(features, mask, labels, **kwargs):
        shapes.append(tuple(features.shape[:2]))
        micro_step(features, mask, labels, **kwargs)

    trainer.step_fn.micro_step = record

    # The bare loop: same model config, same optimizer, tensors built beforehand (one per shape).
    cfg, dev, accum = trainer.cfg, trainer.device, trainer.accum
    torch.manual_seed(0)
    model = build_model(cfg.model, trainer.num_classes).to(dev)
    model.train()
    opt = build_optimizer(model, cfg.optim)
    gen = torch.Generator().manual_seed(0)
    prebuilt: dict[tuple[int, int], tuple] = {}

    def tensors(b: int, length: int) -> tuple:
        if (b, length) not in prebuilt:
            lengths = torch.randint(1, length + 1, (b,), generator=gen)
            prebuilt[(b, length)] = (torch.randn(b, length, 708, generator=gen).to(dev),
                                     (torch.arange(length) < lengths[:, None]).to(dev),
                                     torch.randint(0, trainer.num_classes, (b,), generator=gen).to(dev))
        return prebuilt[(b, length)]

    def bare(window: list[tuple[int, int]]) -> None:
        for i, (b, length) in enumerate(window):
            x, m, y = tensors(b, length)
            loss = F.cross_entropy(model(x, m), y, label_smoothing=cfg.optim.label_smoothing) / accum
            loss.backward()
            if (i + 1) % accum == 0 or i + 1 == len(window):
                if cfg.train.gradient_clip_val > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.gradient_clip_val)
                opt.step()
                opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if loop_only:
        built = list(trainer.train_loader)

        class Replay:  # what the loop needs of a DataLoader: iteration and length
            def __iter__(self):
                return iter(built)

            def __len__(self):
                return len(built)

        trainer.train_loader = Replay()
    trainer.fit()
    timed = segments[warmup_segments:]
    if len(timed) < 5:
        raise SystemExit(f"only {len(timed)} timed segments: raise --epochs or lower train.log_every")
    ratios = [b / t for t, b, _ in timed]
    quart = statistics.quantiles(ratios, n=4)
    samples = sum(n for *_, n in timed)
    trainer_s, bare_s = sum(t for t, _, _ in timed), sum(b for _, b, _ in timed)
    return {"bench": "efficiency", "trainer_samples_per_s": round(samples / trainer_s, 1),
            "bare_samples_per_s": round(samples / bare_s, 1), "ratio": round(bare_s / trainer_s, 3),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_quartiles": [round(quart[0], 3), round(quart[2], 3)],
            "segments": len(timed), "updates_per_segment": cfg.train.log_every, "samples_timed": samples,
            "batch": cfg.train.batch_size, "accum": accum, "num_workers": cfg.loader.num_workers,
            "augmentations": cfg.aug.use_augmentations, "data_pipeline": "replayed" if loop_only else "live",
            "torch_threads": trainer.parallel.torch_threads,  # during fit(), which also ran the bare loop
            "load_avg_1m": round(os.getloadavg()[0], 2)}


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


def gpu(device: str, steps: int = 20) -> list[dict]:
    """The fixed-shape rows of bench_gpu.py (12x384 and 512x384; fp32/fp16/bf16; eager and compiled).

    (This used to train the rtx4070 preset on the synthetic set, whose lengths (4-256 frames, mostly
    16-48) never reach 384, with every compiled trainer kept alive across rows: neither the shapes
    nor the peak memory were the preset's.)
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_gpu import shapes_bench

    return shapes_bench(device, [(12, 384), (512, 384)], ["fp32", "fp16", "bf16"], [False, True], dim=192,
                        blocks=2, steps=steps, warmup=3, deadline=None,
                        emit=lambda row: print(json.dumps(row), flush=True))


def main() -> int:
    parser = argparse.ArgumentParser(description="engine benchmarks")
    parser.add_argument("which", choices=["efficiency", "bucketing", "gpu", "all"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--loop-only", action="store_true",
                        help="efficiency: replay pre-built batches (the engine's own overhead, no data pipeline)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = []
    args.sets = [f"train.device={args.device}", *args.sets]
    if args.which in ("efficiency", "all"):
        results.append(efficiency(args.sets, loop_only=args.loop_only))
    if args.which in ("bucketing", "all"):
        results.append(bucketing(args.sets))
    for r in results:
        print(json.dumps(r))
    if args.which in ("gpu", "all"):
        gpu(args.device)  # its own shapes (bench_gpu.py); prints each row as it comes, skipped ones too
    return 0


if __name__ == "__main__":
    sys.exit(main())
