"""Run folders written before the redesign of session 11 still work (issue 17: formats kept).

`fixtures/session10-run` is a real run folder made by the code of commit 8c04d31 (session 10):
`asl train` on the tiny set (4 signs x 6 participants x 3, seed 0; the kit's `tiny`) with a
32-wide model, `--epochs 3 --max-steps 2`; its `config.json` still has the retired key
`data.compiled = true`. Only `last.pt` is kept (best.pt was the same file).
"""

from __future__ import annotations

import json
import shutil

from kit import FIXTURES, run_asl

OLD_RUN = FIXTURES / "session10-run"


def test_a_run_folder_from_before_the_redesign_resumes_and_evaluates(tiny, env, tmp_path):
    run = tmp_path / "session10-run"
    shutil.copytree(OLD_RUN, run)
    assert json.loads((run / "config.json").read_text())["data"]["compiled"] is True  # written by the old code

    resumed = run_asl("train", "--resume", run, "--data", tiny.data, "--max-steps", "4", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps[0] == 3  # continues after the old checkpoint's 2 updates
    summary = events[-1]
    assert summary["event"] == "summary" and summary["resumed_from_step"] == 2 and summary["steps"] == 4
    assert "compiled" not in json.loads((run / "config.json").read_text())["data"]  # rewritten without it

    evaluated = run_asl("evaluate", run, "--data", tiny.data, "--split", "all", "--json", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["n"] == 72
