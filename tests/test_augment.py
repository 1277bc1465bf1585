"""Augmentations: each operation with exact parameters, every random draw's range, the pipeline's
determinism and on/off switch, missing landmarks, and `asl show`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from asl_cli.augment import ASLAugmentations, apply_params, draw_params, ops
from asl_cli.config import AugConfig, load_config
from asl_cli.data.landmarks import (FLIP_PAIRS, LEFT_HAND_RANGE, LHAND, LPOSE, POINT_LANDMARKS, RHAND,
                                    RIGHT_HAND_RANGE, RPOSE, flip_permutation)

N_DRAWS = 2000
ALL_543 = list(range(543))


def landmarks(t: int = 20, points=POINT_LANDMARKS, c: int = 2, seed: int = 0, missing: bool = True):
    """Random coordinates in 0..1 with a few missing landmarks (a hand absent in some frames)."""
    rng = np.random.default_rng(seed)
    x = rng.random((t, len(points), c), dtype=np.float32)
    if missing:
        slots = [i for i, p in enumerate(points) if p in RIGHT_HAND_RANGE]
        x[: t // 3, slots] = np.nan
        x[t // 2, 0] = np.nan
    return x


def always(**kw) -> AugConfig:
    """A config where every group and op fires (for range tests)."""
    base = dict(temporal_prob=1.0, spatial_prob=1.0, noise_prob=1.0, mask_prob=1.0, flip_prob=1.0,
                resample_prob=1.0, affine_prob=1.0, temporal_mask_prob=1.0, spatial_mask_prob=1.0)
    base.update(kw)
    return AugConfig(**base)


def draws(cfg: AugConfig, n: int = N_DRAWS, length: int = 50, max_len: int = 384, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [draw_params(rng, cfg, length=length, num_points=118, max_len=max_len) for _ in range(n)]


def slot(points, flat):
    return list(points).index(flat)


def pairwise(xy: np.ndarray) -> np.ndarray:
    d = xy[:, None, :] - xy[None, :, :]
    return np.sqrt((d.astype(np.float64) ** 2).sum(-1))


# --- flip --------------------------------------------------------------------------------------

@pytest.mark.parametrize("points", [POINT_LANDMARKS, ALL_543], ids=["118", "543"])
def test_flip_twice_is_identity(points):
    x = landmarks(points=points, c=3)
    perm = flip_permutation(points)
    back = ops.flip_horizontal(ops.flip_horizontal(x, perm), perm)
    # 1 - (1 - x) is exact up to one float32 rounding of 1 - x.
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-7)
    assert np.array_equal(np.isnan(back), np.isnan(x))


@pytest.mark.parametrize("points", [POINT_LANDMARKS, ALL_543], ids=["118", "543"])
def test_flip_swaps_every_left_right_pair(points):
    x = landmarks(points=points, c=3, missing=False)
    out = ops.flip_horizontal(x, flip_permutation(points))
    pairs = [(a, b) for a, b in FLIP_PAIRS if a in points and b in points]
    expected_pairs = 18 + 16 + 1 + 21 + (4 if len(points) == 543 else 0)  # lips, eyes, nose, hands, pose
    assert len(pairs) == expected_pairs
    swapped = set()
    for a, b in pairs:
        for src, dst in ((a, b), (b, a)):
            i, j = slot(points, src), slot(points, dst)
            np.testing.assert_array_equal(out[:, j, 0], 1 - x[:, i, 0])
            np.testing.assert_array_equal(out[:, j, 1:], x[:, i, 1:])
            swapped.add(dst)
    for k, p in enumerate(points):  # unpaired landmarks (lip centre line, nose tip, ...) stay put
        if p not in swapped:
            np.testing.assert_array_equal(out[:, k, 0], 1 - x[:, k, 0])
    # the named pairs from the spec, spot-checked
    for a, b in [(LHAND[0], RHAND[0]), (LHAND[20], RHAND[20]), (98, 327), (61, 291), (33, 263)] + \
            ([(LPOSE[0], RPOSE[0]), (LPOSE[3], RPOSE[3])] if len(points) == 543 else []):
        np.testing.assert_array_equal(out[:, slot(points, b), 1], x[:, slot(points, a), 1])


@pytest.mark.parametrize("points", [POINT_LANDMARKS, ALL_543], ids=["118", "543"])
def test_left_hand_only_becomes_right_hand_only(points):
    x = np.full((6, len(points), 3), np.nan, dtype=np.float32)
    left = [i for i, p in enumerate(points) if p in LEFT_HAND_RANGE]
    right = [i for i, p in enumerate(points) if p in RIGHT_HAND_RANGE]
    x[:, left] = np.random.default_rng(1).random((6, 21, 3))
    out = ops.flip_horizontal(x, flip_permutation(points))
    assert np.isnan(out[:, left]).all()
    assert not np.isnan(out[:, right]).any()
    others = np.setdiff1d(np.arange(len(points)), left + right)
    assert np.isnan(out[:, others]).all()


def test_pipeline_flip_uses_the_layout_it_is_given():
    x = landmarks(points=ALL_543, c=3, missing=False)
    aug = ASLAugmentations(always(), points=ALL_543, resample=False, temporal_mask=False, scale=False,
                           shear=False, rotate=False, translate=False, noise=False, feature_mask=False,
                           landmark_dropout=False, spatial_mask=False)
    out = aug(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[:, RPOSE[1], 1], x[:, LPOSE[1], 1])
    np.testing.assert_array_equal(out[:, RHAND[5], 0], 1 - x[:, LHAND[5], 0])


# --- the draws: ranges, both ends, means, frequencies -----------------------------------------

def assert_uniform(values, lo, hi, tol=0.01):
    v = np.asarray(values, dtype=np.float64)
    assert v.min() >= lo and v.max() <= hi, (v.min(), v.max())
    span = hi - lo
    assert v.min() < lo + tol * span and v.max() > hi - tol * span  # both ends reachable
    assert abs(v.mean() - (lo + hi) / 2) < 0.04 * span  # ~ 5 standard errors at n = 2000


def test_draw_ranges_default_config():
    ps = draws(always())
    assert_uniform([p.rate for p in ps], 0.5, 1.5)
    assert_uniform([p.scale for p in ps], 0.8, 1.2)
    assert_uniform([p.degrees for p in ps], -30, 30)
    shear = [p.shear_x + p.shear_y for p in ps]
    assert all((p.shear_x == 0) != (p.shear_y == 0) for p in ps)  # exactly one axis
    assert_uniform(shear, -0.15, 0.15)
    assert abs(np.mean([p.shear_x != 0 for p in ps]) - 0.5) < 0.04
    assert_uniform([p.shift_x for p in ps], -0.1, 0.1)
    assert_uniform([p.shift_y for p in ps], -0.1, 0.1)
    assert np.corrcoef([p.shift_x for p in ps], [p.shift_y for p in ps])[0, 1] < 0.1  # seed: x, y independent
    assert all(p.shift_depth == 0 for p in ps)
    assert_uniform([p.temporal_mask_frac for p in ps], 0.2, 0.4)
    assert_uniform([p.spatial_mask_side for p in ps], 0.2, 0.4)
    assert_uniform([p.spatial_mask_x0 for p in ps], 0.0, 1.0)
    assert_uniform([p.spatial_mask_y0 for p in ps], 0.0, 1.0)
    modes = [p.resample_mode for p in ps]
    for m in ("linear", "cubic", "nearest"):
        assert abs(modes.count(m) / len(ps) - 1 / 3) < 0.04
    for p in ps:
        assert p.resample_length == max(1, int(p.rate * 50))
        assert p.temporal_mask_length == int(p.temporal_mask_frac * p.length_out)
        assert 0 <= p.temporal_mask_start <= p.length_out - p.temporal_mask_length


def test_draw_ranges_follow_the_config():
    cfg = load_config(None, ["aug.rotate_deg=10", "aug.scale_range=[0.9,1.0]", "aug.shear_max=0.05",
                             "aug.translate_max=0.02", "aug.resample_rate=[1.0,2.0]",
                             "aug.resample_modes=nearest", "aug.temporal_mask_frac=[0.5,0.6]",
                             "aug.spatial_mask_size=[0.1,0.15]"]).aug
    cfg = dataclasses.replace(cfg, **dataclasses.asdict(always()) | {
        k: getattr(cfg, k) for k in ("rotate_deg", "scale_range", "shear_max", "translate_max", "resample_rate",
                                     "resample_modes", "temporal_mask_frac", "spatial_mask_size")})
    ps = draws(cfg)
    assert_uniform([p.degrees for p in ps], -10, 10)
    assert_uniform([p.scale for p in ps], 0.9, 1.0)
    assert_uniform([p.shear_x + p.shear_y for p in ps], -0.05, 0.05)
    assert_uniform([p.shift_x for p in ps], -0.02, 0.02)
    assert_uniform([p.rate for p in ps], 1.0, 2.0)
    assert {p.resample_mode for p in ps} == {"nearest"}
    assert_uniform([p.temporal_mask_frac for p in ps], 0.5, 0.6)
    assert_uniform([p.spatial_mask_side for p in ps], 0.1, 0.15)


def test_switched_off_ops_never_fire_and_leave_identity_values():
    cfg = always(rotate=False, scale=False, translate=False, resample=False, flip=False)
    for p in draws(cfg, n=200):
        assert p.degrees == 0 and p.scale == 1 and p.shift_x == p.shift_y == 0
        assert not p.resample and not p.flip
        assert p.affine  # shear is still on


def test_seed_profile_group_frequencies():
    ps = draws(AugConfig())  # temporal 0.5, spatial 0.7, noise 0.3, mask 0.2; flip 0.5 inside spatial
    freq = {name: np.mean([getattr(p, name) for p in ps]) for name in
            ("resample", "temporal_mask", "affine", "flip", "noise", "feature_mask", "landmark_dropout",
             "spatial_mask")}
    for name, want in [("resample", 0.5), ("affine", 0.7), ("flip", 0.35), ("noise", 0.3), ("spatial_mask", 0.2)]:
        assert abs(freq[name] - want) < 0.04, (name, freq[name])
    # a group fires as a whole
    assert all(p.resample == p.temporal_mask for p in ps)
    assert all(p.feature_mask == p.landmark_dropout == p.spatial_mask for p in ps)
    assert all(not p.flip or p.affine for p in ps)


def test_winner_profile_frequencies_and_scalar_shift():
    ps = draws(AugConfig(profile="winner"))
    for name, want in [("resample", 0.8), ("flip", 0.5), ("affine", 0.75), ("temporal_mask", 0.5),
                       ("spatial_mask", 0.5), ("noise", 0.0), ("feature_mask", 0.0), ("landmark_dropout", 0.0)]:
        assert abs(np.mean([getattr(p, name) for p in ps]) - want) < 0.04, name
    affine = [p for p in ps if p.affine]
    assert all(p.shift_x == p.shift_y == p.shift_depth for p in affine)  # one scalar on every coordinate
    assert_uniform([p.shift_x for p in affine], -0.1, 0.1)


def test_crop_always_when_longer_than_max_len():
    cfg = AugConfig(temporal_prob=0.0, spatial_prob=0.0, noise_prob=0.0, mask_prob=0.0)
    starts = [p.crop_start for p in draws(cfg, n=N_DRAWS, length=100, max_len=40)]
    assert min(starts) == 0 and max(starts) == 60  # every window reachable
    assert all(p.crop and p.length_out == 40 for p in draws(cfg, n=50, length=100, max_len=40))
    assert not any(p.crop for p in draws(cfg, n=50, length=40, max_len=40))
    x = landmarks(t=100, missing=False)
    aug = ASLAugmentations(cfg, max_len=40)
    for seed in range(20):
        out = aug(x, np.random.default_rng(seed))
        start = int(np.flatnonzero(np.all(x[:, 0] == out[0, 0], axis=-1))[0])
        assert out.shape[0] == 40
        np.testing.assert_array_equal(out, x[start:start + 40])


def test_output_length_bounds():
    aug = ASLAugmentations(always(), max_len=64)
    rng = np.random.default_rng(3)
    for t in [1, 2, 3, 10, 63, 64, 65, 200]:
        for _ in range(20):
            out = aug(landmarks(t=t), rng)
            assert 1 <= out.shape[0] <= 64 and out.shape[1:] == (118, 2) and out.dtype == np.float32


# --- affine ------------------------------------------------------------------------------------

def test_rotation_preserves_distances_and_centre():
    xy = landmarks(t=1, missing=False)[0]
    for deg in (-30, -7.5, 12, 30):
        m, b = ops.affine_matrix(degrees=deg)
        out = ops.affine(xy[None], m, b)[0]
        np.testing.assert_allclose(pairwise(out), pairwise(xy), rtol=1e-5, atol=1e-6)
        assert not np.allclose(out, xy)
    centre = np.full((1, 1, 2), 0.5, np.float32)
    np.testing.assert_allclose(ops.affine(centre, *ops.affine_matrix(degrees=25, scale=1.2, shear_x=0.1)),
                               centre, atol=1e-6)


def test_rotation_direction():
    m, b = ops.affine_matrix(degrees=90)
    out = ops.affine(np.array([[[0.6, 0.5]]], np.float32), m, b)
    np.testing.assert_allclose(out[0, 0], [0.5, 0.6], atol=1e-6)  # x' = x cos - y sin, y' = x sin + y cos


def test_scale_changes_distances_by_the_factor():
    x = landmarks(t=1, c=3, missing=False)
    for s in (0.8, 0.93, 1.2):
        m, b = ops.affine_matrix(scale=s)
        out = ops.affine(x, m, b, depth_scale=s)
        np.testing.assert_allclose(pairwise(out[0, :, :2]), s * pairwise(x[0, :, :2]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[..., 2], s * x[..., 2], rtol=1e-6)
        np.testing.assert_allclose(out[..., :2] - 0.5, s * (x[..., :2] - 0.5), rtol=1e-5, atol=1e-6)


def test_shear_and_shift():
    x = landmarks(t=2, missing=False)
    out = ops.affine(x, *ops.affine_matrix(shear_x=0.1))
    np.testing.assert_allclose(out[..., 0], x[..., 0] + 0.1 * (x[..., 1] - 0.5), atol=1e-6)
    np.testing.assert_allclose(out[..., 1], x[..., 1], atol=1e-6)
    out = ops.affine(x, *ops.affine_matrix(shear_y=-0.1))
    np.testing.assert_allclose(out[..., 1], x[..., 1] - 0.1 * (x[..., 0] - 0.5), atol=1e-6)
    out = ops.affine(x, *ops.affine_matrix(shift=(0.05, -0.02)))
    np.testing.assert_allclose(out - x, np.broadcast_to([0.05, -0.02], x.shape), atol=1e-6)


def test_pipeline_affine_is_the_drawn_one():
    """The composed matrix equals scale -> shear -> rotation about the centre, then shift."""
    x = landmarks(t=5, c=3, missing=False)
    cfg = always(resample=False, flip=False, noise=False, temporal_mask=False, feature_mask=False,
                 landmark_dropout=False, spatial_mask=False)
    rng = np.random.default_rng(11)
    p = draw_params(np.random.default_rng(11), cfg, length=5, num_points=118, max_len=384)
    out = apply_params(x, p, rng, flip_permutation(POINT_LANDMARKS))
    v = (x[..., :2].astype(np.float64) - 0.5) * p.scale
    v = v @ np.array([[1, p.shear_y], [p.shear_x, 1]])
    r = np.radians(p.degrees)
    v = v @ np.array([[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]]) + 0.5 + [p.shift_x, p.shift_y]
    np.testing.assert_allclose(out[..., :2], v, atol=1e-5)
    np.testing.assert_allclose(out[..., 2], x[..., 2] * p.scale, rtol=1e-5)


# --- temporal ----------------------------------------------------------------------------------

def test_resample_length_through_the_pipeline():
    cfg = always(temporal_mask=False)
    aug = ASLAugmentations(cfg, max_len=1000)
    x = landmarks(t=37)
    for seed in range(300):
        p = aug.draw(np.random.default_rng(seed), 37)
        out = aug(x, np.random.default_rng(seed))
        assert out.shape[0] == max(1, int(p.rate * 37))


@pytest.mark.parametrize("mode", ["linear", "cubic", "nearest"])
def test_resample_values(mode):
    t = 12
    ramp = np.linspace(0, 1, t, dtype=np.float32)
    x = np.stack([ramp, 1 - ramp], -1)[:, None, :].repeat(3, axis=1)  # (12, 3, 2)
    assert np.array_equal(ops.resample(x, t, mode), x)  # same length: identity
    for new in (1, 5, 7, 24, 31):
        out = ops.resample(x, new, mode)
        assert out.shape == (new, 3, 2) and out.dtype == np.float32
        if mode == "nearest":
            assert np.isin(out[..., 0], x[..., 0]).all()
        else:  # linear and Keys' cubic both reproduce a straight line (away from the clamped ends)
            src = (np.arange(new) + 0.5) * t / new - 0.5
            inner = (src >= 1) & (src <= t - 2)
            np.testing.assert_allclose(out[inner, 0, 0], src[inner] / (t - 1), atol=1e-5)
    down = ops.resample(x, 6, mode)
    assert down[0, 0, 0] <= down[-1, 0, 0]
    one = ops.resample(x[:1], 9, mode)
    assert one.shape[0] == 9 and np.array_equal(one, np.repeat(x[:1], 9, axis=0))


def keys_kernel(d: float, a: float = -0.5) -> float:
    """Keys' cubic convolution kernel at distance d (0 <= d < 2)."""
    if d <= 1:
        return ((a + 2) * d - (a + 3)) * d * d + 1
    return a * (d ** 3 - 5 * d * d + 8 * d - 4)


def reference_resample(x: np.ndarray, new: int, mode: str) -> np.ndarray:
    """A frame-by-frame float64 resample written from the definitions, to check the vectorised one."""
    t = x.shape[0]
    out = np.empty((new,) + x.shape[1:])
    clamp = lambda i: min(max(int(i), 0), t - 1)  # noqa: E731
    for j in range(new):
        src = (j + 0.5) * t / new - 0.5
        if mode == "nearest":
            out[j] = x[clamp(np.floor(src + 0.5))]
            continue
        if mode == "linear":
            src = min(max(src, 0.0), t - 1.0)
        if abs(src - round(src)) < 1e-9:  # on a frame: that frame alone
            out[j] = x[clamp(round(src))]
            continue
        i0, f = int(np.floor(src)), src - np.floor(src)
        if mode == "linear":
            out[j] = (1 - f) * x[i0] + f * x[clamp(i0 + 1)]
        else:
            out[j] = sum(keys_kernel(abs(src - k)) * x[clamp(k)].astype(np.float64) for k in range(i0 - 1, i0 + 3))
    return out


@pytest.mark.parametrize("mode", ["linear", "cubic", "nearest"])
def test_resample_matches_a_frame_by_frame_reference(mode):
    rng = np.random.default_rng(4)
    for t in (1, 2, 3, 5, 8, 13, 40):
        x = rng.random((t, 3, 2), dtype=np.float32)
        x[rng.random((t, 3)) < 0.2] = np.nan
        for new in sorted({1, 2, 3, max(1, t // 3), t // 2 + 1, t + 1, 2 * t, 3 * t - 1, 29}):
            got, want = ops.resample(x, new, mode), reference_resample(x, new, mode)
            assert got.shape == want.shape and got.dtype == np.float32
            assert np.array_equal(np.isnan(got), np.isnan(want)), (t, new)
            np.testing.assert_allclose(got, want, atol=2e-6, err_msg=f"t={t} new={new}")


@pytest.mark.parametrize("mode", ["linear", "cubic", "nearest"])
def test_resample_never_invents_landmarks(mode):
    t = 10
    x = np.tile(np.linspace(0, 1, t, dtype=np.float32)[:, None, None], (1, 2, 2))
    x[3:6, 0] = np.nan  # landmark 0 missing in frames 3-5; landmark 1 always present
    # new = 2 puts output frames exactly on source frames 2 and 7, next to the gap
    for new in (2, 4, 7, 10, 13, 20, 25):
        out = ops.resample(x, new, mode)
        assert not np.isnan(out[:, 1]).any()
        src = (np.arange(new) + 0.5) * t / new - 0.5
        if mode == "nearest":
            near = np.clip(np.floor(src + 0.5), 0, t - 1)
            want_nan = (near >= 3) & (near <= 5)
        elif mode == "linear":
            s = np.clip(src, 0, t - 1)
            lo, hi = np.floor(s), np.where(s > np.floor(s), np.floor(s) + 1, np.floor(s))
            want_nan = ((lo >= 3) & (lo <= 5)) | ((hi >= 3) & (hi <= 5))
        else:  # four taps floor(s)-1 .. floor(s)+2; an integer position uses only itself
            lo = np.floor(src)
            on_frame = np.isclose(src, np.round(src))
            want_nan = np.where(on_frame, (np.round(src) >= 3) & (np.round(src) <= 5),
                                (lo + 2 >= 3) & (lo - 1 <= 5))
        assert np.array_equal(np.isnan(out[:, 0, 0]), want_nan), (new, np.isnan(out[:, 0, 0]), want_nan)
        assert np.array_equal(np.isnan(out[:, 0, 0]), np.isnan(out[:, 0, 1]))


def test_temporal_mask_masks_the_drawn_fraction():
    cfg = always(resample=False, flip=False, rotate=False, scale=False, shear=False, translate=False,
                 noise=False, feature_mask=False, landmark_dropout=False, spatial_mask=False)
    aug = ASLAugmentations(cfg)
    x = landmarks(t=50, missing=False)
    perm = flip_permutation(POINT_LANDMARKS)
    fracs = []
    for seed in range(200):
        p = aug.draw(np.random.default_rng(seed), 50)
        out = apply_params(x, p, np.random.default_rng(seed), perm)
        masked = np.flatnonzero(np.isnan(out).all(axis=(1, 2)))
        assert len(masked) == int(p.temporal_mask_frac * 50) == p.temporal_mask_length
        assert np.array_equal(masked, np.arange(p.temporal_mask_start, p.temporal_mask_start + len(masked)))
        assert not np.isnan(np.delete(out, masked, axis=0)).any()
        fracs.append(len(masked) / 50)
    assert 0.2 <= min(fracs) and max(fracs) <= 0.4


# --- noise and masking -------------------------------------------------------------------------

@pytest.mark.parametrize("c", [2, 3])
def test_spatial_mask_removes_exactly_the_points_inside(c):
    x = landmarks(t=15, c=c)
    out = ops.spatial_mask(x, 0.3, 0.25, 0.35)
    for t in range(x.shape[0]):
        for n in range(x.shape[1]):
            px, py = x[t, n, 0], x[t, n, 1]
            inside = 0.3 < px < 0.65 and 0.25 < py < 0.6
            if inside:
                assert np.isnan(out[t, n]).all()
            else:
                np.testing.assert_array_equal(out[t, n], x[t, n])
    assert np.isnan(out).sum() > np.isnan(x).sum()


def test_feature_mask_dropout_and_noise():
    x = landmarks(t=40, missing=False)
    cfg = always(resample=False, flip=False, rotate=False, scale=False, shear=False, translate=False,
                 temporal_mask=False, spatial_mask=False, landmark_dropout=False, noise=False,
                 feature_mask_frac=0.25)
    out = ASLAugmentations(cfg)(x, np.random.default_rng(0))
    gone = np.isnan(out).all(axis=(0, 2))
    assert gone.sum() == round(0.25 * 118) and not np.isnan(out[:, ~gone]).any()

    drop = ops.landmark_dropout(np.repeat(x, 10, axis=0), 0.2, np.random.default_rng(1))
    frac = np.isnan(drop[..., 0]).mean()
    assert abs(frac - 0.2) < 0.01
    assert np.array_equal(np.isnan(drop[..., 0]), np.isnan(drop[..., 1]))

    noisy = ops.gaussian_noise(np.repeat(x, 10, axis=0), 0.02, np.random.default_rng(2))
    d = noisy - np.repeat(x, 10, axis=0)
    assert abs(d.std() - 0.02) < 0.001 and abs(d.mean()) < 0.001


def test_standard_normal_is_gaussian():
    from math import erf, sqrt

    z = ops.standard_normal_f32(np.random.default_rng(9), 400_001)
    assert z.shape == (400_001,) and z.dtype == np.float32 and np.isfinite(z).all()
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    for q in (-2.5, -1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 2.0, 3.0):  # the CDF at several points
        assert abs((z < q).mean() - 0.5 * (1 + erf(q / sqrt(2)))) < 0.003, q
    # the two halves (cosine and sine of the same radius) are uncorrelated
    assert abs(np.corrcoef(z[:200_000], z[200_001:])[0, 1]) < 0.01


# --- pipeline properties -----------------------------------------------------------------------

def test_same_seed_same_output_other_epoch_other_output():
    aug = ASLAugmentations(AugConfig())
    x = landmarks(t=30)
    seed, index = 42, 7
    a = aug(x, np.random.default_rng([seed, 3, index]))
    b = aug(x, np.random.default_rng([seed, 3, index]))
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    differ = 0
    for epoch in range(4, 14):
        c = aug(x, np.random.default_rng([seed, epoch, index]))
        differ += c.shape != a.shape or not np.array_equal(a, c, equal_nan=True)
    assert differ >= 9


def test_off_returns_the_input_bitwise():
    x = landmarks(t=25, c=3)
    for cfg in (AugConfig(use_augmentations=False), always(use_augmentations=False),
                AugConfig(use_augmentations=False, profile="winner")):
        aug = ASLAugmentations(cfg, max_len=8, points=POINT_LANDMARKS)
        out = aug(x, np.random.default_rng(0))
        assert out.dtype == x.dtype and out.shape == x.shape
        assert np.array_equal(out, x, equal_nan=True)
        assert aug.describe() == ["augmentations off"]


def test_missing_stays_missing_through_every_op():
    x = landmarks(t=20, points=ALL_543, c=3)
    was = np.isnan(x)
    perm = flip_permutation(ALL_543)
    rng = np.random.default_rng(0)
    m, b = ops.affine_matrix(scale=1.1, shear_x=0.1, degrees=20, shift=(0.05, 0.05))
    same_frames = [
        ops.affine(x, m, b, depth_scale=1.1, depth_shift=0.05),
        ops.gaussian_noise(x, 0.05, rng),
        ops.temporal_mask(x, 3, 5),
        ops.mask_landmarks(x, np.array([0, 500])),
        ops.landmark_dropout(x, 0.1, rng),
        ops.spatial_mask(x, 0.1, 0.1, 0.3),
    ]
    for out in same_frames:
        assert np.isnan(out[was]).all()
    assert np.isnan(ops.flip_horizontal(x, perm)[:, perm][was]).all()
    assert np.isnan(ops.temporal_crop(x, 2, 10)[was[2:12]]).all()
    for mode in ("linear", "cubic", "nearest"):  # a landmark missing in every frame stays missing
        x2 = x.copy()
        x2[:, 100] = np.nan
        assert np.isnan(ops.resample(x2, 33, mode)[:, 100]).all()
    # the whole pipeline, every op firing: a landmark missing throughout stays missing
    x3 = x.copy()
    x3[:, [5, 470]] = np.nan  # a face point and a left-hand point
    aug = ASLAugmentations(always(), points=ALL_543, max_len=64)
    for seed in range(30):
        out = aug(x3, np.random.default_rng(seed))
        p = aug.draw(np.random.default_rng(seed), 20)
        assert np.isnan(out[:, 5]).all()
        assert np.isnan(out[:, perm[470] if p.flip else 470]).all()


def test_ops_and_pipeline_never_modify_the_input():
    x = landmarks(t=30, c=3)
    keep = x.copy()
    x.setflags(write=False)  # any in-place write would raise
    perm = flip_permutation(POINT_LANDMARKS)
    rng = np.random.default_rng(0)
    for mode in ("linear", "cubic", "nearest"):
        ops.resample(x, 41, mode)
    ops.flip_horizontal(x, perm)
    ops.temporal_crop(x, 1, 5)
    ops.affine(x, *ops.affine_matrix(scale=1.1, degrees=3))
    ops.gaussian_noise(x, 0.1, rng)
    ops.temporal_mask(x, 1, 4)
    ops.mask_landmarks(x, np.array([1, 2]))
    ops.landmark_dropout(x, 0.3, rng)
    ops.spatial_mask(x, 0.0, 0.0, 1.0)
    for profile in ("seed", "winner"):
        aug = ASLAugmentations(always(profile=profile), max_len=20)
        for seed in range(10):
            out = aug(x, np.random.default_rng(seed))
            assert out.flags.writeable and not np.shares_memory(out, x)
    assert np.array_equal(x, keep, equal_nan=True)


def test_construction_from_config_and_overrides():
    cfg = load_config("winner").aug
    aug = ASLAugmentations.from_config(cfg, max_len=384)
    assert aug.config.profile == "winner" and aug.config is not cfg
    assert aug.describe()[0] == "winner profile"
    seed_style = ASLAugmentations(temporal_prob=0.5, spatial_prob=0.7, noise_prob=0.3, mask_prob=0.2)
    assert seed_style.config.spatial_prob == 0.7 and "spatial 0.7" in repr(seed_style)
    from asl_cli.errors import ConfigError
    with pytest.raises(ConfigError, match="unknown setting"):
        ASLAugmentations(spatial_probability=0.7)
    with pytest.raises(ValueError, match="118"):
        ASLAugmentations()(np.zeros((5, 543, 3), np.float32), np.random.default_rng(0))
    import pickle
    again = pickle.loads(pickle.dumps(aug))
    x = landmarks(t=12)
    assert np.array_equal(again(x, np.random.default_rng(1)), aug(x, np.random.default_rng(1)), equal_nan=True)


def test_affine_fast_xy_path_matches_the_general_path():
    """C = 2 takes a complex-number path; C = 3 the matrix path: both must agree on x, y."""
    x3 = landmarks(t=7, c=3)
    rng = np.random.default_rng(5)
    for _ in range(20):
        m, b = ops.affine_matrix(scale=rng.uniform(0.8, 1.2), shear_x=rng.uniform(-0.2, 0.2),
                                 shear_y=rng.uniform(-0.2, 0.2), degrees=rng.uniform(-40, 40),
                                 shift=tuple(rng.uniform(-0.1, 0.1, 2)))
        fast = ops.affine(np.ascontiguousarray(x3[..., :2]), m, b)
        general = ops.affine(x3, m, b)[..., :2]
        assert fast.dtype == np.float32 and fast.shape == general.shape
        np.testing.assert_allclose(fast, general, atol=2e-6)
        assert np.array_equal(np.isnan(fast), np.isnan(general))
        want = x3[..., :2].astype(np.float64) @ m + b
        np.testing.assert_allclose(fast, want, atol=2e-6)


# --- asl show ----------------------------------------------------------------------------------

SHOW_FILE = "train_landmark_files/16069/1430039129.parquet"  # 18 frames, left hand only


def test_show_writes_a_png_of_the_expected_size(sample_dir, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image
    from typer.testing import CliRunner

    from asl_cli.cli.app import app

    out = tmp_path / "pics" / "show.png"
    result = CliRunner().invoke(app, ["show", str(sample_dir / SHOW_FILE), "--augment", "--seed", "6",
                                      "--frames", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "flip" in result.output and "affine" in result.output  # seed 6 fires the spatial group
    assert "5 of 18 frames)" in result.output  # what was drawn, not the file's frame count alone
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (5 * 170, 2 * 170 + 35)
        pixels = np.asarray(im.convert("RGB"))
    # both hand colours are drawn: green (left-hand slots) above, purple (right-hand slots) below
    green, purple = np.array([0x2C, 0xA0, 0x2C]), np.array([0x94, 0x67, 0xBD])
    half, legend = pixels.shape[0] // 2, pixels.shape[0] - 40
    assert (np.abs(pixels[:half] - green).sum(-1) < 30).sum() > 20
    assert (np.abs(pixels[half:legend] - purple).sum(-1) < 30).sum() > 20
    assert (np.abs(pixels[half:legend] - green).sum(-1) < 30).sum() < 5  # the flip moved the left hand


def test_show_gif_and_one_line_errors(sample_dir, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from PIL import Image
    from typer.testing import CliRunner

    from asl_cli.cli.app import app

    runner = CliRunner()
    gif = tmp_path / "a.gif"
    result = runner.invoke(app, ["show", str(sample_dir / SHOW_FILE), "--augment", "--profile", "winner",
                                 "--frames", "3", "--out", str(gif)])
    assert result.exit_code == 0, result.output
    assert "3 of 18 frames, 3 animation steps)" in result.output
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 3
    for args, drawn in ((["--out", str(tmp_path / "all.png"), "--frames", "20"], "all 18 frames)"),
                        (["--out", str(tmp_path / "d.png")], "8 of 18 frames)"),
                        (["--out", str(tmp_path / "all.gif")], "all 18 frames, 18 animation steps)")):
        res = runner.invoke(app, ["show", str(sample_dir / SHOW_FILE), *args])
        assert res.exit_code == 0 and drawn in res.output, (args, res.output)

    bad = runner.invoke(app, ["show", str(sample_dir / SHOW_FILE), "--out", str(tmp_path / "a.jpg")])
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0 and ".png or .gif" in bad.stderr
    for args, text in ((["--profile", "best"], "--profile"), (["--frames", "50"], "at most 32"),
                       (["--set", "aug.rotate_deg=500"], "above the maximum")):
        res = runner.invoke(app, ["show", str(sample_dir / SHOW_FILE), "--augment", "--out",
                                  str(tmp_path / "c.png"), *args])
        assert res.exit_code == 2 and text in res.stderr and res.stderr.strip().count("\n") == 0
    missing = runner.invoke(app, ["show", str(tmp_path / "nope.parquet")])
    assert missing.exit_code == 3 and "not found" in missing.stderr and "Traceback" not in missing.output
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # the `plot` extra not installed
    nomp = runner.invoke(app, ["show", str(sample_dir / SHOW_FILE), "--out", str(tmp_path / "b.png")])
    assert nomp.exit_code == 1 and "asl-cli[plot]" in nomp.stderr and nomp.stderr.strip().count("\n") == 0


# --- through the real loaders ------------------------------------------------------------------

def test_loaders_augment_training_only(sample_cache):
    torch = pytest.importorskip("torch")
    from asl_cli.config import RunConfig
    from asl_cli.data.dataset import build_loaders
    from asl_cli.data.preprocess import preprocess

    cfg = RunConfig()
    cfg.data.max_len, cfg.data.n_folds, cfg.data.val_fold = 24, 4, 0
    cfg.train.batch_size = 64
    aug = ASLAugmentations.from_config(always(), max_len=cfg.data.max_len)
    train, val = build_loaders(cfg, sample_cache, augment=aug)
    assert val.dataset.augment is None and train.dataset.augment is aug
    for batch in val:  # validation: exactly the un-augmented features
        for row, i in enumerate(batch["index"].tolist()):
            n = int(batch["lengths"][row])
            np.testing.assert_array_equal(batch["features"][row, :n].numpy(),
                                          preprocess(sample_cache.points(i), 24, drop_nan_frames=False))
    changed = 0
    for batch in train:
        assert torch.isfinite(batch["features"]).all() and batch["features"].shape[1] <= 24
        for row, i in enumerate(batch["index"].tolist()):
            n = int(batch["lengths"][row])
            plain = preprocess(sample_cache.points(i), 24, drop_nan_frames=False)
            changed += plain.shape[0] != n or not np.array_equal(batch["features"][row, :n].numpy(), plain)
    assert changed == len(train.dataset)  # every op fires with always(): every training sample differs
