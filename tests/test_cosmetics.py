"""What a newcomer reads, checked at a narrow (80) and a wide (160) terminal: help texts (one line per
paragraph, nothing eaten by Rich markup, no double spaces), the dashboard's side panels, one unit
for memory, the ablation's "which way is better", a typo'd preset."""

from __future__ import annotations

import re

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from asl_cli.cli.app import app, unwrap_help

runner = CliRunner()
WIDTHS = (80, 160)
COMMANDS = sorted(typer.main.get_command(app).commands)


def _flat(text: str) -> str:
    """Rendered help without its box drawing and line breaks: words separated by one space."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


def test_unwrap_help_joins_each_paragraph_and_keeps_paragraphs():
    doc = """First line
    goes on here.

    Second   paragraph
    on two lines."""
    assert unwrap_help(doc) == "First line goes on here.\n\nSecond paragraph on two lines."


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_every_text_whole_at_80_and_160_columns(command, width):
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.stdout.splitlines()) <= width
    assert "…" not in res.stdout  # nothing cut off (a long word in a narrow help column)
    flat = _flat(res.stdout)
    cmd = typer.main.get_command(app).commands[command]
    for paragraph in (cmd.help or "").split("\n\n"):
        assert "  " not in paragraph and "\n" not in paragraph  # one line per paragraph, single spaces
        assert " ".join(paragraph.split()) in flat, paragraph  # shown whole: no word lost to markup
    for param in cmd.params:
        text = getattr(param, "help", None) or ""
        assert "  " not in text, (param.name, text)
        if text and not getattr(param, "hidden", False) and width >= 160:  # at 80 it interleaves with metavars
            assert " ".join(text.split()) in flat, (param.name, text)  # e.g. "[aug]" eaten as markup


def test_wide_help_keeps_a_docstring_paragraph_on_one_line():
    res = runner.invoke(app, ["test-fix", "--help"], env={"COLUMNS": "200"})
    assert any("the config in checkpoints, AMP" in line for line in res.stdout.splitlines())


def _static_panels(width: int, preset: str = "cpu") -> list[str]:
    from asl_cli.ui.dashboard import PLAIN, TrainDashboard
    from asl_cli.config import load_config

    cfg = load_config(preset).to_dict()
    console = Console(width=width, record=True, force_terminal=False, color_system=None)
    dashboard = TrainDashboard(PLAIN, console=console)
    dashboard.config, dashboard.aug = cfg, cfg["aug"]
    with console.capture() as capture:
        console.print(dashboard.static_panels())
    return capture.get().splitlines()


def test_the_augmentation_panel_does_not_wrap_beside_a_half_empty_panel_at_160_columns():
    lines = _static_panels(160)
    assert "augmentations" in lines[0] and "configuration" in lines[0]  # side by side
    temporal = next(line for line in lines if "temporal" in line)
    spatial = next(line for line in lines if "spatial" in line)
    assert "random crop" in temporal and "flip p=0.5" in spatial  # each group on one line
    assert all(len(line) <= 160 for line in lines)
    # the configuration panel is as wide as it needs, not half the screen
    config_start = lines[0].index("╭", 1)
    assert config_start > 80


def test_the_panels_stack_at_80_columns_without_losing_anything():
    lines = _static_panels(80, "winner")
    assert all(len(line) <= 80 for line in lines)
    assert sum("augmentations" in line for line in lines) == 1 and sum("configuration" in line for line in lines) == 1
    assert not any("augmentations" in line and "configuration" in line for line in lines)
    text = "\n".join(lines)
    assert "random crop" in text and "radam_lookahead" in text


def test_memory_is_mib_everywhere_a_run_reports_it():
    from asl_cli.tools.ablation import METRICS
    from asl_cli.cli.cmd_train import summary_lines
    from asl_cli.ui.training import plain_line, train_panel

    status = {"peak_mem_mb": 562.0, "step": 5, "total_steps": 10}
    assert "max_mem 562MiB" in plain_line(status)
    console = Console(width=100, record=True, color_system=None)
    console.print(train_panel(status))
    assert "562 MiB" in console.export_text()
    assert dict((k, t) for k, t, _ in METRICS)["peak_mem_mb"] == "peak MiB"
    done = summary_lines({"run_dir": "runs/r", "steps": 5, "wall_s": 1.0, "samples_per_s": 10.0,
                          "peak_mem_mb": 562.0, "epochs_progress": 1, "state": "finished"})[0]
    assert done.endswith("peak memory 562 MiB)")


def test_the_ablation_says_which_way_is_better_for_every_metric():
    from asl_cli.tools import ablation

    assert ablation.direction_legend() == ("higher is better: val top-1, val top-5, samples/s; lower is better: "
                                           "train loss, peak memory (MiB), wall time (s)")
    titles = ablation.chart_titles()
    assert titles[0] == "val top-1 ↑ higher is better" and titles[2] == "train loss ↓ lower is better"
    assert len(titles) == len(ablation.METRICS)


@pytest.mark.parametrize("typo, meant", [("rtx4060", "rtx4070"), ("cpuu", "cpu"), ("T4", "t4"), ("gpu24", "gpu24gb")])
def test_a_typod_preset_gets_a_did_you_mean(typo, meant):
    res = runner.invoke(app, ["train", "--preset", typo, "--print-config"])
    assert res.exit_code == 2
    assert res.stderr.strip().startswith(f"error: unknown preset '{typo}' (did you mean '{meant}'? available: ")
