"""The augmentation operations, as pure functions of explicit parameters.

Every function takes a landmark array `points` of shape (T, N, C) with C >= 2 (x, y[, z, ...]),
NaN = missing landmark, and returns a NEW array of the same dtype; the input is never modified.
Random quantities are drawn elsewhere (`asl_cli.augment.pipeline.draw_params`) and passed in, so
each operation can be tested with exact parameters. The two operations whose randomness is one
value per landmark (Gaussian noise, landmark dropout) take the numpy Generator itself.

Missing stays missing: NaN inputs give NaN outputs everywhere (an interpolation that touches a
NaN frame with a non-zero weight gives NaN, so no landmark is invented between frames).

Coordinates are MediaPipe-normalised: x and y roughly in 0..1, the image centre at (0.5, 0.5).
"""

from __future__ import annotations

import math

import numpy as np

CENTRE = (0.5, 0.5)
RESAMPLE_MODES = ("linear", "cubic", "nearest")
CUBIC_A = -0.5  # Keys' cubic convolution parameter (Catmull-Rom; TensorFlow's "bicubic")


# --- temporal ---------------------------------------------------------------------------------

def _source_positions(length: int, new_length: int) -> np.ndarray:
    """Fractional source frame of each output frame (half-pixel centres, as tf.image.resize)."""
    return (np.arange(new_length, dtype=np.float64) + 0.5) * (length / new_length) - 0.5


def resample(points: np.ndarray, new_length: int, mode: str = "linear") -> np.ndarray:
    """Stretch or squeeze time to `new_length` (>= 1) frames.

    mode: "linear", "cubic" (Keys cubic convolution, a = -0.5) or "nearest". Frames beyond the ends
    repeat the edge frame. An output frame is NaN at a landmark as soon as a source frame with a
    non-zero weight is NaN there; a source position that falls exactly on a frame copies it.
    """
    new_length = max(1, int(new_length))
    t = points.shape[0]
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown resample mode {mode!r} (expected one of {', '.join(RESAMPLE_MODES)})")
    if t == 0:
        raise ValueError("cannot resample an empty sequence")
    if new_length == t or t == 1:
        # Half-pixel centres map frame i to frame i exactly; a single frame can only repeat.
        return np.take(points, np.zeros(new_length, dtype=np.intp), axis=0) if t == 1 else points.copy()
    src = _source_positions(t, new_length)
    if mode == "nearest":
        idx = np.clip(np.floor(src + 0.5).astype(np.intp), 0, t - 1)
        return np.take(points, idx, axis=0)
    if mode == "linear":
        src = np.clip(src, 0.0, t - 1)
        i0 = np.floor(src).astype(np.intp)
        frac = src - i0
        i1 = np.where(frac > 0, np.minimum(i0 + 1, t - 1), i0)  # on a frame: its neighbour is unused
        a = np.take(points, i0, axis=0)
        b = np.take(points, i1, axis=0)
        b -= a
        b *= frac.astype(points.dtype)[:, None, None]
        b += a
        return b
    # cubic: taps i0-1 .. i0+2 with Keys' weights; beyond the ends the edge frame repeats.
    i0 = np.floor(src).astype(np.intp)
    f = src - i0
    a = CUBIC_A
    g, h = f + 1.0, 1.0 - f
    w = np.stack([((a * g - 5 * a) * g + 8 * a) * g - 4 * a,
                  ((a + 2) * f - (a + 3)) * f * f + 1,
                  ((a + 2) * h - (a + 3)) * h * h + 1])
    w = np.concatenate([w, 1.0 - w.sum(axis=0, keepdims=True)])  # (4, L)
    w[np.abs(w) < 1e-12] = 0.0  # exact zeros on integer positions
    taps = np.clip(i0 + np.arange(-1, 3)[:, None], 0, t - 1)  # (4, L)
    # A tap with weight 0 is pointed at the centre tap i0 (weight > 0 for 0 <= f < 1): 0 * NaN would
    # otherwise turn an unused missing neighbour into a missing output. A used NaN propagates.
    taps = np.where(w == 0, taps[1], taps)
    w = w.astype(points.dtype)[:, :, None, None]
    out = np.take(points, taps[0], axis=0)
    out *= w[0]
    for k in (1, 2, 3):
        tap = np.take(points, taps[k], axis=0)
        tap *= w[k]
        out += tap
    return out


def temporal_crop(points: np.ndarray, start: int, length: int) -> np.ndarray:
    """Frames `start .. start+length-1` (a copy)."""
    return points[start:start + length].copy()


def temporal_mask(points: np.ndarray, start: int, length: int) -> np.ndarray:
    """Frames `start .. start+length-1` set missing (NaN); the length of the sequence is kept."""
    out = points.copy()
    out[start:start + length] = np.nan
    return out


# --- spatial ----------------------------------------------------------------------------------

def flip_horizontal(points: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Mirror: x -> 1 - x, and every left/right landmark pair swapped (`permutation` from
    `asl_cli.data.landmarks.flip_permutation`). Without the swap a left hand would stay in the
    left-hand slots while moving to the right side of the image."""
    out = np.take(points, permutation, axis=1)  # a copy; faster than fancy indexing
    np.subtract(1.0, out[..., 0], out=out[..., 0])
    return out


def affine_matrix(*, scale: float = 1.0, shear_x: float = 0.0, shear_y: float = 0.0,
                  degrees: float = 0.0, shift: tuple[float, float] = (0.0, 0.0),
                  centre: tuple[float, float] = CENTRE) -> tuple[np.ndarray, np.ndarray]:
    """One 2x2 matrix `m` and offset `b` with xy' = xy @ m + b (xy as row vectors) doing, in order:

    scale by `scale`, shear (x' = x + shear_x * y, y' = y + shear_y * x), rotate by `degrees`
    (x' = x cos - y sin, y' = x sin + y cos), all three about `centre`; then add `shift` (dx, dy).
    """
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    # (scale * shear) @ rotate, written out: numpy's overhead on 2x2 arrays exceeds the work.
    a00, a01, a10, a11 = scale, scale * shear_y, scale * shear_x, scale
    m = np.array([[a00 * c - a01 * s, a00 * s + a01 * c],
                  [a10 * c - a11 * s, a10 * s + a11 * c]])
    cx, cy = centre
    b = np.array([cx - (cx * m[0, 0] + cy * m[1, 0]) + shift[0],
                  cy - (cx * m[0, 1] + cy * m[1, 1]) + shift[1]])
    return m, b


def affine(points: np.ndarray, matrix: np.ndarray, offset: np.ndarray, *,
           depth_scale: float = 1.0, depth_shift: float = 0.0) -> np.ndarray:
    """xy' = xy @ matrix + offset; further channels (z) -> z * depth_scale + depth_shift."""
    m = np.asarray(matrix, dtype=points.dtype)
    b = np.asarray(offset, dtype=points.dtype)
    if points.shape[-1] == 2:
        out = points.reshape(-1, 2) @ m  # one small matmul: the fastest form for (T*N, 2)
        out += b
        return out.reshape(points.shape)
    out = np.empty_like(points)
    out[..., :2] = points[..., :2] @ m
    out[..., :2] += b
    np.multiply(points[..., 2:], points.dtype.type(depth_scale), out=out[..., 2:])
    out[..., 2:] += points.dtype.type(depth_shift)
    return out


# --- noise and masking ------------------------------------------------------------------------

def gaussian_noise(points: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Independent N(0, std) jitter on x and y of every landmark (missing ones stay NaN)."""
    out = points.copy()
    noise = rng.standard_normal(points.shape[:-1] + (2,), dtype=np.float32)
    noise *= np.float32(std)
    out[..., :2] += noise.astype(points.dtype, copy=False)
    return out


def mask_landmarks(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Feature masking: the landmarks at positions `landmarks` missing in every frame."""
    out = points.copy()
    out[:, landmarks] = np.nan
    return out


def mask_points(points: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Landmarks where the boolean (T, N) array `missing` is True set to NaN (all channels)."""
    out = points.copy()
    out[missing] = np.nan
    return out


def landmark_dropout(points: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Each landmark of each frame independently missing with probability `prob`."""
    return mask_points(points, rng.random(points.shape[:2], dtype=np.float32) < prob)


def spatial_mask(points: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """Landmarks strictly inside the square x0 < x < x0+side, y0 < y < y0+side set missing."""
    x, y = points[..., 0], points[..., 1]
    inside = (x > x0) & (x < x0 + side) & (y > y0) & (y < y0 + side)
    return mask_points(points, inside)
