"""--json commands report an error as one JSON object on stdout (nothing on stderr), with the exit code
the plain error line has: `{"event": "error", "error", "exit_code", "type", "path"}`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from kit import run_asl

FIXTURES = Path(__file__).resolve().parent / "fixtures"
runner = CliRunner()


@pytest.mark.parametrize("args, code, kind", [
    (["train", "--json", "--set", "train.nope=1"], 2, "ConfigError"),
    (["ablate", "--json", "--set", "train.nope=1"], 2, "ConfigError"),
    (["evaluate", "/nonexistent/run", "--json"], 4, "CheckpointError"),
    (["predict", "/nonexistent/run", "x.parquet", "--json"], 4, "CheckpointError"),
    (["predict", "/nonexistent/run", "x.parquet", "--ndjson"], 4, "CheckpointError"),
    (["presets", "nope", "--json"], 2, "ConfigError"),
    (["test-fix", "--json", "--preset", "nope"], 2, "ConfigError"),
])
def test_a_json_command_prints_its_error_as_one_json_object(args, code, kind):
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    assert res.stderr == ""
    (line,) = res.stdout.strip().splitlines()
    err = json.loads(line)
    assert err["event"] == "error" and err["exit_code"] == code and err["type"] == kind
    plain = runner.invoke(app, [a for a in args if a not in ("--json", "--ndjson")])
    assert plain.exit_code == code and plain.stderr.strip() == f"error: {err['error']}"  # the same text


def test_check_env_json_keeps_one_object_with_the_error_inside():
    res = runner.invoke(app, ["check-env", "--json", "--require-gpu", "--fake-gpu",
                              str(FIXTURES / "fake_no_gpus.json")])
    assert res.exit_code == 5 and res.stderr == ""
    report = json.loads(res.stdout)
    assert report["error"]["exit_code"] == 5 and report["error"]["error"].startswith("--require-gpu: ")


def test_usage_errors_through_the_entry_point_are_json_too(tmp_path):
    p = run_asl("train", "--json", "--epochs", "many", cwd=tmp_path, timeout=60)
    assert p.returncode == 2 and p.stderr == ""
    err = json.loads(p.stdout)
    assert err["type"] == "UsageError" and "--epochs" in err["error"] and err["exit_code"] == 2
    plain = run_asl("train", "--epochs", "many", cwd=tmp_path, timeout=60)
    assert plain.returncode == 2 and plain.stdout == "" and "--epochs" in plain.stderr  # the usual usage box
