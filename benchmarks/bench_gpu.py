"""Fixed-shape training steps of the real engine on a GPU: samples/s, peak memory, graphs compiled.

    python benchmarks/bench_gpu.py                                   # 12x384 and 512x384, bf16/fp16/fp32,
                                                                     # eager and compiled, on cuda
    python benchmarks/bench_gpu.py --deadline 200 --json rows.json   # stop starting rows after 200 s
    python benchmarks/bench_gpu.py --device cpu --shapes 2x16 --precisions fp32 --dim 32 --steps 2
                                                                     # a smoke run anywhere (tests)

Each row is one (batch x length, precision, compile) at the rtx4070 preset's model (dim 192 x 2
blocks, 250 classes, RAdam+Lookahead, clip 1.0): `TrainStep.micro_step` + `update` on tensors
built beforehand (no data pipeline: the engine and the model alone), `--warmup` steps (the compile
happens there) then `--steps` timed steps with a synchronize at both ends. Rows run one after the
other in this process; between rows the model, optimizer and compiled graphs are dropped
(`torch._dynamo.reset()`, `empty_cache()`), and the peak-memory counter is reset, so a row's peak
is its own. A row that runs out of memory is reported as such; rows not started before
`--deadline` seconds are reported as skipped. Rows are printed, and written to `--json`, as each
finishes (a time limit keeps what is done). Without CUDA (and `--device cuda`) every row is
reported as skipped: nothing fails.

Columns: samples_per_s, peak_mem_mb (torch.cuda.max_memory_allocated; the CPU's peak RSS on a
CPU), graphs (compiled for the row; a fixed shape needs 1), recompiles (graphs - 1: must be 0),
eager_batches (past the recompile limit), compile_s (the warm-up steps that compiled).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The least time worth starting a row with, eager / compiled (a graph at dim 192 takes tens of seconds
# to build: a compiled row started later is likely cut off by the caller's time limit).
ESTIMATE_S = {False: 10.0, True: 40.0}


def _row(device: str, batch: int, length: int, precision: str, compiled: bool, *, dim: int, blocks: int,
         steps: int, warmup: int) -> dict:
    import torch

    from asl_cli.config import load_config
    from asl_cli.engine.compiled import CompiledForward
    from asl_cli.engine.metrics import peak_memory_mb
    from asl_cli.engine.optim import build_optimizer
    from asl_cli.engine.precision import Precision
    from asl_cli.engine.step import TrainStep
    from asl_cli.model import build_model

    cfg = load_config("rtx4070", [f"model.dim={dim}", f"model.blocks={blocks}"])
    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_model(cfg.model, 250).to(dev).train()
    optimizer = build_optimizer(model, cfg.optim)
    notes: list[str] = []
    forward = CompiledForward(model, cfg.train.compile_mode, notes.append, lengths=1) if compiled else model
    step = TrainStep(model, optimizer, Precision(dev.type, precision), nominal_window=batch,
                     clip_val=cfg.train.gradient_clip_val, forward=forward)
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(max(1, length // 2), length + 1, (batch,), generator=g)
    lengths[0] = length  # the batch's longest fills the padded length, as the loader's buckets do
    features = torch.randn(batch, length, 708, generator=g).to(dev)
    mask = (torch.arange(length) < lengths[:, None]).to(dev)
    labels = torch.randint(0, 250, (batch,), generator=g).to(dev)

    def run(n: int) -> None:
        for _ in range(n):
            step.micro_step(features, mask, labels)
            step.update()

    row = {"shape": f"{batch}x{length}", "precision": precision, "compile": compiled}
    try:
        begin = time.perf_counter()
        run(warmup)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        warm_s = time.perf_counter() - begin
        begin = time.perf_counter()
        run(steps)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        elapsed = time.perf_counter() - begin
        peak, source = peak_memory_mb(dev)
        row.update(samples_per_s=round(batch * steps / elapsed, 1), step_ms=round(1000 * elapsed / steps, 2),
                   peak_mem_mb=round(peak, 1), peak_mem_source=source, warmup_s=round(warm_s, 1))
        if isinstance(forward, CompiledForward):
            row.update(compile_state=forward.state, graphs=forward.graphs, recompiles=max(0, forward.graphs - 1),
                       eager_batches=forward.eager_batches, compile_s=round(forward.compile_s, 1))
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
    if notes:
        row["notes"] = notes
    del step, forward, optimizer, model, features, mask, labels
    return row


def shapes_bench(device: str, shapes: list[tuple[int, int]], precisions: list[str], compiles: list[bool], *,
                 dim: int, blocks: int, steps: int, warmup: int, deadline: float | None,
                 emit=lambda row: None) -> list[dict]:
    import torch

    start = time.perf_counter()
    rows: list[dict] = []
    cuda_ok = torch.cuda.is_available()
    # Eager rows first (quick), then the compiled ones, the first precision given at every shape
    # before the next precision: what a deadline cuts off is the least asked for.
    for compiled in compiles:
        for precision in precisions:
            for batch, length in shapes:
                row = {"shape": f"{batch}x{length}", "precision": precision, "compile": compiled}
                left = None if deadline is None else deadline - (time.perf_counter() - start)
                if device.startswith("cuda") and not cuda_ok:
                    row["skipped"] = "no CUDA device here"
                elif precision == "bf16" and device.startswith("cuda") and torch.cuda.get_device_capability()[0] < 8:
                    row["skipped"] = "no bf16 on this GPU"
                elif left is not None and left < ESTIMATE_S[compiled]:
                    row["skipped"] = f"out of time ({left:.0f} s left of --deadline {deadline:g})"
                else:
                    if device.startswith("cuda"):
                        torch.cuda.reset_peak_memory_stats()
                    row = _row(device, batch, length, precision, compiled, dim=dim, blocks=blocks, steps=steps,
                               warmup=warmup)
                    gc.collect()
                    if compiled:
                        torch._dynamo.reset()  # the next row compiles its own graphs, counted from zero
                    if device.startswith("cuda"):
                        torch.cuda.empty_cache()
                if device.startswith("cuda") and cuda_ok:
                    row["device"] = torch.cuda.get_device_name()
                rows.append(row)
                emit(row)
    return rows


def _shape(text: str) -> tuple[int, int]:
    b, _, length = text.lower().partition("x")
    return int(b), int(length)


def main() -> int:
    parser = argparse.ArgumentParser(description="fixed-shape GPU training steps (see the module docstring)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", default="12x384,512x384", help="batch x length, comma separated")
    parser.add_argument("--precisions", default="bf16,fp16,fp32")
    parser.add_argument("--no-compile", action="store_true", help="eager rows only")
    parser.add_argument("--only-compile", action="store_true", help="compiled rows only")
    parser.add_argument("--dim", type=int, default=192)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--deadline", type=float, default=None, help="seconds: start no row after this")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    compiles = [False] if args.no_compile else [True] if args.only_compile else [False, True]
    done: list[dict] = []

    def emit(row: dict) -> None:  # printed and saved as each row finishes: a time limit keeps what is done
        print(json.dumps(row), flush=True)
        done.append(row)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(done, indent=2) + "\n", encoding="utf-8")

    shapes_bench(args.device, [_shape(s) for s in args.shapes.split(",")], args.precisions.split(","), compiles,
                 dim=args.dim, blocks=args.blocks, steps=args.steps, warmup=args.warmup, deadline=args.deadline,
                 emit=emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
