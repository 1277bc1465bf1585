"""`asl prepare DATA_DIR`: convert an asl-signs folder once into the prepared cache.

Thin: options -> `asl_cli.data.cache.prepare` -> a summary. Re-running is a no-op unless the
sources changed; `asl train` prepares on its own when needed, so this command is optional.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import name_the_remedy, stderr_console, stop_at_once_on_signals, user_errors
from asl_cli.units import human_bytes


@app.command("prepare")
def prepare_command(
    data_dir: Annotated[Path, typer.Argument(help="asl-signs folder: train.csv, sign map, parquet files.",
                                             show_default=False)],
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Where caches live "
                         "(default: $ASL_CACHE or ~/.cache/asl).")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable sequences (counted) "
                        "instead of stopping at the first.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Reader processes "
                       "(default: one per CPU, up to 8).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if the cache is current.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=0, help="Only the first N sequences (0: all).")] = 0,
) -> None:
    """Convert the parquet tree once into a compact memory-mapped cache (rerun: no-op unless changed)."""
    with user_errors(), name_the_remedy("--skip-bad"):
        from asl_cli.data.cache import prepare

        console = stderr_console()
        started = time.perf_counter()
        # Ctrl-C / SIGTERM: the build in its temporary folder is dropped; one line, exit 130 / 143
        with stop_at_once_on_signals("nothing written (the cache folder is as it was)"):
            cache = prepare(data_dir, cache_dir, skip_bad=skip_bad, limit=limit, workers=workers,
                            force=force, progress=console)
        seconds = time.perf_counter() - started
        typer.echo(f"cache: {cache.path}")
        typer.echo(f"  sequences {len(cache):,}  frames {cache.total_frames:,}  classes {cache.num_classes}  "
                   f"size {human_bytes(cache.size_bytes())}  skipped {cache.skipped}")
        typer.echo(f"  {'up to date (nothing to do)' if cache.reused else f'built in {seconds:.1f} s'}")
        from asl_cli.cli import nextsteps

        for line in nextsteps.lines(nextsteps.after_data(data_dir, checked=True)):
            typer.echo(line)
        if cache.skipped:
            shown = cache.skipped_errors
            more = f" (all {cache.skipped}: skipped_files in {cache.path / 'meta.json'})" \
                if cache.skipped > len(shown) else ""
            typer.echo(f"  skipped {cache.skipped} bad sequence(s); first {len(shown)}{more}:", err=True)
            for line in shown:
                typer.echo(f"    {line}", err=True)
