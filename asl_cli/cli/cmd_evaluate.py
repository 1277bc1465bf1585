"""`asl evaluate RUN_OR_CHECKPOINT`: accuracy of a checkpoint on its validation fold or a whole data set.

Thin: options -> `asl_cli.serve.inference.evaluate_split` -> a Rich table (or JSON) and a confusion-matrix
PNG. Uses the checkpoint's own resolved configuration (max_len, folds, sign map). A data set whose
sign map disagrees with the checkpoint is refused as bad input data (DataError, exit 3).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, user_errors


def _pct(x: float | None) -> str:
    from asl_cli.units import fmt_pct

    return fmt_pct(x, none="n/a")


def render_evaluation(result: dict, console, *, rows: int = 15) -> None:
    from rich.markup import escape
    from rich.table import Table

    split = "validation fold " + str(result["val_fold"]) if result["split"] == "val" else "all sequences"
    console.print(f"[bold]{escape(str(result['checkpoint']))}[/] on {escape(str(result['data_dir']))} "
                  f"({split}: {result['n']} sequences)")
    console.print(f"top-1 {_pct(result['top1'])}   top-5 {_pct(result['top5'])}   "
                  f"correct {result['correct']}/{result['n']}")
    per = Table(title=f"Per-sign accuracy (worst {min(rows, len(result['per_sign']))} of "
                      f"{len(result['per_sign'])} signs)", title_justify="left")
    for col, just in (("sign", "left"), ("n", "right"), ("correct", "right"), ("accuracy", "right")):
        per.add_column(col, justify=just)
    for r in result["per_sign"][:rows]:
        per.add_row(r["sign"], str(r["n"]), str(r["correct"]), _pct(r["accuracy"]))
    console.print(per)
    if result["confused_pairs"]:
        pairs = Table(title="Most confused pairs", title_justify="left")
        for col, just in (("true sign", "left"), ("predicted as", "left"), ("count", "right")):
            pairs.add_column(col, justify=just)
        for r in result["confused_pairs"]:
            pairs.add_row(r["true"], r["predicted"], str(r["count"]))
        console.print(pairs)
    else:
        console.print("no confusions")


@app.command("evaluate")
def evaluate_command(
    run_or_checkpoint: Annotated[Path, typer.Argument(help="Run folder (its best.pt, else last.pt) or a .pt file.",
                                                      show_default=False)],
    data: Annotated[Optional[Path], typer.Option("--data", help="asl-signs folder to evaluate on (default: the "
                    "run's own data; the synthetic set when it trained on that).")] = None,
    split: Annotated[str, typer.Option("--split", help="val: the run's participant-held-out fold; all: every "
                     "sequence.")] = "val",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for metrics.json and confusion.png "
                   "(default: <run>/eval-<split>, or next to the checkpoint).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Sequences per forward pass.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto (a CUDA GPU if there is one), cpu, cuda, "
                      "cuda:N.")] = "auto",
) -> None:
    """Top-1/top-5, per-sign accuracy, most confused pairs and a confusion matrix of a checkpoint."""
    with user_errors(as_json):
        from asl_cli.errors import ConfigError

        if split not in ("val", "all"):
            raise ConfigError(f"--split must be 'val' or 'all', got {split!r}")
        from asl_cli.tempfiles import atomic_write_text
        from asl_cli.errors import RunIOError
        from asl_cli.serve.inference import evaluate_split, load_for_inference, plot_confusion

        loaded = load_for_inference(run_or_checkpoint, device=device)
        result = evaluate_split(loaded, data, split=split, batch_size=batch_size)
        folder = out or ((loaded.run_dir or loaded.checkpoint_path.parent) / f"eval-{split}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunIOError(f"cannot create the output folder ({exc.strerror or exc})", path=folder) from None
        png = None
        try:
            png = plot_confusion(result["confusion"], folder / "confusion.png",
                                 title=f"{loaded.checkpoint_path.name}: {split} ({result['n']} sequences)")
        except ImportError:
            typer.echo("confusion.png skipped: matplotlib is not installed (pip install 'asl-cli[plot]')", err=True)
        result["confusion_png"] = str(png) if png else None
        atomic_write_text(folder / "metrics.json", json.dumps(result, indent=2) + "\n")
        from asl_cli.cli import nextsteps

        example = result.get("example_file")
        steps = nextsteps.after_evaluate(run_or_checkpoint, split=split,
                                         example=example if example and Path(example).is_file() else None)
        if as_json:
            typer.echo(json.dumps(result | {"next": nextsteps.as_json(steps)}))
            return
        console = make_console()
        render_evaluation(result, console)
        console.print(f"metrics: {folder / 'metrics.json'}" + (f"   confusion matrix: {png}" if png else ""),
                      markup=False, highlight=False)  # paths are text, whatever brackets they hold
        for line in nextsteps.lines(steps):
            console.print(line, markup=False, highlight=False)
