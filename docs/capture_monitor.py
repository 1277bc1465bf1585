"""Regenerate the captured output in docs/gpu-watch.md and docs/check-env.md (and their SVGs).

    python docs/capture_monitor.py

Renders with the scripted fake GPUs (tests/fixtures/fake_gpus.json) through the same renderers
and report functions the commands use, so the docs show real output of this version. Each
markdown file holds its capture between `<!-- capture:NAME -->` and `<!-- /capture -->`.
"""

from __future__ import annotations

import io
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asl_cli.config import load_config  # noqa: E402
from asl_cli.tools.env_report import collect_report  # noqa: E402
from asl_cli.monitor import GPUSampler, open_backend  # noqa: E402
from asl_cli.ui import env as env_view, gpu, training  # noqa: E402

# relative paths (run from the repository root): the captures must not show this machine's paths
FAKE = Path("tests/fixtures/fake_gpus.json")
SAMPLE = Path("tests/data/asl-signs-mini")  # the real files committed with the tests (a fresh clone has them)
WIDTH = 100
NOW = datetime(2026, 11, 28, 14, 32, 5)


def record(renderable, width: int = WIDTH) -> Console:
    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(renderable)
    return console


def demo_status() -> dict:
    cfg = load_config("rtx4070").to_dict()
    cfg["name"] = "rtx4070-20261128-1402"
    return {"run": cfg["name"], "state": "running", "epoch": 37, "epochs": 100, "step": 30821, "total_steps": 83300,
            "eta_s": 9412, "loss": 2.1874, "loss_smooth": 2.2431, "lr": 3.91e-4, "grad_norm": 0.734,
            "samples_per_s": 1184.6, "data_wait": 0.04, "val_top1": 0.6912, "val_top5": 0.8837, "best_top1": 0.6958,
            "peak_mem_mb": 9214, "amp_scale": 65536.0, "precision": "bf16", "device": "cuda:0",
            "compile": "on", "compile_graphs": 14, "compile_s": 612.0, "compile_eager_batches": 0,
            "overflow_skipped": 0, "nonfinite_skipped": 0, "aug": cfg["aug"], "config": cfg}


def captures() -> dict[str, Console]:
    sampler = GPUSampler(open_backend(FAKE), interval=1.0)
    for _ in range(20):  # the sparklines need a history to show
        sampler.sample_once()
    snaps, history = sampler.latest(), sampler.history()
    out = {
        "gpu-watch": record(gpu.watch_frame(snaps, history, host="gpu-box", interval=1.0, now=NOW,
                                               source="fake GPUs")),
        "gpu-watch-run": record(gpu.watch_frame(snaps[:1], {0: history[0]}, status=demo_status(),
                                                   host="gpu-box", interval=1.0, now=NOW, source="fake GPUs")),
        "gpu-watch-plain": None,
    }
    lines = [f"[14:32:05] {gpu.gpu_line(s)}" for s in snaps]
    lines.append(f"[14:32:05] rtx4070-20261128-1402: {training.plain_line(demo_status(), snaps[0])}")
    out["gpu-watch-plain"] = "\n".join(lines)
    report = collect_report(fake_gpu=FAKE, data_dir=SAMPLE if (SAMPLE / "train.csv").is_file() else None)
    report["system"]["executable"] = ".venv/bin/python"  # not this machine's absolute path
    home = str(Path.home())
    for key in ("dir", "cache_dir", "summary"):  # the synthetic default set: ~ for the home folder
        if isinstance(report.get("default_data", {}).get(key), str):
            report["default_data"][key] = report["default_data"][key].replace(home, "~")
    out["check-env"] = record(env_view.env_report_view(report))
    return out


def replace_block(md: Path, name: str, text: str) -> None:
    src = md.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- capture:{re.escape(name)} -->\n).*?(<!-- /capture -->)", re.S)
    if not pattern.search(src):
        raise SystemExit(f"{md}: no <!-- capture:{name} --> block")
    md.write_text(pattern.sub(lambda m: m.group(1) + "```text\n" + text.rstrip() + "\n```\n" + m.group(2), src),
                  encoding="utf-8")


def main() -> None:
    os.chdir(ROOT)
    img = ROOT / "docs/img"
    img.mkdir(exist_ok=True)
    caps = captures()
    for name, md in (("gpu-watch", "gpu-watch.md"), ("gpu-watch-run", "gpu-watch.md"),
                     ("gpu-watch-plain", "gpu-watch.md"), ("check-env", "check-env.md")):
        cap = caps[name]
        if isinstance(cap, str):
            text = cap
        else:
            text = cap.export_text(clear=False)
            svg = cap.export_svg(title=f"asl {name.split('-run')[0]}")
            (img / f"{name}.svg").write_text(svg, encoding="utf-8")
        replace_block(ROOT / "docs" / md, name, text)
    print("updated docs/gpu-watch.md, docs/check-env.md and docs/img/*.svg")


if __name__ == "__main__":
    main()
