"""`asl extract INPUT... --out DIR`: videos and `.pose` files -> an asl-signs folder (docs/extract.md).

Thin: options -> `asl_cli.extract` (inputs and labels, then `job.extract`) -> a Rich progress bar on stderr and
a summary. A bad input stops the command with one line naming it (exit 3) unless `--skip-bad`; without
the `video` extra it is one line with the install command (exit 1). `--json`: one JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import name_the_remedy, stderr_console, stop_at_once_on_signals, user_errors


@app.command("extract")
def extract_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="The asl-signs folder to write (created; a rerun "
                   "resumes it).", show_default=False)],
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="Videos (mp4, mov, avi, webm, mkv), .pose files, or folders of them (searched recursively). "
             "May be left out with --labels FILE.csv: its files are read.", show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option("--labels", help="'parent' (each file's folder name is its "
                      "sign) or a CSV file with the columns file, sign and (optionally) participant_id. Without "
                      "it, no train.csv.")] = None,
    participant: Annotated[Optional[int], typer.Option("--participant", help="participant_id of the inputs (a "
                           "labels CSV's participant_id column wins; not given: 0, or what the folder's record "
                           "holds for an input it has).", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes extracting videos at once (one "
                       "per core is the most that pays).")] = 1,
    force: Annotated[bool, typer.Option("--force", help="Extract again what the folder already holds.")] = False,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Report an unreadable input (or one with no "
                        "person) and go on (default: stop at the first).")] = False,
    model_complexity: Annotated[int, typer.Option("--model-complexity", min=0, max=2, help="MediaPipe "
                                "Holistic's pose model: 0 (fast), 1 (its default), 2 (accurate).")] = 1,
    min_detection: Annotated[float, typer.Option("--min-detection", min=0.0, max=1.0, help="Lowest "
                             "confidence at which MediaPipe Holistic takes a person as detected.")] = 0.5,
    min_tracking: Annotated[float, typer.Option("--min-tracking", min=0.0, max=1.0, help="Lowest "
                            "confidence at which MediaPipe Holistic keeps tracking (below: it detects again)."
                            )] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object at the end (no progress bar).")] = False,
) -> None:
    """Extract MediaPipe Holistic landmarks from videos (or convert .pose files) into an asl-signs folder
    that `asl prepare` and `asl train --data` read as they are."""
    with user_errors(as_json), name_the_remedy("--skip-bad"):
        from asl_cli.errors import ConfigError
        from asl_cli.extract.holistic import HolisticSettings
        from asl_cli.extract.inputs import find_inputs, label_inputs, labelled_files, parse_labels
        from asl_cli.extract.job import check_job, extract

        labels = parse_labels(labels)
        if not inputs:
            if labels is None or labels == "parent":
                raise ConfigError("no INPUT: name videos, .pose files or folders (or give --labels FILE.csv, "
                                  "whose files are then read)")
            files = find_inputs(labelled_files(labels))  # each must exist and be a video or .pose file
        else:
            files = find_inputs(inputs)
        settings = HolisticSettings(model_complexity, min_detection, min_tracking)
        items = label_inputs(files, labels, participant)
        check_job(items, out, settings=settings, force=force)  # its one line before any progress bar
        console = stderr_console()
        with stop_at_once_on_signals("files extracted so far are kept; rerun the command to go on"), \
                _Bar(len(items), console, enabled=not as_json) as bar:
            summary = extract(items, out, settings=settings, workers=workers, force=force, skip_bad=skip_bad,
                              progress=bar.advance)
        _report(summary, as_json)


class _Bar:
    """A Rich progress bar over the inputs, redrawn only when an input is done (MediaPipe's native
    logging is silenced at the file-descriptor level while it runs, so a refresh thread would draw
    into nothing); transient, so that an error stays one line and the summary says what was done."""

    def __init__(self, total: int, console, *, enabled: bool) -> None:
        self.total, self.console, self.enabled = total, console, enabled
        self.frames = 0

    def __enter__(self) -> "_Bar":
        self.progress = None
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]Extracting"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[frames]} frames"), TimeElapsedColumn(),
                                     console=self.console, auto_refresh=False, transient=True)
            self.progress.start()
            self.task = self.progress.add_task("extract", total=self.total, frames=0)
            self.progress.refresh()
        return self

    def advance(self, done: int, total: int, outcome) -> None:
        self.frames += outcome.frames
        if self.progress is not None:
            if outcome.status in ("bad", "duplicate"):
                word = "skipped" if outcome.status == "bad" else "same file"
                self.progress.console.print(f"{word}: {outcome.source}: {outcome.error}", highlight=False,
                                            markup=False)
            self.progress.update(self.task, completed=done, frames=self.frames)
            self.progress.refresh()

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _report(summary, as_json: bool) -> None:
    from asl_cli.cli import nextsteps
    from asl_cli.extract.records import unlabelled_note

    extracted, existing, bad = summary.count("extracted"), summary.count("existing"), summary.count("bad")
    fps = summary.frames_per_second
    note = unlabelled_note(summary)
    steps = nextsteps.after_data(summary.out) if summary.labelled else []
    if as_json:
        typer.echo(json.dumps({
            "event": "extract", "out": str(summary.out), "extracted": extracted, "existing": existing,
            "skipped": [{"file": o.source, "error": o.error} for o in summary.outcomes if o.status == "bad"],
            "same_content": [{"file": o.source, "as": o.error} for o in summary.outcomes if o.status == "duplicate"],
            "frames": summary.frames_extracted, "seconds": round(summary.seconds, 3),
            "frames_per_second": None if fps is None else round(fps, 2), "sequences": summary.sequences,
            "labelled": summary.labelled, "signs": summary.signs, "note": note,
            "next": nextsteps.as_json(steps)}))
        return
    speed = f", {fps:.1f} frames/s" if fps else ""
    typer.echo(f"extracted {extracted} file(s) ({summary.frames_extracted:,} frames{speed}) into {summary.out}; "
               f"{existing} already there, {bad} skipped; {summary.seconds:.1f} s")
    if summary.labelled:
        typer.echo(f"  train.csv: {summary.labelled} of {summary.sequences} sequences, {summary.signs} signs")
    else:
        typer.echo(f"  {note}")
    for line in nextsteps.lines(steps):
        typer.echo(line)
