"""The tests' kit: tiny data sets, a tiny trained run, the real CLI in a subprocess (a pipe, a
pseudo-terminal or torchrun), one ANSI stripper and run-folder locks as another process sees them.

Plain functions, importable from any test module (`tests/` is on sys.path through its conftest);
the fixtures that share their results across a session are in conftest.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import pty as _pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping

ROOT = Path(__file__).resolve().parents[1]  # the checkout under test
FIXTURES = ROOT / "tests" / "fixtures"
FAKE_GPUS = FIXTURES / "fake_gpus.json"  # the shipped `--fake-gpu demo`: an RTX 4070, a Tesla T4, a lost GPU


# --- text ---------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # CSI sequences: colour, cursor movement, screen modes


def strip_ansi(text: str | bytes) -> str:
    """What a terminal's text says: escape sequences removed (bytes are decoded as UTF-8 first)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return ANSI.sub("", text)


# --- data ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TinySet:
    """A tiny synthetic asl-signs set and where its prepared cache goes.

    `data`: the asl-signs folder; shared sets are read-only (copy it to change it).
    `cache`: for data.cache_dir or ASL_CACHE; whoever prepares first writes it, the others reuse it.
    `runs`: a runs folder of the holder's own (the `tiny` fixture gives each test module one).
    """

    data: Path
    cache: Path
    runs: Path | None = None


def tiny_dataset(out: str | Path, *, signs: int = 4, participants: int = 6, repetitions: int = 3,
                 seed: int = 0) -> Path:
    """Write a synthetic asl-signs folder (signs x participants x repetitions sequences) to `out`."""
    from asl_cli.data.synth import generate

    generate(out, num_signs=signs, num_participants=participants, repetitions=repetitions, seed=seed, workers=1)
    return Path(out)


def tiny_cli_args(command: str, tiny: TinySet, name: str, *extra: str) -> list[str]:
    """`asl train` / `asl ablate` arguments: a 32-wide model on `tiny` (3 folds, 32 frames, a log line
    per update) on the CPU, run `name` in tiny.runs; then `extra`."""
    return [command, "--data", str(tiny.data), "--set", "model.dim=32", "--set", "data.n_folds=3",
            "--set", "data.max_len=32", "--set", "train.log_every=1", "--device", "cpu",
            "--runs-dir", str(tiny.runs), "--name", name, *extra]


# The tiny trained run: a 32-wide, 1-block model trained a few steps in this process (a few seconds).
TINY_RUN_SETTINGS = ("model.dim=32", "model.blocks=1", "train.batch_size=32", "train.max_steps=3",
                     "train.epochs=2", "data.max_len=32", "train.device=cpu", "aug.use_augmentations=false",
                     "optim.lr=3e-3")


def train_tiny_run(data_dir: str | Path, root: str | Path, *sets: str, name: str = "tiny") -> Path:
    """Train TINY_RUN_SETTINGS (then `sets`) on `data_dir` with the cpu preset; return the finished run
    folder, `root`/runs/`name` (its cache goes to `root`/cache)."""
    from asl_cli.config import load_config
    from asl_cli.engine.trainer import ASLTrainer

    root = Path(root)
    cfg = load_config("cpu", [f"data.data_dir={data_dir}", f"data.cache_dir={root / 'cache'}",
                              f"runs_dir={root / 'runs'}", f"name={name}", *TINY_RUN_SETTINGS, *sets])
    ASLTrainer(cfg).fit()
    return root / "runs" / name


# --- the CLI as a real process ------------------------------------------------------------------

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def asl_env(env: Mapping[str, str | None] | None = None, *, terminal: tuple[int, int] | None = None) -> dict:
    """The environment the CLI runs in: this process's as the test has it (monkeypatch.setenv shows),
    without torchrun's variables, unbuffered, one intra-op thread, this checkout first on PYTHONPATH
    (not the editable install's); a `terminal` (rows, columns) adds TERM=xterm-256color, LINES,
    COLUMNS and drops NO_COLOR; then `env` on top (a value None removes the variable)."""
    out = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    paths = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(ROOT)]
    out.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), *paths]))
    if terminal is not None:
        rows, columns = terminal
        out.update(TERM="xterm-256color", LINES=str(rows), COLUMNS=str(columns))
        out.pop("NO_COLOR", None)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = str(value)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def asl_command(*args, torchrun: int = 0) -> list[str]:
    """`python -m asl_cli ARGS`; `torchrun` N: launched by torch.distributed.run as N local processes."""
    launcher = []
    if torchrun:
        launcher = ["-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={torchrun}",
                    "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}"]
    return [sys.executable, *launcher, "-m", "asl_cli", *map(str, args)]


@dataclasses.dataclass
class AslRun:
    """A finished `asl` process. On a pseudo-terminal, stdout is everything written to the terminal
    (stderr included, decoded), stderr is empty, and raw holds the bytes."""

    returncode: int
    stdout: str
    stderr: str
    raw: bytes = b""

    @property
    def text(self) -> str:
        """stdout without escape sequences."""
        return strip_ansi(self.stdout)


# Called after every read on a pseudo-terminal with the output so far and the process; it may send signals.
Watcher = Callable[[bytes, subprocess.Popen], None]


def run_asl(*args, env: Mapping[str, str | None] | None = None, cwd: str | os.PathLike | None = None,
            pty: bool = False, timeout: float = 120.0, rows: int = 45, columns: int = 100, poll: float = 0.2,
            watch: Watcher | None = None, torchrun: int = 0) -> AslRun:
    """Run `asl ARGS` to its end in a subprocess (environment: asl_env(env)) and return what it wrote.

    Through pipes by default (subprocess.TimeoutExpired after `timeout`); `pty=True`: on a `rows` x
    `columns` pseudo-terminal as a user's shell runs it (killed at `timeout`: exit code -9), with
    `watch` called every `poll` seconds at most. `torchrun` N: N processes under torch.distributed.run.
    """
    cmd = asl_command(*args, torchrun=torchrun)
    if pty:
        code, raw = run_on_terminal(cmd, env=asl_env(env, terminal=(rows, columns)), cwd=cwd, rows=rows,
                                    columns=columns, timeout=timeout, poll=poll, watch=watch)
        return AslRun(code, raw.decode("utf-8", "replace"), "", raw)
    done = subprocess.run(cmd, env=asl_env(env), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return AslRun(done.returncode, done.stdout, done.stderr)


def start_asl(*args, env: Mapping[str, str | None] | None = None, cwd: str | os.PathLike | None = None,
              text: bool = True) -> subprocess.Popen:
    """Start `asl ARGS` with stdout and stderr on pipes (read them as it runs, send it signals)."""
    return subprocess.Popen(asl_command(*args), env=asl_env(env), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=text)


def run_on_terminal(cmd: list[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None,
                    rows: int = 45, columns: int = 100, timeout: float = 120.0, poll: float = 0.2,
                    watch: Watcher | None = None) -> tuple[int, bytes]:
    """Run `cmd` with a `rows` x `columns` pseudo-terminal as stdin, stdout and stderr.

    Returns (exit code, everything written to the terminal). The process is killed at `timeout`
    (the exit code then says so: -9).
    """
    master, slave = _pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if watch is not None:
                watch(out, proc)
            ready, _, _ = select.select([master], [], [], poll)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has closed it
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                # it may have written its last lines between the select and its exit
                out += _drain(master)
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return proc.wait(timeout=30), out


def _drain(master: int) -> bytes:
    """Whatever is still buffered on the terminal once the process has exited."""
    rest = b""
    while select.select([master], [], [], 0.05)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: nothing left and no writer
            break
        if not chunk:
            break
        rest += chunk
    return rest


# --- run-folder locks ---------------------------------------------------------------------------

def folder_is_free(folder) -> bool:
    """Could another process take this folder's lock right now?"""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@contextlib.contextmanager
def lock_held(folder) -> Iterator[None]:
    """Hold this folder's lock as another running `asl train` / `asl ablate` on it would."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)
