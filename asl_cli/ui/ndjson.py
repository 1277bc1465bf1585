"""Machine-readable output (`--json`): any value as plain JSON types, one strict JSON object per line.

No Rich here; the NDJSON event stream of `asl train`, `asl ablate` and `asl gpu-watch` and the JSON
report of `asl check-env` all go through `json_safe`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping

from asl_cli.monitor.base import GPUSnapshot


def json_safe(obj: Any) -> Any:
    """Plain JSON types: dataclasses and snapshots as dicts, paths as strings, NaN/inf as null."""
    if isinstance(obj, GPUSnapshot):
        return json_safe(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return json_safe(obj.item())
    return str(obj)


def ndjson_line(obj: Any) -> str:
    """One compact JSON object on one line (no trailing newline), strict JSON (no NaN)."""
    return json.dumps(json_safe(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
