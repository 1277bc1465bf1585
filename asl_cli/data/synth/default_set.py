"""The synthetic default set of `asl train` without --data: generated once per parameters, cached.

`ensure_default_dataset(cfg.synth)` returns `<$ASL_CACHE or ~/.cache/asl>/synth-<hash of the
parameters and the generator version>`, generating it the first time (marked complete by
`COMPLETE_FILE`, renamed into place: a killed generation is never used). `default_dataset_facts`
and `describe_default_dataset` say where it is and what it takes on disk (check-env, train).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from asl_cli.data.synth import writer
from asl_cli.data.synth.writer import ProgressFn
from asl_cli.errors import RunIOError
from asl_cli.tempfiles import temp_sibling

COMPLETE_FILE = ".complete"


def _params(synth_cfg: Any) -> dict:
    return {"num_signs": int(synth_cfg.num_signs), "num_participants": int(synth_cfg.num_participants),
            "repetitions": int(synth_cfg.repetitions), "seed": int(synth_cfg.seed),
            "generator_version": writer.GENERATOR_VERSION}


def default_dataset_dir(synth_cfg: Any, cache_root: str | Path | None = None) -> Path:
    """Where the set of these parameters is cached: `<$ASL_CACHE or ~/.cache/asl>/synth-<hash>`."""
    from asl_cli.data.cache import default_cache_root

    root = Path(cache_root).expanduser() if cache_root else default_cache_root()
    digest = hashlib.sha256(json.dumps(_params(synth_cfg), sort_keys=True).encode()).hexdigest()[:12]
    return root / f"synth-{digest}"


def _is_complete(path: Path, params: dict) -> bool:
    try:
        return json.loads((path / COMPLETE_FILE).read_text()) == params
    except (OSError, ValueError):
        return False


def default_dataset_ready(synth_cfg: Any, cache_root: str | Path | None = None) -> bool:
    """Whether the set of `synth_cfg` is already generated (`ensure_default_dataset` returns at once)."""
    return _is_complete(default_dataset_dir(synth_cfg, cache_root), _params(synth_cfg))


def ensure_default_dataset(synth_cfg: Any, *, progress: ProgressFn | None = None,
                           cache_root: str | Path | None = None) -> Path:
    """Generate the synthetic set of `synth_cfg` once (cached) and return its folder.

    The set is written into a temporary sibling folder, marked complete, and renamed into place,
    so a killed generation is never used: the next call removes its leftovers and starts again.
    """
    target = default_dataset_dir(synth_cfg, cache_root)
    params = _params(synth_cfg)
    if _is_complete(target, params):
        return target
    with writer.building(target, "cache folder") as tmp:
        writer.write_set(tmp, target, num_signs=params["num_signs"], num_participants=params["num_participants"],
                   repetitions=params["repetitions"], seed=params["seed"], workers=None, progress=progress)
        try:
            (tmp / COMPLETE_FILE).write_text(json.dumps(params), encoding="utf-8")
            if _is_complete(target, params):  # another process finished first (and may be using it)
                return target
            if target.exists():  # incomplete: move it aside, then remove it
                old = temp_sibling(target, "old")
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:
                if not _is_complete(target, params):  # not "another process finished first"
                    raise
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=target) from None
    return target


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under `path` (0 when it does not exist; unreadable entries are left out)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def default_dataset_facts(synth_cfg: Any, cache_root: str | Path | None = None) -> dict[str, Any]:
    """Where the synthetic default set of `synth_cfg` lives and what it takes on disk (pure but for
    reading the folders): its folder, whether it is generated, its sequence count and bytes, and its
    prepared cache (made by the first run that trains on it) with its bytes."""
    from asl_cli.data.cache import cache_path

    target = default_dataset_dir(synth_cfg, cache_root)
    params = _params(synth_cfg)
    ready = _is_complete(target, params)
    cache = cache_path(target, cache_root)
    cache_ready = (cache / "complete").is_file()
    return {"dir": str(target), "generated": ready,
            "sequences": params["num_signs"] * params["num_participants"] * params["repetitions"],
            "bytes": folder_bytes(target) if ready else 0,
            "cache_dir": str(cache), "cache_ready": cache_ready,
            "cache_bytes": folder_bytes(cache) if cache_ready else 0}


def describe_default_dataset(facts: dict[str, Any]) -> str:
    """One line for people: `<dir> (2,400 sequences, 328 MB; prepared cache 49 MB)`, or where it will go."""
    from asl_cli.units import human_bytes

    if not facts.get("generated"):
        return (f"not generated yet: the first run without --data writes {facts['sequences']:,} sequences "
                f"to {facts['dir']}")
    cache = f"; prepared cache {human_bytes(facts['cache_bytes'])} in {facts['cache_dir']}" \
        if facts.get("cache_ready") else ""
    total = facts["bytes"] + (facts.get("cache_bytes") or 0)
    return (f"{facts['dir']} ({facts['sequences']:,} sequences, {human_bytes(facts['bytes'])}{cache}; "
            f"{human_bytes(total)} in all)")
