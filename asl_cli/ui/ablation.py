"""`asl ablate` views: the comparison table with deltas, its footnotes, and the line of variants
shown above the training dashboard while the ablation runs."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

RESUMED_MARK = "†"  # "*" already marks a note


def variant_label(row: dict) -> str:
    """The variant's name with its footnote marks: * a note, † resumed (see `notes_lines`)."""
    return row["variant"] + (" *" if row.get("note") else "") + (f" {RESUMED_MARK}" if row.get("resumed") else "")


def comparison_table(rows: list[dict], title: str = "") -> Table:
    """The comparison as a Rich table: each metric with its delta against the baseline."""
    from asl_cli.tools.ablation import METRICS, format_delta, format_value

    # The delta goes under its value (two lines per variant): seven columns fit 80 characters.
    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                  collapse_padding=True, pad_edge=False)
    table.add_column("variant", style="bold", no_wrap=True)
    for _key, col, _hib in METRICS:
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        cells: list[Any] = [variant_label(r)]
        for key, _col, higher_is_better in METRICS:
            cell = Text(format_value(key, r.get(key)))
            delta = r.get(f"{key}_delta")
            if delta is not None:
                good = (delta > 0) == higher_is_better
                style = "dim" if abs(delta) < 1e-12 else ("green" if good else "red")
                cell.append("\n" + format_delta(key, delta), style=style)
            cells.append(cell)
        table.add_row(*cells)
    return table


def notes_lines(rows: list[dict]) -> list[str]:
    """Footnotes; a variant identical to the baseline re-measures it, so its deltas show the noise.
    A resumed variant was measured only after its resume: its speed, memory and time are not comparable."""
    out = []
    for r in rows:
        if r.get("note"):
            noise = " — its deltas show the run-to-run noise" if r["note"].startswith("same as baseline") else ""
            out.append(f"* {r['variant']}: {r['note']}{noise}")
    for r in rows:
        if r.get("resumed"):
            out.append(f"{RESUMED_MARK} {r['variant']}: resumed from its checkpoint after an interruption — its "
                       f"samples/s, peak memory and wall time cover only the part after the resume")
    return out


def variants_line(name: str, progress: Mapping[str, str], skipped: Sequence[tuple[str, str]]) -> Text:
    """`ablation NAME  baseline done · no-aug running · …`: each variant's state (pending, running,
    done) in order, then the variants left out."""
    line = Text.assemble(("ablation ", "bold"), (name, "bold cyan"), "  ")
    for i, (n, state) in enumerate(progress.items()):
        style = {"done": "green", "running": "bold yellow"}.get(state, "dim")
        line.append(("  ·  " if i else "") + f"{n} ", style="bold" if state == "running" else "")
        line.append(state, style=style)
    for n, _reason in skipped:
        line.append(f"  ·  {n} ", style="dim")
        line.append("not run (same as baseline here)", style="dim")
    return line
