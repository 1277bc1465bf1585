"""`ASLAugmentations`: the training augmentations composed from `AugConfig`.

    aug = ASLAugmentations.from_config(cfg.aug, max_len=cfg.data.max_len)
    points2 = aug(points, rng)   # (T, N, C>=2) float32 -> (T', N, C), 1 <= T' <= max_len

One call = `draw_params(rng, ...)` (every random decision and magnitude, as plain numbers) followed
by `apply_params(points, params, ...)` (the pure operations of `ops.py` in a fixed order). Keeping
the two apart makes every draw testable on its own.

Order (both profiles): resample -> flip -> temporal crop -> affine (scale, shear, rotation about
(0.5, 0.5), then shift) -> Gaussian noise -> temporal mask -> feature mask -> landmark dropout ->
spatial mask. The crop is not random chance: it happens whenever the sequence is longer than
`max_len` (and `random_crop` is on).

What fires is the profile's business (docs/augmentations.md):

- "seed": four groups, each firing with its own probability per sample (temporal_prob: resample +
  temporal mask; spatial_prob: affine + flip; noise_prob: Gaussian noise; mask_prob: feature mask +
  landmark dropout + spatial mask). Inside a fired group every enabled op applies, except the flip,
  a mirror rather than a magnitude, which also tosses its own `flip_prob` coin.
- "winner": the notebook's own per-op probabilities (resample_prob, flip_prob, affine_prob,
  temporal_mask_prob, spatial_mask_prob); the seed-only ops (noise, feature mask, landmark
  dropout) are not part of it. The shift is the notebook's one scalar added to every coordinate;
  the seed profile shifts x and y independently.

`use_augmentations = False` returns the input array itself, untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import numpy as np

from asl_cli.augment import ops
from asl_cli.config import AugConfig
from asl_cli.data.landmarks import POINT_LANDMARKS, flip_permutation
from asl_cli.errors import ConfigError

NUM_UNIFORMS = 20  # scalar draws per sample, taken in one call (one Generator call is ~1 us)


@dataclass
class AugParams:
    """Everything random about one augmented sample (lengths in frames, after earlier steps)."""

    length_in: int
    # temporal
    resample: bool = False
    rate: float = 1.0
    resample_length: int = 0
    resample_mode: str = "linear"
    crop: bool = False
    crop_start: int = 0
    crop_length: int = 0
    temporal_mask: bool = False
    temporal_mask_frac: float = 0.0
    temporal_mask_start: int = 0
    temporal_mask_length: int = 0
    # spatial
    flip: bool = False
    affine: bool = False
    scale: float = 1.0
    shear_x: float = 0.0
    shear_y: float = 0.0
    degrees: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    shift_depth: float = 0.0
    # noise and masking
    noise: bool = False
    noise_std: float = 0.0
    feature_mask: bool = False
    feature_mask_points: np.ndarray | None = None
    landmark_dropout: bool = False
    landmark_dropout_prob: float = 0.0
    spatial_mask: bool = False
    spatial_mask_x0: float = 0.0
    spatial_mask_y0: float = 0.0
    spatial_mask_side: float = 0.0

    @property
    def length_out(self) -> int:
        n = self.resample_length if self.resample else self.length_in
        return self.crop_length if self.crop else n

    def fired(self) -> list[str]:
        """Names of the operations this sample gets, in order of application."""
        names = ("resample", "flip", "crop", "affine", "noise", "temporal_mask", "feature_mask",
                 "landmark_dropout", "spatial_mask")
        return [n for n in names if getattr(self, n)]

    def summary(self) -> str:
        """What this sample got, in words (for `asl show` and logs)."""
        parts = []
        if self.resample:
            parts.append(f"resample {self.resample_mode} x{self.rate:.2f} ({self.length_in} -> "
                         f"{self.resample_length} frames)")
        if self.flip:
            parts.append("flip")
        if self.crop:
            parts.append(f"crop frames {self.crop_start + 1}-{self.crop_start + self.crop_length}")
        if self.affine:
            shear = f"x {self.shear_x:+.3f}" if self.shear_x else f"y {self.shear_y:+.3f}"
            parts.append(f"affine (scale {self.scale:.3f}, shear {shear}, rotate {self.degrees:+.1f} deg, "
                         f"shift {self.shift_x:+.3f}/{self.shift_y:+.3f})")
        if self.noise:
            parts.append(f"noise std {self.noise_std:g}")
        if self.temporal_mask and self.temporal_mask_length:
            parts.append(f"temporal mask frames {self.temporal_mask_start + 1}-"
                         f"{self.temporal_mask_start + self.temporal_mask_length}")
        if self.feature_mask:
            parts.append(f"feature mask {len(self.feature_mask_points)} landmarks")
        if self.landmark_dropout:
            parts.append(f"landmark dropout {self.landmark_dropout_prob:g}")
        if self.spatial_mask:
            parts.append(f"spatial mask x {self.spatial_mask_x0:.2f} y {self.spatial_mask_y0:.2f} "
                         f"side {self.spatial_mask_side:.2f}")
        return ", ".join(parts) if parts else "nothing fired"


def _between(lo_hi: Sequence[float], u: float) -> float:
    lo, hi = float(lo_hi[0]), float(lo_hi[1])
    return lo + (hi - lo) * u


def _index(u: float, n: int) -> int:
    """A uniform integer 0..n-1 from a uniform u in [0, 1)."""
    return min(int(u * n), n - 1)


def draw_params(rng: np.random.Generator, cfg: AugConfig, *, length: int, num_points: int,
                max_len: int) -> AugParams:
    """Draw every random decision for one sample of `length` frames and `num_points` landmarks."""
    u = rng.random(NUM_UNIFORMS).tolist()
    p = AugParams(length_in=length)
    any_affine = cfg.scale or cfg.shear or cfg.rotate or cfg.translate
    if cfg.profile == "winner":
        p.resample = cfg.resample and u[0] < cfg.resample_prob
        p.flip = cfg.flip and u[1] < cfg.flip_prob
        p.affine = any_affine and u[2] < cfg.affine_prob
        p.temporal_mask = cfg.temporal_mask and u[3] < cfg.temporal_mask_prob
        p.spatial_mask = cfg.spatial_mask and u[4] < cfg.spatial_mask_prob
    else:  # "seed": groups
        temporal, spatial = u[0] < cfg.temporal_prob, u[2] < cfg.spatial_prob
        noise, mask = u[3] < cfg.noise_prob, u[4] < cfg.mask_prob
        p.resample = temporal and cfg.resample
        p.temporal_mask = temporal and cfg.temporal_mask
        p.flip = spatial and cfg.flip and u[1] < cfg.flip_prob
        p.affine = spatial and any_affine
        p.noise = noise and cfg.noise and cfg.noise_std > 0
        p.feature_mask = mask and cfg.feature_mask and cfg.feature_mask_frac > 0
        p.landmark_dropout = mask and cfg.landmark_dropout and cfg.landmark_dropout_prob > 0
        p.spatial_mask = mask and cfg.spatial_mask

    n = length
    if p.resample:
        p.rate = _between(cfg.resample_rate, u[5])
        p.resample_length = max(1, int(p.rate * n))
        p.resample_mode = cfg.resample_modes[_index(u[6], len(cfg.resample_modes))]
        n = p.resample_length
    if cfg.random_crop and n > max_len:
        p.crop = True
        p.crop_start = _index(u[7], n - max_len + 1)
        p.crop_length = max_len
        n = max_len
    if p.affine:
        if cfg.scale:
            p.scale = _between(cfg.scale_range, u[8])
        if cfg.shear:
            value = cfg.shear_max * (2 * u[9] - 1)
            if u[10] < 0.5:
                p.shear_x = value
            else:
                p.shear_y = value
        if cfg.rotate:
            p.degrees = cfg.rotate_deg * (2 * u[11] - 1)
        if cfg.translate:
            p.shift_x = cfg.translate_max * (2 * u[12] - 1)
            if cfg.profile == "winner":  # the notebook: one scalar added to every coordinate
                p.shift_y = p.shift_depth = p.shift_x
            else:
                p.shift_y = cfg.translate_max * (2 * u[13] - 1)
    if p.noise:
        p.noise_std = float(cfg.noise_std)
    if p.temporal_mask:
        p.temporal_mask_frac = _between(cfg.temporal_mask_frac, u[14])
        p.temporal_mask_length = min(int(p.temporal_mask_frac * n), n)
        p.temporal_mask_start = _index(u[15], n - p.temporal_mask_length + 1)
    if p.spatial_mask:
        p.spatial_mask_x0, p.spatial_mask_y0 = u[16], u[17]
        p.spatial_mask_side = _between(cfg.spatial_mask_size, u[18])
    if p.feature_mask:
        k = int(round(cfg.feature_mask_frac * num_points))
        p.feature_mask = k > 0
        p.feature_mask_points = np.sort(rng.permutation(num_points)[:k])
    if p.landmark_dropout:
        p.landmark_dropout_prob = float(cfg.landmark_dropout_prob)
    return p


def apply_params(points: np.ndarray, p: AugParams, rng: np.random.Generator,
                 permutation: np.ndarray) -> np.ndarray:
    """Apply the drawn operations in the fixed order; `rng` feeds the per-landmark draws (noise,
    dropout). Returns a new array unless nothing fired (then `points` itself)."""
    x = points
    if p.resample:
        x = ops.resample(x, p.resample_length, p.resample_mode)
    if p.flip:
        x = ops.flip_horizontal(x, permutation)
    if p.crop:
        x = ops.temporal_crop(x, p.crop_start, p.crop_length)
    if p.affine:
        m, b = ops.affine_matrix(scale=p.scale, shear_x=p.shear_x, shear_y=p.shear_y, degrees=p.degrees,
                                 shift=(p.shift_x, p.shift_y))
        x = ops.affine(x, m, b, depth_scale=p.scale, depth_shift=p.shift_depth)
    if p.noise:
        x = ops.gaussian_noise(x, p.noise_std, rng)
    if p.temporal_mask and p.temporal_mask_length:
        x = ops.temporal_mask(x, p.temporal_mask_start, p.temporal_mask_length)
    if p.feature_mask:
        x = ops.mask_landmarks(x, p.feature_mask_points)
    if p.landmark_dropout:
        x = ops.landmark_dropout(x, p.landmark_dropout_prob, rng)
    if p.spatial_mask:
        x = ops.spatial_mask(x, p.spatial_mask_x0, p.spatial_mask_y0, p.spatial_mask_side)
    return x


class ASLAugmentations:
    """The training augmentations: `aug(points, rng) -> points'`.

    `ASLAugmentations(cfg, max_len=384)` or, as in the seed, with keyword overrides of any
    `AugConfig` field: `ASLAugmentations(temporal_prob=0.5, spatial_prob=0.7, noise_prob=0.3,
    mask_prob=0.2)`. `points` lists the flat (0..542) landmark index of each slot of the point
    axis; it decides which slots the flip swaps. Picklable (DataLoader workers).
    """

    def __init__(self, config: AugConfig | None = None, *, max_len: int = 384,
                 points: Sequence[int] = POINT_LANDMARKS, **overrides: Any):
        known = {f.name for f in fields(AugConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"ASLAugmentations: unknown setting(s) {', '.join(unknown)}")
        cfg = replace(config if config is not None else AugConfig(), **overrides)  # a copy
        if cfg.profile not in ("seed", "winner"):
            raise ConfigError(f"aug.profile: {cfg.profile!r} is not one of seed, winner")
        bad = [m for m in cfg.resample_modes if m not in ops.RESAMPLE_MODES]
        if bad or not cfg.resample_modes:
            raise ConfigError(f"aug.resample_modes: expected some of {', '.join(ops.RESAMPLE_MODES)}, "
                              f"got {cfg.resample_modes!r}")
        if int(max_len) < 1:
            raise ConfigError(f"max_len must be at least 1, got {max_len}")
        self.config = cfg
        self.max_len = int(max_len)
        self.points = list(points)
        self.permutation = flip_permutation(self.points)

    @classmethod
    def from_config(cls, aug_cfg: AugConfig, *, max_len: int,
                    points: Sequence[int] = POINT_LANDMARKS) -> "ASLAugmentations":
        return cls(aug_cfg, max_len=max_len, points=points)

    @property
    def enabled(self) -> bool:
        return bool(self.config.use_augmentations)

    def draw(self, rng: np.random.Generator, length: int) -> AugParams:
        return draw_params(rng, self.config, length=length, num_points=len(self.points),
                           max_len=self.max_len)

    def __call__(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.augment(points, rng)[0]

    def augment(self, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, AugParams | None]:
        """`(points', params)`: the augmented sample and what was drawn for it (None when off)."""
        if not self.enabled:
            return points, None
        params = self.augment_params(points, rng)
        return apply_params(points, params, rng, self.permutation), params

    def augment_params(self, points: np.ndarray, rng: np.random.Generator) -> AugParams:
        if points.ndim != 3 or points.shape[1] != len(self.points) or points.shape[2] < 2 \
                or points.shape[0] < 1:
            raise ValueError(f"expected (T>=1, {len(self.points)}, C>=2) points, got shape {points.shape}")
        return self.draw(rng, points.shape[0])

    def describe(self) -> list[str]:
        """One short line per active group/op with its probability, for logs and dashboards."""
        c = self.config
        if not self.enabled:
            return ["augmentations off"]
        spatial = []
        if c.scale:
            spatial.append(f"scale {c.scale_range[0]:g}-{c.scale_range[1]:g}")
        if c.shear:
            spatial.append(f"shear ±{c.shear_max:g}")
        if c.rotate:
            spatial.append(f"rotate ±{c.rotate_deg:g}°")
        if c.translate:
            spatial.append(f"shift ±{c.translate_max:g}")
        resample = f"resample {c.resample_rate[0]:g}-{c.resample_rate[1]:g}x" if c.resample else ""
        tmask = f"temporal mask {c.temporal_mask_frac[0]:g}-{c.temporal_mask_frac[1]:g}" \
            if c.temporal_mask else ""
        smask = f"spatial mask {c.spatial_mask_size[0]:g}-{c.spatial_mask_size[1]:g}" if c.spatial_mask else ""
        flip = f"flip {c.flip_prob:g}" if c.flip else ""
        crop = f"crop to {self.max_len}" if c.random_crop else ""
        if c.profile == "winner":
            items = [(c.resample_prob, resample), (None, flip), (None, crop),
                     (c.affine_prob, ", ".join(spatial)), (c.temporal_mask_prob, tmask),
                     (c.spatial_mask_prob, smask)]
            return ["winner profile"] + [f"{'' if pr is None else f'{pr:g}: '}{text}"
                                         for pr, text in items if text]
        groups = [
            (c.temporal_prob, "temporal", [resample, tmask]),
            (c.spatial_prob, "spatial", [flip] + spatial),
            (c.noise_prob, "noise", [f"gaussian std {c.noise_std:g}"] if c.noise else []),
            (c.mask_prob, "mask", [f"feature mask {c.feature_mask_frac:g}" if c.feature_mask else "",
                                   f"landmark dropout {c.landmark_dropout_prob:g}"
                                   if c.landmark_dropout else "", smask]),
        ]
        lines = ["seed profile"]
        for prob, name, items in groups:
            items = [i for i in items if i]
            if items:
                lines.append(f"{name} {prob:g}: {', '.join(items)}")
        if crop:
            lines.append(crop)
        return lines

    def __repr__(self) -> str:
        return f"ASLAugmentations({'; '.join(self.describe())})"
