"""The run configuration: presets, overrides, validation errors."""

from __future__ import annotations

import pytest

from asl_cli.config import RunConfig, list_presets, load_config, read_preset
from asl_cli.errors import ConfigError


def test_every_preset_loads_and_validates():
    names = set(list_presets())
    assert {"cpu", "rtx4070", "winner", "gpu24gb", "dc80gb", "t4"} <= names
    for name in names:
        cfg = load_config(name)
        assert cfg.preset == name


def test_rtx4070_carries_the_seed_values():
    cfg = load_config("rtx4070")
    assert cfg.train.batch_size == 12
    assert cfg.train.gradient_accumulation_steps == 4
    assert cfg.train.use_mixed_precision is True
    assert cfg.train.gradient_clip_val == 1.0
    assert cfg.loader.num_workers == 4 and cfg.loader.pin_memory is True
    assert cfg.data.max_len == 384 and cfg.model.dim == 192
    assert cfg.aug.use_augmentations is True


def test_winner_preset_is_the_first_place_recipe():
    cfg = load_config("winner")
    assert cfg.train.batch_size == 512 and cfg.train.epochs == 300
    assert cfg.optim.optimizer == "radam_lookahead"
    assert cfg.optim.awp_lambda == 0.2 and cfg.optim.awp_start_epoch == 15
    assert cfg.model.late_dropout_start == 15
    assert cfg.optim.label_smoothing == 0.1


def test_t4_preset_is_fp16():
    assert load_config("t4").train.precision == "fp16"


def test_overrides_with_sections_and_bare_names():
    cfg = load_config("cpu", ["train.batch_size=8", "lr=0.01", "aug.flip=false",
                              "aug.resample_rate=[0.6, 1.4]", "data.data_dir=none"])
    assert cfg.train.batch_size == 8
    assert cfg.optim.lr == 0.01
    assert cfg.aug.flip is False
    assert cfg.aug.resample_rate == [0.6, 1.4]
    assert cfg.data.data_dir is None


@pytest.mark.parametrize("override, message", [
    ("train.batch_sise=3", "unknown key 'train.batch_sise' (did you mean 'train.batch_size'?)"),
    ("nosuch.x=1", "unknown section 'nosuch'"),
    ("train.batch_size=x", "train.batch_size: expected int, got 'x'"),
    ("train.batch_size=0", "train.batch_size: 0 is below the minimum 1"),
    ("aug.rotate_deg=500", "aug.rotate_deg: 500.0 is above the maximum 180.0"),
    ("train.precision=fp8", "train.precision: 'fp8' is not one of auto, bf16, fp16, fp32"),
    ("aug.scale_range=[1.2, 0.8]", "aug.scale_range: expected [low, high]"),
    ("aug.resample_modes=[spline]", "aug.resample_modes"),
    ("model.num_heads=5", "model.dim (64) must be divisible by model.num_heads (5)"),
    ("batch_size", "expected key=value"),
])
def test_bad_overrides_get_one_clear_line(override, message):
    with pytest.raises(ConfigError) as info:
        load_config("cpu", [override])
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_bad_preset_files(tmp_path):
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[train]\nbatch_sizee = 3\n")
    with pytest.raises(ConfigError, match=r"unknown\.toml: unknown key 'train\.batch_sizee'"):
        load_config(str(unknown))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[train]\nbatch_size = 'big'\n")
    with pytest.raises(ConfigError, match=r"wrong\.toml: train\.batch_size: expected int"):
        load_config(str(wrong))
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_preset(str(broken))
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        load_config("nope")


@pytest.mark.parametrize("value", ["missing.toml", "sub/missing", "/nonexistent.toml"])
def test_a_preset_path_that_does_not_exist_is_a_file_not_found(tmp_path, value):
    """A path is not a preset name: its error names the file, not the list of presets."""
    path = value if value.startswith("/") else str(tmp_path / value)
    with pytest.raises(ConfigError, match="preset file not found") as info:
        load_config(path)
    assert info.value.path == path and "unknown preset" not in str(info.value)


def test_a_preset_path_without_the_toml_suffix_is_read_as_a_file(tmp_path):
    mine = tmp_path / "mine"
    mine.write_text("[train]\nepochs = 3\n")
    assert load_config(str(mine)).train.epochs == 3


def test_round_trip_through_dict():
    cfg = load_config("rtx4070", ["aug.flip=false"])
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_a_retired_key_loads_with_no_effect(tmp_path):
    """`data.compiled` (the numba data path, removed in issue 17): an old run's config.json, a preset
    and --set still load, the key is dropped; a misspelling of it is still an unknown key."""
    from pathlib import Path

    from asl_cli.config import RETIRED_KEYS, without_retired

    cfg = load_config("cpu")
    old = cfg.to_dict()
    old["data"]["compiled"] = True  # what config.json held before
    assert RunConfig.from_dict(old, source="config.json") == cfg
    assert "compiled" not in RunConfig.from_dict(old).to_dict()["data"]
    assert without_retired(old) == cfg.to_dict() and old["data"]["compiled"] is True  # a copy
    preset = tmp_path / "old.toml"
    preset.write_text("[data]\ncompiled = false\nmax_len = 32\n")
    assert load_config(str(preset)).data.max_len == 32
    for override in ("data.compiled=false", "compiled=true", "data.compiled=whatever"):
        assert load_config("cpu", [override]).to_dict() == cfg.to_dict()
    with pytest.raises(ConfigError, match="unknown key 'data.compild'"):
        load_config("cpu", ["data.compild=false"])
    docs = (Path(__file__).resolve().parents[1] / "docs" / "presets.md").read_text()
    assert all(f"`{key}`" in docs for key in RETIRED_KEYS)  # each retired key is documented


@pytest.mark.parametrize("override, message", [
    ("optim.lr=nan", "optim.lr: nan is not a finite number"),          # passed every range check
    ("optim.warmup_epochs=inf", "optim.warmup_epochs: inf is not a finite number"),  # no upper bound
    ("train.time_budget=inf", "train.time_budget: inf is not a finite number"),
    ("aug.scale_range=[NaN, 1.0]", "aug.scale_range: expected [low, high]"),
])
def test_non_finite_values_are_config_errors(override, message):
    with pytest.raises(ConfigError) as info:
        load_config("cpu", [override])
    assert message in str(info.value)


def test_non_finite_value_in_a_preset_file(tmp_path):
    path = tmp_path / "nan.toml"
    path.write_text("[optim]\nlr = nan\n")
    with pytest.raises(ConfigError, match=r"nan\.toml: optim\.lr: nan is not a finite number"):
        load_config(str(path))


def test_seed_beyond_what_torch_accepts_is_a_config_error():
    # torch.manual_seed takes at most 2**64 - 1; more raised a traceback at the start of training
    assert load_config("cpu", [f"train.seed={2**64 - 1}"]).train.seed == 2**64 - 1
    with pytest.raises(ConfigError, match="train.seed: 18446744073709551616 is above the maximum"):
        load_config("cpu", [f"train.seed={2**64}"])


def test_validation_fold_must_exist():
    assert load_config("cpu", ["data.n_folds=8", "data.val_fold=7"]).data.val_fold == 7
    with pytest.raises(ConfigError, match=r"data.val_fold \(5\) must be below data.n_folds \(5\)"):
        load_config("cpu", ["data.val_fold=5"])


@pytest.mark.parametrize("override, key, expected", [
    ("aug.scale_range=0.9,1.1", "scale_range", [0.9, 1.1]),
    ("aug.resample_rate=[0.6,1.4]", "resample_rate", [0.6, 1.4]),
    ("aug.resample_modes=linear,cubic", "resample_modes", ["linear", "cubic"]),
    ("aug.resample_modes=[linear, cubic]", "resample_modes", ["linear", "cubic"]),
    ("aug.resample_modes=['nearest']", "resample_modes", ["nearest"]),
])
def test_list_values_without_json_quoting(override, key, expected):
    assert getattr(load_config("cpu", [override]).aug, key) == expected
