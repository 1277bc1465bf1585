"""benchmarks/device_check.sh and its helpers, as far as a machine without a GPU can run them.

The whole script's dry run (a clean venv with only torch, --dry-run) is in docs/benchmarks.md; it
installs packages, so it is not part of the suite. Here: the script parses, the fixed-shape benchmark
reports every row as skipped without CUDA, the NVML matching finds a MIG slice on the fake GPUs, and
the report is assembled from the steps' files.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_script_parses_and_prints_its_help():
    assert subprocess.run(["bash", "-n", str(BENCH / "device_check.sh")]).returncode == 0
    out = subprocess.run(["bash", str(BENCH / "device_check.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--dry-run" in out.stdout and "set -uo" not in out.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_fixed_shape_rows_are_skipped_without_cuda():
    bench_gpu = load("bench_gpu")
    rows = bench_gpu.shapes_bench("cuda", [(12, 384), (512, 384)], ["bf16", "fp32"], [False, True], dim=192,
                                  blocks=2, steps=1, warmup=1, deadline=None)
    assert len(rows) == 8 and all(r["skipped"] == "no CUDA device here" for r in rows)
    assert [(r["shape"], r["precision"], r["compile"]) for r in rows[4:6]] == [("12x384", "bf16", True),
                                                                              ("512x384", "bf16", True)]


def test_nvml_matching_finds_a_mig_slice_on_the_fake_gpus(monkeypatch):
    pytest.importorskip("pynvml")
    monkeypatch.setenv("ASL_FAKE_GPU", str(REPO / "tests/fixtures/fake_mig.json"))
    result = load("device_report").nvml_check("5e1a0000-0000-0000-0000-000000000003")
    assert result["matched"]["uuid"] == "MIG-5e1a0000-0000-0000-0000-000000000003"
    assert result["matched"]["mig_slice_of"] == "GPU-a1000000-0000-0000-0000-000000000000"
    assert result["this_pid_listed"] is False and result["fake"]
    assert [len(g["mig"] or []) for g in result["gpus"]] == [2, 0]


def test_the_report_is_built_from_the_steps_files(tmp_path):
    steps = [{"step": "setup", "status": "ok", "seconds": 0, "reason": None},
             {"step": "shapes", "status": "timeout", "seconds": 130, "reason": "exit 124"}]
    (tmp_path / "steps.jsonl").write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    (tmp_path / "shapes.json").write_text(json.dumps([
        {"shape": "12x384", "precision": "bf16", "compile": True, "samples_per_s": 812.5, "peak_mem_mb": 2100.0,
         "graphs": 1, "recompiles": 0, "compile_state": "on"}]))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "tests.log").write_text("....\n8 passed, 755 deselected in 40.1s\n")
    run = tmp_path / "runs" / "device-check"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "interrupted", "step": 12, "compile": "on",
                                                 "compile_graphs": 5, "compile_s": 201.5}))
    report = load("device_report").assemble(tmp_path, dry_run=False, sample=None)
    assert report["overall"] == "problems"  # the timeout
    assert report["tests"] == "8 passed, 755 deselected in 40.1s"
    assert report["train"]["compile_graphs"] == 5
    text = (tmp_path / "report.txt").read_text()
    assert "shapes  timeout" in text and "812.5" in text and "5 graphs" in text
    assert json.loads((tmp_path / "report.json").read_text())["shapes"][0]["recompiles"] == 0
