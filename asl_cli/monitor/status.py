"""Reading a run's `status.json` for the monitor (the trainer writes it; we only read).

The file may be missing (the run has not logged yet) or caught mid-write by a non-atomic
writer: `StatusReader` then keeps the last good status instead of flickering or failing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from asl_cli.engine.run_dir import RunDir
from asl_cli.errors import ConfigError
from asl_cli.monitor.base import GPUSnapshot, find_by_uuid


def find_latest_run(runs_dir: str | Path = "runs") -> Path:
    """The run folder under `runs_dir` whose status.json changed last."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ConfigError("no runs folder (start a run with `asl train`, or pass --run RUN_DIR)", path=runs_dir)
    candidates = [run for run in map(RunDir, runs_dir.iterdir()) if run.status_path.is_file()]
    if not candidates:
        raise ConfigError(f"no run folder with a {RunDir.STATUS} yet", path=runs_dir)
    return max(candidates, key=lambda run: run.status_path.stat().st_mtime).path


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError("run folder not found", path=run_dir)
    return run_dir


class StatusReader:
    """`read()` returns the run's latest good status dict (or None before the first one), with the
    run's `config.json` as its "config" when status.json has none (the trainer does not repeat it)."""

    def __init__(self, run_dir: str | Path):
        self.run = RunDir(run_dir)
        self.path = self.run.status_path
        self.run_dir = self.run.path
        self._last: dict | None = None
        self._mtime: float | None = None

    def read(self) -> dict | None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return self._last
        if mtime == self._mtime and self._last is not None:
            return self._last
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # mid-write or unreadable: keep the last good one
            return self._last
        if isinstance(obj, dict):
            obj.setdefault("run", self.run_dir.name)
            if "config" not in obj:  # the trainer keeps the resolved configuration in config.json
                config = self._config()
                if config is not None:
                    obj["config"] = config
            self._last, self._mtime = obj, mtime
        return self._last

    def _config(self) -> dict | None:
        try:
            obj = json.loads(self.run.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None


def pick_gpu(status: dict | None, snapshots: Sequence[GPUSnapshot]) -> GPUSnapshot | None:
    """The GPU a run uses: by `gpu_uuid` when the trainer wrote one (NVML order is PCI order,
    not CUDA order), else the index in `device` ("cuda:1"), else the first GPU; None for a run
    whose device is not CUDA (a CPU run uses no GPU)."""
    if not snapshots:
        return None
    st = status or {}
    if st.get("device") and not str(st["device"]).startswith("cuda"):
        return None
    found = find_by_uuid(snapshots, st.get("gpu_uuid"))  # a whole GPU or the view of one MIG slice
    if found is not None:
        return found
    m = re.fullmatch(r"cuda:(\d+)", str(st.get("device", "")))
    if m and int(m.group(1)) < len(snapshots):
        return snapshots[int(m.group(1))]
    return snapshots[0]


def status_summary(status: dict | None) -> dict[str, Any] | None:
    """The status without the bulky config (for NDJSON samples)."""
    if status is None:
        return None
    return {k: v for k, v in status.items() if k != "config"}
