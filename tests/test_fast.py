"""The compiled data path (asl_cli/data/fast.py) against its numpy reference.

The kernel must give the numpy path's features (float32 rounding apart) for every operation alone,
for random mixtures of both profiles, and on the awkward inputs (missing landmarks, all-missing
frames, a lip never seen, a zero scale, T = 1, T > max_len); it must draw exactly the random
numbers the numpy path draws; and without numba (or with ASL_NUMBA=0) everything falls back.
"""

from __future__ import annotations

import numpy as np
import pytest

from asl_cli.augment import ops
from asl_cli.augment.pipeline import ASLAugmentations, AugParams, apply_params, prepare_fused
from asl_cli.config import AugConfig
from asl_cli.data import fast
from asl_cli.data.preprocess import CENTRE_POS, preprocess

pytest.importorskip("numba")

ATOL = 2e-5  # features are O(1-10); float32 rounding of the scale's sum differs between the paths


@pytest.fixture(autouse=True)
def compiled(monkeypatch):
    monkeypatch.delenv(fast.ENV_SWITCH, raising=False)
    assert fast.available(), fast.status()


def landmarks(rng: np.random.Generator, t: int, missing: float = 0.2) -> np.ndarray:
    p = rng.random((t, 118, 2), dtype=np.float32)
    p[rng.random((t, 118)) < missing] = np.nan
    return p


def reference(points, p: AugParams, seed: int, perm, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy path: features and the generator's state after it (what it drew)."""
    rng = np.random.default_rng(seed)
    out = preprocess(apply_params(points, p, rng, perm), max_len, drop_nan_frames=False)
    return out, rng.random(4)


def compiled_path(points, p: AugParams, seed: int, perm, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = prepare_fused(points, p, rng, perm, max_len).run()
    return out, rng.random(4)


def assert_same(points, p: AugParams, seed: int, perm, max_len: int = 64) -> None:
    a, after_a = reference(points, p, seed, perm, max_len)
    b, after_b = compiled_path(points, p, seed, perm, max_len)
    assert a.shape == b.shape and b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=ATOL, err_msg=p.summary())
    np.testing.assert_array_equal(after_a, after_b, err_msg="the two paths drew different random numbers")


# --- preprocessing alone --------------------------------------------------------------------------

@pytest.mark.parametrize("t", [1, 2, 3, 14, 64, 65, 200])
def test_preprocessing_matches_numpy(t):
    rng = np.random.default_rng(t)
    for missing in (0.0, 0.3, 0.9):
        p = landmarks(rng, t, missing)
        for max_len in (1, 2, 64, 384):
            a = preprocess(p, max_len, drop_nan_frames=False)
            b = fast.features(p, max_len)
            assert a.shape == b.shape == (min(t, max_len), 708)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=ATOL)


def test_awkward_sequences():
    rng = np.random.default_rng(0)
    cases = {"all missing": np.full((5, 118, 2), np.nan, np.float32),
             "one frame missing": landmarks(rng, 6),
             "lip never seen": landmarks(rng, 9),
             "zero scale": np.full((4, 118, 2), 0.25, np.float32),
             "one point": np.full((3, 118, 2), np.nan, np.float32),
             "three channels": rng.random((7, 118, 3), dtype=np.float32),
             "float64 input": rng.random((7, 118, 2))}
    cases["one frame missing"][2] = np.nan
    cases["lip never seen"][:, CENTRE_POS] = np.nan
    cases["one point"][:, 40] = [0.3, 0.6]
    for name, p in cases.items():
        a = preprocess(p, 64, drop_nan_frames=False)
        b = fast.features(p, 64)
        assert np.isfinite(b).all(), name
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=ATOL, err_msg=name)
    assert fast.features(np.zeros((0, 118, 2), np.float32), 64).shape == (1, 708)
    with pytest.raises(ValueError, match="expected"):
        fast.features(np.zeros((4, 117, 2), np.float32), 64)


# --- each augmentation alone, then mixtures -----------------------------------------------------

AUG = ASLAugmentations(AugConfig(), max_len=64)
ONE_OP = {
    "resample linear": dict(resample=True, resample_length=31, resample_mode="linear"),
    "resample cubic": dict(resample=True, resample_length=12, resample_mode="cubic"),
    "resample nearest": dict(resample=True, resample_length=40, resample_mode="nearest"),
    "resample same length": dict(resample=True, resample_length=20, resample_mode="cubic"),
    "flip": dict(flip=True),
    "crop": dict(crop=True, crop_start=3, crop_length=9),
    "affine with shear": dict(affine=True, scale=1.1, shear_x=0.1, degrees=20.0, shift_x=0.05, shift_y=-0.02),
    "affine without shear": dict(affine=True, scale=0.9, degrees=-12.0, shift_x=-0.03, shift_y=0.04),
    "noise": dict(noise=True, noise_std=0.01),
    "temporal mask": dict(temporal_mask=True, temporal_mask_start=4, temporal_mask_length=6),
    "feature mask": dict(feature_mask=True, feature_mask_points=np.array([0, 5, 15, 117])),
    "landmark dropout": dict(landmark_dropout=True, landmark_dropout_prob=0.3),
    "spatial mask": dict(spatial_mask=True, spatial_mask_x0=0.2, spatial_mask_y0=0.3, spatial_mask_side=0.4),
}


@pytest.mark.parametrize("name", list(ONE_OP))
def test_each_operation_alone(name):
    rng = np.random.default_rng(len(name))
    points = landmarks(rng, 20)
    assert_same(points, AugParams(length_in=20, **ONE_OP[name]), seed=1, perm=AUG.permutation)
    if name != "crop":  # a single frame: resampling repeats it, a mask beyond it does nothing
        assert_same(points[:1], AugParams(length_in=1, **ONE_OP[name]), seed=2, perm=AUG.permutation)


@pytest.mark.parametrize("mode", ["linear", "cubic", "nearest"])
@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_resampling_on_each_of_the_kernels_branches(mode, channels, flip):
    """The kernel sums whole frames where it can (no flip, x and y only) and gathers otherwise."""
    rng = np.random.default_rng(channels + 10 * flip)
    points = np.concatenate([landmarks(rng, 23), rng.random((23, 118, channels - 2), dtype=np.float32)], axis=2)
    for new_length in (9, 23, 47):
        p = AugParams(length_in=23, resample=True, resample_length=new_length, resample_mode=mode, flip=flip)
        assert_same(points, p, seed=5, perm=AUG.permutation)


def test_everything_at_once_and_resample_with_crop():
    rng = np.random.default_rng(3)
    points = landmarks(rng, 50)
    every = {k: v for op in ONE_OP.values() for k, v in op.items()}
    every.update(resample=True, resample_length=90, resample_mode="cubic", crop=True, crop_start=7, crop_length=64)
    assert_same(points, AugParams(length_in=50, **every), seed=4, perm=AUG.permutation)


@pytest.mark.parametrize("profile", ["seed", "winner"])
def test_random_draws_of_both_profiles(profile):
    """Drawn parameter sets, as training draws them: the same features and the same draws."""
    aug = ASLAugmentations(AugConfig(profile=profile, temporal_prob=0.8, noise_prob=0.5, mask_prob=0.6),
                           max_len=32)
    rng = np.random.default_rng(5)
    fired: set[str] = set()
    for seed in range(300):
        t = int(rng.integers(1, 70))
        points = landmarks(rng, t, missing=float(rng.choice([0.0, 0.2, 0.7])))
        p = aug.draw(np.random.default_rng(seed), t)
        fired.update(p.fired())
        a = preprocess(aug(points, np.random.default_rng(seed)), 32, drop_nan_frames=False)
        b = aug.prepare_features(points, np.random.default_rng(seed), 32).run()
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=ATOL, err_msg=p.summary())
    assert {"resample", "flip", "crop", "affine", "temporal_mask", "spatial_mask"} <= fired
    if profile == "seed":
        assert {"noise", "feature_mask", "landmark_dropout"} <= fired


# --- switching it off ---------------------------------------------------------------------------

def test_switched_off_by_the_environment(monkeypatch, sample_cache):
    from asl_cli.data.dataset import SignDataset, sample_rng

    monkeypatch.setenv(fast.ENV_SWITCH, "0")
    assert not fast.available() and "switched off" in fast.status()
    monkeypatch.setattr(fast, "prepare", lambda *a, **k: pytest.fail("the kernel ran"))
    p = landmarks(np.random.default_rng(0), 10)
    np.testing.assert_array_equal(fast.features(p, 64), preprocess(p, 64, drop_nan_frames=False))
    ds = SignDataset(sample_cache, np.arange(4), max_len=64, augment=AUG, seed=3)
    assert not ds.uses_kernel
    features = ds[(2, 1)]["features"]  # the numpy path: augment, then preprocess
    reference = preprocess(AUG(sample_cache.points(2), sample_rng(3, 1, 2)), 64, drop_nan_frames=False)
    np.testing.assert_array_equal(features, reference)


def test_without_numba_the_numpy_path_runs(monkeypatch):
    monkeypatch.setattr(fast, "_numba_version", lambda: None)
    assert not fast.available() and "pip install 'asl-cli[fast]'" in fast.status()
    p = landmarks(np.random.default_rng(1), 10)
    np.testing.assert_array_equal(fast.features(p, 64), preprocess(p, 64, drop_nan_frames=False))


def test_a_kernel_that_fails_to_load_falls_back_with_one_warning():
    import sys

    fast._load.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, "asl_cli.data.fast_kernels", None)  # its import fails
            with pytest.warns(RuntimeWarning, match="using the numpy data path"):
                assert not fast.available()
            assert "the kernel failed" in fast.status()
            p = landmarks(np.random.default_rng(1), 10)
            np.testing.assert_array_equal(fast.features(p, 64), preprocess(p, 64, drop_nan_frames=False))
    finally:
        fast._load.cache_clear()
    assert fast.available()


def test_the_dataset_uses_it_for_training_and_validation_samples(sample_cache, monkeypatch):
    from asl_cli.data.dataset import SignDataset

    calls = []
    real = fast.prepare
    monkeypatch.setattr(fast, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    train = SignDataset(sample_cache, np.arange(8), max_len=64, augment=AUG, seed=0)
    val = SignDataset(sample_cache, np.arange(8), max_len=64)
    for i in range(8):
        t, v = train[(i, 3)], val[i]
        np.testing.assert_allclose(v["features"], preprocess(sample_cache.points(i), 64, drop_nan_frames=False),
                                   rtol=1e-5, atol=ATOL)
        monkeypatch.setenv(fast.ENV_SWITCH, "0")
        numpy_path = train[(i, 3)]["features"]
        monkeypatch.delenv(fast.ENV_SWITCH)
        np.testing.assert_allclose(t["features"], numpy_path, rtol=1e-5, atol=ATOL)
    assert len(calls) == 16


def test_resample_taps_agree_with_resample():
    rng = np.random.default_rng(2)
    for t, new, mode in [(1, 5, "linear"), (10, 10, "cubic"), (10, 17, "nearest"), (23, 9, "cubic")]:
        points = landmarks(rng, t)
        plan = ops.resample_taps(t, new, mode)
        if plan is None:
            assert new == t
            continue
        taps, w = plan
        manual = sum(points[taps[k]] * w[k][:, None, None] for k in range(taps.shape[0]))
        np.testing.assert_allclose(ops.resample(points, new, mode), manual, rtol=1e-6, atol=1e-6)


def test_argument_dtypes_do_not_matter():
    """Arrays of other integer/float types are converted, not compiled for anew or refused."""
    rng = np.random.default_rng(4)
    points = landmarks(rng, 12)
    perm = AUG.permutation
    a = fast.prepare(points, 64, permutation=perm, points_masked=np.arange(118) % 7 == 0,
                     dropout_uniforms=rng.random((12, 118)).astype(np.float32), dropout_prob=0.2).run()
    b = fast.prepare(points.astype(np.float64), 64, permutation=perm.astype(np.int32),
                     points_masked=(np.arange(118) % 7 == 0).astype(np.uint8),
                     dropout_uniforms=rng.random((12, 118)), dropout_prob=0.2).run()
    assert a.shape == b.shape == (12, 708) and np.isfinite(b).all()
    assert len(fast._load()[0].signatures) == 1  # one compiled kernel for every call above


# --- the batched path: features computed straight into the batch --------------------------------

def _batches(ds, items, **collate_args):
    from asl_cli.data.dataset import collate

    ds.defer_features = False
    eager = collate([ds[i] for i in items], **collate_args)
    ds.defer_features = True
    samples = ds.__getitems__(items)
    return eager, samples, collate(samples, **collate_args)


@pytest.mark.parametrize("augmented", [True, False])
def test_a_batch_written_in_place_is_the_batch_of_its_samples(sample_cache, augmented):
    """`__getitems__` + `collate` (kernel into the batch's rows) == the samples one by one + copy:
    the same draws in the same order, the same kernel, so bitwise; padding rows zero."""
    from asl_cli.data.dataset import SignDataset

    ds = SignDataset(sample_cache, np.arange(len(sample_cache)), max_len=48,
                     augment=AUG if augmented else None, seed=5)
    items = [(int(i), 2) for i in np.random.default_rng(0).permutation(len(sample_cache))[:12]]
    eager, samples, batch = _batches(ds, items, bucket_step=8, max_len=48)
    assert all(isinstance(s["features"], fast.Pending) for s in samples)
    for key in eager:
        assert torch_equal(eager[key], batch[key]), key
    lengths = batch["lengths"].numpy()
    assert lengths.min() < batch["features"].shape[1]  # some padding to check
    for row, n in enumerate(lengths):
        assert not batch["features"][row, n:].any()


def test_without_the_compiled_path_or_a_preparing_augmentation_samples_are_arrays(sample_cache, monkeypatch):
    from asl_cli.data.dataset import SignDataset

    plain = SignDataset(sample_cache, np.arange(4), max_len=32, augment=lambda p, rng: p[::-1].copy())
    plain.defer_features = True
    assert all(isinstance(s["features"], np.ndarray) for s in plain.__getitems__([0, 1]))
    monkeypatch.setenv(fast.ENV_SWITCH, "0")
    numpy_path = SignDataset(sample_cache, np.arange(4), max_len=32, augment=AUG)
    numpy_path.defer_features = True
    assert all(isinstance(s["features"], np.ndarray) for s in numpy_path.__getitems__([(0, 1), (1, 1)]))


def test_collate_writes_every_byte_of_its_uninitialised_block(sample_cache, monkeypatch):
    """The block is allocated without zeroing: padding, mask and metadata must all be written."""
    import torch

    from asl_cli.data.dataset import SignDataset, collate

    ds = SignDataset(sample_cache, np.arange(10), max_len=40, augment=AUG, seed=1)
    ds.defer_features = True
    items = [(i, 0) for i in range(10)]
    clean = collate(ds.__getitems__(items), bucket_step=16, max_len=40)
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: real_empty(*a, **k).fill_(0xFF))  # dirty memory
    dirty = collate(ds.__getitems__(items), bucket_step=16, max_len=40)
    for key in clean:
        assert torch_equal(clean[key], dirty[key]), key


def test_a_pending_call_refuses_an_output_it_cannot_fill():
    pending = fast.prepare(landmarks(np.random.default_rng(0), 6), 64)
    assert pending.shape == (6, 708)
    with pytest.raises(ValueError, match="cannot be written"):
        pending.write(np.empty((5, 708), np.float32))
    with pytest.raises(TypeError):  # no compiled signature for float64
        pending.write(np.empty((6, 708), np.float64))
    with pytest.raises(TypeError):  # nor for a strided view
        pending.write(np.empty((6, 1416), np.float32)[:, ::2])
    out = np.full((6, 708), np.nan, np.float32)
    pending.write(out)
    np.testing.assert_array_equal(out, pending.run())
    empty = fast.prepare(np.zeros((0, 118, 2), np.float32), 64)
    assert not empty.run().any() and empty.shape == (1, 708)


def torch_equal(a, b) -> bool:
    import torch

    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))


def test_data_compiled_false_takes_the_numpy_path_and_says_so(sample_cache, monkeypatch):
    """`data.compiled = false` (the ablation's `--no-compiled-data`): numpy features, bitwise."""
    from asl_cli.config import load_config
    from asl_cli.data.dataset import build_loaders

    cfg = load_config("cpu", ["data.compiled=false", "data.max_len=32", "train.batch_size=8"])
    train, val = build_loaders(cfg, sample_cache, augment=AUG, num_workers=0)
    monkeypatch.setattr(fast, "prepare", lambda *a, **k: pytest.fail("the kernel was used"))
    assert not train.dataset.uses_kernel and not val.dataset.uses_kernel
    batch = next(iter(val))
    for row, index in enumerate(batch["index"].tolist()):
        n = int(batch["lengths"][row])
        np.testing.assert_array_equal(batch["features"][row, :n].numpy(),
                                      preprocess(sample_cache.points(index), 32, drop_nan_frames=False))
    next(iter(train))  # augmented, on the numpy path
    assert fast.status(False) == "numpy data path (data.compiled = false)"
