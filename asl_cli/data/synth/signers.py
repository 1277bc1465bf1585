"""The synthetic set's signers: who signs (`Participant`) and how their recordings look (`SignerView`).

The default set's participants (`make_participants`) vary mildly: position and size in the image,
hand size, tempo, noise, a little tracking loss. A `SignerView` goes further, for the hard set
(hard.py): a camera of its own (turned, tilted, nearer or further, shifted; the 3D landmarks are
rotated, so a turned camera narrows the shoulders and foreshortens the hands) and handedness (a
left-handed signer's recording is the mirror image, as MediaPipe would label it: x mirrored about
the neck and every left/right landmark pair swapped, so the dominant hand is MediaPipe's
`left_hand`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS
from asl_cli.data.synth.templates import FACE_TEMPLATE

JITTER = 0.04  # per-sequence camera jitter: radians for yaw/pitch, relative for the scale


# --- participants -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Participant:
    pid: int
    neck: tuple[float, float]  # image position of the point between the shoulders
    body: float  # shoulder width in image units
    hand: float  # hand length in shoulder widths
    face: float  # face width in shoulder widths
    speed: float  # median frames per sign (slower signers: longer sequences)
    noise: float  # landmark noise, image units
    miss: float  # fraction of frames in which the tracker loses the dominant hand
    style: np.ndarray  # (K, 2) personal offsets of the keypose positions, body units
    miss_run: float = 2.0  # mean length (frames) of a run in which the dominant hand is lost
    # How this signer's recordings look (camera, handedness): None, or an object with
    # `apply(frames, rng) -> frames` and `mirrored` (a `SignerView` below; the hard set's, hard.py).
    view: Any = None


def make_participants(num: int, k: int, seed: int) -> list[Participant]:
    rng = np.random.default_rng([seed, 2])
    ids = np.sort(rng.choice(np.arange(1000, 65000), size=num, replace=False))
    out = []
    for pid in ids:
        out.append(Participant(
            pid=int(pid), neck=(rng.uniform(0.42, 0.56), rng.uniform(0.6, 0.72)), body=rng.uniform(0.45, 0.65),
            hand=rng.uniform(0.42, 0.5), face=rng.uniform(0.46, 0.54), speed=rng.uniform(12.0, 26.0),
            noise=rng.uniform(0.001, 0.004), miss=rng.uniform(0.02, 0.15),
            style=rng.normal(0.0, 0.04, (k, 2))))
    return out


# --- how a signer's recordings look ------------------------------------------------------------

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
    xy = FACE_TEMPLATE[:, :2]
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
