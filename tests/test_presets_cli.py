"""`asl presets` and the shared training options (--preset, --set, named flags, --print-config)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.config_io import SWITCH_FLAGS, VALUED_FLAGS, config_to_toml
from asl_cli.config import RunConfig, list_presets, load_config
from kit import run_asl

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_presets_table_lists_every_preset_with_its_key_values():
    out = invoke("presets")
    assert out.exit_code == 0, out.stderr
    for name in list_presets():
        assert name in out.stdout
    rtx = next(line for line in out.stdout.splitlines() if line.strip().startswith("rtx4070"))
    # batch 12 x accumulation 4 = effective 48, dim 192 x 2 blocks, 100 epochs, 4 workers
    assert rtx.split()[:9] == ["rtx4070", "12", "4", "48", "auto", "192×2", "100", "ep", "4"]
    cpu = next(line for line in out.stdout.splitlines() if line.strip().startswith("cpu "))
    assert cpu.split()[6:9] == ["2", "min*", "auto"]  # a 120 s time budget with an epoch cap; num_workers = -1


def test_gpu_presets_compile_with_tf32_and_the_table_says_so():
    """The seed asks for torch.compile on the RTX 4070 (with AMP); every GPU preset compiles and
    allows TF32 (fp32 matmuls/convolutions on tensor cores from Ampere on); the CPU preset does not compile."""
    for name in ("rtx4070", "gpu24gb", "dc80gb", "winner", "t4"):
        t = load_config(name).train
        assert t.compile and t.tf32 and t.device == "cuda", name
    rtx = load_config("rtx4070").train
    assert rtx.use_mixed_precision and rtx.precision == "auto" and rtx.compile_mode == "default"
    assert not load_config("cpu").train.compile
    out = invoke("presets")
    text = " ".join(out.stdout.split())
    assert "torch.compile: dc80gb, gpu24gb, rtx4070, t4, winner" in text
    assert "TF32 (CUDA, Ampere or later): dc80gb, gpu24gb, rtx4070, t4, winner" in text
    rows = {r["preset"]: r for r in json.loads(invoke("presets", "--json").stdout)}
    assert rows["rtx4070"]["compile"] is True and rows["cpu"]["compile"] is False


def test_presets_json_matches_the_preset_files():
    out = invoke("presets", "--json")
    assert out.exit_code == 0
    rows = {r["preset"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(list_presets())
    for name, row in rows.items():
        cfg = load_config(name)
        assert row["batch_size"] == cfg.train.batch_size
        assert row["effective_batch"] == cfg.train.batch_size * cfg.train.gradient_accumulation_steps
        assert row["optimizer"] == cfg.optim.optimizer
    assert rows["cpu"]["precision"] == "fp32"
    assert rows["t4"]["precision"] == "fp16"


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_printed_config_reads_back_as_the_same_config(name, tmp_path):
    out = invoke("presets", name)
    assert out.exit_code == 0
    parsed = tomllib.loads(out.stdout)
    assert RunConfig.from_dict(parsed).to_dict() == load_config(name).to_dict()
    # and the file works as a preset path
    path = tmp_path / "mine.toml"
    path.write_text(out.stdout)
    again = invoke("train", "--preset", str(path), "--print-config", "--json")
    assert again.exit_code == 0, again.stderr
    d = json.loads(again.stdout)
    d["preset"] = name  # the preset label is the file's stem
    assert d == load_config(name).to_dict()


def test_unknown_preset_is_one_line_exit_2():
    out = invoke("presets", "nope")
    assert out.exit_code == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown preset 'nope'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", [["train"], ["train", "--print-config"], ["ablate", "--print-config"],
                                     ["test-fix"]])
def test_a_missing_preset_file_is_one_line_naming_it_exit_2(tmp_path, command):
    missing = tmp_path / "nope.toml"
    out = invoke(*command, "--preset", str(missing))
    assert out.exit_code == 2, out.output
    assert out.stderr.strip() == f"error: {missing}: preset file not found" and out.stdout == ""


FLAG_VALUES = {
    "epochs": ("--epochs", "7", 7), "batch_size": ("--batch-size", "5", 5), "accum": ("--accum", "3", 3),
    "lr": ("--lr", "0.01", 0.01), "max_steps": ("--max-steps", "11", 11),
    "time_budget": ("--time-budget", "2.5", 2.5), "data": ("--data", "/some/asl-signs", "/some/asl-signs"),
    "name": ("--name", "myrun", "myrun"), "device": ("--device", "cpu", "cpu"),
    "workers": ("--workers", "2", 2), "seed": ("--seed", "9", 9), "runs_dir": ("--runs-dir", "/tmp/r", "/tmp/r"),
}


def _get(d: dict, key: str):
    for part in key.split("."):
        d = d[part]
    return d


@pytest.mark.parametrize("flag", sorted(VALUED_FLAGS))
def test_each_valued_flag_sets_its_key(flag):
    option, text, expected = FLAG_VALUES[flag]
    out = invoke("train", "--preset", "rtx4070", option, text, "--print-config", "--json")
    assert out.exit_code == 0, out.stderr
    assert _get(json.loads(out.stdout), VALUED_FLAGS[flag]) == expected


@pytest.mark.parametrize("flag", sorted(SWITCH_FLAGS))
def test_each_switch_sets_its_key(flag):
    key, value = SWITCH_FLAGS[flag].split("=")
    base = json.loads(invoke("train", "--preset", "rtx4070", "--print-config", "--json").stdout)
    out = invoke("train", "--preset", "rtx4070", "--" + flag.replace("_", "-"), "--print-config", "--json")
    assert out.exit_code == 0, out.stderr
    got = _get(json.loads(out.stdout), key)
    assert got == (value == "true")
    if flag in ("no_aug", "no_amp"):  # the preset has them on: the switch changes something
        assert _get(base, key) is True


def test_set_overrides_any_field_and_comes_after_named_flags():
    out = invoke("train", "--preset", "rtx4070", "--epochs", "3", "--set", "train.epochs=5",
                 "--set", "aug.rotate_deg=12.5", "-s", "model.dim=96", "--print-config", "--json")
    assert out.exit_code == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["train"]["epochs"] == 5 and d["aug"]["rotate_deg"] == 12.5 and d["model"]["dim"] == 96
    assert d["train"]["batch_size"] == 12  # the rest stays the preset's


def test_default_preset_is_cpu_and_toml_is_the_default_format():
    out = invoke("train", "--print-config")
    assert out.exit_code == 0
    assert tomllib.loads(out.stdout)["preset"] == "cpu"


@pytest.mark.parametrize("args, message", [
    (["--set", "train.batchsize=3"], "unknown key 'train.batchsize' (did you mean 'train.batch_size'?)"),
    (["--set", "train.batch_size=abc"], "train.batch_size: expected int, got 'abc'"),
    (["--set", "aug.noise_prob=1.5"], "aug.noise_prob: 1.5 is above the maximum 1.0"),
    (["--set", "train.precision=fp8"], "train.precision: 'fp8' is not one of"),
    (["--set", "novalue"], "expected key=value"),
    (["--epochs", "0"], "--epochs: train.epochs = 0 (no epoch limit) needs a time budget or a step limit"),
        (["--time-budget", "0"], "time budget must be a positive number of seconds"),
        (["--time-budget", "-5"], "time budget must be a positive number of seconds"),
        (["--time-budget", "1e9"], "time budget 1e+09 s is more than 30 days"),
        (["--time-budget", "nan"], "is not a number of seconds"),
    (["--accum", "0"], "--accum: train.gradient_accumulation_steps: 0 is below the minimum 1"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    # what training would refuse is refused when the configuration is made, so --print-config
    # never prints a preset that cannot be used
    (["--set", "train.device=tpu"], "--set: train.device: 'tpu' is not a device (auto, cpu, cuda, cuda:N)"),
    (["--device", "cuda:x"], "train.device: 'cuda:x' is not a device"),
    (["--name", "a/b"], "--name: run name 'a/b' is not allowed"),
    (["--set", "name=../../x"], "run name '../../x' is not allowed"),
])
def test_bad_settings_are_one_clear_line_and_exit_2(args, message):
    out = invoke("train", *args, "--print-config")
    assert out.exit_code == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert out.stdout == ""


def test_toml_writer_escapes_strings_and_leaves_out_none():
    d = {"name": 'a "quoted" \\ name', "x": None, "s": {"p": "c:\\dir", "q": None, "l": [0.5, "a"], "b": False}}
    parsed = tomllib.loads(config_to_toml(d))
    assert parsed == {"name": 'a "quoted" \\ name', "s": {"p": "c:\\dir", "l": [0.5, "a"], "b": False}}


def test_as_subprocess_exit_codes_and_no_torch_import():
    ok = run_asl("presets")
    assert ok.returncode == 0 and "rtx4070" in ok.stdout
    bad = run_asl("train", "--print-config", "--set", "x.y=1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    code = ("import sys; sys.argv=['asl','train','--preset','rtx4070','--print-config']\n"
            "from asl_cli.cli.app import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'torch' not in sys.modules, 'print-config imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert 'preset = "rtx4070"' in out.stdout


def test_cross_field_rules_are_checked_on_the_final_config_not_between_flags_and_set():
    # --lr 1e-7 alone is below the preset's min_lr (1e-6); the --set that follows makes it valid
    out = invoke("train", "--lr", "1e-7", "--set", "optim.min_lr=1e-8", "--print-config", "--json")
    assert out.exit_code == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["optim"]["lr"] == 1e-7 and d["optim"]["min_lr"] == 1e-8
    bad = invoke("train", "--lr", "1e-7", "--print-config")
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "error: --lr: optim.min_lr (1e-06) is above optim.lr (1e-07)"


def test_a_preset_file_with_a_bad_device_is_refused_naming_the_file(tmp_path):
    preset = tmp_path / "tpu.toml"
    preset.write_text('[train]\ndevice = "tpu"\n')
    out = invoke("train", "--preset", str(preset), "--print-config")
    assert out.exit_code == 2
    assert out.stderr.strip() == f"error: {preset}: train.device: 'tpu' is not a device (auto, cpu, cuda, cuda:N)"
    assert invoke("train", "--device", "CUDA:1", "--print-config").exit_code == 0  # spelled as torch accepts it


def test_no_compile_turns_a_gpu_presets_compile_off():
    out = invoke("train", "--preset", "rtx4070", "--no-compile", "--print-config", "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout)["train"]["compile"] is False
    on = invoke("train", "--preset", "cpu", "--compile", "--print-config", "--json")
    assert json.loads(on.stdout)["train"]["compile"] is True
