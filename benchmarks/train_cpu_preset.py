"""The `cpu` preset's promise: >= 90 % top-1 on the participant-held-out validation split of the
default synthetic set, in under 5 minutes of wall-clock time on a 2-core CPU.

    python benchmarks/train_cpu_preset.py [--runs-dir DIR] [--set key=value ...]

Times the whole thing a user waits for: synthetic set (generated once and cached), cache
preparation, and training (`ASLTrainer(load_config("cpu")).fit()`). Prints one JSON line.
Exit status 1 when the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

GOAL_TOP1 = 0.90
GOAL_SECONDS = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default=None, help="where the run folder goes (default: a temp dir)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra key=value overrides")
    args = parser.parse_args()

    import torch

    from asl_cli.config import load_config
    from asl_cli.engine.trainer import ASLTrainer

    started = time.perf_counter()
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="asl-cpu-preset-")
    cfg = load_config("cpu", [f"runs_dir={runs_dir}", *args.sets])
    trainer = ASLTrainer(cfg)
    setup_s = time.perf_counter() - started
    summary = trainer.fit()
    total_s = time.perf_counter() - started
    result = {
        "preset": "cpu", "best_top1": summary["best_top1"], "best_top5": summary["best_top5"],
        "epochs": summary["epochs_done"], "steps": summary["steps"], "setup_s": round(setup_s, 1),
        "train_s": round(summary["wall_s"], 1), "total_s": round(total_s, 1),
        "samples_per_s": round(summary["samples_per_s"], 1), "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "val_sequences": len(trainer.val_loader.dataset) if trainer.val_loader else 0,
        "train_sequences": len(trainer.train_loader.dataset), "run_dir": str(summary["run_dir"]),
        "goal_met": bool(summary["best_top1"] is not None and summary["best_top1"] >= GOAL_TOP1
                         and total_s < GOAL_SECONDS),
    }
    print(json.dumps(result))
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
