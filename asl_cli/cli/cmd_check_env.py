"""`asl check-env`: what this machine offers for training (Python, torch, CUDA, GPUs, NVML,
torch.compile, packages, optionally a data folder) and the preset it recommends.

The report is a dict (`asl_cli.tools.env_report.collect_report`); this command only renders it as
tables or as JSON (`--json`) and chooses the exit code: 0 fine, 1 a problem was found (bad
data, a lost GPU, torch not importable, an unreadable --fake-gpu file), 5 no usable GPU under
`--require-gpu`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.cmd_gpu_watch import FakeGpuOpt
from asl_cli.cli.common import make_console, user_errors
from asl_cli.cli.options import JsonOpt


@app.command("check-env")
def check_env(
    json_out: JsonOpt = False,
    require_gpu: Annotated[bool, typer.Option(
        "--require-gpu", help="Exit 5 unless a CUDA GPU is usable (for scripts and CI on GPU machines).")] = False,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Also check an asl-signs folder: train.csv, the sign map and every parquet file.")] = None,
    fake_gpu: FakeGpuOpt = None,
) -> None:
    """Check Python, torch, CUDA, GPUs, NVML, torch.compile and packages; recommend a preset."""
    with user_errors(json_out):
        import json
        import sys

        from asl_cli.errors import EXIT_NO_GPU, EXIT_OK, EXIT_PROBLEM
        from asl_cli.tools.env_report import collect_report
        from asl_cli.ui.env import env_report_view
        from asl_cli.ui.ndjson import json_safe

        err = make_console(stderr=True)
        progress = None
        if data is not None and err.is_terminal and not json_out:
            def progress(done: int, total: int) -> None:
                if done == total or done % 50 == 0:
                    err.print(f"checking data files {done:,}/{total:,}", end="\n" if done == total else "\r",
                              highlight=False)

        report = collect_report(data_dir=data, fake_gpu=fake_gpu, progress=progress)
        code = EXIT_PROBLEM if report["problems"] else EXIT_OK
        error = None
        if require_gpu and not report["cuda_usable"]:
            why = report["nvml"].get("message") if not report["gpus"] else "torch cannot use CUDA here"
            error = f"--require-gpu: no usable NVIDIA GPU ({why})"
            code = EXIT_NO_GPU
        if json_out:  # one JSON object: the report, with the error in it
            if error is not None:
                report["error"] = {"event": "error", "error": error, "exit_code": code, "type": "NoGPUError",
                                   "path": None}
            print(json.dumps(json_safe(report), indent=2))
        else:
            make_console().print(env_report_view(report))
            if error is not None:
                print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(code)
