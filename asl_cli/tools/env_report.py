"""`asl check-env` as data: plain functions that each return a dict of facts, one report dict.

Like accelerate's `env` and torch's `collect_env`, the report is built first and rendered
second (a Rich view or JSON), so tests read the dict. Each function takes what it needs as
arguments (a torch module, a version lookup, a GPU backend) so tests can substitute them.
Nothing here raises for a missing GPU or a missing package: those are facts in the report.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any, Callable

from asl_cli.units import MIB

PACKAGES = ("torch", "typer", "rich", "numpy", "pandas", "pyarrow", "nvidia-ml-py")


def python_facts() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES,
                     version: Callable[[str], str] = importlib.metadata.version) -> dict[str, str | None]:
    """Installed distribution versions (None when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


# The optional extras of pyproject.toml: (name, its packages, what it enables). tests/test_check_env.py
# checks them against pyproject.toml; `all` installs every one.
EXTRAS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("plot", ("matplotlib",), "asl show, evaluate's confusion matrix, ablate's chart"),
    ("onnx", ("onnx", "onnxruntime", "onnxscript"), "asl export (ONNX, verified with onnxruntime)"),
    ("tensorboard", ("tensorboard",), "TensorBoard event files of every run (tensorboard --logdir runs)"),
    # pyarrow: the extra caps it below 26 (the first release that needs numpy 2) where mediapipe pins numpy<2
    ("video", ("mediapipe", "pyarrow", "pose-format"), "asl extract; predict and show on videos and .pose files"),
)


def install_command(extra: str) -> str:
    """The command that adds an extra to this installation (pip reuses the installed asl-cli, a
    checkout's editable install included, and installs only the extra's packages)."""
    return f'pip install "asl-cli[{extra}]"'


def extras_facts(version: Callable[[str], str] = importlib.metadata.version) -> dict[str, Any]:
    """Each optional extra: installed or not (every package of it), its packages' versions, what it
    enables, the command that installs it; and the one that installs them all."""
    extras = []
    for name, packages, enables in EXTRAS:
        versions = package_versions(packages, version=version)
        extras.append({"name": name, "installed": all(versions.values()), "packages": versions,
                       "enables": enables, "install": install_command(name)})
    return {"extras": extras, "install_all": install_command("all")}


def torch_facts(torch: Any = None) -> dict[str, Any]:
    """torch's version and its view of CUDA; GPUs as torch sees them (CUDA order)."""
    if torch is None:
        try:
            import torch  # noqa: PLC0415 - heavy: only when check-env runs
        except Exception as exc:  # ImportError, or a broken CUDA install raising OSError
            return {"version": None, "error": f"cannot import torch ({type(exc).__name__}: {exc})",
                    "cuda_available": False, "cuda_version": None, "cudnn_version": None, "gpus": []}
    facts: dict[str, Any] = {"version": str(torch.__version__), "cuda_version": torch.version.cuda,
                             "cuda_available": False, "cudnn_version": None, "gpus": []}
    try:
        facts["cuda_available"] = bool(torch.cuda.is_available())
    except Exception as exc:  # a driver/runtime mismatch can raise here
        facts["cuda_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        facts["cudnn_version"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        facts["cudnn_version"] = None
    if facts["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            cc = (int(p.major), int(p.minor))
            facts["gpus"].append({
                "index": i, "name": p.name, "memory_total_mib": round(p.total_memory / MIB),
                "compute_capability": f"{cc[0]}.{cc[1]}", "bf16": cc >= (8, 0),
                "uuid": _torch_uuid(p), "driver": None, "lost": False, "source": "torch",
            })
    return facts


def _torch_uuid(props: Any) -> str | None:
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith("GPU-") else f"GPU-{text}"


def nvml_facts(fake_gpu: str | Path | None = None) -> dict[str, Any]:
    """NVML's view (or the fake's): status, driver, and one dict per GPU (NVML/PCI order)."""
    from asl_cli.errors import ASLError
    from asl_cli.monitor import open_backend

    def unavailable(exc: ASLError, fake: bool) -> dict[str, Any]:
        message, _, hint = str(exc).partition("; hint: ")
        return {"status": "unavailable", "message": message, "hint": hint or None, "driver": None,
                "fake": fake, "gpus": [], "exit_code": exc.exit_code}

    try:
        backend = open_backend(fake_gpu)
    except ASLError as exc:
        return unavailable(exc, bool(fake_gpu))
    try:
        snaps = [backend.snapshot(i) for i in range(backend.device_count())]
    except ASLError as exc:
        return unavailable(exc, backend.fake)
    finally:
        backend.shutdown()
    gpus = []
    for s in snaps:
        cc = s.compute_capability
        gpus.append({
            "index": s.index, "name": s.name, "uuid": s.uuid,
            "memory_total_mib": None if s.memory_total is None else round(s.memory_total / MIB),
            "memory_used_mib": None if s.memory_used is None else round(s.memory_used / MIB),
            "compute_capability": None if cc is None else f"{cc[0]}.{cc[1]}", "bf16": s.bf16,
            "driver": s.driver, "lost": s.lost, "source": "fake" if s.fake else "nvml",
        })
    driver = next((s.driver for s in snaps if s.driver), None) or getattr(backend, "driver", None)
    return {"status": "ok", "message": getattr(backend, "source", "NVML"), "driver": driver,
            "fake": backend.fake, "gpus": gpus}


def merge_gpus(torch_info: dict, nvml_info: dict) -> list[dict]:
    """GPUs from torch when CUDA works (with NVML's driver), else from NVML or the fake."""
    if torch_info.get("gpus") and not nvml_info.get("fake"):
        by_uuid = {g.get("uuid"): g for g in nvml_info.get("gpus", []) if g.get("uuid")}
        merged = []
        for g in torch_info["gpus"]:
            g = dict(g)
            g["driver"] = by_uuid.get(g.get("uuid"), {}).get("driver") or nvml_info.get("driver")
            merged.append(g)
        return merged
    return [dict(g) for g in nvml_info.get("gpus", [])]


def compile_facts(torch_info: dict, gpus: list[dict], *, which: Callable[[str], str | None] = shutil.which,
                  find_spec: Callable[[str], Any] = importlib.util.find_spec) -> dict[str, dict]:
    """Whether torch.compile (inductor) can work here, without compiling anything.

    CPU inductor writes C++ and needs a C++ compiler plus Python's headers; CUDA inductor
    writes Triton kernels and needs the `triton` package and compute capability >= 7.0.
    """
    version = torch_info.get("version")
    if not version:
        reason = "torch is not importable"
        return {"cpu": {"ok": False, "why": reason}, "cuda": {"ok": False, "why": reason}}
    cpu: dict[str, Any]
    if sys.platform == "win32":
        cpu = {"ok": False, "why": "inductor on Windows needs MSVC; not checked here"}
    else:
        compiler = os.environ.get("CXX") or next((c for c in ("g++", "c++", "clang++") if which(c)), None)
        header = Path(sysconfig.get_paths().get("include", "")) / "Python.h"
        if not compiler or (os.environ.get("CXX") and not which(os.environ["CXX"])):
            cpu = {"ok": False, "why": "no C++ compiler (install g++ or clang++, or set CXX)"}
        elif not header.is_file():
            cpu = {"ok": False, "why": f"Python headers missing ({header}); install python3-dev"}
        else:
            cpu = {"ok": True, "why": f"C++ compiler {compiler}, Python headers present"}
    if not torch_info.get("cuda_available"):
        cuda = {"ok": False, "why": "CUDA is not available to torch"}
    elif find_spec("triton") is None:
        cuda = {"ok": False, "why": "the triton package is missing (pip install triton)"}
    else:
        old = [g for g in gpus if g.get("compute_capability") and _cc(g["compute_capability"]) < (7, 0)]
        cuda = ({"ok": False, "why": f"triton needs compute capability >= 7.0 ({old[0]['name']} has "
                                     f"{old[0]['compute_capability']})"} if old
                else {"ok": True, "why": "triton present"})
    return {"cpu": cpu, "cuda": cuda}


def _cc(text: str | None) -> tuple[int, int]:
    if not text:
        return (0, 0)
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def data_facts(data_dir: str | Path, *, max_errors: int = 5, workers: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Check an asl-signs folder: train.csv + sign map, then every listed parquet file.

    Uses the reader the trainer uses (`read_index`, `read_landmarks`), so "OK" here means the
    training pipeline can read it. Reports counts and the first `max_errors` problems.
    """
    from asl_cli.data.reader import COORDINATES, read_index, read_landmarks
    from asl_cli.errors import DataError

    facts: dict[str, Any] = {"dir": str(data_dir), "ok": False, "sequences": 0, "ok_files": 0, "bad_files": 0,
                             "errors": [], "index_error": None}
    try:
        index = read_index(data_dir)
    except DataError as exc:
        facts["index_error"] = str(exc)
        return facts
    n = len(index)
    facts.update(sequences=n, signs=index.num_classes, participants=int(len(set(index.participants.tolist()))))

    def check(i: int) -> str | None:
        try:
            read_landmarks(index.file(i), columns=COORDINATES)  # what the cache reads
            return None
        except DataError as exc:
            return str(exc)

    # pyarrow releases the GIL while decoding: threads overlap the ~10 ms per file.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        for done, error in enumerate(pool.map(check, range(n)), start=1):  # file order kept
            if error is None:
                facts["ok_files"] += 1
            else:
                facts["bad_files"] += 1
                if len(facts["errors"]) < max_errors:
                    facts["errors"].append(error)
            if progress is not None:
                progress(done, n)
    facts["ok"] = facts["bad_files"] == 0
    return facts


def recommend_preset(gpus: list[dict], *, cuda_usable: bool, available: list[str] | None = None) -> dict[str, Any]:
    """The preset for this machine, from its first usable GPU.

    cpu without a usable CUDA GPU; t4 below compute capability 8.0 (no bf16: fp16 + scaler);
    rtx4070 up to 16 GB; gpu24gb up to 64 GB; dc80gb above (batch 512 of up to 384 frames at dim
    384 x4 needs an estimated 35 GiB of activations by itself: too close to a 40/48 GB card's limit).
    """
    usable = [g for g in gpus if not g.get("lost")]
    if not usable:
        return {"preset": "cpu", "why": "no usable NVIDIA GPU", "gpu": None}
    g = usable[0]
    mem_gib = (g.get("memory_total_mib") or 0) / 1024
    cc = _cc(g.get("compute_capability"))
    if g.get("compute_capability") and cc < (8, 0):
        name, why = "t4", f"compute capability {cc[0]}.{cc[1]} < 8.0: no bf16, so fp16 with a GradScaler"
    elif mem_gib <= 16.5:
        name, why = "rtx4070", f"{mem_gib:.0f} GB card: small batch with gradient accumulation"
    elif mem_gib <= 33:
        name, why = "gpu24gb", f"{mem_gib:.0f} GB card"
    elif mem_gib <= 64:
        name, why = "gpu24gb", f"{mem_gib:.0f} GB card: dc80gb's batch 512 needs an 80 GB card"
    else:
        name, why = "dc80gb", f"{mem_gib:.0f} GB card: the winner's batch on one GPU"
    if available is not None and name not in available:
        return {"preset": "cpu", "why": f"preset {name!r} is not installed", "gpu": g.get("name")}
    rec = {"preset": name, "why": f"{g.get('name')}: {why}", "gpu": g.get("name")}
    if not cuda_usable:
        # The GPU exists (NVML or a fake) but this torch cannot use it.
        rec = {"preset": "cpu", "why": "this torch build cannot use CUDA", "gpu": g.get("name"),
               "with_cuda_torch": name}
    return rec


def default_data_facts() -> dict[str, Any]:
    """The synthetic default set `asl train` uses without --data (the cpu preset's): where it lives,
    whether it is generated, what it takes on disk with its prepared cache."""
    from asl_cli.config import load_config
    from asl_cli.data.synth import default_dataset_facts, describe_default_dataset

    facts = default_dataset_facts(load_config("cpu").synth)
    return facts | {"summary": describe_default_dataset(facts)}


def collect_report(*, data_dir: str | Path | None = None, fake_gpu: str | Path | None = None, torch: Any = None,
                   version: Callable[[str], str] = importlib.metadata.version,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Every fact `asl check-env` shows, plus `warnings`, `problems` and the recommended preset."""
    from asl_cli.config import list_presets
    from asl_cli.monitor.nvml import deprecated_pynvml_warning

    report: dict[str, Any] = {"system": python_facts()}
    report["torch"] = torch_facts(torch)
    report["nvml"] = nvml_facts(fake_gpu)
    fake = bool(report["nvml"].get("fake"))
    gpus = merge_gpus(report["torch"], report["nvml"])
    report["gpus"] = gpus
    report["fake_gpus"] = fake
    report["compile"] = compile_facts(report["torch"], gpus)
    report["packages"] = package_versions(version=version)
    report.update(extras_facts(version))
    report["default_data"] = default_data_facts()
    warnings: list[str] = []
    problems: list[str] = []
    deprecated = deprecated_pynvml_warning(version)
    if deprecated:
        warnings.append(deprecated.removeprefix("warning: "))
    if report["torch"].get("error"):
        problems.append(report["torch"]["error"])
    if report["torch"].get("cuda_error"):
        warnings.append(f"torch.cuda.is_available() failed: {report['torch']['cuda_error']}")
    nvml_gpus = [g for g in report["nvml"]["gpus"] if not g.get("lost")]
    if nvml_gpus and not report["torch"].get("cuda_available") and not fake:
        warnings.append(f"NVML sees {len(nvml_gpus)} GPU(s) but torch cannot use CUDA "
                        f"(torch {report['torch'].get('version')}); install a CUDA build of torch")
    for g in gpus:
        if g.get("lost"):
            problems.append(f"GPU {g['index']} is lost (fell off the bus): reset it or reboot")
    if fake:
        warnings.append("GPU facts come from a fake GPU file (--fake-gpu / ASL_FAKE_GPU)")
        if report["nvml"]["status"] != "ok":  # the user's own file: not "no GPU", a mistake to fix
            problems.append(f"fake GPU file: {report['nvml']['message']}")
    if data_dir is not None:
        data = data_facts(data_dir, progress=progress)
        report["data"] = data
        if data["index_error"]:
            problems.append(f"data: {data['index_error']}")
        elif data["bad_files"]:
            problems.append(f"data: {data['bad_files']} of {data['sequences']} files are unreadable or invalid")
    cuda_usable = bool(report["torch"].get("cuda_available")) or (fake and bool(nvml_gpus))
    report["cuda_usable"] = cuda_usable
    report["recommendation"] = recommend_preset(gpus, cuda_usable=cuda_usable, available=list(list_presets()))
    report["warnings"] = warnings
    report["problems"] = problems
    return report
