"""`asl test-fix`: the seed's fixes checked for real (asl_cli/tools/selfcheck.py), as a PASS/FAIL/SKIP table.

Exit 0 when nothing failed (SKIPs are fine: they say why), 1 on any FAIL, 2 for bad options.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import make_console, user_errors
from asl_cli.cli.options import JsonOpt, PresetOpt, SetOpt

STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow"}


def results_table(results):
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # Status first, then the check with its reason under it: readable at 80 columns.
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False, expand=False)
    table.add_column("", no_wrap=True)
    table.add_column("check / reason", overflow="fold")
    table.add_column("s", justify="right", no_wrap=True)
    for r in results:
        cell = Text(r.title, style="bold")
        cell.append(f"  [{r.name}]\n", style="dim")
        cell.append(r.reason)
        table.add_row(Text(r.status, style=STYLE.get(r.status, "")), cell, f"{r.seconds:.1f}")
    return table


def summary_line(results) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    return f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"


@app.command("test-fix")
def test_fix_cmd(
    preset: PresetOpt = "cpu",
    sets: SetOpt = None,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", help="Run only this check (repeatable); names as in --json output.")] = None,
    compile_timeout: Annotated[float, typer.Option(
        "--compile-timeout", min=1.0, help="Seconds the inductor compile may take before it is SKIPped.")] = 45.0,
    as_json: JsonOpt = False,
) -> None:
    """Check each fix of the seed on the real code: PASS/FAIL/SKIP with a reason (exit 1 on FAIL).

    Augmentations on training batches only, batch["features"], preprocessing once, the config in
    checkpoints, AMP, clipping, accumulation, cuDNN flags, torch.compile, DataLoader settings.
    """
    from asl_cli.config_io import resolve_config
    from asl_cli.tools.selfcheck import run_checks

    with user_errors(as_json):
        cfg = resolve_config(preset, sets)
        if as_json:
            results = run_checks(cfg, only=only, compile_timeout=compile_timeout)
            typer.echo(json.dumps({"preset": cfg.preset, "checks": [r.to_dict() for r in results],
                                   "summary": summary_line(results),
                                   "ok": not any(r.status == "FAIL" for r in results)}, indent=2))
        else:
            results = _run_with_progress(cfg, only, compile_timeout)
    if any(r.status == "FAIL" for r in results):
        raise typer.Exit(1)


def _run_with_progress(cfg, only, compile_timeout):
    from asl_cli.tools.selfcheck import CHECKS, run_checks

    console = make_console()
    titles = {name: title for name, title, _fn in CHECKS}
    if console.is_terminal:
        with console.status("checking …") as status:
            def on_result(r):
                status.update(f"checked {titles[r.name]}: {r.status}")
            results = run_checks(cfg, only=only, compile_timeout=compile_timeout, on_result=on_result)
    else:
        results = run_checks(cfg, only=only, compile_timeout=compile_timeout)
    console.print(f"asl test-fix (preset {cfg.preset or 'custom'})", style="bold", highlight=False)
    console.print(results_table(results))
    failed = any(r.status == "FAIL" for r in results)
    console.print(summary_line(results), style="bold red" if failed else "bold green", highlight=False)
    return results
