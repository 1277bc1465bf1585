"""The winner's preprocessing in torch ops: the same computation as `preprocess.preprocess`.

Written for export (ONNX) and on-device use: no Python branches on data values; the output
length (frames kept, truncated to `max_len`) is the only data-dependent shape. Matches the numpy
version to 1e-5 (tests/test_preprocess.py).
"""

from __future__ import annotations

import torch

from asl_cli.data.landmarks import NUM_POINTS
from asl_cli.data.preprocess import CENTRE_POS, MIN_SCALE


def preprocess_torch(points: torch.Tensor, max_len: int = 384, *, drop_nan_frames: bool = True) -> torch.Tensor:
    """`(T, 118, C>=2)` float tensor -> finite float32 `(T', 708)`; see `preprocess.preprocess`."""
    x = points[:, :, :2].to(torch.float32)
    nan = torch.isnan(x)
    if drop_nan_frames:
        keep = ~nan.flatten(1).all(dim=1)
        # Keep frame 0 when no frame has any point (an empty sequence cannot be classified).
        first = torch.arange(x.shape[0], device=x.device) == 0
        keep = keep | (first & ~keep.any())
        x, nan = x[keep], nan[keep]
    valid = ~nan
    zero = torch.zeros((), dtype=x.dtype, device=x.device)

    lip, lip_valid = x[:, CENTRE_POS], valid[:, CENTRE_POS]
    n_lip = lip_valid.sum(dim=0).to(x.dtype)
    lip_sum = torch.where(lip_valid, lip, zero).sum(dim=0)
    centre = torch.where(n_lip > 0, lip_sum / n_lip.clamp(min=1), torch.full_like(lip_sum, 0.5))

    d = x - centre
    d0 = torch.where(valid, d, zero)
    n_valid = valid.sum(dim=(0, 1)).to(x.dtype)
    var = (d0 * d0).sum(dim=(0, 1)) / n_valid.clamp(min=1)
    scale = torch.sqrt(var)
    scale = torch.where((n_valid > 0) & (scale >= MIN_SCALE), scale, torch.ones_like(scale))

    xy = (d / scale)[:max_len]
    length = xy.shape[0]
    flat = xy.reshape(length, 2 * NUM_POINTS)
    pad1 = torch.zeros((1, 2 * NUM_POINTS), dtype=x.dtype, device=x.device)
    pad2 = torch.zeros((2, 2 * NUM_POINTS), dtype=x.dtype, device=x.device)
    dx = torch.cat([flat[1:] - flat[:-1], pad1])
    dx2 = torch.cat([flat[2:] - flat[:-2], pad2])[:length]  # length 1: only the padding, cut to 1
    out = torch.cat([flat, dx, dx2], dim=1)
    return torch.where(torch.isnan(out), zero, out)
