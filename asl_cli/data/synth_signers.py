"""Signers whose recordings differ: the opt-in hard synthetic set (`asl synth --hard`).

The default set (asl_cli/data/synth.py) varies its participants mildly: position and size in the
image, hand size, tempo, noise, a little tracking loss. Real asl-signs signers differ much more,
and a model that is tested on signers it never saw has to cope with it. A hard participant adds:

- a camera of its own (`SignerView`): turned (yaw, about the vertical axis through the signer's
  neck, up to +-30 degrees), tilted (pitch, up to +-17 degrees), nearer or further (the whole image
  scaled about its centre, 0.75-1.3x) and shifted; the 3D landmarks are rotated, so a turned camera
  narrows the shoulders and foreshortens the hands as a real one does. Every sequence jitters the
  camera a little (the signer sits down again);
- handedness: a fifth of the signers are left-handed. Their recordings are the mirror image of a
  right-handed signer's, as MediaPipe would see them: x mirrored about the signer's neck and every
  left/right landmark pair swapped (face mesh, pose, and the two hands), so the dominant hand is
  MediaPipe's `left_hand`, on the image right;
- tracking loss: the dominant hand is lost in 5-45 % of the frames (default set 2-15 %), in runs of
  1.5-6 frames; a hand whose wrist leaves the image on any side is NaN;
- tempo: median 8-40 frames per sign (default 12-26), log-uniform;
- larger personal offsets of the keyposes (the signer's own way of placing the hand).

`make_hard_participants` is the `signers` function `synth.generate` takes; `generate_hard` writes
a hard set, optionally split by signer (`holdout_signers`). Everything is seeded as in synth.py:
the same seed gives the same files. This module imports synth.py, never the other way round.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asl_cli.data import synth
from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS

HARD_VERSION = 1  # bump when the hard set's output for a given seed changes
# `asl synth --hard` without --signs/--participants/--repetitions: a benchmark-sized set.
HARD_DEFAULTS = {"num_signs": 64, "num_participants": 40, "repetitions": 2}
LEFT_HANDED_SHARE = 0.2
YAW_MAX, PITCH_MAX = 0.52, 0.3  # radians (30 and 17 degrees)
SCALE_RANGE = (0.75, 1.3)
OFFSET_MAX = (0.1, 0.06)  # image units, x and y
JITTER = 0.04  # per-sequence camera jitter: radians for yaw/pitch, relative for the scale

_POSE = TYPE_OFFSETS["pose"]
_LEFT, _RIGHT = TYPE_OFFSETS["left_hand"], TYPE_OFFSETS["right_hand"]
# MediaPipe pose pairs (subject's left, right): eyes, ears, mouth, shoulders, elbows, wrists, hand
# points, hips, knees, ankles, heels, feet.
_POSE_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(a, a + 1) for a in range(11, 33, 2)]


def _face_partners() -> np.ndarray:
    """Per face-mesh index, the index at its mirror position in the template (itself if none).

    The template's oval, eyes, brows, lips, nostrils and nose bridge are symmetric at their
    MediaPipe indices; the filler points inside the oval have no partner and stay where they are.
    """
    xy = synth.FACE_TEMPLATE[:, :2]
    mirrored = xy * np.array([-1.0, 1.0])
    dist = np.linalg.norm(xy[None, :, :] - mirrored[:, None, :], axis=2)  # [i, j]: |xy_j - mirror(xy_i)|
    best = dist.argmin(axis=1)
    partners = np.where(dist[np.arange(len(xy)), best] < 1e-9, best, np.arange(len(xy)))
    unpaired = partners[partners] != np.arange(len(xy))
    partners[unpaired] = np.flatnonzero(unpaired)
    return partners


def mirror_permutation() -> np.ndarray:
    """(543,) `p` such that `frames[:, p]` swaps every left/right landmark (face, pose, hands)."""
    perm = np.arange(ROWS_PER_FRAME)
    perm[:468] = _face_partners()
    for a, b in _POSE_PAIRS:
        perm[_POSE + a], perm[_POSE + b] = _POSE + b, _POSE + a
    perm[_LEFT:_LEFT + 21] = np.arange(_RIGHT, _RIGHT + 21)
    perm[_RIGHT:_RIGHT + 21] = np.arange(_LEFT, _LEFT + 21)
    return perm


MIRROR = mirror_permutation()


def mirror(frames: np.ndarray, x0: float) -> np.ndarray:
    """The mirror image about the vertical line x = x0, as MediaPipe would label it."""
    out = frames[:, MIRROR].copy()
    out[..., 0] = 2.0 * x0 - out[..., 0]
    return out


# Depth in front of the body plane (shoulder widths) of the pose points, for turning the camera.
_POSE_DEPTH = np.zeros(33)
_POSE_DEPTH[:11] = -0.3  # head
_POSE_DEPTH[[13, 14]] = -0.25  # elbows
_POSE_DEPTH[15:23] = -0.5  # wrists and hand points: the hands sign in front of the chest


def turn(frames: np.ndarray, yaw: float, pitch: float, pivot: tuple[float, float]) -> np.ndarray:
    """Turn the camera by `yaw` (about the vertical through `pivot`), then `pitch` (about the horizontal).

    MediaPipe's z is no physical depth (a hand's is relative to its wrist, the pose's to the hips,
    exaggerated), so the rotation uses a depth model of its own: the body plane, the head and
    elbows a little and the hands half a shoulder width in front of it, the face and hands shaped
    by their z. The change of depth is added to each z, which stays relative to the wrist (hands)
    and to the nose tip (face).
    """
    width = float(np.nanmean(np.abs(frames[:, _POSE + 11, 0] - frames[:, _POSE + 12, 0])))
    depth = np.empty(frames.shape[:2])
    depth[:, _POSE:_POSE + 33] = _POSE_DEPTH * width
    for hand, wrist in ((_LEFT, 15), (_RIGHT, 16)):
        depth[:, hand:hand + 21] = _POSE_DEPTH[wrist] * width + frames[:, hand:hand + 21, 2]
    depth[:, :468] = _POSE_DEPTH[0] * width + frames[:, :468, 2] - frames[:, 1:2, 2]
    x, y = frames[..., 0] - pivot[0], frames[..., 1] - pivot[1]
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    x, turned = x * cy + depth * sy, -x * sy + depth * cy
    y, turned = y * cp - turned * sp, y * sp + turned * cp
    change = turned - depth
    out = frames.copy()
    out[..., 0], out[..., 1] = x + pivot[0], y + pivot[1]
    out[..., 2] += change
    for hand in (_LEFT, _RIGHT):
        out[:, hand:hand + 21, 2] -= change[:, hand:hand + 1]
    out[:, :468, 2] -= change[:, 1:2]
    return out


@dataclass(frozen=True)
class SignerView:
    """How one signer's recordings look: camera (yaw, pitch, scale, offset) and handedness."""

    yaw: float = 0.0  # radians, + turns the camera towards the signer's left
    pitch: float = 0.0  # radians
    scale: float = 1.0  # > 1: the camera is nearer, everything larger (about the image centre)
    offset: tuple[float, float] = (0.0, 0.0)  # image units
    mirrored: bool = False  # left-handed: the mirror image, dominant hand = left_hand
    jitter: float = JITTER  # per-sequence camera jitter (0: exactly this camera)

    def apply(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(T, 543, 3) float64 landmarks of a right-handed signer in front of a level camera -> as seen."""
        j = rng.normal(0.0, 1.0, 5) * self.jitter
        shoulders = frames[:, [_POSE + 11, _POSE + 12], :2].mean(axis=(0, 1))
        out = mirror(frames, float(shoulders[0])) if self.mirrored else frames
        out = turn(out, self.yaw + j[0], self.pitch + j[1], (float(shoulders[0]), float(shoulders[1])))
        scale = self.scale * math.exp(j[2])
        out[..., :2] = 0.5 + (out[..., :2] - 0.5) * scale + np.asarray(self.offset) + j[3:5] / 4
        out[..., 2] *= scale
        return out

    def describe(self) -> dict:
        return {"left_handed": self.mirrored, "camera_yaw_deg": round(math.degrees(self.yaw), 1),
                "camera_pitch_deg": round(math.degrees(self.pitch), 1), "camera_scale": round(self.scale, 3),
                "camera_offset": [round(v, 3) for v in self.offset]}


def make_hard_participants(num: int, k: int, seed: int) -> list[synth.Participant]:
    """`num` participants of the hard set (keypose pool size `k`), deterministic for a seed.

    The ids and body placement are those of `synth.make_participants` (same seed, same ids); the
    rest is drawn from a stream of its own.
    """
    base = synth.make_participants(num, k, seed)
    rng = np.random.default_rng([seed, 2, HARD_VERSION])
    out = []
    for person in base:
        view = SignerView(yaw=float(rng.uniform(-YAW_MAX, YAW_MAX)), pitch=float(rng.uniform(-PITCH_MAX, PITCH_MAX)),
                          scale=float(math.exp(rng.uniform(*np.log(SCALE_RANGE)))),
                          offset=(float(rng.uniform(-OFFSET_MAX[0], OFFSET_MAX[0])),
                                  float(rng.uniform(-OFFSET_MAX[1], OFFSET_MAX[1]))),
                          mirrored=bool(rng.random() < LEFT_HANDED_SHARE))
        out.append(dataclasses.replace(
            person, speed=float(math.exp(rng.uniform(math.log(8.0), math.log(40.0)))),
            miss=float(rng.uniform(0.05, 0.45)), miss_run=float(rng.uniform(1.5, 6.0)),
            style=rng.normal(0.0, 0.07, (k, 2)), view=view))
    return out


def generate_hard(out_dir: str | Path, *, num_signs: int = HARD_DEFAULTS["num_signs"],
                  num_participants: int = HARD_DEFAULTS["num_participants"],
                  repetitions: int = HARD_DEFAULTS["repetitions"], seed: int = 0, holdout_signers: int = 0,
                  workers: int | None = None, progress: synth.ProgressFn | None = None) -> synth.SynthSummary:
    """The hard set (see the module docstring) in the asl-signs format; `holdout_signers` N > 0
    writes `out_dir/train` and `out_dir/test` (N signers never seen in train). As `synth.generate`."""
    return synth.generate(out_dir, num_signs=num_signs, num_participants=num_participants,
                          repetitions=repetitions, seed=seed, workers=workers, progress=progress,
                          signers=make_hard_participants, holdout_signers=holdout_signers,
                          about={"difficulty": "hard", "hard_version": HARD_VERSION})
