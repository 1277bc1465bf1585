#!/usr/bin/env bash
# Every GPU-only check of the toolkit in one run of under 8 minutes, on a GPU machine that may have
# nothing but python3 and torch. Writes one report: OUT/report.json and OUT/report.txt (plus each
# step's log under OUT/logs/). docs/benchmarks.md "GPU checks" says what to read in it.
#
#   bash benchmarks/device_check.sh [--dry-run] [--wheels DIR] [OUT]      # OUT: default $OUT, else
#                                                                         # ./device-check-out
#   --dry-run     no GPU step runs (each is reported as skipped): the set-up, the test collection,
#                 the benchmark script and the NVML matching (on the scripted fake MIG GPUs) still
#                 run, so the script itself is proven on a machine without a GPU. Without CUDA the
#                 script says so in one line and runs as --dry-run.
#   --wheels DIR  install missing packages from wheels in DIR (pip --no-index), for a machine with no
#                 network: fill DIR beforehand with `pip download -d DIR typer rich pandas pyarrow
#                 nvidia-ml-py pytest` for the machine's Python version.
#
# Set-up: the modules the toolkit and its tests need (typer, rich, numpy, pandas, pyarrow, pynvml,
# pytest) are checked first with $PYTHON (default python3, which must have torch). Whatever is
# missing is installed into a throw-away venv under OUT/.venv whose site-packages also sees the
# system's (a .pth file), so torch is never installed or replaced; when that is impossible the
# script stops with one line naming what is missing. hypothesis, onnx are optional.
#
# Steps (time limits in seconds; they add up to 460, the set-up's install comes before them):
#   env 15       nvidia-smi, torch/CUDA, `asl check-env --require-gpu`
#   tests 70     pytest -m gpu tests (optional packages are imported lazily: collection never fails)
#   shapes 130   bench_gpu.py: fixed-shape steps at 12x384 and 512x384, fp32/bf16/fp16, eager and
#                compiled: samples/s, peak memory, graphs/recompiles (rows not started in time: skipped)
#   nvml 15      NVML sees this process's GPU by the CUDA UUID (a MIG slice too) and lists processes
#   train 60     asl train --preset rtx4070 on real-length data (the asl-signs sample when found,
#                else the synthetic set), compile on: graphs, compile seconds, samples/s from status.json
#   ablate 170   asl ablate --preset rtx4070: cuDNN benchmark, empty_cache, bucketing, compile
#                (data.bucket_step=128: two graphs in all, so that it fits)
#   then, each only if the run is still under 8 minutes: test-fix 60 (`asl test-fix --preset rtx4070`,
#   its compile check given 30 s) and cpu-eff 60 (bench_engine.py efficiency on the CPU)
set -uo pipefail
dry=0
wheels="${ASL_WHEELS:-}"
out=""
while (( $# )); do
  case "$1" in
    --dry-run) dry=1 ;;
    --wheels) wheels="${2:?--wheels needs a folder}"; shift ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) out="$1" ;;
  esac
  shift
done
out="${out:-${OUT:-device-check-out}}"
mkdir -p "$out/logs" && out="$(cd "$out" && pwd)"  # before the cd below: relative to where it was called
cd "$(dirname "$0")/.."
repo="$PWD"
py="${PYTHON:-python3}"
steps="$out/steps.jsonl"
: >"$steps"
export PYTHONUNBUFFERED=1 ASL_CACHE="${ASL_CACHE:-$out/asl-cache}"
note() { echo "device_check: $*" | tee -a "$out/logs/setup.log"; }

record() {  # record NAME STATUS SECONDS REASON: one line of steps.jsonl (the report is built from it)
  "$py" - "$1" "$2" "$3" "$4" >>"$steps" <<'EOF'
import json, sys
name, status, seconds, reason = sys.argv[1:5]
print(json.dumps({"step": name, "status": status, "seconds": int(seconds), "reason": reason or None}))
EOF
}

# --- set-up: python + torch, then the rest (a throw-away venv that reuses the system's torch) ------
if ! "$py" -c "import torch" >/dev/null 2>&1; then
  echo "device_check: $py cannot import torch: install torch for this GPU first (or set PYTHON=...)" >&2
  echo '{"error": "no torch"}' >"$out/report.json"
  exit 3
fi
needed=(typer rich numpy pandas pyarrow pynvml pytest)
declare -A dist=([typer]=typer [rich]=rich [numpy]=numpy [pandas]=pandas [pyarrow]=pyarrow
                 [pynvml]=nvidia-ml-py [pytest]=pytest)
missing() {
  local m gone=()
  for m in "${needed[@]}"; do "$1" -c "import $m" >/dev/null 2>&1 || gone+=("$m"); done
  echo "${gone[*]:-}"
}
gone="$(missing "$py")"
setup_start=$SECONDS
if [[ -n "$gone" ]]; then
  pkgs=()
  for m in $gone; do pkgs+=("${dist[$m]}"); done
  note "installing ${pkgs[*]} into $out/.venv (torch stays the system's)"
  venv="$out/.venv"
  if ! "$py" -m venv "$venv" >>"$out/logs/setup.log" 2>&1; then
    note "cannot make a venv with $py (on Debian/Ubuntu: apt install python3-venv); missing: ${pkgs[*]}"
    record setup failed $((SECONDS - setup_start)) "no venv; missing: ${pkgs[*]}"
    "$py" benchmarks/device_report.py assemble "$out" --dry-run "$dry"
    exit 3
  fi
  # Every package folder $py sees (site-packages, dist-packages, user site, and what .pth files or
  # PYTHONPATH add: a conda env or a venv over another venv too), after the venv's own: torch (and
  # numpy) come from there. The standard library folders are the venv's own already.
  "$py" - >"$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_system_site.pth" <<'EOF'
import os, sys
std = os.path.realpath(os.path.dirname(os.__file__))  # the standard library (and lib-dynload in it)
for p in sys.path:
    real = os.path.realpath(p) if p else ""
    in_std = real == std or real.startswith(std + os.sep)
    if real and os.path.isdir(real) and (not in_std or "site-packages" in real or "dist-packages" in real):
        print(real)
EOF
  pip_args=(-q --disable-pip-version-check)
  [[ -n "$wheels" ]] && pip_args+=(--no-index --find-links "$wheels")
  if ! "$venv/bin/python" -m pip install "${pip_args[@]}" "${pkgs[@]}" >>"$out/logs/setup.log" 2>&1; then
    note "pip could not install ${pkgs[*]} (no network? use --wheels DIR); see logs/setup.log"
    record setup failed $((SECONDS - setup_start)) "pip install failed: ${pkgs[*]}"
    "$py" benchmarks/device_report.py assemble "$out" --dry-run "$dry"
    exit 3
  fi
  py="$venv/bin/python"
  gone="$(missing "$py")"
  if [[ -n "$gone" ]]; then
    note "still missing after the install: $gone"
    record setup failed $((SECONDS - setup_start)) "still missing: $gone"
    "$py" benchmarks/device_report.py assemble "$out" --dry-run "$dry"
    exit 3
  fi
  record setup ok $((SECONDS - setup_start)) "installed ${pkgs[*]} into a venv over the system's torch"
else
  record setup ok 0 "everything needed was installed already"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" py

if (( ! dry )) && ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  note "no CUDA device visible to torch: running as --dry-run (GPU steps skipped)"
  dry=1
fi

# --- steps ------------------------------------------------------------------------------------
asl() { exec "$py" -m asl_cli "$@"; }  # exec: the time limit's signals reach python itself
export -f asl

step() {  # step NAME LIMIT_S COMMAND...: time-limited, logged to logs/NAME.log, recorded in steps.jsonl
  local name=$1 limit=$2 start rc status
  shift 2
  start=$SECONDS
  # SIGTERM at the limit (asl saves a checkpoint on it), SIGKILL 10 s later if still running
  { echo "\$ $*"; timeout -k 10 "$limit" bash -c '"$@"' step "$@"; } >>"$out/logs/$name.log" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  record "$name" "$status" $((SECONDS - start)) "exit $rc"
}
skip() { record "$1" skipped 0 "$2"; }

sample=""
for d in "$repo/shared/data/asl-signs-sample" "$repo/../shared/data/asl-signs-sample" "${ASL_SAMPLE:-/nonexistent}"; do
  [[ -f "$d/train.csv" ]] && sample="$(cd "$d" && pwd)" && break
done
data=(); [[ -n "$sample" ]] && data=(--data "$sample")

env_report() {
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current --format=csv
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu",
    torch.cuda.get_device_name() if torch.cuda.is_available() else None)'
  if [[ "$1" == 1 ]]; then asl check-env; else asl check-env --require-gpu; fi
}
export -f env_report

step env 15 env_report "$dry"
step tests 70 "$py" -m pytest -q -p no:cacheprovider -m gpu tests
if (( dry )); then  # no CUDA: every row says skipped, in seconds (the script itself is what runs)
  step shapes 30 "$py" benchmarks/bench_gpu.py --deadline 20 --json "$out/shapes.json"
  step nvml 15 env ASL_FAKE_GPU="$repo/tests/fixtures/fake_mig.json" \
    "$py" benchmarks/device_report.py nvml --fake-uuid 5e1a0000-0000-0000-0000-000000000001 --json "$out/nvml.json"
  skip train "--dry-run: needs a GPU"
  skip ablate "--dry-run: needs a GPU"
else
  step shapes 130 "$py" benchmarks/bench_gpu.py --deadline 110 --json "$out/shapes.json"
  step nvml 15 "$py" benchmarks/device_report.py nvml --json "$out/nvml.json"
  step train 60 asl train --preset rtx4070 ${data[@]+"${data[@]}"} --max-steps 60 --plain --name device-check \
    --runs-dir "$out/runs" --set data.val_fold=-1
  step ablate 170 asl ablate --preset rtx4070 ${data[@]+"${data[@]}"} --max-steps 20 --plain --name device-check-ablate \
    --runs-dir "$out/runs" --set data.bucket_step=128 --set data.val_fold=-1 \
    --no-cudnn-benchmark --empty-cache --no-bucketing --no-compile
fi
# Extras, each only while the whole run stays under 8 minutes: asl test-fix on the GPU (its inductor
# compile gets 30 s inside a 60 s limit), then the CPU efficiency benchmark on a machine with cores
# to spare (loader workers auto, as shipped).
extra() {  # extra NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  if (( dry )); then
    skip "$name" "--dry-run"
  elif (( SECONDS + limit + 10 <= 480 )); then
    step "$@"
  else
    skip "$name" "no time left in the 8 minutes ($SECONDS s used)"
  fi
}
extra test-fix 60 asl test-fix --preset rtx4070 --compile-timeout 30
extra cpu-eff 60 "$py" benchmarks/bench_engine.py efficiency --device cpu
"$py" benchmarks/device_report.py assemble "$out" --dry-run "$dry" --sample "${sample:-}"
