"""CPU training steps/s with and without a busy neighbour process, for torch's thread settings.

    python benchmarks/bench_contention.py [--seconds 4] [--rounds 3]

Each variant runs in its own process (OpenMP reads its environment once, at load), on the `cpu`
preset's model with a fixed batch (32 sequences x 32 frames, AdamW): a few warm-up steps, then
`--rounds` timed windows of `--seconds` each. Every variant runs twice: on the quiet machine and
beside one busy-looping Python process (another job on a shared machine). Figures go to
docs/benchmarks.md ("CPU training beside another busy process").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = {  # name -> environment
    "default (torch's threads, spin-waiting)": {},
    "1 thread (OMP_NUM_THREADS=1)": {"OMP_NUM_THREADS": "1"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}

STEPS = r"""
import json, sys, time, torch
import torch.nn.functional as F
from asl_cli.config import load_config
from asl_cli.model import build_model
seconds, rounds = float(sys.argv[1]), int(sys.argv[2])
model = build_model(load_config("cpu").model, 20)
opt = torch.optim.AdamW(model.parameters())
x, mask = torch.randn(32, 32, 708), torch.ones(32, 32, dtype=torch.bool)
y = torch.randint(0, 20, (32,))
def step():
    F.cross_entropy(model(x, mask), y).backward()
    opt.step()
    opt.zero_grad()
for _ in range(5):
    step()
rates = []
for _ in range(rounds):
    t, n = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        step()
        n += 1
    rates.append(n / (time.perf_counter() - t))
print(json.dumps({"threads": torch.get_num_threads(), "steps_per_s": rates}))
"""


def run(env: dict[str, str], seconds: float, rounds: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full = {**os.environ, "PYTHONPATH": root, **env}
    out = subprocess.run([sys.executable, "-c", STEPS, str(seconds), str(rounds)], env=full,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()[0]:.2f}")
    for neighbour in (False, True):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if neighbour else None
        try:
            time.sleep(0.5 if busy else 0)
            for name, env in VARIANTS.items():
                r = run(env, args.seconds, args.rounds)
                rates = sorted(r["steps_per_s"])
                print(json.dumps({"neighbour": "busy" if neighbour else "none", "variant": name,
                                  "threads": r["threads"], "median_steps_per_s": round(rates[len(rates) // 2], 1),
                                  "steps_per_s": [round(v, 1) for v in r["steps_per_s"]]}), flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
