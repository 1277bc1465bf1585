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


def _register() -> None:
    """Import the command modules (each adds itself to `app`)."""
    import importlib
    import pkgutil

    import asl_cli.cli as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("cmd_"):
            importlib.import_module(f"asl_cli.cli.{mod.name}")


_register()


def main() -> None:
    """Console entry point: `ASLError`s become one line on stderr and their exit code."""
    from asl_cli.errors import ASLError

    try:
        app()
    except ASLError as exc:  # raised outside a command's own handling
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
