"""The winner's preprocessing: hand-computed values on tiny inputs, edge cases, numpy vs torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asl_cli.data.landmarks import LIP_CENTRE, NUM_FEATURES, NUM_POINTS, POINT_LANDMARKS
from asl_cli.data.preprocess import CENTRE_POS, preprocess, select_points, valid_frames

XY, DX, DX2 = 0, 2 * NUM_POINTS, 4 * NUM_POINTS  # feature offsets of the three blocks


def feat(block: int, point: int, coord: int) -> int:
    return block + 2 * point + coord


def tiny() -> np.ndarray:
    """3 frames; frame 0 all NaN; the lip centre (pos 15) in frames 1-2 and point 20 in frame 1.

    x: lip 0.4, 0.8 -> centre 0.6; distances -0.2, +0.2, and point 20 at 0.8 -> +0.2: std 0.2.
    y: lip 0.5, 0.5 -> centre 0.5; distances 0, 0, 0.3 -> std sqrt(0.09 / 3) = sqrt(0.03).
    z (ignored) holds arbitrary values.
    """
    p = np.full((3, NUM_POINTS, 3), np.nan, dtype=np.float32)
    p[1, CENTRE_POS] = (0.4, 0.5, 7.0)
    p[2, CENTRE_POS] = (0.8, 0.5, -3.0)
    p[1, 20] = (0.8, 0.8, 100.0)
    return p


def test_centre_position_is_landmark_17():
    assert POINT_LANDMARKS[CENTRE_POS] == LIP_CENTRE == 17


def test_hand_computed_values():
    out = preprocess(tiny(), max_len=384)
    assert out.shape == (2, NUM_FEATURES) and out.dtype == np.float32  # frame 0 dropped
    expected = np.zeros((2, NUM_FEATURES), dtype=np.float32)
    expected[0, feat(XY, CENTRE_POS, 0)] = -1.0
    expected[0, feat(XY, 20, 0)] = 1.0
    expected[0, feat(XY, 20, 1)] = math.sqrt(3.0)  # 0.3 / sqrt(0.03)
    expected[1, feat(XY, CENTRE_POS, 0)] = 1.0
    expected[0, feat(DX, CENTRE_POS, 0)] = 2.0  # 1 - (-1); point 20 is NaN in frame 2 -> 0
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_dx2_hand_computed():
    # One point moving along x: 0.2, 0.4, 0.8 with the lip fixed at (0.5, 0.5) in every frame.
    p = np.full((3, NUM_POINTS, 2), np.nan, dtype=np.float32)
    p[:, CENTRE_POS] = 0.5
    p[:, 0, 0] = [0.2, 0.4, 0.8]
    p[:, 0, 1] = 0.5
    # x distances: lip 0,0,0; point -0.3,-0.1,0.3 -> var = 0.19/6; y distances all 0 -> scale 1.
    s = math.sqrt(0.19 / 6)
    out = preprocess(p, max_len=10)
    np.testing.assert_allclose(out[:, feat(XY, 0, 0)], np.array([-0.3, -0.1, 0.3]) / s, rtol=1e-5)
    np.testing.assert_allclose(out[:, feat(DX, 0, 0)], np.array([0.2, 0.4, 0.0]) / s, rtol=1e-5)
    np.testing.assert_allclose(out[:, feat(DX2, 0, 0)], np.array([0.6, 0.0, 0.0]) / s, rtol=1e-5)
    np.testing.assert_array_equal(out[:, feat(XY, 0, 1)], 0.0)  # y: 0 / scale 1


def test_truncation_after_statistics():
    out = preprocess(tiny(), max_len=1)
    full = preprocess(tiny(), max_len=384)
    assert out.shape == (1, NUM_FEATURES)
    np.testing.assert_array_equal(out[0, :DX], full[0, :DX])  # same centre and scale
    np.testing.assert_array_equal(out[0, DX:], 0.0)  # motion of a 1-frame sequence is zero


def test_centre_defaults_to_half_when_lip_never_seen():
    p = np.full((2, NUM_POINTS, 2), np.nan, dtype=np.float32)
    p[0, 0] = (0.7, 0.3)  # distances to (0.5, 0.5): +0.2, -0.2 -> both scales 0.2
    p[1, 0] = (0.3, 0.7)
    out = preprocess(p, max_len=8)
    np.testing.assert_allclose(out[:, feat(XY, 0, 0)], [1.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(out[:, feat(XY, 0, 1)], [-1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("case", ["single_lip_point", "all_nan", "constant", "empty"])
def test_output_always_finite(case):
    if case == "single_lip_point":  # the only valid point is the centre itself: std 0
        p = np.full((4, NUM_POINTS, 2), np.nan, dtype=np.float32)
        p[2, CENTRE_POS] = (0.3, 0.6)
    elif case == "all_nan":
        p = np.full((5, NUM_POINTS, 3), np.nan, dtype=np.float32)
    elif case == "constant":
        p = np.full((5, NUM_POINTS, 2), 0.25, dtype=np.float32)
    else:
        p = np.zeros((0, NUM_POINTS, 2), dtype=np.float32)
    out = preprocess(p, max_len=384)
    assert out.shape[0] >= 1 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, 0.0)  # nothing moves away from the centre


def test_all_nan_frames_dropped_or_kept():
    p = tiny()
    p = np.concatenate([p, p])  # all-NaN frames at 0 and 3 of 6
    assert preprocess(p, 384).shape == (4, NUM_FEATURES)
    kept = preprocess(p, 384, drop_nan_frames=False)
    assert kept.shape == (6, NUM_FEATURES)
    np.testing.assert_array_equal(kept[[0, 3]], 0.0)
    np.testing.assert_array_equal(valid_frames(p), [False, True, True, False, True, True])


def test_input_not_modified_and_float64_accepted():
    p = tiny().astype(np.float64)
    before = p.copy()
    out = preprocess(p, 384)
    np.testing.assert_array_equal(p, before)
    np.testing.assert_allclose(out, preprocess(tiny(), 384), atol=1e-6)


def test_bad_shape_raises():
    with pytest.raises(ValueError):
        preprocess(np.zeros((3, 117, 2), np.float32), 10)
    with pytest.raises(ValueError):
        select_points(np.zeros((3, 118, 2), np.float32))


def test_select_points_order():
    frames = np.arange(2 * 543 * 1, dtype=np.float32).reshape(2, 543, 1)
    sel = select_points(frames)
    assert sel.shape == (2, NUM_POINTS, 1)
    np.testing.assert_array_equal(sel[0, :, 0], POINT_LANDMARKS)
    np.testing.assert_array_equal(sel[1, :, 0], np.array(POINT_LANDMARKS) + 543)


def test_real_sample_finite(sample_dir):
    from asl_cli.data.reader import read_index, read_landmarks

    index = read_index(sample_dir)
    for i in range(0, len(index), 17):
        pts = select_points(read_landmarks(index.file(i)))
        out = preprocess(pts, 384)
        assert np.isfinite(out).all() and out.shape[1] == NUM_FEATURES
        # Normalised coordinates have unit RMS distance from the centre over the valid points.
        assert 0.05 < np.abs(out[:, :DX]).max() < 50


# --- torch agreement --------------------------------------------------------------------------

def _random_points(rng, t, c=3, nan_frac=0.2):
    p = rng.normal(0.5, 0.2, size=(t, NUM_POINTS, c)).astype(np.float32)
    p[rng.random((t, NUM_POINTS)) < nan_frac] = np.nan
    hand = rng.random(t) < 0.3  # whole missing hands, as MediaPipe reports them
    p[hand, 40:61] = np.nan
    return p


@pytest.mark.parametrize("t,max_len", [(1, 384), (2, 384), (3, 384), (17, 8), (60, 384)])
def test_torch_matches_numpy(t, max_len):
    torch = pytest.importorskip("torch")
    from asl_cli.data.preprocess_torch import preprocess_torch

    rng = np.random.default_rng(t)
    for case in range(4):
        p = _random_points(rng, t)
        if case == 1:
            p[0] = np.nan  # leading all-NaN frame
        if case == 2:
            p[:, CENTRE_POS] = np.nan  # centre falls back to 0.5
        if case == 3:
            p[:] = np.nan
        for drop in (True, False):
            a = preprocess(p, max_len, drop_nan_frames=drop)
            b = preprocess_torch(torch.from_numpy(p), max_len, drop_nan_frames=drop).numpy()
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5)


def test_torch_matches_numpy_real_sample(sample_dir):
    torch = pytest.importorskip("torch")
    from asl_cli.data.preprocess_torch import preprocess_torch
    from asl_cli.data.reader import read_index, read_landmarks

    index = read_index(sample_dir)
    for i in range(0, len(index), 23):
        pts = select_points(read_landmarks(index.file(i)))
        np.testing.assert_allclose(preprocess_torch(torch.from_numpy(pts), 64).numpy(),
                                   preprocess(pts, 64), atol=1e-5, rtol=1e-5)


def test_numpy_path_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from asl_cli.data.preprocess import preprocess; import asl_cli.data.reader; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
