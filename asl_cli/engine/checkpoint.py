"""Checkpoints: atomic writes, safe loads, and the checks that refuse the wrong file.

A checkpoint is a `torch.save`d dict of tensors and plain Python values only, so it loads with
`torch.load(weights_only=True)` (no arbitrary pickle code runs). Contents (`FORMAT`, version 1):

    format, format_version, toolkit_version   identity (major version must match on load)
    fingerprint      model size: dim, blocks, kernel_size, num_heads, expand, num_classes, num_params
    config           the full resolved RunConfig as a JSON string
    model            state_dict of the unwrapped module (no `_orig_mod.` prefixes from torch.compile)
    optimizer, scheduler, precision (GradScaler)   state dicts
    progress         step (optimizer updates), epoch, batch_in_epoch, samples, best_top1, ...
    sampler          the training batch sampler's position (epoch, batches done)
    rng              torch, cuda (list, may be empty), numpy and python RNG states as plain values
    sign_map         {sign: class index}

Writing goes to a temporary file in the same folder, is fsynced, then `os.replace`d over the
target: a crash or a full disk leaves the previous checkpoint intact (the temp file is removed).
"""

from __future__ import annotations

import os
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asl_cli import __version__
from asl_cli.errors import CheckpointError, RunIOError
from asl_cli.tempfiles import abandoned, temp_sibling

FORMAT = "asl-checkpoint"
FORMAT_VERSION = 1
FINGERPRINT_KEYS = ("dim", "blocks", "kernel_size", "num_heads", "expand")


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module behind `torch.compile` (whose state_dict keys carry `_orig_mod.`)."""
    return getattr(model, "_orig_mod", model)


def model_fingerprint(model_cfg: Any, num_classes: int, model: torch.nn.Module | None = None) -> dict:
    """What must match for weights to fit: the model's shape settings and the class count."""
    get = (lambda k: model_cfg[k]) if isinstance(model_cfg, dict) else (lambda k: getattr(model_cfg, k))
    fp = {k: int(get(k)) for k in FINGERPRINT_KEYS}
    fp["num_classes"] = int(num_classes)
    if model is not None:
        fp["num_params"] = int(sum(p.numel() for p in unwrap_model(model).parameters()))
    return fp


# --- RNG state as plain values (loadable with weights_only=True) -------------------------------

def rng_state(device: torch.device | None = None) -> dict:
    """Every random stream a resume must continue: torch CPU, the training CUDA device, numpy, random.

    Only the run's own CUDA device: `torch.cuda.get_rng_state_all()` would create a CUDA context
    (hundreds of MB) on every GPU of the machine, from every process of a multi-GPU run, and from
    a `--device cpu` run on a GPU machine.
    """
    np_state = np.random.get_state()
    cuda = None
    if device is not None and device.type == "cuda":
        index = _cuda_index(device)
        cuda = {"index": index, "state": torch.cuda.get_rng_state(index)}
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore `rng_state(device)`; the CUDA stream goes to `device` (the run may resume on another GPU)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if isinstance(cuda, dict) and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda["state"], _cuda_index(device))
    elif isinstance(cuda, list) and cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # older checkpoints: one state per GPU
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def all_finite(state_dict: dict) -> bool:
    """True when every floating-point tensor of a state dict is finite."""
    return all(bool(torch.isfinite(t).all()) for t in state_dict.values()
               if torch.is_tensor(t) and t.is_floating_point())


# --- writing and reading ----------------------------------------------------------------------

def save_checkpoint(payload: dict, path: str | Path) -> Path:
    """Atomically write `payload` (plus format/version keys) to `path`.

    OSError (disk full, read-only folder) becomes RunIOError; the previous file stays as it was.
    """
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "toolkit_version": __version__, **payload}
    tmp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_temps(path)
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:  # also Ctrl-C mid-write: never leave the temp file behind
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        cause = _os_error(exc)
        if cause is None:
            raise
        raise RunIOError(f"cannot write checkpoint ({cause.strerror or cause})", path=path) from None
    return path


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`: itself, or (a full disk inside torch.save) the context of torch's
    RuntimeError "[enforce fail at inline_container.cc] unexpected pos ..."."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        if not isinstance(exc, RuntimeError):
            return None
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _remove_dead_temps(path: Path) -> None:
    """Delete half-written temp files beside `path` left by a killed process (SIGKILL skips cleanup)."""
    for tmp in abandoned(path.parent.glob(".*.tmp-*")):
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every filesystem allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _looks_like_torch_file(path: Path) -> bool:
    """torch.save writes a zip archive (PK..); legacy files start with a pickle protocol opcode."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return True  # let torch.load report the read error
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def load_checkpoint(path: str | Path, *, expect_fingerprint: dict | None = None,
                    map_location: str | torch.device = "cpu") -> dict:
    """Read and check a checkpoint; every refusal is one CheckpointError line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path=path)
    if not _looks_like_torch_file(path):
        raise CheckpointError("not an asl checkpoint (not a torch file: neither a zip archive nor a pickle)",
                              path=path)
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError("refused: the file contains code or objects outside the safe set "
                                  "(possibly a malicious pickle); it was not loaded", path=path) from None
        raise CheckpointError("not an asl checkpoint (unreadable pickle)", path=path) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, TypeError,
            KeyError, IndexError) as exc:
        raise CheckpointError(f"not an asl checkpoint (unreadable as a torch file: {type(exc).__name__})",
                              path=path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not an asl checkpoint (no asl checkpoint header)", path=path)
    theirs = str(payload.get("toolkit_version", "0"))
    if theirs.split(".")[0] != __version__.split(".")[0]:
        raise CheckpointError(f"written by asl {theirs}, which is incompatible with asl {__version__} "
                              f"(different major version)", path=path)
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format {payload.get('format_version')} is newer than this "
                              f"asl understands ({FORMAT_VERSION})", path=path)
    if expect_fingerprint is not None:
        check_fingerprint(payload.get("fingerprint", {}), expect_fingerprint, path=path)
    return payload


def check_fingerprint(theirs: dict, ours: dict, *, path: str | Path | None = None) -> None:
    diffs = [f"{k} {theirs.get(k)} != {ours[k]}" for k in ours
             if theirs.get(k) != ours[k] and not (k == "num_params" and k not in theirs)]
    if diffs:
        raise CheckpointError("model does not match the checkpoint (checkpoint vs this run: "
                              + ", ".join(diffs) + ")", path=path)


def checkpoint_config(path: str | Path) -> dict:
    """The resolved RunConfig (as a dict) stored in a checkpoint, e.g. to resume with it."""
    import json

    return json.loads(load_checkpoint(path)["config"])
