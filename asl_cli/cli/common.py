"""Helpers shared by the command modules: error reporting and console set-up."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import typer

from asl_cli.errors import ASLError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the toolkit's errors into one line on stderr and the documented exit code."""
    try:
        yield
    except ASLError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def is_interactive() -> bool:
    return sys.stdout.isatty()
