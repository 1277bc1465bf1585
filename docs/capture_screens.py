"""Regenerate the screens captured from the real program on a pseudo-terminal: each advice rule in
docs/train.md (`<!-- capture:advice-RULE -->`) and gpu-watch in a container in docs/gpu-watch.md.

    python docs/capture_screens.py

Each GPU rule's screen is the real `asl gpu-watch --once --run RUN --fake-gpu SPEC` at 80 columns,
on a scripted GPU (asl_cli.testing.fake_gpu) and a status.json with the measurements that make the
rule hold (the numbers a run on that GPU would write; no GPU here to make them happen). The CPU
rule's screen is a real `asl train --workers 2` on this 2-core machine, its live dashboard on a
pseudo-terminal: the last frame (one synchronized update, asl_cli.ui.live) with the control codes
taken out.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))

from capture_monitor import replace_block  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_terminal import on_terminal  # noqa: E402

from asl_cli.config import load_config  # noqa: E402

GPU = {"name": "NVIDIA GeForce RTX 4070", "uuid": "GPU-5c2f9a1e-7d43-4b8e-9f10-2a6c3b8d4e71",
       "compute_capability": [8, 9], "memory_total_mib": 12282, "memory_used_mib": 8310, "util_gpu": 97,
       "util_mem": 58, "temperature": 66, "power_w": 188.0, "power_limit_w": 200, "fan": 52, "clock_sm": 2610,
       "clock_mem": 10501, "pcie_gen": 4, "throttle_reasons": 0,
       "processes": [{"pid": 31337, "name": "asl", "used_mib": 8010}]}


def status(**changes) -> dict:
    cfg = load_config("rtx4070").to_dict()
    base = {"run": "rtx4070-20261128-1402", "state": "running", "epoch": 12, "epochs": 100, "step": 9840,
            "total_steps": 83300, "eta_s": 21950, "loss": 2.6104, "loss_smooth": 2.6552, "lr": 9.1e-4,
            "grad_norm": 0.81, "samples_per_s": 1184.6, "data_wait": 0.04, "val_top1": 0.5412, "val_top5": 0.7903,
            "best_top1": 0.5412, "peak_mem_mb": 7810, "peak_mem_source": "cuda_max_allocated",
            "gpu_mem_total_mb": 12282, "precision": "bf16", "device": "cuda:0",
            "gpu_uuid": "5c2f9a1e-7d43-4b8e-9f10-2a6c3b8d4e71", "compile": "on", "compile_graphs": 14,
            "batch_size": 64, "accumulation": 1, "num_workers": 4, "torch_threads": 8, "cpus": 16,
            "overflow_skipped": 0, "nonfinite_skipped": 0, "aug": cfg["aug"]}
    return base | changes


# rule -> (status changes, GPU changes)
GPU_CASES = {
    "data-starved": ({"data_wait": 0.38, "num_workers": 2, "samples_per_s": 702.4}, {"util_gpu": 55}),
    "gpu-underused": ({"batch_size": 32, "accumulation": 4, "samples_per_s": 690.3}, {"util_gpu": 41}),
    "vram-pressure": ({"peak_mem_mb": 11540}, {"memory_used_mib": 11860}),
    "vram-headroom": ({"peak_mem_mb": 3900, "batch_size": 32}, {"memory_used_mib": 4410}),
    "throttling": ({"samples_per_s": 842.0}, {"throttle_reasons": 64, "temperature": 92, "clock_sm": 1410}),
    "recompiling": ({"eager_batches": 37}, {}),
    "non-finite": ({"nonfinite_skipped": 12}, {}),
}


def gpu_screen(rule: str, work: Path) -> str:
    st, gpu = GPU_CASES[rule]
    run = work / "runs" / "rtx4070-20261128-1402"
    run.mkdir(parents=True, exist_ok=True)
    (run / "status.json").write_text(json.dumps(status(**st)))
    spec = work / f"{rule}.json"
    spec.write_text(json.dumps({"driver": "550.54.15", "gpus": [GPU | gpu]}))
    raw = on_terminal([sys.executable, "-m", "asl_cli", "gpu-watch", "--once", "--run", str(run),
                       "--fake-gpu", str(spec)], 80, 60)  # a terminal 80 columns wide, as a user's
    out = plain_text(raw)
    lines = out.splitlines()
    lines[0] = re.sub(r"\d\d:\d\d:\d\d", "14:32:05", lines[0]).replace(f" {os.uname().nodename} ", " gpu-box ")
    lines[0] = re.sub(r"fake GPUs from \S+", "fake GPUs", lines[0])
    assert any(line.startswith(f"advice {rule}:") for line in lines), f"{rule} did not show:\n{out}"
    return "\n".join(lines)


def plain_text(raw: bytes) -> str:
    """What a terminal shows of `raw`, for output drawn top to bottom: control codes and CRs removed."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", raw.decode("utf-8", "replace"))
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def cpu_screen(work: Path) -> str:
    """A real run with 2 loader workers beside its compute threads on 2 cores: the dashboard's last frame."""
    raw = on_terminal([sys.executable, "-m", "asl_cli", "train", "--data", "tests/data/asl-signs-mini",
                       "--workers", "2", "--device", "cpu", "--epochs", "3", "--set", "model.dim=32",
                       "--set", "data.max_len=32", "--set", "data.n_folds=3", "--runs-dir", str(work / "runs"),
                       "--name", "cpu-20261207-0250", "--set", f"data.cache_dir={work / 'cache'}"], 80, 40)
    frames = [f.split(b"\x1b[?2026l")[0] for f in raw.split(b"\x1b[?2026h")[1:]]
    with_advice = [f for f in frames if b"cpu-oversubscribed" in f]
    assert with_advice, raw[-3000:].decode("utf-8", "replace")
    return plain_text(with_advice[-1]).replace(str(work), "/tmp/w")


def container_screen() -> str:
    """`asl gpu-watch` in a container (tests/fixtures/fake_container.json): host PIDs, memory of
    unlisted processes, two GPUs held idle (--idle-after 2 s), at 80 columns: its last frame."""
    raw = on_terminal([sys.executable, "-m", "asl_cli", "gpu-watch", "--fake-gpu", "tests/fixtures/fake_container.json",
                       "--interval", "0.25", "--idle-after", "2", "--count", "12"], 80, 40)
    last = raw.split(b"\x1b[?2026h")[-1].split(b"\x1b[?2026l")[0]
    lines = plain_text(last).splitlines()
    lines[0] = re.sub(r"\d\d:\d\d:\d\d", "14:32:05", lines[0]).replace(f" {os.uname().nodename} ", " gpu-box ")
    return "\n".join(re.sub(r"fake GPUs from \S+", "fake GPUs", line) for line in lines)


def main() -> None:
    os.chdir(ROOT)
    md = ROOT / "docs/train.md"
    with tempfile.TemporaryDirectory() as tmp:
        for rule in GPU_CASES:
            replace_block(md, f"advice-{rule}", gpu_screen(rule, Path(tmp)))
        replace_block(md, "advice-cpu-oversubscribed", cpu_screen(Path(tmp)))
    replace_block(ROOT / "docs/gpu-watch.md", "gpu-watch-container", container_screen())
    print("updated docs/train.md and docs/gpu-watch.md")


if __name__ == "__main__":
    main()
