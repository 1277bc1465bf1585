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

import numpy as np

from asl_cli.data.landmarks import LIP_CENTRE, NUM_FEATURES, NUM_POINTS, POINT_LANDMARKS

POINT_INDEX = np.asarray(POINT_LANDMARKS, dtype=np.intp)
CENTRE_POS = POINT_LANDMARKS.index(LIP_CENTRE)  # 15: landmark 17's position among the 118 points
MIN_SCALE = 1e-6  # below this the scale is treated as undefined (-> 1)


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
    """
    x = np.asarray(points)
    if x.ndim != 3 or x.shape[1] != NUM_POINTS or x.shape[2] < 2:
        raise ValueError(f"expected (T, {NUM_POINTS}, C>=2) points, got shape {x.shape}")
    if x.shape[0] == 0:
        return np.zeros((1, NUM_FEATURES), dtype=np.float32)
    x = x[:, :, :2]
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    nan = np.isnan(x)
    if drop_nan_frames:
        t = x.shape[0]
        keep = ~nan.reshape(t, -1).all(axis=1)
        if not keep.all():
            if not keep.any():
                keep[0] = True
            x, nan = x[keep], nan[keep]

    # Centre: NaN-mean of the lower lip over frames, 0.5 where it is never seen.
    lip, lip_nan = x[:, CENTRE_POS], nan[:, CENTRE_POS]
    n_lip = x.shape[0] - lip_nan.sum(axis=0)
    lip_sum = np.where(lip_nan, 0.0, lip).sum(axis=0)
    centre = np.full(2, 0.5, dtype=np.float32)
    np.divide(lip_sum, n_lip, out=centre, where=n_lip > 0)

    # Scale: root of the NaN-mean squared distance to the centre, over all frames and points.
    d = (x - centre).reshape(-1, 2)
    d0 = np.where(nan.reshape(-1, 2), np.float32(0), d)
    n_valid = d.shape[0] - nan.reshape(-1, 2).sum(axis=0)
    var = np.einsum("nc,nc->c", d0, d0)
    scale = np.ones(2, dtype=np.float32)
    np.divide(var, n_valid, out=scale, where=n_valid > 0)
    np.sqrt(scale, out=scale)
    scale[~(scale >= MIN_SCALE)] = 1.0  # also catches NaN

    length = min(x.shape[0], int(max_len))
    flat = d[: length * NUM_POINTS].reshape(length, 2 * NUM_POINTS)
    out = np.zeros((length, 3, 2 * NUM_POINTS), dtype=np.float32)
    np.divide(flat, np.tile(scale, NUM_POINTS), out=out[:, 0])
    xy = out[:, 0]
    np.subtract(xy[1:], xy[:-1], out=out[:-1, 1])
    np.subtract(xy[2:], xy[:-2], out=out[:-2, 2])
    out = out.reshape(length, NUM_FEATURES)
    out[np.isnan(out)] = 0.0
    return out
