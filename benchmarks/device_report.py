"""Helpers of benchmarks/device_check.sh: the NVML matching check and the final report.

    python benchmarks/device_report.py nvml [--fake-uuid UUID] [--json FILE]
    python benchmarks/device_report.py assemble OUT [--dry-run 0|1] [--sample DIR]

`nvml`: holds 64 MiB on the CUDA device, asks NVML (or the fake GPUs of $ASL_FAKE_GPU) for every
GPU and its MIG slices, and finds the one with torch's UUID for this device (`--fake-uuid`: that
UUID instead, for a machine without a GPU); reports whether this process is in its process list
(in a container NVML may report the host's pid, so a miss there is noted, not a failure).

`assemble`: stdlib only (it also runs when the set-up failed): OUT/steps.jsonl plus what the steps
wrote (shapes.json, nvml.json, the rtx4070 run's status.json, the ablation's results.json, the
pytest summary line) -> OUT/report.json and OUT/report.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def nvml_check(fake_uuid: str | None) -> dict:
    from asl_cli.monitor import open_backend
    from asl_cli.monitor.base import find_by_uuid

    result: dict = {"fake": bool(os.environ.get("ASL_FAKE_GPU"))}
    hold = None
    if fake_uuid:
        uuid = fake_uuid
    else:
        import torch

        from asl_cli.engine.device import cuda_device_uuid

        device = torch.device("cuda", torch.cuda.current_device())
        hold = torch.empty(64 << 20, dtype=torch.uint8, device=device)  # so that this process shows up
        torch.cuda.synchronize(device)
        uuid = cuda_device_uuid(device)
    result["cuda_uuid"] = uuid
    backend = open_backend()
    try:
        snaps = backend.snapshots()
    finally:
        backend.shutdown()
    result["gpus"] = [{"index": s.index, "uuid": s.uuid, "name": s.name, "error": s.error,
                       "processes": None if s.processes is None else len(s.processes),
                       "mig": None if s.mig is None else [{"slot": m.slot, "uuid": m.uuid, "name": m.name,
                                                           "processes": None if m.processes is None
                                                           else len(m.processes)} for m in s.mig]}
                      for s in snaps]
    mine = find_by_uuid(snaps, uuid)
    result["matched"] = None if mine is None else {"index": mine.index, "uuid": mine.uuid, "name": mine.name,
                                                   "mig_slice_of": mine.parent_uuid}
    if mine is not None and mine.processes is not None:
        pids = [p.pid for p in mine.processes]
        result["processes"] = [{"pid": p.pid, "name": p.name, "used_mib": None if p.used_memory is None
                                else round(p.used_memory / 2**20)} for p in mine.processes]
        result["this_pid_listed"] = os.getpid() in pids
        if not result["this_pid_listed"] and not result["fake"]:
            result["note"] = ("this process is not in NVML's list: a container's pid namespace (NVML reports host "
                              "pids) or a driver that hides other users' processes")
    else:
        result["this_pid_listed"] = None
    del hold
    return result


# --- the report -------------------------------------------------------------------------------

def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _pytest_summary(log: Path) -> str | None:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|skipped|deselected|error|no tests ran)\b", line):
            return line.strip("= ").strip()
    return None


def assemble(out: Path, *, dry_run: bool, sample: str | None) -> dict:
    steps = []
    log = out / "steps.jsonl"
    for line in log.read_text(encoding="utf-8").splitlines() if log.is_file() else []:
        try:
            steps.append(json.loads(line))
        except ValueError:
            continue
    setup_failed = any(s.get("step") == "setup" and s.get("status") == "failed" for s in steps)
    data = None if setup_failed else sample or "synthetic set (asl-signs sample not found)"
    report: dict = {"dry_run": dry_run, "steps": steps, "data": data}
    report["tests"] = _pytest_summary(out / "logs" / "tests.log")
    report["shapes"] = _read_json(out / "shapes.json")
    report["nvml"] = _read_json(out / "nvml.json")
    from asl_cli.engine.run_dir import RunDir

    status = _read_json(RunDir(out / "runs" / "device-check").status_path)
    if isinstance(status, dict):
        keys = ("state", "step", "precision", "samples_per_s", "peak_mem_mb", "compile", "compile_graphs",
                "compile_s", "compile_eager_batches", "overflow_skipped", "nonfinite_skipped", "tf32", "warnings")
        report["train"] = {k: status.get(k) for k in keys}
    ablation = _read_json(out / "runs" / "ablate-device-check-ablate" / "results.json")
    if isinstance(ablation, dict):
        rows = ablation.get("results", ablation)
        report["ablate"] = {name: {k: r.get(k) for k in ("samples_per_s", "peak_mem_mb", "wall_s", "steps", "note")}
                            for name, r in rows.items() if isinstance(r, dict)}
    worst = "ok"
    for s in steps:
        if s.get("status") in ("failed", "timeout"):
            worst = "problems"
    report["overall"] = worst
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.txt").write_text(report_text(report), encoding="utf-8")
    return report


def report_text(r: dict) -> str:
    lines = [f"asl device check{' (dry run: no GPU step ran)' if r.get('dry_run') else ''}: {r.get('overall')}", ""]
    for s in r.get("steps", []):
        lines.append(f"  {s['step']:<7} {s['status']:<8} {s.get('seconds', 0):>4} s  {s.get('reason') or ''}")
    lines += ["", f"tests: {r.get('tests') or 'not run'}", f"data: {r.get('data') or '-'}"]
    shapes = r.get("shapes") or []
    if shapes:
        lines += ["", "fixed-shape steps (rtx4070 model):",
                  f"  {'shape':<8} {'prec':<5} {'compile':<8} {'samples/s':>10} {'peak MiB':>9} {'graphs':>6} "
                  f"{'recomp':>6}  note"]
        for row in shapes:
            note = row.get("skipped") or row.get("error") or row.get("compile_state") or ""
            lines.append(f"  {row.get('shape', ''):<8} {row.get('precision', ''):<5} {str(row.get('compile')):<8} "
                         f"{_fmt(row.get('samples_per_s')):>10} {_fmt(row.get('peak_mem_mb')):>9} "
                         f"{_fmt(row.get('graphs')):>6} {_fmt(row.get('recompiles')):>6}  {note}")
    nv = r.get("nvml")
    if nv:
        matched = nv.get("matched") or {}
        where = (f"GPU {matched.get('index')} {matched.get('name')}" + (" (MIG slice)" if matched.get("mig_slice_of")
                                                                        else "")) if matched else "NOT FOUND"
        lines += ["", f"NVML: torch's device {nv.get('cuda_uuid')} -> {where}; this pid listed: "
                      f"{nv.get('this_pid_listed')}{' (fake GPUs)' if nv.get('fake') else ''}"]
        if nv.get("note"):
            lines.append(f"  {nv['note']}")
    if r.get("train"):
        t = r["train"]
        lines += ["", f"rtx4070 train: {t.get('state')} at step {t.get('step')}, {t.get('precision')}, "
                      f"{_fmt(t.get('samples_per_s'))} samples/s, peak {_fmt(t.get('peak_mem_mb'))} MiB, compile "
                      f"{t.get('compile')} ({t.get('compile_graphs')} graphs, {_fmt(t.get('compile_s'))} s), "
                      f"fp16 skips {t.get('overflow_skipped')}"]
    if r.get("ablate"):
        lines += ["", "ablation (samples/s, peak MiB, wall s):"]
        for name, a in r["ablate"].items():
            lines.append(f"  {name:<20} {_fmt(a.get('samples_per_s')):>9} {_fmt(a.get('peak_mem_mb')):>9} "
                         f"{_fmt(a.get('wall_s')):>7}  {a.get('note') or ''}")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description="device_check.sh helpers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    nv = sub.add_parser("nvml")
    nv.add_argument("--fake-uuid", default=None)
    nv.add_argument("--json", dest="json_out", default=None)
    asm = sub.add_parser("assemble")
    asm.add_argument("out")
    asm.add_argument("--dry-run", default="0")
    asm.add_argument("--sample", default="")
    args = parser.parse_args()
    if args.cmd == "nvml":
        result = nvml_check(args.fake_uuid)
        text = json.dumps(result, indent=2)
        print(text)
        if args.json_out:
            Path(args.json_out).write_text(text + "\n", encoding="utf-8")
        return 0 if result.get("matched") else 1
    report = assemble(Path(args.out), dry_run=args.dry_run == "1", sample=args.sample or None)
    print((Path(args.out) / "report.txt").read_text(encoding="utf-8"), end="")
    return 0 if report["overall"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
