"""Quality for time: `asl train --preset cpu --time-budget B` against a plain PyTorch loop, same wall time.

    python benchmarks/bench_quality.py [--work DIR] [--budgets 30,60,120,240,600] [--rounds 3]
                                       [--png [docs/img/quality_curve.png]]

1. Generates (once; reused from --work) the hard synthetic set with held-out signers:
   `asl synth --hard` (64 signs, 40 signers, 2 repetitions; 10 signers held out): WORK/<set>/train
   (30 signers, 3,840 sequences) and WORK/<set>/test (10 other signers, 1,280 sequences), and
   prepares both caches (WORK/cache), so that neither system pays for it inside its budget.
2. For every round and budget B, interleaved (the order of the two systems alternates by round):
   - `asl train --preset cpu --data TRAIN --time-budget B --json --runs-dir WORK/runs --seed S`, then
     `asl evaluate RUN --data TEST --split all --json` (the real CLI, `python -m asl_cli`);
   - `benchmarks/plain_loop.py --data TRAIN --test TEST --seconds B --seed S`.
   Round r uses seed r for both (seed first_seed + r with --first-seed, to add rounds to earlier ones).
3. Writes WORK/quality.json (every run, the medians per budget; rewritten after every run),
   WORK/quality.md (a markdown table) and, with --png, the curve (top-1 against budget).

Both measure top-1 on every sequence of TEST: signers neither system saw. What each budget covers
differs slightly: `asl train` counts from the start of its fit (its validation passes and checkpoints
included; it trains on 4 of 5 participant folds of TRAIN and keeps the best checkpoint), the plain
loop only its training steps (on all of TRAIN, last weights). The wall times of the whole commands
(start-up, evaluation) are in the results too. No figures here: docs/benchmarks.md.

Run it on an otherwise quiet machine: `asl train` plans its torch threads from its cores (it reads
no load), the plain loop takes torch's default (one per core; `--plain-threads N` to pin it), and
two threads beside a busy neighbour run several times slower than one. Every row
records the load average before it. The default set takes ~770 MB in WORK.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's asl_cli (the subprocesses get it through PYTHONPATH)
PLAIN = Path(__file__).resolve().parent / "plain_loop.py"


def run_json(cmd: list[str], env: dict, *, last_event: str | None = None) -> tuple[dict, float]:
    """Run `cmd`; its JSON output (the NDJSON line with event `last_event`, with the `start` event's
    torch_threads) and its wall time."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    threads = [d["torch_threads"] for d in lines if d.get("event") == "start" and "torch_threads" in d]
    if last_event is not None:
        lines = [d for d in lines if d.get("event") == last_event]
    if not lines:
        raise SystemExit(f"no JSON output from: {' '.join(cmd)}\n{proc.stdout[-2000:]}")
    return ({"torch_threads": threads[0]} if threads else {}) | lines[-1], wall


def make_set(args, work: Path) -> Path:
    from asl_cli.data.cache import prepare
    from asl_cli.data.synth import generate_hard

    data = work / f"hard-{args.signs}x{args.participants}x{args.repetitions}-h{args.holdout}-seed{args.data_seed}"
    if not (data / "test" / "train.csv").is_file():  # generate() renames a complete set into place
        print(f"generating the hard set in {data} ...", file=sys.stderr, flush=True)
        s = generate_hard(data, num_signs=args.signs, num_participants=args.participants,
                          repetitions=args.repetitions, seed=args.data_seed, holdout_signers=args.holdout)
        print(f"  {s.sequences:,} sequences, {s.frames:,} frames in {s.seconds:.0f} s", file=sys.stderr)
    for split in ("train", "test"):
        prepare(data / split, work / "cache")
    return data


def asl_run(data: Path, work: Path, budget: float, seed: int, env: dict, extra: list[str]) -> dict:
    train_cmd = [sys.executable, "-m", "asl_cli", "train", "--preset", "cpu", "--data", str(data / "train"),
                 "--time-budget", str(budget), "--json", "--runs-dir", str(work / "runs"), "--seed", str(seed),
                 *extra]
    summary, train_wall = run_json(train_cmd, env, last_event="summary")
    ev, eval_wall = run_json([sys.executable, "-m", "asl_cli", "evaluate", summary["run_dir"], "--data",
                              str(data / "test"), "--split", "all", "--json"], env)
    return {"top1": ev["top1"], "top5": ev["top5"], "epochs": summary["epochs_progress"],
            "fit_s": round(summary["wall_s"], 1), "train_cmd_s": round(train_wall, 1),
            "eval_cmd_s": round(eval_wall, 1), "best_val_top1": summary["best_top1"],
            "stopped_by": summary["stopped_by"], "torch_threads": summary.get("torch_threads"),
            "run_dir": summary["run_dir"]}


def plain_run(data: Path, work: Path, budget: float, seed: int, env: dict, threads: int) -> dict:
    out, wall = run_json([sys.executable, str(PLAIN), "--data", str(data / "train"), "--test", str(data / "test"),
                          "--seconds", str(budget), "--seed", str(seed), "--cache-dir", str(work / "cache"),
                          "--threads", str(threads)], env)
    return {"top1": out["test_top1"], "epochs": out["epochs"], "fit_s": out["train_s"], "cmd_s": round(wall, 1),
            "torch_threads": out["torch_threads"]}


def summarise(runs: list[dict], budgets: list[float]) -> list[dict]:
    rows = []
    for b in budgets:
        mine = {s: [r[s] for r in runs if r["budget"] == b and s in r] for s in ("asl", "plain")}
        if not mine["asl"] or not mine["plain"]:
            continue
        med = {s: statistics.median(x["top1"] for x in mine[s]) for s in mine}
        rows.append({"budget_s": b, "rounds": min(len(mine["asl"]), len(mine["plain"])),
                     "asl_top1": med["asl"], "plain_top1": med["plain"], "difference": med["asl"] - med["plain"],
                     "asl_epochs": statistics.median(x["epochs"] for x in mine["asl"]),
                     "plain_epochs": statistics.median(x["epochs"] for x in mine["plain"]),
                     "asl_wall_s": statistics.median(x["train_cmd_s"] + x["eval_cmd_s"] for x in mine["asl"]),
                     "plain_wall_s": statistics.median(x["cmd_s"] for x in mine["plain"])})
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| budget (s) | rounds | asl top-1 | plain top-1 | difference (points) | asl epochs | plain epochs "
           "| asl wall (s) | plain wall (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['budget_s']:g} | {r['rounds']} | {100 * r['asl_top1']:.1f} % | {100 * r['plain_top1']:.1f} % "
                   f"| {100 * r['difference']:+.1f} | {r['asl_epochs']:.1f} | {r['plain_epochs']:.1f} "
                   f"| {r['asl_wall_s']:.0f} | {r['plain_wall_s']:.0f} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for system, label, colour in (("asl", "asl train --preset cpu", "tab:blue"),
                                  ("plain", "plain PyTorch loop", "tab:orange")):
        ax.plot([r["budget_s"] for r in rows], [100 * r[f"{system}_top1"] for r in rows], "o-", color=colour,
                label=f"{label} (median)")
        pts = [(r["budget"], 100 * r[system]["top1"]) for r in runs if system in r]
        if pts:  # every round's result, faint
            ax.scatter(*zip(*pts), color=colour, alpha=0.3, s=14)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks([r["budget_s"] for r in rows], [f"{r['budget_s']:g}" for r in rows])
    ax.set_xlabel("training budget (s of wall time)")
    ax.set_ylabel("top-1 on held-out signers (%)")
    ax.set_title("Hard synthetic set: quality for time")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="data, caches, runs and results (default: a temp dir)")
    parser.add_argument("--budgets", default="30,60,120,240,600", help="seconds, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="repeats per budget (medians reported)")
    parser.add_argument("--signs", type=int, default=64)
    parser.add_argument("--participants", type=int, default=40, help="signers, held-out ones included")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--holdout", type=int, default=10, help="signers held out for the test folder")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="round r trains with seed first_seed + r (more rounds beside an earlier run's)")
    parser.add_argument("--asl-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `asl train --set` overrides (none by default)")
    parser.add_argument("--plain-threads", type=int, default=0,
                        help="torch threads of the plain loop (0: torch's default, one per core; asl plans its own)")
    parser.add_argument("--png", nargs="?", const=str(ROOT / "docs" / "img" / "quality_curve.png"), default=None,
                        help="write the curve (default path docs/img/quality_curve.png)")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    work = Path(args.work or tempfile.mkdtemp(prefix="asl-quality-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ASL_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    data = make_set(args, work)
    extra = [a for kv in args.asl_set for a in ("--set", kv)]
    info = {"set": str(data), "budgets": budgets, "rounds": args.rounds, "asl_set": args.asl_set,
            "plain_threads": args.plain_threads,
            "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    runs: list[dict] = []
    for r in range(args.rounds):
        for b in budgets:
            seed = args.first_seed + r
            row: dict = {"round": r, "budget": b, "seed": seed, "load_before": round(os.getloadavg()[0], 2)}
            order = ("asl", "plain") if r % 2 == 0 else ("plain", "asl")
            for system in order:
                print(f"round {r + 1}/{args.rounds}, budget {b:g} s: {system} ...", file=sys.stderr, flush=True)
                row[system] = (asl_run(data, work, b, seed, env, extra) if system == "asl"
                               else plain_run(data, work, b, seed, env, args.plain_threads))
            runs.append(row)
            print(json.dumps(row), flush=True)
            rows = summarise(runs, budgets)
            (work / "quality.json").write_text(json.dumps({**info, "summary": rows, "runs": runs}, indent=1))
            (work / "quality.md").write_text(markdown(rows))
    print(markdown(rows))
    if args.png:
        plot(rows, runs, Path(args.png))
    print(f"results: {work / 'quality.json'}, {work / 'quality.md'}" + (f", {args.png}" if args.png else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
