"""`asl check-env`: the report's plain functions with substituted inputs, the data check on the
real sample and on a damaged copy, and the command's output and exit codes."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from kit import run_asl
from realdata import SEQUENCES
from asl_cli.cli.app import app
from asl_cli.config import list_presets
from asl_cli.tools.env_report import (collect_report, compile_facts, data_facts, merge_gpus, package_versions,
                                recommend_preset, torch_facts)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAKE = str(FIXTURES / "fake_gpus.json")
H100 = str(FIXTURES / "fake_h100.json")
NO_GPUS = str(FIXTURES / "fake_no_gpus.json")
runner = CliRunner()


def gpu(cc: str, mib: int, **kw) -> dict:
    return {"index": 0, "name": f"GPU cc{cc}", "memory_total_mib": mib, "compute_capability": cc, **kw}


@pytest.mark.parametrize("cc, mib, preset", [
    ("7.5", 15360, "t4"),       # T4: no bf16
    ("7.0", 32768, "t4"),       # V100 32 GB: still no bf16
    ("8.9", 12282, "rtx4070"),
    ("8.9", 16376, "rtx4070"),  # a 16 GB card reports a little under 16 GiB
    ("8.6", 24576, "gpu24gb"),
    ("9.0", 32607, "gpu24gb"),
    ("8.0", 40960, "gpu24gb"),  # A100 40GB: dc80gb's batch 512 at 384 frames would not fit safely
    ("8.9", 49140, "gpu24gb"),  # L40S / RTX 6000 Ada 48 GB
    ("9.0", 81559, "dc80gb"),
])
def test_recommended_preset_by_capability_and_memory(cc, mib, preset):
    rec = recommend_preset([gpu(cc, mib)], cuda_usable=True, available=list(list_presets()))
    assert rec["preset"] == preset and rec["gpu"] == f"GPU cc{cc}"
    assert preset in list_presets()


def test_recommendation_without_a_usable_gpu_is_cpu():
    assert recommend_preset([], cuda_usable=False)["preset"] == "cpu"
    assert recommend_preset([gpu("8.9", 12282, lost=True)], cuda_usable=True)["preset"] == "cpu"
    rec = recommend_preset([gpu("8.6", 24576)], cuda_usable=False)
    assert rec["preset"] == "cpu" and rec["with_cuda_torch"] == "gpu24gb"
    # the first usable GPU decides
    two = [gpu("8.0", 81920, lost=True), gpu("7.5", 15360)]
    assert recommend_preset(two, cuda_usable=True)["preset"] == "t4"


def fake_torch(cuda: bool, devices=()):
    props = [SimpleNamespace(name=n, total_memory=m * 1024 * 1024, major=a, minor=b, uuid="abc-123")
             for n, m, a, b in devices]
    return SimpleNamespace(
        __version__="2.5.1+cu124",
        version=SimpleNamespace(cuda="12.4" if cuda else None),
        cuda=SimpleNamespace(is_available=lambda: cuda, device_count=lambda: len(props),
                             get_device_properties=lambda i: props[i]),
        backends=SimpleNamespace(cudnn=SimpleNamespace(is_available=lambda: cuda, version=lambda: 90100)),
    )


def test_torch_facts_read_gpus_from_torch_when_cuda_works():
    t = torch_facts(fake_torch(True, [("NVIDIA A100-SXM4-40GB", 40960, 8, 0), ("Tesla T4", 15360, 7, 5)]))
    assert t["cuda_available"] and t["cuda_version"] == "12.4" and t["cudnn_version"] == 90100
    assert [(g["name"], g["compute_capability"], g["bf16"]) for g in t["gpus"]] == [
        ("NVIDIA A100-SXM4-40GB", "8.0", True), ("Tesla T4", "7.5", False)]
    merged = merge_gpus(t, {"driver": "550.1", "gpus": [], "fake": False})
    assert all(g["driver"] == "550.1" and g["source"] == "torch" for g in merged)
    off = torch_facts(fake_torch(False))
    assert not off["cuda_available"] and off["gpus"] == [] and off["cudnn_version"] is None


def test_torch_facts_survive_a_broken_cuda_query():
    broken = fake_torch(True)

    def boom():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
    broken.cuda.is_available = boom
    t = torch_facts(broken)
    assert t["cuda_available"] is False and "insufficient" in t["cuda_error"]


def test_compile_prerequisites():
    torch_ok = {"version": "2.5", "cuda_available": True}
    nothing = compile_facts(torch_ok, [], which=lambda name: None, find_spec=lambda name: None)
    assert not nothing["cpu"]["ok"] and "C++ compiler" in nothing["cpu"]["why"]
    assert not nothing["cuda"]["ok"] and "triton" in nothing["cuda"]["why"]
    old = compile_facts(torch_ok, [{"name": "Tesla P100", "compute_capability": "6.0"}],
                        which=lambda name: "/usr/bin/" + name, find_spec=lambda name: object())
    assert not old["cuda"]["ok"] and "7.0" in old["cuda"]["why"]
    no_cuda = compile_facts({"version": "2.5", "cuda_available": False}, [])
    assert not no_cuda["cuda"]["ok"] and "CUDA" in no_cuda["cuda"]["why"]
    assert not compile_facts({"version": None}, [])["cpu"]["ok"]


def test_package_versions_mark_missing_ones():
    def lookup(name):
        if name == "pandas":
            raise importlib.metadata.PackageNotFoundError(name)
        return "1.0"
    v = package_versions(("torch", "pandas"), version=lookup)
    assert v == {"torch": "1.0", "pandas": None}
    assert set(package_versions()) >= {"torch", "typer", "rich", "numpy", "pandas", "pyarrow", "nvidia-ml-py"}


def test_report_with_fake_gpus_is_json_and_recommends_from_them():
    report = collect_report(fake_gpu=H100)
    assert report["fake_gpus"] and report["gpus"][0]["source"] == "fake"
    assert report["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and report["gpus"][0]["bf16"] is True
    assert report["recommendation"]["preset"] == "dc80gb" and report["problems"] == []
    assert any("fake GPU" in w for w in report["warnings"])
    json.dumps(report)  # plain data


def test_deprecated_pynvml_package_becomes_a_warning():
    def lookup(name):
        if name == "pynvml":
            return "12.0.0"
        return importlib.metadata.version(name)
    report = collect_report(fake_gpu=H100, version=lookup)
    assert any("deprecated 'pynvml' package (12.0.0)" in w for w in report["warnings"])


# --- optional extras and the synthetic default set ----------------------------------------------

def test_extras_are_those_of_pyproject_with_what_they_enable_and_the_install_command():
    import tomllib

    from asl_cli.tools.env_report import EXTRAS, extras_facts

    declared = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    optional = declared["project"]["optional-dependencies"]
    name_of = lambda req: re.split(r"[<>=!;\[ ]", req, maxsplit=1)[0]  # noqa: E731
    for name, packages, _enables in EXTRAS:
        assert sorted(map(name_of, optional[name])) == sorted(packages), name
    assert sorted(map(name_of, optional["all"])) == sorted(p for _, ps, _ in EXTRAS for p in ps)

    def lookup(name):
        if name == "onnxruntime":
            raise importlib.metadata.PackageNotFoundError(name)
        return "9.9"
    facts = extras_facts(lookup)
    state = {e["name"]: e["installed"] for e in facts["extras"]}
    assert state == {"plot": True, "onnx": False, "tensorboard": True, "video": True}  # onnx: one of its three packages is missing
    onnx = next(e for e in facts["extras"] if e["name"] == "onnx")
    assert onnx["install"] == 'pip install "asl-cli[onnx]"' and "asl export" in onnx["enables"]
    assert onnx["packages"] == {"onnx": "9.9", "onnxruntime": None, "onnxscript": "9.9"}
    assert facts["install_all"] == 'pip install "asl-cli[all]"'


def test_check_env_lists_each_extra_installed_or_not_with_its_install_command(monkeypatch):
    import asl_cli.tools.env_report as env_report

    real = importlib.metadata.version

    def lookup(name):
        if name == "matplotlib":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)
    monkeypatch.setattr(env_report.importlib.metadata, "version", lookup)
    monkeypatch.setattr(env_report, "package_versions",
                        lambda names=env_report.PACKAGES, version=lookup: {n: (None if n == "matplotlib" else "1.0")
                                                                          for n in names})
    r = check_env("--fake-gpu", H100, env={"COLUMNS": "100"})
    out = r.stdout
    assert "optional extras" in out and 'pip install "asl-cli[plot]"' in out and "not installed" in out
    assert "asl show" in out and 'all extras at once: pip install "asl-cli[all]"' in out
    report = json.loads(check_env("--json", "--fake-gpu", H100).stdout)
    assert {e["name"] for e in report["extras"]} == {"plot", "onnx", "tensorboard", "video"}
    assert "data_path" not in report  # one sample path: nothing to report (issue 17)


def test_check_env_shows_where_the_synthetic_default_set_lives_and_its_size(tmp_path, monkeypatch):
    from asl_cli.config import load_config
    from asl_cli.data import synth

    monkeypatch.setenv("ASL_CACHE", str(tmp_path))
    r = check_env("--fake-gpu", H100, env={"COLUMNS": "160", "ASL_CACHE": str(tmp_path)})
    target = synth.default_dataset_dir(load_config("cpu").synth)
    assert str(target) in r.stdout and "not generated yet (2,400 sequences" in r.stdout
    # a generated set (here a stand-in of 3 MB marked complete) and its prepared cache (1 MB)
    target.mkdir(parents=True)
    (target / "train.csv").write_bytes(b"x" * 3_000_000)
    (target / synth.COMPLETE_FILE).write_text(json.dumps(synth.default_set._params(load_config("cpu").synth)))
    from asl_cli.data.cache import cache_path

    cache = cache_path(target)
    cache.mkdir()
    (cache / "points.npy").write_bytes(b"y" * 1_000_000)
    (cache / "complete").write_text("x")
    report = json.loads(check_env("--json", "--fake-gpu", H100, env={"ASL_CACHE": str(tmp_path)}).stdout)
    d = report["default_data"]
    assert d["generated"] and d["dir"] == str(target) and d["sequences"] == 2400
    assert 3_000_000 <= d["bytes"] < 3_001_000 and d["cache_bytes"] == 1_000_001
    out = check_env("--fake-gpu", H100, env={"COLUMNS": "160", "ASL_CACHE": str(tmp_path)}).stdout
    assert "synthetic default set" in out and "2,400 sequences, 3.0 MB + prepared cache 1.0 MB = 4.0 MB" in out
    assert str(cache) in out


# --- the data check -----------------------------------------------------------------------------

def test_data_check_on_the_real_sample(sample_dir):
    facts = data_facts(sample_dir)
    assert facts["ok"] and facts["bad_files"] == 0 and facts["ok_files"] == facts["sequences"] == SEQUENCES
    assert facts["signs"] == 250 and facts["errors"] == []


@pytest.fixture
def damaged(sample_dir, tmp_path):
    """A 6-sequence copy of the sample with one file missing and one truncated."""
    lines = (sample_dir / "train.csv").read_text().splitlines()
    keep = lines[:7]
    (tmp_path / "train.csv").write_text("\n".join(keep) + "\n")
    shutil.copy(sample_dir / "sign_to_prediction_index_map.json", tmp_path)
    rels = [line.split(",")[0] for line in keep[1:]]
    for rel in rels[1:]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_dir / rel, tmp_path / rel)
    (tmp_path / rels[3]).write_bytes((tmp_path / rels[3]).read_bytes()[:200])
    return tmp_path, rels


def test_data_check_counts_bad_files_and_names_them(damaged):
    root, rels = damaged
    facts = data_facts(root, workers=2)
    assert (facts["ok_files"], facts["bad_files"], facts["ok"]) == (4, 2, False)
    assert rels[0] in facts["errors"][0] and "not found" in facts["errors"][0]  # file order kept
    assert rels[3] in facts["errors"][1]
    assert len(data_facts(root, max_errors=1)["errors"]) == 1


def test_data_check_reports_a_broken_index(tmp_path):
    facts = data_facts(tmp_path)
    assert not facts["ok"] and "not an asl-signs data folder" in facts["index_error"]  # an empty folder
    (tmp_path / "train.csv").write_text("path,participant_id,sequence_id,sign\n")
    facts = data_facts(tmp_path)
    assert not facts["ok"] and "sign map not found" in facts["index_error"]


# --- the command --------------------------------------------------------------------------------

def check_env(*args: str, env: dict | None = None):
    return runner.invoke(app, ["check-env", *args], env=env)


def test_command_json_with_a_fake_gpu_exits_0():
    r = check_env("--json", "--fake-gpu", H100, "--require-gpu")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["recommendation"]["preset"] == "dc80gb" and report["torch"]["version"]


def test_command_table_shows_fake_gpus_lost_gpu_problem_and_exit_1():
    r = check_env("--fake-gpu", FAKE)
    assert r.exit_code == 1
    out = r.stdout
    for piece in ("GPUs (fake)", "NVIDIA GeForce RTX 4070", "Tesla T4", "LOST", "torch.compile cpu", "nvidia-ml-py",
                  "problem: GPU 2 is lost", "recommended preset: rtx4070"):
        assert piece in out, piece


def test_command_require_gpu_without_one_exits_5():
    r = check_env("--require-gpu", "--fake-gpu", NO_GPUS)
    assert r.exit_code == 5 and r.stderr.startswith("error: --require-gpu: no usable NVIDIA GPU")
    assert "recommended preset: cpu" in r.stdout  # the report still comes first
    r = check_env("--require-gpu", "--json", "--fake-gpu", NO_GPUS)
    assert r.exit_code == 5 and r.stderr == ""  # --json: the error is in the one report object
    report = json.loads(r.stdout)
    assert report["recommendation"]["preset"] == "cpu"
    assert report["error"]["error"].startswith("--require-gpu: no usable NVIDIA GPU")


def test_command_with_bad_data_exits_1_and_lists_errors(damaged):
    root, rels = damaged
    r = check_env("--fake-gpu", H100, "--data", str(root))
    assert r.exit_code == 1
    assert "files bad" in r.stdout and "4" in r.stdout and "problem: data: 2 of 6 files" in r.stdout


def test_subprocess_check_env(tmp_path):
    out = run_asl("check-env", "--json", env={"ASL_FAKE_GPU": None}, cwd=tmp_path)
    report = json.loads(out.stdout)
    assert out.returncode == (1 if report["problems"] else 0)
    assert report["packages"]["typer"] and report["system"]["python"] == ".".join(map(str, sys.version_info[:3]))
    if not report["torch"]["cuda_available"] and report["nvml"]["status"] != "ok":
        assert report["recommendation"]["preset"] == "cpu"
        assert report["nvml"]["message"].startswith("no NVIDIA driver found")


def test_an_unreadable_fake_gpu_file_is_a_problem_not_a_machine_without_gpus(tmp_path):
    bad = tmp_path / "fake.json"
    bad.write_text("{not json")
    report = collect_report(fake_gpu=bad)
    assert report["problems"] and str(bad) in report["problems"][0] and "not valid JSON" in report["problems"][0]
    r = check_env("--json", "--fake-gpu", str(bad))
    assert r.exit_code == 1 and json.loads(r.stdout)["problems"] == report["problems"]


def test_command_piped_problem_lines_stay_whole(tmp_path):
    """`asl check-env > report.txt`: a problem line is one line, its path whole (not cut at 80 columns)."""
    missing = tmp_path / "a-rather-long-folder-name-for-testing-wrapping" / "another-level-of-nesting" / "asl-signs"
    r = check_env("--fake-gpu", H100, "--data", str(missing), env={"COLUMNS": None})
    assert r.exit_code == 1
    assert f"problem: data: {missing}: data folder not found" in r.stdout.splitlines()
