"""Print the fault suite's figures (the table in docs/reliability.md) from its JSON summary.

    ASL_FAULTS_SUMMARY=/tmp/faults.json python -m pytest -q tests/faults
    python tests/faults/report.py /tmp/faults.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def table(summary: dict) -> str:
    cases = summary["cases"]
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for c in cases:
        by_cat[c["category"]].append(c)
    lines = ["| category | survived / total | details |", "|---|---|---|"]
    kills = by_cat.get("kill", [])
    for kind in ("step", "save", "eval"):
        group = [c for c in kills if c.get("kind") == kind]
        if group:
            lost = [c.get("lost_updates") for c in group if c.get("lost_updates") is not None]
            label = {"step": "mid-step", "save": "mid-checkpoint-write", "eval": "mid-validation"}[kind]
            lines.append(f"| SIGKILL {label} | {sum(c['ok'] for c in group)} / {len(group)} | "
                         f"updates lost per kill (redone on resume): max {max(lost, default='n/a')}, "
                         f"mean {sum(lost) / len(lost):.1f} |" if lost else
                         f"| SIGKILL {label} | {sum(c['ok'] for c in group)} / {len(group)} | |")
    for c in by_cat.get("signal", []):
        lines.append(f"| {c['name']} | {int(c['ok'])} / 1 | sent once step {c.get('at')} was logged; saved at step "
                     f"{c.get('checkpoint_step')}, the last update made: nothing lost |")
    faults = by_cat.get("fault", [])
    if faults:
        lines.append(f"| other faults injected | {sum(c['ok'] for c in faults)} / {len(faults)} | "
                     + "; ".join(c["name"] for c in faults) + " |")
    bad = by_cat.get("bad input", [])
    if bad:
        lines.append(f"| bad inputs (CLI end to end) | {sum(c['ok'] for c in bad)} / {len(bad)} | "
                     f"one error line + exit code; {sum(c.get('expect') == 'accepted' for c in bad)} "
                     f"valid-but-unusual inputs accepted (extreme sequences, no z column) |")
    total = len(cases)
    lines.append(f"| **all** | **{sum(c['ok'] for c in cases)} / {total}** | "
                 f"{sum(c.get('seconds', 0) for c in cases):.0f} s in the recorded cases |")
    failed = [f"{c['category']}: {c['name']}" for c in cases if not c["ok"]]
    if failed:
        lines.append("")
        lines.append("FAILED: " + "; ".join(failed))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
