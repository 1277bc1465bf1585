"""`asl export CHECKPOINT --format onnx`: an ONNX model, verified with onnxruntime before it is kept.

Thin: options -> `asl_cli.serve.export` -> size, agreement with PyTorch and CPU latency. The default graph
takes raw landmarks (T, 543, 3) float32 with NaN and does the preprocessing itself; `--features`
takes ready features (B, L, 708) + mask. The graph is checked on the real sample (or generated
sequences): a max abs difference >= 1e-4 deletes the file and exits 1. A `--verify-data` folder that is
missing, not a folder, or holds no readable parquet file is refused (exit 3, naming it); unreadable
files in it are skipped, each reported on stderr as `skipped: <file>: <reason>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import user_errors

# Real files to verify on by default, from a checkout (`pip install -e`): the shared sample beside it, else the
# files committed with the tests (a fresh clone has them); neither after a plain `pip install .`.
_CHECKOUT = Path(__file__).resolve().parents[2]
_SAMPLES = (_CHECKOUT.parent / "shared/data/asl-signs-sample", _CHECKOUT / "tests/data/asl-signs-mini")
DEFAULT_SAMPLE = next((p for p in _SAMPLES if (p / "train.csv").is_file()), _SAMPLES[0])


@app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output file (default: next to the checkpoint, "
                   "<name>.onnx or <name>-features.onnx).")] = None,
    features: Annotated[bool, typer.Option("--features", help="Inputs: features (B, L, 708) + mask, instead of "
                        "raw landmarks (T, 543, 3).")] = False,
    probabilities: Annotated[bool, typer.Option("--probabilities", help="Output softmax probabilities "
                             "instead of logits.")] = False,
    verify_data: Annotated[Optional[Path], typer.Option("--verify-data", help="Folder of parquet files to verify "
                           "on (default: the asl-signs sample if present, else generated sequences).")] = None,
) -> None:
    """Export a checkpoint to ONNX; verified against PyTorch with onnxruntime."""
    with user_errors():
        from asl_cli.errors import ConfigError

        if fmt.lower() != "onnx":
            raise ConfigError(f"--format {fmt!r} is not supported (only onnx)")
        from asl_cli.serve.export import (MAX_ABS_DIFF, ExportMismatch, default_verification_data, export_onnx,
                                    require_onnx, verification_data, verify_onnx)
        from asl_cli.serve.inference import load_for_inference

        require_onnx()
        loaded = load_for_inference(checkpoint)
        target = out or loaded.checkpoint_path.with_name(
            loaded.checkpoint_path.stem + ("-features" if features else "") + ".onnx")
        # A folder named with --verify-data must hold readable parquet files (else exit 3, naming it);
        # the default sample may be absent (then generated sequences).
        data = verification_data(verify_data) if verify_data is not None else default_verification_data(DEFAULT_SAMPLE)
        for line in data.skipped:  # as `asl predict --skip-bad` reports them
            typer.echo(f"skipped: {line}", err=True)
        inputs = data.inputs
        path = export_onnx(loaded, target, features=features, probabilities=probabilities, example=inputs[0][1])
        check = verify_onnx(path, loaded, inputs, features=features, probabilities=probabilities)
        source = ("generated sequences" if data.generated else
                  f"real file{'s' if len(inputs) != 1 else ''}" +
                  (f" ({len(data.skipped)} unreadable file{'s' if len(data.skipped) != 1 else ''} skipped)"
                   if data.skipped else ""))
        if not check.ok:
            worst = max(check.per_sample, key=lambda r: r[2])
            path.unlink(missing_ok=True)
            raise ExportMismatch(f"onnxruntime disagrees with PyTorch: max abs difference {check.max_abs_diff:.2e} "
                                 f">= {MAX_ABS_DIFF:.0e} (worst: {worst[0]}, {worst[1]} frames); file removed",
                                 path=path)
        typer.echo(f"onnx: {path}")
        inputs_line = ("features (batch, length, 708) float32 + mask (batch, length) bool" if features else
                       f"landmarks (frames, 543, 3) float32, NaN allowed; max_len {loaded.max_len}")
        typer.echo(f"  inputs   {inputs_line}")
        typer.echo(f"  output   {'probabilities' if probabilities else 'logits'} over {loaded.num_classes} signs")
        typer.echo(f"  size     {check.size_bytes / 1e6:.2f} MB")
        typer.echo(f"  verified {len(inputs)} {source}: max abs difference vs PyTorch {check.max_abs_diff:.2e} "
                   f"(< {MAX_ABS_DIFF:.0e})")
        if check.latency_ms is not None:
            typer.echo(f"  latency  {check.latency_ms:.2f} ms per sequence (onnxruntime CPU, 1 thread, "
                       f"mean over the verification files)")
