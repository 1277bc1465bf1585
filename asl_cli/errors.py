"""The toolkit's own error types and the exit codes the CLI maps them to.

Library code raises these; the CLI turns each into one line on stderr and its exit code.
Exit codes (documented in docs/exit-codes.md):

    0   success
    1   a check found a problem (check-env, test-fix); a missing optional extra (export: onnx,
        show: matplotlib, extract and videos/.pose files: video); export failed or its verification did not match; a data worker
        process died (WorkerPoolError)
    2   bad usage or configuration (unknown preset key, wrong type, out of range)
    3   bad input data (missing/corrupt parquet, bad train.csv or sign map; extract: an unreadable video or
        .pose file, no person found)
    4   bad checkpoint (not a checkpoint, other model size, unsafe pickle)
    5   no usable NVIDIA GPU / NVML not available (gpu-watch, check-env --require-gpu,
        --device cuda in train, ablate, evaluate, predict)
    6   training stopped: non-finite loss
    7   out of memory
    8   cannot write an output (run folder, checkpoint, cache, synth/evaluate/export/show output)
    130 interrupted by Ctrl-C (SIGINT): train/ablate after saving a checkpoint, synth/prepare at once
    143 terminated by SIGTERM: as 130

Foundation layer (with config, units and tempfiles): imports nothing of the toolkit, so any module
may raise these.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_CHECKPOINT = 4
EXIT_NO_GPU = 5
EXIT_NONFINITE = 6
EXIT_OOM = 7
EXIT_IO = 8
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class ASLError(Exception):
    """Base class: a user-facing problem with a one-line message and an exit code."""

    exit_code = EXIT_PROBLEM

    def __init__(self, message: str, *, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class MissingExtraError(ASLError):
    """An optional extra the command needs is not installed; the message names its install command."""


class ConfigError(ASLError):
    exit_code = EXIT_USAGE


class DataError(ASLError):
    """Bad input data; `path` names the offending file. `skippable`: one unreadable sequence file, which
    `data.skip_bad` (`--skip-bad`) would have skipped; the CLI adds that remedy to the message
    (`asl_cli.cli.common.name_the_remedy`)."""

    exit_code = EXIT_DATA

    def __init__(self, message: str, *, path: str | Path | None = None, skippable: bool = False):
        super().__init__(message, path=path)
        self.skippable = skippable


class CheckpointError(ASLError):
    exit_code = EXIT_CHECKPOINT


class NoGPUError(ASLError):
    exit_code = EXIT_NO_GPU


class NonFiniteLossError(ASLError):
    exit_code = EXIT_NONFINITE


class OutOfMemoryError(ASLError):
    exit_code = EXIT_OOM


class RunIOError(ASLError):
    exit_code = EXIT_IO


class TrainingInterrupted(ASLError):
    """Raised after a clean checkpoint on SIGINT/SIGTERM."""

    def __init__(self, message: str, *, signum: int = 2, path: str | Path | None = None):
        super().__init__(message, path=path)
        self.exit_code = EXIT_SIGTERM if signum == 15 else EXIT_SIGINT
