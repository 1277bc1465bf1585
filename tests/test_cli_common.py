"""The console every command prints through (`asl_cli.cli.common.make_console`) and the one-line
stop of the one-off jobs (`stop_at_once_on_signals`)."""

from __future__ import annotations

import io
import signal

import pytest
import typer
from rich.table import Table

from asl_cli.cli import common
from asl_cli.cli.common import PIPE_WIDTH, make_console, stop_at_once_on_signals

LONG = "/data/" + "/".join(f"a-rather-long-folder-name-{i}" for i in range(8)) + "/1216540971.parquet"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _table() -> Table:
    table = Table(title=f"{LONG} (250 signs)", title_justify="left")
    table.add_column("file", overflow="fold")
    for name in ("frames", "#1", "#2", "#3"):
        table.add_column(name)
    table.add_row(LONG, "18", "thankyou 39.8%", "close 0.4%", "snow 0.4%")
    return table


def test_piped_output_keeps_paths_and_messages_whole(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert len(LONG) > PIPE_WIDTH  # longer than even the wide default
    console = make_console()
    assert console.width == PIPE_WIDTH
    console.print(_table())
    message = "problem: " + " ".join(["a sentence that goes on"] * 12) + f" {LONG}"
    console.print(message)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == message  # not soft-wrapped
    assert sum(LONG in line for line in lines[:-1]) == 2  # the table's title and its cell, each whole
    assert any(line.startswith("│ " + LONG) for line in lines)


def test_piped_width_follows_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    console = make_console()
    assert console.width == 100
    console.print(_table())  # a file name is still never folded
    assert any(LONG in line for line in capsys.readouterr().out.splitlines()[1:])


def test_piped_stderr_console(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    common.stderr_console().print(f"stopped: {LONG} {LONG}")
    assert capsys.readouterr().err == f"stopped: {LONG} {LONG}\n"


def test_a_terminal_keeps_riches_own_console(monkeypatch):
    monkeypatch.setattr("sys.stdout", _Tty())
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.soft_wrap and console._render_hooks == []
    assert console._width is None  # Rich asks the terminal


@pytest.mark.parametrize("signum, code, said", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_stop_at_once_on_signals_is_one_line_and_the_documented_code(capsys, signum, code, said):
    from asl_cli.cli.signals import StopBeforeStart

    with pytest.raises(typer.Exit) as info:
        with stop_at_once_on_signals("nothing written to /tmp/s"):
            raise StopBeforeStart(signum)  # what the installed handler raises
    assert info.value.exit_code == code
    assert capsys.readouterr().err == f"stopped by {said}: nothing written to /tmp/s\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back


def test_setup_note_announces_the_first_run_generation_in_every_mode(tmp_path, monkeypatch):
    from asl_cli.cli.common import setup_note
    from asl_cli.config import load_config
    from asl_cli.data.synth import default_dataset_ready, ensure_default_dataset

    monkeypatch.setenv("ASL_CACHE", str(tmp_path))
    cfg = load_config("cpu", ["synth.num_signs=2", "synth.num_participants=3", "synth.repetitions=1"])
    assert not default_dataset_ready(cfg.synth)
    text, worth_a_line = setup_note(cfg)
    assert worth_a_line and text.startswith("first run: generating the synthetic default set once")
    assert "6 sequences" in text and str(tmp_path) in text

    ensure_default_dataset(cfg.synth)
    assert default_dataset_ready(cfg.synth)
    assert setup_note(cfg) == ("preparing the data and the model …", False)  # live display only

    own_data = load_config("cpu", [f"data.data_dir={tmp_path}"])
    assert setup_note(own_data)[1] is False  # no generation for a user's own data set
