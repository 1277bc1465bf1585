"""Helpers shared by the command modules: error reporting, console set-up, stopping on a signal and
warnings as one line each."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, TextIO

import typer

from asl_cli.errors import ASLError

# Width of a console whose stream is not a terminal (a pipe, a file, a CI log) when $COLUMNS is not
# set. Rich would use 80 there and fold tables and messages into pieces.
PIPE_WIDTH = 160
_UNLIMITED = 1_000_000


@contextlib.contextmanager
def user_errors(as_json: bool = False) -> Iterator[None]:
    """Turn the toolkit's errors into one line on stderr and the documented exit code; with
    `as_json` (a command's --json) into one JSON object on stdout instead (`error_object`)."""
    try:
        yield
    except ASLError as exc:
        if as_json:
            print_json_error(error_object(exc))
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@contextlib.contextmanager
def name_the_remedy(option: str) -> Iterator[None]:
    """A data error about one unreadable sequence file gets the remedy this command offers
    (`option`, e.g. "--skip-bad") at the end of its one line."""
    from asl_cli.errors import DataError

    try:
        yield
    except DataError as exc:
        if not getattr(exc, "skippable", False) or "skip" in exc.message:
            raise
        raise DataError(f"{exc.message} (rerun with {option} to skip unreadable files)", path=exc.path) from None


def error_object(exc: BaseException, *, exit_code: int | None = None) -> dict[str, Any]:
    """An error as `--json` output reports it: one object, the same text and exit code as the
    `error: ...` line a plain run prints (`path`: the file it names, when it names one)."""
    code = exit_code if exit_code is not None else getattr(exc, "exit_code", 1)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return {"event": "error", "error": message, "exit_code": int(code), "type": type(exc).__name__,
            "path": getattr(exc, "path", None)}


def print_json_error(obj: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def wants_json(args: list[str]) -> bool:
    """Whether a command line asks for JSON output (--json / --ndjson, before any `--`)."""
    for arg in args:
        if arg == "--":
            return False
        if arg in ("--json", "--ndjson"):
            return True
    return False


class _WholeWords:
    """Renders a renderable at least as wide as its longest unbreakable word (a path, a file name),
    so that a table folds no file name into pieces when its stream has no width of its own."""

    def __init__(self, renderable: Any) -> None:
        self.renderable = renderable

    def __rich_console__(self, console, options):
        from rich.measure import Measurement

        natural = Measurement.get(console, options.update_width(_UNLIMITED), self.renderable)
        # A table as wide as its longest row; what fills the width it is given (a panel) at least
        # as wide as its longest word.
        need = natural.maximum if natural.maximum < _UNLIMITED else natural.minimum
        yield from console.render(self.renderable, options.update_width(max(options.max_width, need)))


class _KeepWordsWhole:
    """A Rich render hook (`Console.push_render_hook`) wrapping each printed renderable in `_WholeWords`."""

    def process_renderables(self, renderables: list) -> list:
        from rich.control import Control

        return [r if isinstance(r, Control) else _WholeWords(r) for r in renderables]


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def make_console(*, stderr: bool = False):
    """The Rich console every command prints through (stdout, or stderr with `stderr=True`).

    On a terminal: Rich's own (the terminal's width, wrapped as Rich wraps). Anywhere else (a pipe,
    a file, a CI log): $COLUMNS wide if set, else `PIPE_WIDTH`; message lines are never wrapped
    (soft wrap) and a table or panel is widened rather than fold a word such as a file path, so
    paths stay whole and can be copied or grepped.
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if _is_tty(stream):
        return Console(stderr=stderr)
    columns = os.environ.get("COLUMNS", "").strip()
    width = int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH
    out = Console(stderr=stderr, width=width, soft_wrap=True)
    out.push_render_hook(_KeepWordsWhole())
    return out


def stderr_console():
    return make_console(stderr=True)


@contextlib.contextmanager
def stop_at_once_on_signals(what: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM during a one-off job (synth, prepare) stop it at once: the job unwinds (its
    temporary files removed on the way), then one line `stopped by Ctrl-C: <what>` on stderr and
    exit 130 (SIGTERM: 143), never a traceback."""
    from asl_cli.cli.signals import StopRequests, stop_on_signals as handlers
    from asl_cli.errors import EXIT_SIGINT, EXIT_SIGTERM

    try:
        with handlers(StopRequests()):  # no trainer is ever attached: every signal stops at once
            yield
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", EXIT_SIGINT)
        typer.echo(f"stopped by {'SIGTERM' if code == EXIT_SIGTERM else 'Ctrl-C'}: {what}", err=True)
        raise typer.Exit(code) from None


def is_interactive() -> bool:
    return sys.stdout.isatty()


def setup_note(cfg: Any) -> tuple[str, bool]:
    """(text, worth a log line) for the wait before training starts.

    The first run on the embedded default generates the synthetic set (10-20 s on 2 cores): say so
    in every mode, or plain and JSON output would sit silent. Otherwise a passing state.
    """
    if cfg.data.data_dir is None:
        from asl_cli.data.synth import default_dataset_dir, default_dataset_ready

        if not default_dataset_ready(cfg.synth):
            s = cfg.synth
            n = s.num_signs * s.num_participants * s.repetitions
            return (f"first run: generating the synthetic default set once ({n:,} sequences, cached in "
                    f"{default_dataset_dir(cfg.synth)}) …", True)
    return "preparing the data and the model …", False


@contextlib.contextmanager
def tidy_warnings(stream: TextIO | None = None) -> Iterator[list[str]]:
    """Show Python warnings and the toolkit's logged warnings as one `warning: ...` line each,
    once per distinct message, instead of file/line dumps (the engine both logs and warns)."""
    import logging
    import warnings

    seen: list[str] = []

    def say(text: str) -> None:
        text = (str(text).strip().splitlines() or [""])[0]
        if text and text not in seen:
            seen.append(text)
            out = stream if stream is not None else sys.stderr
            out.write(f"warning: {text}\n")
            out.flush()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            say(record.getMessage())

    logger = logging.getLogger("asl")
    handler = Handler(logging.WARNING)
    previous_show, previous_propagate = warnings.showwarning, logger.propagate
    warnings.showwarning = lambda message, *_a, **_k: say(str(message))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda message, *_a, **_k: say(str(message))
            yield seen
    finally:
        warnings.showwarning = previous_show
        logger.removeHandler(handler)
        logger.propagate = previous_propagate
