"""`asl predict CHECKPOINT FILE [FILE ...]`: the top-k signs of landmark files, videos or `.pose` files.

Thin: options -> `asl_cli.serve.inference.predict_files` -> a Rich table, JSON or NDJSON. Reads the
asl-signs layout and the variants other MediaPipe Holistic capture scripts write (other column
order, no row_id, int64 frame), and videos and `.pose` files, whose landmarks are extracted in memory
(MediaPipe Holistic with its default settings, as `asl extract`; extra `video`). A bad file stops the
command with one line naming it (exit 3) before anything is printed; with `--skip-bad` it is reported on stderr and the others are predicted
(when no file could be read: only the library's one error line, exit 3, and nothing on stdout).
Files are read as training reads them (`frame`, `x`, `y`; `z` optional). `--json` and `--ndjson`
together are refused (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, user_errors


@app.command("predict")
def predict_command(
    checkpoint: Annotated[Path, typer.Argument(help="Run folder or checkpoint .pt file.", show_default=False)],
    files: Annotated[list[Path], typer.Argument(help="Landmark parquet files, videos or .pose files (one "
                                                "sequence each).",
                                                show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Signs shown per file.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object (a list of files).")] = False,
    ndjson: Annotated[bool, typer.Option("--ndjson", help="One JSON object per file, one per line.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")] = 64,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Report unreadable files and predict the rest "
                        "(default: stop at the first).")] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
) -> None:
    """Top-k signs with probabilities for each landmark file, video or .pose file."""
    with user_errors(as_json or ndjson):
        from asl_cli.errors import ConfigError
        from asl_cli.serve.inference import load_for_inference, predict_files, top_k as best_k

        if as_json and ndjson:
            raise ConfigError("--json and --ndjson cannot be used together (one JSON object, or one per line: "
                              "choose one)")

        loaded = load_for_inference(checkpoint, device=device)
        result = predict_files(loaded, files, batch_size=batch_size, skip_bad=skip_bad)
        for line in result.skipped:
            typer.echo(f"skipped: {line}", err=True)
        records = [{"file": str(f), "frames": n, "top": [{"sign": s, "probability": p} for s, p in top]}
                   for f, n, top in zip(result.files, result.frames,
                                        best_k(result.probabilities, loaded.classes, top_k))]
        if as_json:
            typer.echo(json.dumps({"checkpoint": str(loaded.checkpoint_path), "predictions": records,
                                   "skipped": result.skipped}))
        elif ndjson:
            for r in records:
                typer.echo(json.dumps(r))
        else:
            from rich.table import Table

            table = Table(title=f"{loaded.checkpoint_path} ({loaded.num_classes} signs)", title_justify="left")
            table.add_column("file", overflow="fold")
            table.add_column("frames", justify="right")
            for i in range(min(top_k, loaded.num_classes)):
                table.add_column(f"#{i + 1}")
            for r in records:
                table.add_row(r["file"], str(r["frames"]),
                              *[f"{t['sign']} {100 * t['probability']:.1f}%" for t in r["top"]])
            make_console().print(table)
