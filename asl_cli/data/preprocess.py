"""The 1st-place solution's preprocessing, as pure numpy functions (no torch import).

`preprocess(points, max_len)` turns one sequence of the 118 selected points into `(T', 708)`
features, exactly as the winner's notebook does (see docs/data.md):

1. drop frames in which all 118 points are NaN (at least one frame is always kept);
2. centre = NaN-mean of landmark 17 (lower lip) over all frames, per coordinate; 0.5 where NaN;
3. scale = NaN-std of the 118 points over all frames and points, around that centre, per coordinate;
   x <- (x - centre) / scale;
4. truncate to `max_len` frames (after the statistics: they use the whole sequence);
5. keep x and y;
6. dx[t] = x[t+1] - x[t] (one zero row appended), dx2[t] = x[t+2] - x[t] (two zero rows appended);
7. features = concat(xy, dx, dx2) per frame, each flattened point-major (p0x, p0y, p1x, ...); NaN -> 0.

The statistics are per coordinate, so computing them on x and y alone gives the same x and y as
the notebook's computation on x, y, z. A scale that is 0 or undefined (no valid point, or every
valid point equal to the centre) is replaced by 1, so the output is always finite; the notebook
would produce 0/0 = NaN there, which its final step turns into 0, the same values we produce.

`preprocess_torch` (asl_cli/data/preprocess_torch.py) is the same computation in torch ops.
"""

from __future__ import annotations

import math

import numpy as np

from asl_cli.data.landmarks import LIP_CENTRE, NUM_FEATURES, NUM_POINTS, POINT_LANDMARKS

POINT_INDEX = np.asarray(POINT_LANDMARKS, dtype=np.intp)
CENTRE_POS = POINT_LANDMARKS.index(LIP_CENTRE)  # 15: landmark 17's position among the 118 points
MIN_SCALE = 1e-6  # below this the scale is treated as undefined (-> 1)
_WIDTH = 2 * NUM_POINTS  # one frame as a row: x0, y0, x1, y1, ...


def select_points(frames: np.ndarray) -> np.ndarray:
    """`(T, 543, C)` landmarks -> `(T, 118, C)`: the winner's points, in their order."""
    if frames.ndim != 3 or frames.shape[1] != 543:
        raise ValueError(f"expected (T, 543, C) landmarks, got shape {frames.shape}")
    return frames[:, POINT_INDEX]


def valid_frames(points: np.ndarray) -> np.ndarray:
    """Boolean `(T,)`: frames with at least one non-NaN x/y among the points; never all False."""
    t = points.shape[0]
    keep = ~np.isnan(points[:, :, :2]).reshape(t, -1).all(axis=1)
    if t and not keep.any():
        keep[0] = True  # an empty sequence cannot be classified; keep one (all-zero) frame
    return keep


def preprocess(points: np.ndarray, max_len: int, *, drop_nan_frames: bool = True) -> np.ndarray:
    """`(T, 118, C>=2)` points -> finite float32 `(T', 708)` features, 1 <= T' <= max_len.

    `drop_nan_frames=False` keeps all-NaN frames (as zero rows): the data pipeline drops them once,
    when preparing the cache, before augmentation (as the winner does), so that a temporal mask
    applied by augmentation stays a run of zero frames instead of shortening the sequence.

    Written for speed on short sequences (median 14 frames), where each numpy call's fixed cost
    dominates: the points are handled as one `(T, 236)` matrix (x, y interleaved) so every array
    operation runs over long rows, and the per-coordinate statistics are Python floats (BLAS dot
    products over the strided x and y entries). See benchmarks/bench_data.py.
    """
    x = np.asarray(points)
    if x.ndim != 3 or x.shape[1] != NUM_POINTS or x.shape[2] < 2:
        raise ValueError(f"expected (T, {NUM_POINTS}, C>=2) points, got shape {x.shape}")
    t = x.shape[0]
    if t == 0:
        return np.zeros((1, NUM_FEATURES), dtype=np.float32)
    if x.shape[2] != 2:
        x = x[:, :, :2]
    xy = x.reshape(t, _WIDTH)  # a copy only when z had to be cut away
    if xy.dtype != np.float32:
        xy = xy.astype(np.float32)
    nan = np.isnan(xy)
    if drop_nan_frames:
        empty = nan.all(axis=1)
        if empty.any():
            keep = ~empty
            if not keep.any():
                keep[0] = True  # an empty sequence cannot be classified; keep one (all-zero) frame
            xy, nan = xy[keep], nan[keep]
            t = xy.shape[0]

    # Centre: NaN-mean of the lower lip over frames, 0.5 where it is never seen. The lip is one
    # pair of columns: a Python loop over T pairs is cheaper than five numpy calls.
    c = 2 * CENTRE_POS
    sx = sy = 0.0
    nx = ny = 0
    for a, b in xy[:, c:c + 2].tolist():
        if a == a:  # not NaN
            sx += a
            nx += 1
        if b == b:
            sy += b
            ny += 1
    row = np.empty(_WIDTH, dtype=np.float32)  # a per-coordinate value laid out like one frame
    row[0::2] = sx / nx if nx else 0.5
    row[1::2] = sy / ny if ny else 0.5

    # Scale: root of the NaN-mean squared distance to the centre, over all frames and points.
    d = xy - row
    d0 = np.where(nan, np.float32(0), d).ravel()
    dx_, dy_ = d0[0::2], d0[1::2]
    nan_flat = nan.ravel()
    n_nan = np.count_nonzero(nan_flat)
    n_nan_x = np.count_nonzero(nan_flat[0::2])
    n = t * NUM_POINTS
    for k, (sq, n_valid) in enumerate(((np.dot(dx_, dx_), n - n_nan_x), (np.dot(dy_, dy_), n - n_nan + n_nan_x))):
        s = math.sqrt(float(sq) / n_valid) if n_valid else 0.0
        row[k::2] = 1.0 / s if s >= MIN_SCALE else 1.0  # a 0 or undefined scale would give inf/NaN

    length = min(t, int(max_len))
    out = np.zeros((length, 3, _WIDTH), dtype=np.float32)
    pos = out[:, 0]
    np.multiply(d[:length], row, out=pos)
    np.subtract(pos[1:], pos[:-1], out=out[:-1, 1])
    np.subtract(pos[2:], pos[:-2], out=out[:-2, 2])
    out = out.reshape(length, NUM_FEATURES)
    out[np.isnan(out)] = 0.0
    return out
