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

import functools
import math

import numpy as np

CENTRE = (0.5, 0.5)
RESAMPLE_MODES = ("linear", "cubic", "nearest")
CUBIC_A = -0.5  # Keys' cubic convolution parameter (Catmull-Rom; TensorFlow's "bicubic")


# --- temporal ---------------------------------------------------------------------------------

# Keys' cubic convolution weights of the taps i0-1, i0, i0+1, i0+2 as polynomials in the fraction f:
# rows are taps, columns the coefficients of f^3, f^2, f, 1.
_A = CUBIC_A
KEYS_COEFFS = np.array([[_A, -2 * _A, _A, 0.0],
                        [_A + 2, -(_A + 3), 0.0, 1.0],
                        [-(_A + 2), 2 * _A + 3, -_A, 0.0],
                        [-_A, _A, 0.0, 0.0]])
TAP_OFFSETS = np.arange(-1, 3)[:, None]


@functools.lru_cache(maxsize=4096)  # ~2-6 KB an entry at typical lengths; the same lengths recur
def resample_plan(length: int, new_length: int, mode: str, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Source frames `taps` (K, new_length) and `weights` (K, new_length) of a resample:
    output frame j = sum_k weights[k, j] * input frame taps[k, j].

    Half-pixel centres (as tf.image.resize): output frame j sits at source position
    src = (j + 0.5) * length / new_length - 0.5, computed exactly in integers as
    num / den with num = (2j + 1) * length - new_length, den = 2 * new_length.
    K = 1 (nearest), 2 (linear), 4 (cubic, Keys a = -0.5). Taps beyond the ends repeat the edge
    frame. A position exactly on a frame uses that frame alone: its other taps point at it too
    (with weight 0), so 0 * NaN cannot turn an unused missing neighbour into a missing output.
    Cached; the arrays are read-only.
    """
    t, den = length, 2 * new_length
    odd = np.arange(1, den, 2, dtype=np.int64)  # 2j + 1
    if mode == "nearest":
        taps = ((odd * t) // den)[None]  # floor(src + 0.5), always within 0..t-1
        w = np.ones(taps.shape)
    elif mode == "linear":
        num = np.minimum(np.maximum(odd * t - new_length, 0), den * (t - 1))  # src clipped to [0, t-1]
        i0, rem = np.divmod(num, den)
        taps = np.array([i0, i0 + (rem > 0)])
        frac = rem / den
        w = np.array([1.0 - frac, frac])
    elif mode == "cubic":
        i0, rem = np.divmod(odd * t - new_length, den)
        f = rem / den
        f2 = f * f
        w = KEYS_COEFFS @ np.array([f2 * f, f2, f, np.ones_like(f)])  # (4, L); exactly [0, 1, 0, 0] at f = 0
        taps = np.minimum(np.maximum(i0 + TAP_OFFSETS, 0), t - 1)
        on_frame = rem == 0
        taps[:, on_frame] = taps[1, on_frame]
    else:
        raise ValueError(f"unknown resample mode {mode!r} (expected one of {', '.join(RESAMPLE_MODES)})")
    taps, w = taps.astype(np.intp, copy=False), w.astype(dtype)
    taps.setflags(write=False)
    w.setflags(write=False)
    return taps, w


def resample(points: np.ndarray, new_length: int, mode: str = "linear") -> np.ndarray:
    """Stretch or squeeze time to `new_length` (>= 1) frames (see `resample_plan`).

    mode: "linear", "cubic" (Keys cubic convolution, a = -0.5) or "nearest". An output frame is
    NaN at a landmark as soon as a source frame with a non-zero weight is NaN there; a source
    position that falls exactly on a frame copies it. No landmark is invented.
    """
    new_length = max(1, int(new_length))
    t = points.shape[0]
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown resample mode {mode!r} (expected one of {', '.join(RESAMPLE_MODES)})")
    if t == 0:
        raise ValueError("cannot resample an empty sequence")
    if new_length == t:  # half-pixel centres map frame i onto frame i
        return points.copy()
    if t == 1:  # a single frame can only repeat
        return np.repeat(points, new_length, axis=0)
    taps, w = resample_plan(t, new_length, mode, points.dtype.name)
    if mode == "nearest":
        return np.take(points, taps[0], axis=0)
    k = taps.shape[0]
    gathered = np.take(points, taps.ravel(), axis=0).reshape((k, new_length) + points.shape[1:])
    gathered *= w[:, :, None, None]
    return gathered.sum(axis=0)


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
    m00, m01, m10, m11, b0, b1 = affine_entries(scale=scale, shear_x=shear_x, shear_y=shear_y,
                                                degrees=degrees, shift=shift, centre=centre)
    return np.array([[m00, m01], [m10, m11]]), np.array([b0, b1])


def affine_entries(*, scale: float = 1.0, shear_x: float = 0.0, shear_y: float = 0.0, degrees: float = 0.0,
                   shift: tuple[float, float] = (0.0, 0.0),
                   centre: tuple[float, float] = CENTRE) -> tuple[float, float, float, float, float, float]:
    """`affine_matrix` as six Python floats m00, m01, m10, m11, b0, b1 (numpy's overhead on 2x2
    arrays exceeds the work)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    a00, a01, a10, a11 = scale, scale * shear_y, scale * shear_x, scale  # (scale * shear) @ rotate
    m00, m01, m10, m11 = a00 * c - a01 * s, a00 * s + a01 * c, a10 * c - a11 * s, a10 * s + a11 * c
    cx, cy = centre
    return (m00, m01, m10, m11, cx - (cx * m00 + cy * m10) + shift[0], cy - (cx * m01 + cy * m11) + shift[1])


def affine(points: np.ndarray, matrix: np.ndarray, offset: np.ndarray, *,
           depth_scale: float = 1.0, depth_shift: float = 0.0) -> np.ndarray:
    """xy' = xy @ matrix + offset; further channels (z) -> z * depth_scale + depth_shift."""
    if points.shape[-1] == 2 and points.dtype in (np.float32, np.float64):
        return _affine_complex(points, matrix, offset)
    m = np.asarray(matrix, dtype=points.dtype)
    b = np.asarray(offset, dtype=points.dtype)
    out = np.empty_like(points)
    out[..., :2] = points[..., :2] @ m
    out[..., :2] += b
    np.multiply(points[..., 2:], points.dtype.type(depth_scale), out=out[..., 2:])
    out[..., 2:] += points.dtype.type(depth_shift)
    return out


def complex_coefficients(m00: float, m01: float, m10: float, m11: float, b0: float,
                         b1: float) -> tuple[complex, complex, complex]:
    """(alpha, beta, gamma) of the affine map with the entries `affine_entries` returns, on
    z = x + iy: z' = alpha z + beta conj(z) + gamma."""
    return complex((m00 + m11) / 2, (m01 - m10) / 2), complex((m00 - m11) / 2, (m01 + m10) / 2), complex(b0, b1)


def _affine_complex(points: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The same map on (x, y) viewed as one complex number z = x + iy per landmark:
    z' = alpha z + beta conj(z) + gamma (beta = 0 without shear or mirror). Several times faster
    than a matmul plus a broadcast offset, whose innermost loops run over only 2 values."""
    (m00, m01), (m10, m11) = np.asarray(matrix, dtype=np.float64).tolist()
    alpha, beta, gamma = complex_coefficients(m00, m01, m10, m11, float(offset[0]), float(offset[1]))
    ctype = np.complex64 if points.dtype == np.float32 else np.complex128
    z = np.ascontiguousarray(points).view(ctype)
    out = z * ctype(alpha)
    if beta != 0:
        out += np.conj(z) * ctype(beta)
    out += ctype(gamma)
    return out.view(points.dtype)


# --- noise and masking ------------------------------------------------------------------------

def standard_normal_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` independent N(0, 1) float32 values by the Box-Muller transform of float32 uniforms.

    An exact Gaussian transform, about twice as fast here as `rng.standard_normal(dtype=float32)`
    (whose per-value cost dominated the noise op). The 24-bit uniforms bound |z| by 5.8
    (a tail of probability 7e-9), irrelevant for augmentation noise.
    """
    half = (n + 1) // 2
    u = rng.random(2 * half, dtype=np.float32)
    radius = np.log1p(-u[:half])  # log(1 - u): 1 - u is in (0, 1], never log(0)
    radius *= np.float32(-2.0)
    np.sqrt(radius, out=radius)
    angle = u[half:]
    angle *= np.float32(2 * np.pi)
    out = np.empty(2 * half, dtype=np.float32)
    np.cos(angle, out=out[:half])
    np.sin(angle, out=out[half:])
    out[:half] *= radius
    out[half:] *= radius
    return out[:n]


def gaussian_noise_values(shape: tuple[int, ...], std: float, rng: np.random.Generator) -> np.ndarray:
    """float32 N(0, std) values of `shape` (the jitter `gaussian_noise` adds)."""
    noise = standard_normal_f32(rng, math.prod(shape)).reshape(shape)
    noise *= np.float32(std)
    return noise


def gaussian_noise(points: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Independent N(0, std) jitter on x and y of every landmark (missing ones stay NaN)."""
    noise = gaussian_noise_values(points.shape[:-1] + (2,), std, rng)
    if points.shape[-1] == 2:
        return points + noise.astype(points.dtype, copy=False)
    out = points.copy()
    out[..., :2] += noise
    return out


def mask_landmarks(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Feature masking: the landmarks at positions `landmarks` missing in every frame."""
    out = points.copy()
    out[:, landmarks] = np.nan
    return out


def mask_points(points: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Landmarks where the boolean (T, N) array `missing` is True set to NaN (all channels)."""
    out = points.copy()
    if points.shape[-1] == 2 and points.dtype in (np.float32, np.float64):
        # one complex number per landmark: a flat masked store, ~2x faster than out[missing] = nan
        ctype = np.complex64 if points.dtype == np.float32 else np.complex128
        np.putmask(out.view(ctype)[..., 0], missing, ctype(complex(np.nan, np.nan)))
    else:
        out[missing] = np.nan
    return out


def landmark_dropout(points: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Each landmark of each frame independently missing with probability `prob`."""
    return mask_points(points, rng.random(points.shape[:2], dtype=np.float32) < prob)


def spatial_mask(points: np.ndarray, x0: float, y0: float, side: float) -> np.ndarray:
    """Landmarks strictly inside the square x0 < x < x0+side, y0 < y < y0+side set missing."""
    # x and y as two contiguous rows: comparisons on the interleaved (stride-2) columns are slower
    x, y = np.ascontiguousarray(points[..., :2].reshape(-1, 2).T)
    inside = x > x0
    inside &= x < x0 + side
    inside &= y > y0
    inside &= y < y0 + side
    return mask_points(points, inside.reshape(points.shape[:2]))
