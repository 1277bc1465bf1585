"""The numba kernel behind asl_cli/data/fast.py (imported only when numba is installed and used).

Kept apart so that importing the data layer never imports numba (~0.3 s) unless the kernel runs.
See fast.py for what it computes; the numpy functions it mirrors are named in the comments. The
augmentations' float32 operations are those of the numpy code in the same order (numba does not
contract a*b+c into FMA without fastmath); the statistics are summed in float64 here (BLAS float32
there), so the features agree within float32 rounding, not bitwise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from asl_cli.data.preprocess import MIN_SCALE


def _in(dtype, ndim: int):
    # read-only C arrays: numba types writable and read-only arrays apart (the cache's memory map is
    # read-only, resample plans are frozen) and would compile a kernel per combination; a writable
    # array converts to a read-only parameter, so one signature, compiled once, takes them all
    return types.Array(dtype, ndim, "C", readonly=True)


SIGNATURE = types.void(
    _in(types.float32, 3), _in(types.intp, 2), _in(types.float32, 2), _in(types.intp, 1),
    _in(types.float32, 3), _in(types.boolean, 1), _in(types.float32, 2), _in(types.int64, 1),
    _in(types.float32, 1), types.float32[:, ::1])

# iparams slots
MAX_LEN, FIRST, LENGTH, FLIP, AFFINE, MASK_START, MASK_STOP, SQUARE, CENTRE = range(9)
# fparams slots
AR, AI, BR, BI, GR, GI, DROP_P, X0, X1, Y0, Y1 = range(11)


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _sums(flat):
    """Sum, sum of squares and count of the valid x (even slots) and y (odd slots), in float64 (a
    float32 squared is exact there). `reassoc` lets LLVM vectorise these reductions (the order of
    the additions changes, by float64 rounding only); NaN checks stay exact (no `nnan`)."""
    sx, sy, qx, qy, vx, vy = 0.0, 0.0, 0.0, 0.0, 0, 0
    for j in range(0, flat.shape[0], 2):
        x, y = np.float64(flat[j]), np.float64(flat[j + 1])
        valid_x, valid_y = x == x, y == y
        x, y = x if valid_x else 0.0, y if valid_y else 0.0
        sx += x
        qx += x * x
        vx += valid_x
        sy += y
        qy += y * y
        vy += valid_y
    return sx, sy, qx, qy, vx, vy


@njit(SIGNATURE, cache=True, nogil=True)
def augment_and_preprocess(pts, taps, weights, perm, noise, pmask, drop_u, iparams, fparams, out):
    """Writes the features `(min(LENGTH, MAX_LEN), 6 * N)` of the augmented `pts` (T, N, >=2)
    float32 into `out`, which has that shape (the caller checks: no bounds checks here); `out` may
    be rows of a batch, so that the features are not copied again.

    Output frame t reads source position FIRST + t of the resampled sequence: `taps`/`weights`
    (K, L) of `ops.resample_plan` (K = 0: no resampling). An empty `noise`/`pmask`/`drop_u` switches
    that operation off; the flip, affine map, temporal mask and spatial square are flags in iparams.
    """
    n_pts, width = pts.shape[1], 2 * pts.shape[1]
    length, first, k_taps = iparams[LENGTH], iparams[FIRST], taps.shape[0]
    flip, affine, square = iparams[FLIP] != 0, iparams[AFFINE] != 0, iparams[SQUARE] != 0
    t0, t1 = iparams[MASK_START], iparams[MASK_STOP]
    ar, ai, br, bi, gr, gi = fparams[AR], fparams[AI], fparams[BR], fparams[BI], fparams[GR], fparams[GI]
    beta = br != 0 or bi != 0
    drop_p, x0, x1, y0, y1 = fparams[DROP_P], fparams[X0], fparams[X1], fparams[Y0], fparams[Y1]
    do_noise, do_pmask, do_drop = noise.shape[0] > 0, pmask.shape[0] > 0, drop_u.shape[0] > 0
    one, zero, nan = np.float32(1.0), np.float32(0.0), np.float32(np.nan)

    # 1. augment into one (T, 2N) matrix, x and y interleaved as preprocess lays them out, in
    # apply_params' order; one simple loop per operation (measured a little faster than one loop
    # with every operation's branch inside)
    xy = np.empty((length, width), dtype=np.float32)
    src = np.arange(n_pts) if not flip else perm  # ops.flip_horizontal: the mirror's landmark swap
    if k_taps == 0:
        for t in range(length):
            row, frame = xy[t], pts[first + t]
            for n in range(n_pts):
                row[2 * n], row[2 * n + 1] = frame[src[n], 0], frame[src[n], 1]
    elif not flip and pts.shape[2] == 2:  # the same sums over whole frames: LLVM vectorises them
        for t in range(length):
            row, r = xy[t], first + t
            frame, w = pts[taps[0, r]].ravel(), weights[0, r]
            for j in range(width):
                row[j] = frame[j] * w
            for k in range(1, k_taps):
                frame, w = pts[taps[k, r]].ravel(), weights[k, r]
                for j in range(width):
                    row[j] = row[j] + frame[j] * w
    else:  # ops.resample: the taps' weighted frames, summed in order
        for t in range(length):
            row, r = xy[t], first + t
            frame, w = pts[taps[0, r]], weights[0, r]
            for n in range(n_pts):
                row[2 * n], row[2 * n + 1] = frame[src[n], 0] * w, frame[src[n], 1] * w
            for k in range(1, k_taps):
                frame, w = pts[taps[k, r]], weights[k, r]
                for n in range(n_pts):
                    s = src[n]
                    row[2 * n], row[2 * n + 1] = row[2 * n] + frame[s, 0] * w, row[2 * n + 1] + frame[s, 1] * w
    flat = xy.ravel()
    size = flat.shape[0]
    if flip:
        for j in range(0, size, 2):
            flat[j] = one - flat[j]
    if affine:  # ops._affine_complex: z * alpha (+ conj(z) * beta) + gamma, in float32
        for j in range(0, size, 2):
            x, y = flat[j], flat[j + 1]
            re, im = x * ar - y * ai, x * ai + y * ar
            if beta:
                re, im = re + (x * br - (-y) * bi), im + (x * bi + (-y) * br)
            flat[j], flat[j + 1] = re + gr, im + gi
    if do_noise:  # ops.gaussian_noise (drawn and scaled by the caller, laid out as xy)
        jitter = noise.ravel()
        for j in range(size):
            flat[j] = flat[j] + jitter[j]
    for t in range(max(t0, 0), min(t1, length)):  # ops.temporal_mask
        xy[t, :] = nan
    if do_pmask or do_drop:  # ops.mask_landmarks, ops.landmark_dropout
        for t in range(length):
            for n in range(n_pts):
                if (do_pmask and pmask[n]) or (do_drop and drop_u[t, n] < drop_p):
                    xy[t, 2 * n], xy[t, 2 * n + 1] = nan, nan
    if square:  # ops.spatial_mask
        for j in range(0, size, 2):
            x, y = flat[j], flat[j + 1]
            if x0 < x < x1 and y0 < y < y1:
                flat[j], flat[j + 1] = nan, nan
    sx, sy, qx, qy, vx, vy = _sums(flat)

    # 2. preprocess (data/preprocess.py): centre = NaN-mean of the lower lip (0.5 where never
    # seen); scale = root of the NaN-mean squared distance to it, per coordinate (0/undefined -> 1)
    c = 2 * iparams[CENTRE]
    lx, ly, nx, ny = 0.0, 0.0, 0, 0
    for t in range(length):
        a, b = xy[t, c], xy[t, c + 1]
        if a == a:
            lx += a
            nx += 1
        if b == b:
            ly += b
            ny += 1
    cx = np.float32(lx / nx) if nx else np.float32(0.5)
    cy = np.float32(ly / ny) if ny else np.float32(0.5)
    kx, ky = one, one
    if vx:  # sum (x - c)^2 = sum x^2 - c (2 sum x - n c)
        var = (qx - float(cx) * (2 * sx - vx * float(cx))) / vx
        kx = np.float32(1.0 / math.sqrt(var)) if var >= MIN_SCALE * MIN_SCALE else one
    if vy:
        var = (qy - float(cy) * (2 * sy - vy * float(cy))) / vy
        ky = np.float32(1.0 / math.sqrt(var)) if var >= MIN_SCALE * MIN_SCALE else one

    # 3. truncate; positions, 1- and 2-frame differences (zero rows at the end); NaN -> 0.
    # Row-wise loops without branches on the index, so that LLVM vectorises them.
    rows = min(length, iparams[MAX_LEN])
    centre, scale = np.empty(width, dtype=np.float32), np.empty(width, dtype=np.float32)
    centre[0::2], centre[1::2], scale[0::2], scale[1::2] = cx, cy, kx, ky
    for t in range(rows):
        pos, src = out[t, :width], xy[t]
        for j in range(width):
            pos[j] = (src[j] - centre[j]) * scale[j]
    for t in range(rows):  # a row's positions are zeroed only after the rows before it read them
        pos = out[t, :width]
        for lag in (1, 2):
            d = out[t, lag * width:(lag + 1) * width]
            if t + lag < rows:
                later = out[t + lag, :width]
                for j in range(width):
                    v = later[j] - pos[j]
                    d[j] = v if v == v else zero
            else:
                d[:] = zero
        for j in range(width):
            v = pos[j]
            pos[j] = v if v == v else zero
