"""torch.compile over a bucketed sequence of batches: graphs made, batches run eagerly, seconds.

    python benchmarks/bench_compile.py                 # the trainer's CompiledForward (engine/compiled.py)
    python benchmarks/bench_compile.py --variant plain # torch.compile(model, dynamic=None): the old path

The sequence is what a bucketed epoch shows a compiled model: 9 training batches at bucket lengths
16-384 (batch 12), the late-dropout switch turned on after the 5th, a short batch (5 x 48), then
two evaluation batches under no_grad (lengths 32 and 160). Tiny model (dim 32, one block) on the
device given (CPU by default: Inductor compiles there too). A fresh Inductor cache folder is used
unless --warm-cache (a warm cache makes graphs cheaper, not fewer).

Prints one JSON line per batch (graphs so far, seconds) and a summary line: graphs, batches that ran
eagerly (`plain`: Dynamo's recompile limit of 8 is hit silently; `compiled`: counted), total seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LENGTHS = [16, 32, 48, 80, 128, 192, 256, 320, 384]


def main() -> int:
    parser = argparse.ArgumentParser(description="torch.compile over bucketed batches")
    parser.add_argument("--variant", choices=["compiled", "plain"], default="compiled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warm-cache", action="store_true")
    args = parser.parse_args()
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="asl-inductor-")

    import torch
    import torch.nn.functional as F
    from torch._dynamo.utils import counters

    from asl_cli.engine.compiled import CompiledForward, graphs_made
    from asl_cli.model.net import ASLNet

    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = ASLNet(num_classes=10, dim=32, blocks=1, num_heads=4).to(dev)
    torch._dynamo.reset()
    counters.clear()
    notes: list[str] = []
    if args.variant == "plain":
        forward = torch.compile(model, dynamic=None)
    else:
        forward = CompiledForward(model, "default", notes.append, lengths=24)
    batches = [(12, length) for length in LENGTHS] + [(5, 48)]
    g = torch.Generator().manual_seed(0)

    def run(b: int, length: int, train: bool) -> None:
        x = torch.randn(b, length, 708, generator=g).to(dev)
        mask = (torch.arange(length)[None] < torch.randint(1, length + 1, (b, 1), generator=g)).to(dev)
        mask[0] = True
        if train:
            model.train()
            F.cross_entropy(forward(x, mask), torch.zeros(b, dtype=torch.long, device=dev)).backward()
        else:
            model.eval()
            with torch.no_grad():
                forward(x, mask)

    start = time.perf_counter()
    for i, (b, length) in enumerate(batches):
        if i == 5:
            model.set_late_dropout(True)
        begin = time.perf_counter()
        run(b, length, True)
        print(json.dumps({"batch": f"{b}x{length}", "mode": "train", "graphs": graphs_made(),
                          "s": round(time.perf_counter() - begin, 2)}), flush=True)
    for length in (32, 160):
        begin = time.perf_counter()
        run(12, length, False)
        print(json.dumps({"batch": f"12x{length}", "mode": "eval", "graphs": graphs_made(),
                          "s": round(time.perf_counter() - begin, 2)}), flush=True)
    summary = {"variant": args.variant, "torch": torch.__version__, "device": str(dev), "graphs": graphs_made(),
               "batches": len(batches) + 2, "lengths": len(LENGTHS), "total_s": round(time.perf_counter() - start, 1)}
    if isinstance(forward, CompiledForward):
        summary.update(state=forward.state, eager_batches=forward.eager_batches)
    else:
        summary["eager_batches"] = "not counted (Dynamo runs them eagerly in silence past recompile_limit 8)"
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
