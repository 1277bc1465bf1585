#!/usr/bin/env bash
# Every GPU-only check of the toolkit in one prepared run, for a machine with an NVIDIA GPU and
# many cores (written for the development workplace's lent H200, 16 cores, whose image has torch,
# typer, rich, numpy, pandas, pyarrow, nvidia-ml-py and pytest but no hatchling, so nothing is
# installed: the checkout runs from PYTHONPATH).
#
#   bash benchmarks/device_check.sh [OUTPUT_DIR]     # default: $OUT, else ./device-check-out
#
# Each step has its own time limit and writes its own log (six files), so whatever finished comes
# back even when a later step runs out of time. Steps, most valuable first:
#   1-env.txt        GPU, driver, torch, CPU count; `asl check-env --require-gpu`
#   2-tests.txt      the test suite's GPU-marked tests, then every test that takes a CUDA branch
#                    when a GPU is present (trainer, checkpoints, test-fix, check-env, gpu-watch, CLI)
#   3-gpu-bench.txt  bench_engine.py gpu: fp32 / fp16 / bf16 x eager / torch.compile, rtx4070 shapes
#   4-cpu-eff.txt    bench_engine.py efficiency on the CPU with cores to spare: the cpu preset as
#                    shipped (loader.num_workers auto) and with the data in the loop (workers 0)
#   5-cli.txt        asl test-fix, a short `asl train --preset rtx4070` (plain dashboard), gpu-watch
#   summary.txt      one line per step: its exit status and seconds; the script exits with the worst
# The limits below add up to 570 s: one device call of timeout_s=600 holds it all.
set -uo pipefail
out="${1:-${OUT:-device-check-out}}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"  # before the cd below: relative to where it was called
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export ASL_CACHE="${ASL_CACHE:-/tmp/asl-cache}"
export py="${PYTHON:-python3}"
asl() { exec "$py" -m asl_cli "$@"; }  # exec: the time limit's signals reach python itself
worst=0

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $out/NAME, note the result
  local name=$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  # SIGTERM at the limit (asl saves a checkpoint on it), SIGKILL 10 s later if still running
  { echo "\$ $*"; timeout -k 10 "$limit" bash -c '"$@"' step "$@"; } >>"$out/$name" 2>&1
  rc=$?
  (( rc > worst )) && worst=$rc
  echo "$name: exit $rc after $(( $(date +%s) - start )) s: $*" | tee -a "$out/summary.txt"
}

env_report() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$py" -c 'import os, torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
    "gpu", torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    "cores (affinity, cgroup quota)", __import__("asl_cli.parallelism").parallelism.available_cpus(),
    "torch threads", torch.get_num_threads())'
  asl check-env --require-gpu  # last: asl execs
}

export -f asl env_report  # `timeout` runs them in a new bash
step 1-env.txt 30 env_report
step 2-tests.txt 60 "$py" -m pytest -q -m gpu tests
step 2-tests.txt 150 "$py" -m pytest -q -m "not gpu" tests/test_trainer.py tests/test_checkpoint.py \
  tests/test_test_fix.py tests/test_check_env.py tests/test_gpu_watch.py tests/test_cli_train.py
step 3-gpu-bench.txt 120 "$py" benchmarks/bench_engine.py gpu --device cuda
step 4-cpu-eff.txt 60 "$py" benchmarks/bench_engine.py efficiency --device cpu
step 4-cpu-eff.txt 60 "$py" benchmarks/bench_engine.py efficiency --device cpu --set loader.num_workers=0
step 5-cli.txt 45 asl test-fix --preset rtx4070
step 5-cli.txt 35 asl train --preset rtx4070 --max-steps 40 --plain --runs-dir /tmp/asl-runs
step 5-cli.txt 10 asl gpu-watch --count 3
echo "worst exit status: $worst" | tee -a "$out/summary.txt"
exit "$worst"
