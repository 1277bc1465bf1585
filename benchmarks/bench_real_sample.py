"""Real data, held-out signers: `asl train --preset cpu` on the real asl-signs sample, out of the box.

    python benchmarks/bench_real_sample.py [--sample ../shared/data/asl-signs-sample] [--work DIR]
                                           [--rounds 1] [--seeds 42] [--every 3] [--offset 2]
                                           [--set KEY=VALUE ...]

The sample (168 real Kaggle sequences, signs `hello` and `thankyou`, 21 signers, 8 sequences each;
its README.md) is split by participant: of the signers sorted by id, every `--every`-th one from
`--offset` is held out (default: 7 test signers, 56 sequences; 14 train signers, 112 sequences).
WORK/train and WORK/test are complete asl-signs folders: links to the parquet files (copies where
links cannot be made), their train.csv rows and the official sign map.

Each round and seed runs the real CLI with nothing but the preset: `asl train --preset cpu
--data TRAIN --json --seed S` (in WORK, so the run goes to WORK/runs), then `asl evaluate RUN
--data TEST --split all --json`. Prints one JSON line per run and a summary line with the
median top-1 against the goal (0.97). Exit status 1 when the median misses it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_TOP1 = 0.97
SAMPLE = ROOT.parent / "shared" / "data" / "asl-signs-sample"  # beside the checkout, as the tests find it


def split_sample(sample: Path, work: Path, every: int, offset: int) -> tuple[Path, Path, list[str]]:
    """WORK/train and WORK/test from the sample, split by participant; the held-out participant ids."""
    with open(sample / "train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    people = sorted({r["participant_id"] for r in rows}, key=int)
    held = [p for i, p in enumerate(people) if i % every == offset % every]
    for split in ("train", "test"):
        folder = work / split
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "train_landmark_files").mkdir(parents=True)
        shutil.copyfile(sample / "sign_to_prediction_index_map.json", folder / "sign_to_prediction_index_map.json")
        mine = [r for r in rows if (r["participant_id"] in held) == (split == "test")]
        for r in mine:
            dst = folder / r["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink((sample / r["path"]).resolve(), dst)
            except OSError:
                shutil.copyfile(sample / r["path"], dst)
        with open(folder / "train.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "participant_id", "sequence_id", "sign"], lineterminator="\n")
            w.writeheader()
            w.writerows(mine)
    return work / "train", work / "test", held


def run_json(cmd: list[str], env: dict, cwd: Path, event: str | None = None) -> tuple[dict, float]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    found = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    found = [d for d in found if event is None or d.get("event") == event]
    if not found:
        raise SystemExit(f"no JSON output from: {' '.join(cmd)}")
    return found[-1], wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default=str(SAMPLE), help="the asl-signs sample folder")
    parser.add_argument("--work", default=None, help="split folders, caches and runs (default: a temp dir)")
    parser.add_argument("--rounds", type=int, default=1, help="repeats of every seed")
    parser.add_argument("--seeds", default="42", help="train.seed values, comma-separated (42: the default)")
    parser.add_argument("--every", type=int, default=3, help="hold out every N-th signer (sorted by id)")
    parser.add_argument("--offset", type=int, default=2, help="...starting at this one (0-based)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting on top of the preset, passed to `asl train --set` (to try a change)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="asl-real-sample-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train, test, held = split_sample(Path(args.sample), work, args.every, args.offset)
    env = {**os.environ, "ASL_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    asl = [sys.executable, "-m", "asl_cli"]
    results = []
    for r in range(args.rounds):
        for seed in (int(s) for s in args.seeds.split(",")):
            summary, train_s = run_json([*asl, "train", "--preset", "cpu", "--data", str(train), "--json",
                                         "--seed", str(seed), *(a for kv in args.sets for a in ("--set", kv))],
                                        env, work, event="summary")
            ev, eval_s = run_json([*asl, "evaluate", summary["run_dir"], "--data", str(test), "--split", "all",
                                   "--json"], env, work)
            row = {"round": r, "seed": seed, "test_top1": ev["top1"], "test_n": ev["n"], "correct": ev["correct"],
                   "best_val_top1": summary["best_top1"], "epochs": summary["epochs_progress"],
                   "train_cmd_s": round(train_s, 1), "eval_cmd_s": round(eval_s, 1),
                   "run_dir": str(work / summary["run_dir"])}  # relative to WORK, where asl ran
            results.append(row)
            print(json.dumps(row), flush=True)
    top1 = [r["test_top1"] for r in results]
    median = statistics.median(top1)
    print(json.dumps({"summary": True, "settings": args.sets, "held_out_signers": held, "train_dir": str(train), "test_dir": str(test),
                      "runs": len(top1), "test_top1_median": median, "test_top1_min": min(top1),
                      "test_top1_max": max(top1), "goal": GOAL_TOP1, "goal_met": median >= GOAL_TOP1}))
    return 0 if median >= GOAL_TOP1 else 1


if __name__ == "__main__":
    sys.exit(main())
