"""`asl presets`: the shipped presets with their key values, as a Rich table or JSON.

`asl presets NAME` prints one preset's full resolved configuration (same as
`asl train --preset NAME --print-config`).
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, user_errors
from asl_cli.cli.options import JsonOpt, print_config


def precision_label(use_mixed_precision: bool, precision: str) -> str:
    """What the run computes in: fp32 without AMP, else the AMP dtype ("auto" = bf16 where supported)."""
    if not use_mixed_precision or precision == "fp32":
        return "fp32"
    return "auto" if precision == "auto" else precision  # auto: bf16 where supported, else fp16


def preset_summary(name: str) -> dict:
    """The values people compare presets by (raises ConfigError for a broken preset)."""
    from asl_cli.config import load_config, preset_description

    cfg = load_config(name)
    t = cfg.train
    return {
        "preset": name,
        "batch_size": t.batch_size,
        "accumulation": t.gradient_accumulation_steps,
        "effective_batch": t.batch_size * t.gradient_accumulation_steps,
        "precision": precision_label(t.use_mixed_precision, t.precision),
        "dim": cfg.model.dim,
        "blocks": cfg.model.blocks,
        "epochs": t.epochs,
        "time_budget": t.time_budget,
        "workers": cfg.loader.num_workers,
        "optimizer": cfg.optim.optimizer,
        "lr": cfg.optim.lr,
        "clip": t.gradient_clip_val,
        "max_len": cfg.data.max_len,
        "augmentations": cfg.aug.use_augmentations,
        "compile": t.compile,
        "tf32": t.tf32,
        "device": t.device,
        "description": preset_description(name),
    }


def run_length(epochs: int, time_budget: float) -> str:
    """What sizes a preset's run: its epochs, its time budget (the schedule planned in it), or both."""
    budget = f"{time_budget / 60:g} min" if time_budget and time_budget % 60 == 0 else f"{time_budget:g} s"
    if time_budget and epochs:
        return f"{budget}*"  # the epoch cap is said under the table (the column stays narrow at 80)
    return budget if time_budget else f"{epochs} ep"


def presets_table(rows: list[dict]):
    from rich import box
    from rich.table import Table

    # Compact (no box, 1-space padding) so that it fits 80 columns without cutting values.
    table = Table(title="asl presets", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True,
                  pad_edge=False)
    table.add_column("preset", style="bold cyan", no_wrap=True)
    for col in ("batch", "accum", "eff."):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("prec.", no_wrap=True)
    table.add_column("dim×blk", justify="right", no_wrap=True)
    table.add_column("length", justify="right", no_wrap=True)
    table.add_column("workers", justify="right", no_wrap=True)
    table.add_column("optimizer", no_wrap=True)
    for r in rows:
        table.add_row(r["preset"], str(r["batch_size"]), str(r["accumulation"]), str(r["effective_batch"]),
                      r["precision"], f"{r['dim']}×{r['blocks']}", run_length(r["epochs"], r["time_budget"]),
                      "auto" if r["workers"] == -1 else str(r["workers"]),
                      r["optimizer"])
    return table


def descriptions(rows: list[dict]):
    """One line per preset under the table (too long for a column at 80 characters)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for r in rows:
        grid.add_row(r["preset"], r["description"])
    return grid


def compile_line(rows: list[dict]) -> str:
    """Which presets compile the model and allow TF32 (no room for two more columns at 80)."""
    compiled = [r["preset"] for r in rows if r["compile"]]
    tf32 = [r["preset"] for r in rows if r["tf32"] and str(r["device"]).startswith("cuda")]
    return (f"torch.compile: {', '.join(compiled) or 'none'}; TF32 (CUDA, Ampere or later): "
            f"{', '.join(tf32) or 'none'}.")


@app.command("presets")
def presets_cmd(
    name: Annotated[Optional[str], typer.Argument(help="Show this preset's full resolved configuration.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the presets with their key values (batch, accumulation, precision, model size, ...)."""
    from asl_cli.config import list_presets, load_config

    with user_errors(as_json):
        if name is not None:
            print_config(load_config(name), as_json=as_json)
            return
        rows = [preset_summary(n) for n in list_presets()]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        console = make_console()
        console.print(presets_table(rows))
        console.print(descriptions(rows))
        console.print(compile_line(rows))
        capped = [f"{r['preset']} at most {r['epochs']} epochs" for r in rows if r["time_budget"] and r["epochs"]]
        if capped:
            console.print("* a time budget that plans the schedule, ending sooner where it reaches its epoch cap: "
                          + ", ".join(capped) + ".")
        console.print("eff. = batch × accum; prec. auto = bf16 where the GPU supports it, else fp16. Full settings: "
                      "[bold]asl presets NAME[/bold]. Use one: [bold]asl train --preset NAME[/bold] "
                      "(override with --set section.key=value).")
