"""The run folder: everything one training run writes, in a layout that explains itself.

    runs/<name>/
      config.json        the resolved RunConfig
      metrics.jsonl      one JSON object per logged step and per evaluation
      status.json        the latest status, rewritten atomically (dashboards poll it)
      checkpoints/last.pt, checkpoints/best.pt
      skipped.txt        the sequence files --skip-bad left out (only when there are some)

This module is the one place that names these files: everything else asks a `RunDir` for them
(`RunDir(path)` reads an existing folder without creating or changing anything).
Run names may use letters, digits, `.`, `_` and `-` only (no separators, no `..`), so a name can
never point outside `runs_dir`. The default name is `<preset>-<YYYYmmdd-HHMMSS>`.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from asl_cli.config import check_run_name
from asl_cli.errors import ConfigError, RunIOError
from asl_cli.tempfiles import abandoned, atomic_write_text

__all__ = ["FolderLock", "RunDir", "check_run_name", "default_run_name", "find_checkpoint", "find_model_checkpoint"]


def default_run_name(preset: str = "", now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    base = re.sub(r"[^A-Za-z0-9._-]", "_", preset or "run").lstrip(".") or "run"
    return f"{base}-{stamp}"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


try:
    import fcntl
except ImportError:  # not POSIX: folders are not locked
    fcntl = None  # type: ignore[assignment]

_HELD_FDS: set[int] = set()  # descriptors of the locks this process holds


def _close_held_in_child() -> None:
    # A forked child (a DataLoader worker) shares each lock's open file: were it to keep the
    # descriptor, the lock would outlive the trainer by as long as the child lives (after a
    # kill -9 of the trainer, until the worker notices). Closing it in the child drops only the
    # child's reference; the parent's lock stays.
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_held_in_child)


class FolderLock:
    """One writer per folder: an advisory `flock` on the folder itself (no extra file to leave
    behind), held until `release()` or the end of the process (the OS drops it even after a kill;
    forked children do not keep it).

    A second holder, in this process or another, gets one ConfigError line (exit 2) naming the
    folder. Where locks are not available (not POSIX, a file system without flock) there is none.
    """

    def __init__(self, path: str | Path, *, holder: str = "trainer", acquire: bool = True):
        self.path = Path(path)
        self._fd: int | None = None
        if not acquire or fcntl is None:  # acquire=False: a stand-in where another process holds it
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # the caller reports a folder it cannot use
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"folder is in use by another {holder} (wait for it to end or stop it, "
                              f"then resume)", path=self.path) from None
        except OSError:  # a file system without flock
            os.close(fd)
            return
        self._fd = fd
        _HELD_FDS.add(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD_FDS.discard(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: released even if a descriptor copy lingers somewhere
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001 - at interpreter exit module globals may already be gone
            pass


class RunDir:
    """One run's folder. `RunDir.create(cfg)` makes a new one; `RunDir(path)` opens an existing one
    read-only (nothing is created until a write)."""

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    STATUS = "status.json"
    SKIPPED = "skipped.txt"
    CHECKPOINTS = "checkpoints"
    LAST = "last.pt"
    BEST = "best.pt"
    TENSORBOARD = "tensorboard"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def named(cls, runs_dir: str | Path, name: str) -> "RunDir":
        """The folder of run `name` under `runs_dir` (not created)."""
        return cls(Path(runs_dir) / name)

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> "RunDir | None":
        """The run folder a checkpoint file lies in (RUN/checkpoints/X.pt beside RUN/config.json), else None."""
        p = Path(checkpoint)
        run = cls(p.parent.parent)
        return run if p.parent.name == cls.CHECKPOINTS and run.config_path.is_file() else None

    @classmethod
    def create(cls, runs_dir: str | Path, name: str = "", *, preset: str = "", exist_ok: bool = False) -> "RunDir":
        generated = not name
        name = default_run_name(preset) if generated else check_run_name(name)
        path = cls.named(runs_dir, name).path
        if path.exists() and not path.is_dir() and not generated:
            raise ConfigError("run name is taken by a file that is not a folder (pick another name)", path=path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())) and not exist_ok:
            if not generated:
                raise ConfigError(f"run folder already exists: {path} (pick another name, or resume it)")
            path = Path(runs_dir) / f"{name}-{uuid.uuid4().hex[:4]}"  # two runs in the same second
        run = cls(path)
        try:
            run.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunIOError(f"cannot create the run folder ({exc.strerror or exc})", path=path) from None
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An explicitly given folder (new or existing, e.g. to resume); created when missing."""
        run = cls(path)
        try:
            run.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunIOError(f"cannot create the run folder ({exc.strerror or exc})", path=run.path) from None
        for tmp in abandoned(run.path.glob(".*.tmp-*")):  # status/config writes cut short by a kill
            tmp.unlink(missing_ok=True)
        return run

    def hold(self) -> FolderLock:
        """This folder for one trainer (`FolderLock`): `asl train`, `asl ablate` or a script."""
        return FolderLock(self.path, holder="trainer (asl train, asl ablate or a script)")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def status_path(self) -> Path:
        return self.path / self.STATUS

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / self.LAST

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / self.BEST

    @property
    def tensorboard_dir(self) -> Path:
        """TensorBoard event files (`train.tensorboard`): `tensorboard --logdir runs` finds them."""
        return self.path / self.TENSORBOARD

    @property
    def skipped_path(self) -> Path:
        """skipped.txt: every sequence file `--skip-bad` left out, one per line (only when there are some)."""
        return self.path / self.SKIPPED

    # -- reading an existing folder (nothing here creates or changes a file) ----------------------
    def looks_like_run(self) -> bool:
        """Whether `asl train` made this folder (it has its config.json or its checkpoints/)."""
        return self.config_path.is_file() or self.checkpoints.is_dir()

    def model_checkpoint(self) -> Path | None:
        """The checkpoint to predict with: best.pt, else last.pt; None when it has neither."""
        return next((p for p in (self.best_checkpoint, self.last_checkpoint) if p.is_file()), None)

    def read_config(self) -> dict:
        """config.json as a dict (the resolved RunConfig); a ConfigError naming the file when the folder
        has none or it is not a JSON object."""
        path = self.config_path
        if not path.is_file():
            raise ConfigError(f"not a run folder (no {self.CONFIG}); give the folder `asl train` made", path=self.path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc}", path=path) from None
        except UnicodeDecodeError:
            raise ConfigError("not valid JSON: not UTF-8 text", path=path) from None
        except OSError as exc:
            raise ConfigError(f"cannot read ({exc.strerror or exc})", path=path) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"not a run configuration (a JSON {type(raw).__name__}, not an object)", path=path)
        return raw

    def write_skipped(self, files: list[str]) -> Path:
        atomic_write_text(self.skipped_path, "".join(f + "\n" for f in files))
        return self.skipped_path

    def write_config(self, config: dict) -> None:
        atomic_write_text(self.config_path, json.dumps(_jsonable(config), indent=2) + "\n")

    def write_status(self, status: dict) -> None:
        atomic_write_text(self.status_path, json.dumps(_jsonable(status), indent=2) + "\n")

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.metrics_path, "a+b") as fh:
                line = (json.dumps(_jsonable(record)) + "\n").encode("utf-8")
                if fh.seek(0, 2) > 0:  # after a line torn by a killed writer or a full disk: end it first,
                    fh.seek(-1, 2)     # so this record stays a line of its own
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
                fh.write(line)
        except OSError as exc:
            raise RunIOError(f"cannot append metrics ({exc.strerror or exc})", path=self.metrics_path) from None

    def drop_metrics_after(self, step: int) -> int:
        """Remove the records of updates after `step` (a resume redoes them); returns how many.

        A run stopped after its last checkpoint (a kill, a failed checkpoint write) logged updates
        the resume will log again. Torn lines go too; the file is rewritten atomically, or left
        untouched when nothing is to be dropped.
        """
        if not self.metrics_path.exists():
            return 0
        try:
            lines = self.metrics_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise RunIOError(f"cannot read metrics ({exc.strerror or exc})", path=self.metrics_path) from None
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
                later = isinstance(record, dict) and int(record.get("step") or 0) > step
            except (ValueError, TypeError):
                continue  # a line torn by a killed writer
            if not later:
                kept.append(line)
        dropped = len([ln for ln in lines if ln.strip()]) - len(kept)
        if dropped:
            atomic_write_text(self.metrics_path, "".join(ln + "\n" for ln in kept))
        return dropped

    def read_status(self) -> dict:
        return json.loads(self.status_path.read_text())

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]


def find_checkpoint(run_dir_or_checkpoint: str | Path) -> tuple[Path, RunDir | None]:
    """(checkpoint file, its run folder or None) for `--resume RUN_DIR | FILE.pt`."""
    from asl_cli.errors import CheckpointError

    p = Path(run_dir_or_checkpoint)
    if p.is_dir():
        ckpt = RunDir(p).last_checkpoint
        if not ckpt.is_file():
            raise CheckpointError(f"no {RunDir.CHECKPOINTS}/{RunDir.LAST} in this run folder", path=p)
        return ckpt, RunDir(p)
    if not p.is_file():
        raise CheckpointError("no such run folder or checkpoint file", path=p)
    return p, RunDir.of_checkpoint(p)


def find_model_checkpoint(run_or_checkpoint: str | Path) -> tuple[Path, RunDir | None]:
    """(checkpoint file, its run folder or None) for evaluate / predict / export: a run folder means
    its best checkpoint, else its last."""
    from asl_cli.errors import CheckpointError

    p = Path(run_or_checkpoint)
    if p.is_dir():
        run = RunDir(p)
        ckpt = run.model_checkpoint()
        if ckpt is not None:
            return ckpt, run
        ckpts = RunDir.CHECKPOINTS
        if not run.looks_like_run():
            raise CheckpointError(f"not a run folder or checkpoint file (no {RunDir.CONFIG} or {ckpts}/ in it; "
                                  "give the folder `asl train` made, or a .pt file)", path=p)
        raise CheckpointError(f"no {ckpts}/{RunDir.BEST} or {ckpts}/{RunDir.LAST} in this run folder", path=p)
    if not p.is_file():
        raise CheckpointError("no such run folder or checkpoint file", path=p)
    return p, RunDir.of_checkpoint(p)
