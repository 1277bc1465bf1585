"""Recipe options measured on held-out signers at equal time (issue 16's "options the benchmark decides").

    python benchmarks/try_recipe_options.py --work ~/asl-quality --budget 120 [--set key=value ...] [--seed 0]

Trains the `cpu` preset with `--time-budget B` (in this process, `ASLTrainer`) on the hard set's
TRAIN folder that `bench_quality.py` made in WORK, and scores on every TEST sequence (signers it
never saw), in one run:
- the final weights (the schedule's end, at min_lr) and the best checkpoint (what `asl evaluate`
  takes: chosen on the run's own validation fold);
- exponential moving averages of the weights (decays 0.99 and 0.998, updated after every optimizer
  update; BatchNorm statistics taken from the live model), the usual remedy for short budgets.
`--set` tries other settings at the same budget: a larger model (`model.dim=128`,
`model.blocks=2`), the winner's TF-Addons weight decay (`optim.weight_decay_mode=lr_scaled`), ...
Prints one JSON line. The figures and what was kept: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asl_cli.config import load_config  # noqa: E402
from asl_cli.data.cache import prepare  # noqa: E402
from asl_cli.data.dataset import SignDataset, collate  # noqa: E402
from asl_cli.engine.checkpoint import load_checkpoint  # noqa: E402
from asl_cli.engine.trainer import ASLTrainer  # noqa: E402

DECAYS = (0.99, 0.998)


@torch.no_grad()
def top1(model: torch.nn.Module, cache, cfg) -> float:
    ds = SignDataset(cache, np.arange(len(cache)), max_len=cfg.data.max_len, augment=None)
    samples = [ds[i] for i in range(len(ds))]
    order = np.argsort([s["features"].shape[0] for s in samples], kind="stable")
    model.eval()
    correct = 0
    for i in range(0, len(order), 64):
        b = collate([samples[j] for j in order[i:i + 64]], bucket_step=cfg.data.bucket_step, max_len=cfg.data.max_len)
        correct += int((model(b["features"], b["mask"]).argmax(1) == b["labels"]).sum())
    return correct / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="bench_quality.py's work folder (the hard set and caches)")
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    work = Path(args.work).expanduser()
    data = sorted(work.glob("hard-*"))[-1]
    cfg = load_config("cpu", [f"data.data_dir={data / 'train'}", f"data.cache_dir={work / 'cache'}",
                              f"train.time_budget={args.budget}", f"train.seed={args.seed}", "train.log_every=1",
                              f"runs_dir={tempfile.mkdtemp(prefix='asl-options-')}", *args.sets])
    test = prepare(data / "test", work / "cache")
    trainer = ASLTrainer(cfg)
    params = [p for p in trainer.model.parameters()]
    averages = {d: [p.detach().clone() for p in params] for d in DECAYS}

    def follow(event: dict) -> None:
        if event["event"] == "step":  # log_every = 1: after every optimizer update
            for d, avg in averages.items():
                torch._foreach_lerp_(avg, [p.detach() for p in params], 1 - d)

    trainer.callbacks.append(follow)
    summary = trainer.fit()
    scores = {"final": top1(trainer.model, test, cfg)}
    best = copy.deepcopy(trainer.model)
    best.load_state_dict(load_checkpoint(summary["best_checkpoint"])["model"])
    scores["best"] = top1(best, test, cfg)
    for d, avg in averages.items():
        ema = copy.deepcopy(trainer.model)
        with torch.no_grad():
            for p, a in zip(ema.parameters(), avg):
                p.copy_(a)
        scores[f"ema_{d}"] = top1(ema, test, cfg)
    print(json.dumps({"budget": args.budget, "seed": args.seed, "sets": args.sets, "test_top1": scores,
                      "epochs": round(summary["epochs_progress"], 1), "steps": summary["steps"],
                      "wall_s": round(summary["wall_s"], 1), "best_val_top1": summary["best_top1"]}))


if __name__ == "__main__":
    main()
