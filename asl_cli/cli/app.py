"""Root of the `asl` command.

Each subcommand lives in its own module and registers itself on `app`. Command modules import
only typer/rich at module level; torch and the engine are imported inside the command bodies, so
`asl --help` and `asl --version` stay fast.
"""

from __future__ import annotations

import sys

import typer

from asl_cli import __version__

app = typer.Typer(
    name="asl",
    help="Train isolated sign language recognisers (Kaggle asl-signs) from MediaPipe Holistic landmarks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """asl: winner-level isolated sign recognition, from the command line."""


def unwrap_help(text: str | None) -> str | None:
    """A docstring as help text: each paragraph on one line (Rich's help keeps a docstring's line breaks,
    so source lines wrapped at 110 columns came out hard-wrapped on every terminal), single spaces."""
    if not text:
        return text
    import inspect
    import re

    paragraphs = re.split(r"\n\s*\n", inspect.cleandoc(text))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


def _register() -> None:
    """Import the command modules (each adds itself to `app`); their help unwrapped (`unwrap_help`)."""
    import importlib
    import inspect
    import pkgutil

    import asl_cli.cli as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"asl_cli.cli.{mod.name}")
    for info in app.registered_commands:
        info.help = unwrap_help(info.help or inspect.getdoc(info.callback))


_register()


def main() -> None:
    """Console entry point: `ASLError`s become one line on stderr and their exit code.

    With --json (or --ndjson) on the command line, every error is one JSON object on stdout with the
    same exit code: the command's own (`user_errors(as_json=True)`) and a bad option or argument,
    which the argument parser would otherwise print as a usage box on stderr (exit 2).
    """
    from asl_cli.cli.common import error_object, print_json_error, wants_json
    from asl_cli.errors import ASLError

    as_json = wants_json(sys.argv[1:])
    try:
        if not as_json:
            app()
            return
        code = app(standalone_mode=False)
    except ASLError as exc:  # raised outside a command's own handling
        if as_json:
            print_json_error(error_object(exc))
        else:
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - only the parser's errors (they carry an exit code) are handled
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        obj = error_object(exc)
        obj["type"] = "UsageError"
        print_json_error(obj)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
