"""A synthetic data set in exactly the Kaggle asl-signs format (the embedded default of `asl train`).

Layout written by `generate(out_dir, ...)`, as in the real data:

    train_landmark_files/<participant_id>/<sequence_id>.parquet   one per sequence
    train.csv                                                     path,participant_id,sequence_id,sign
    sign_to_prediction_index_map.json                             {sign: index}, signs sorted by name
    synth.json                                                    how it was made (parameters, sign recipes)

Each parquet has the real schema (frame int16, row_id string "<frame>-<type>-<index>", type string,
landmark_index int16, x/y/z float64 holding float32 values, pandas metadata, one row group, snappy)
and 543 rows per frame: face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20. Frame numbers
start at a random offset (1-199), as in the real data.

What makes it learnable but not trivial. Every sign is an ORDER of the same small pool of
keyposes (a keypose = dominant-hand position, hand shape, palm roll and yaw): sign A may visit
keyposes 2-0-3-1, sign B 1-3-0-2, each time returning to a neutral "hub" pose in between. All
signs therefore show the same frames; only the order of the visits tells them apart. Hold and
move durations, the number of frames, the lead-in from and lead-out to the rest position,
per-keypose jitter and the curvature of each move are drawn per sequence, so a single frame
carries (almost) no information about the sign: a model has to use the motion over time. About a
third of the signs are two-handed: their second hand visits a second pool of keyposes in a
sign-specific order; in one-handed signs it makes the same visits in a random order per sequence,
so its single-frame distribution is the same in both kinds. docs/synthetic.md has the figures.

Participants differ in body size and position in the image, hand size, signing speed (sequence
length), landmark noise, how often the tracker loses a hand and small personal offsets of the
keyposes. A hand whose wrist leaves the image (rest position) or that the tracker "loses" is
NaN for all 21 points; the face is occasionally lost too; pose is always present (as in the data).

Opt-in, for a benchmark: `generate(..., signers=synth_signers.make_hard_participants)` (`asl synth
--hard`) gives every signer a camera of their own, left-handers (mirrored), more tracking loss and a
wider tempo (asl_cli/data/synth_signers.py); `holdout_signers=N` writes `train/` and `test/`
folders whose participants are disjoint. The defaults write exactly the files they always did.

Everything is drawn from `numpy.random.default_rng` seeded with (seed, purpose, ...), so a seed
gives byte-identical files (for a given pyarrow version), independent of generation order.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.data.pool import imap_ordered
from asl_cli.errors import DataError, RunIOError
from asl_cli.tempfiles import abandoned, temp_sibling

GENERATOR_VERSION = 2  # bump when the output for a given seed changes (invalidates cached sets)
FILES_DIR = "train_landmark_files"
INFO_FILE = "synth.json"
COMPLETE_FILE = ".complete"
TYPES = ("face", "left_hand", "pose", "right_hand")  # row order within a frame
MAX_FRAMES = 256
MIN_FRAMES = 4
POOL_MIN_SEQUENCES = 200  # below this, starting worker processes costs more than it saves
QUANTUM = 2.0 ** -13  # coordinates are rounded to this (about a tenth of a pixel): smaller files

ProgressFn = Callable[[int, int], None]
# (num_participants, pool size K, seed) -> participants; a module-level function (workers pickle it).
SignersFn = Callable[[int, int, int], "list[Participant]"]
SPLITS = ("train", "test")  # the two folders of a set with held-out signers


# --- the face: a 468-point MediaPipe face-mesh layout ------------------------------------------
# Units: face width = 1, origin at the face centre, x to the image right, y down, z towards the
# back of the head (MediaPipe: smaller z = closer to the camera). Index groups are MediaPipe's.

FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
# Eyes from the outer corner to the inner corner (subject's right eye is on the image left).
REYE_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
REYE_UPPER = [33, 246, 161, 160, 159, 158, 157, 173, 133]
LEYE_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
LEYE_UPPER = [263, 466, 388, 387, 386, 385, 384, 398, 362]
RBROW = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55]
LBROW = [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
NOSE_BRIDGE = [168, 6, 197, 195, 5, 4, 1, 2]


def _arc(n: int, x0: float, x1: float, y: float, bulge: float) -> np.ndarray:
    """n points from x0 to x1 along a parabola through y, bulging by `bulge` (y down) in the middle."""
    t = np.linspace(0.0, 1.0, n)
    return np.stack([x0 + (x1 - x0) * t, y + bulge * 4 * t * (1 - t)], axis=1)


def _face_template() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(468, 3) float64 neutral face, and the index groups that animate (lips, eyelids)."""
    face = np.full((468, 3), np.nan)
    ang = np.linspace(0.0, 2 * np.pi, len(FACE_OVAL), endpoint=False)  # from the top, clockwise
    face[FACE_OVAL, 0] = 0.5 * np.sin(ang)
    face[FACE_OVAL, 1] = -0.5 * np.cos(ang) * np.where(np.cos(ang) > 0, 1.0, 0.95)
    for lower, upper, cx in ((REYE_LOWER, REYE_UPPER, -0.24), (LEYE_LOWER, LEYE_UPPER, 0.24)):
        x_out, x_in = (cx - 0.1, cx + 0.1) if cx < 0 else (cx + 0.1, cx - 0.1)
        face[lower, :2] = _arc(len(lower), x_out, x_in, -0.175, 0.025)
        face[upper, :2] = _arc(len(upper), x_out, x_in, -0.175, -0.03)
    for brow, cx in ((RBROW, -0.25), (LBROW, 0.25)):
        x_out, x_in = (cx - 0.12, cx + 0.1) if cx < 0 else (cx + 0.12, cx - 0.1)
        face[brow[:5], :2] = _arc(5, x_out, x_in, -0.33, -0.03)
        face[brow[5:], :2] = _arc(5, x_out, x_in, -0.30, -0.025)
    face[NOSE_BRIDGE, 0] = 0.0
    face[NOSE_BRIDGE, 1] = [-0.23, -0.17, -0.11, -0.06, -0.02, -0.03 + 0.0, 0.01, 0.056]
    face[4, 1] = -0.03
    face[[98, 327], :2] = [[-0.13, 0.055], [0.13, 0.055]]
    face[LIPS_OUTER_UPPER, :2] = _arc(11, -0.18, 0.18, 0.215, -0.045)
    face[LIPS_OUTER_LOWER, :2] = _arc(11, -0.18, 0.18, 0.215, 0.09)
    face[LIPS_INNER_UPPER, :2] = _arc(11, -0.14, 0.14, 0.222, -0.004)
    face[LIPS_INNER_LOWER, :2] = _arc(11, -0.14, 0.14, 0.222, 0.02)
    # Every other point: a fixed scatter inside the oval (the mesh's cheeks, forehead, chin).
    rest = np.flatnonzero(np.isnan(face[:, 0]))
    fill = np.random.default_rng(468)
    r = 0.93 * np.sqrt(fill.random(len(rest)))
    a = fill.random(len(rest)) * 2 * np.pi
    face[rest, 0] = 0.5 * r * np.sin(a)
    face[rest, 1] = -0.48 * r * np.cos(a)
    # z: a dome, nearest the camera at the nose tip.
    x, y = face[:, 0], face[:, 1]
    face[:, 2] = 0.48 * (x / 0.5) ** 2 + 0.1 * (y / 0.5) ** 2 - 0.05
    face[NOSE_BRIDGE[2:], 2] -= np.array([0.05, 0.1, 0.15, 0.19, 0.2, 0.12])
    face[[98, 327], 2] -= 0.05
    face[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER + LIPS_INNER_UPPER + LIPS_INNER_LOWER, 2] -= 0.1
    groups = {
        "lower_lip": np.array(sorted(set(LIPS_OUTER_LOWER[1:-1] + LIPS_INNER_LOWER[1:-1]))),
        "upper_lid": np.array(REYE_UPPER[1:-1] + LEYE_UPPER[1:-1]),
        "chin": np.array([377, 152, 148, 176, 400, 378, 149]),
    }
    return face, groups


FACE_TEMPLATE, FACE_GROUPS = _face_template()

# --- the hand: 21 MediaPipe joints from a few shape parameters ----------------------------------
# Units: hand length (wrist to middle fingertip) = 1; a right hand, palm to the camera, fingers up:
# x to the image right (the thumb side), y down, z away from the camera. Fingers flex towards -z.

_FINGER_MCP = np.array([[0.10, -0.40], [0.02, -0.42], [-0.06, -0.40], [-0.13, -0.35]])
_FINGER_BASE_ANGLE = np.array([0.08, 0.0, -0.08, -0.18])  # radians from "up", + towards the thumb
_FINGER_SPREAD = np.array([1.0, 0.3, -0.4, -1.0])
_FINGER_SEGMENTS = np.array([[0.20, 0.12, 0.09], [0.22, 0.14, 0.10], [0.21, 0.13, 0.09], [0.16, 0.10, 0.08]])
_FLEX = np.array([1.45, 1.75, 1.1])  # full flex per joint (MCP, PIP, DIP), radians
_THUMB_CMC = np.array([0.08, -0.08])
_THUMB_SEGMENTS = np.array([0.15, 0.12, 0.10])

# Hand shapes: curl of thumb, index, middle, ring, pinky (0 straight, 1 fully flexed), spread.
HANDSHAPES = {
    "flat": (0.15, 0.0, 0.0, 0.0, 0.0, 0.02),
    "five": (0.0, 0.0, 0.0, 0.0, 0.0, 0.32),
    "fist": (0.65, 1.0, 1.0, 1.0, 1.0, 0.0),
    "point": (0.7, 0.0, 1.0, 1.0, 1.0, 0.05),
    "vee": (0.7, 0.0, 0.0, 1.0, 1.0, 0.35),
    "claw": (0.35, 0.55, 0.55, 0.55, 0.55, 0.15),
    "y": (0.0, 1.0, 1.0, 1.0, 0.0, 0.4),
    "ell": (0.0, 0.0, 1.0, 1.0, 1.0, 0.1),
    "oh": (0.55, 0.7, 0.7, 0.7, 0.7, 0.0),
    "three": (0.0, 0.0, 0.0, 1.0, 1.0, 0.3),
}
# A keypose: position (x, y in body units), roll, yaw (radians), 5 curls, spread.
P_X, P_Y, P_ROLL, P_YAW, P_CURL, P_SPREAD, N_PARAMS = 0, 1, 2, 3, slice(4, 9), 9, 10


def hand_joints(params: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(T, 10) keypose parameters -> (T, 21, 3) joints in hand-length units, wrist at the origin."""
    t = params.shape[0]
    curls = np.clip(params[:, P_CURL], 0.0, 1.0)
    spread = params[:, P_SPREAD]
    out = np.zeros((t, 21, 3))
    # Thumb: swings across the palm and flexes towards the camera as it curls.
    ct = curls[:, 0]
    ang = 0.95 - 1.1 * ct
    d_in = np.stack([np.sin(ang), -np.cos(ang)], axis=1)
    pos = np.zeros((t, 3))
    pos[:, :2] = _THUMB_CMC
    out[:, 1] = pos
    theta = np.zeros(t)
    for k, (length, flex) in enumerate(zip(_THUMB_SEGMENTS, (0.3, 0.6, 0.5))):
        theta = theta + flex * ct
        step = np.concatenate([d_in * np.cos(theta)[:, None], -np.sin(theta)[:, None]], axis=1)
        pos = pos + length * step
        out[:, 2 + k] = pos
    # Fingers: three joints each, flexing in the plane of the finger and the palm normal.
    for f in range(4):
        ang = _FINGER_BASE_ANGLE[f] + _FINGER_SPREAD[f] * spread
        d_in = np.stack([np.sin(ang), -np.cos(ang)], axis=1)
        pos = np.zeros((t, 3))
        pos[:, :2] = _FINGER_MCP[f]
        base = 5 + 4 * f
        out[:, base] = pos
        theta = np.zeros(t)
        for k in range(3):
            theta = theta + _FLEX[k] * curls[:, f + 1]
            step = np.concatenate([d_in * np.cos(theta)[:, None], -np.sin(theta)[:, None]], axis=1)
            pos = pos + _FINGER_SEGMENTS[f, k] * step
            out[:, base + 1 + k] = pos
    roll, yaw = params[:, P_ROLL], params[:, P_YAW]
    if mirror:
        out[..., 0] *= -1
        roll, yaw = -roll, -yaw
    # Yaw turns the palm sideways (about the hand's long axis), roll tilts it in the image plane.
    cy, sy = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = out[..., 0] * cy + out[..., 2] * sy
    z = -out[..., 0] * sy + out[..., 2] * cy
    cr, sr = np.cos(roll)[:, None], np.sin(roll)[:, None]
    y = out[..., 1]
    out[..., 0] = x * cr - y * sr
    out[..., 1] = x * sr + y * cr
    out[..., 2] = z
    return out


# --- sign recipes -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignRecipe:
    name: str
    order: tuple[int, ...]  # dominant-hand keypose order (indices into the pool)
    two_handed: bool
    second_order: tuple[int, ...]  # second-hand keypose order (used when two_handed)


@dataclass(frozen=True)
class Recipes:
    """The shared keypose pools and every sign's recipe: all that differs between signs."""

    pool: np.ndarray  # (K, 10) dominant-hand keyposes
    second_pool: np.ndarray  # (Q, 10) second-hand keyposes
    hub: np.ndarray  # (10,) the dominant hand's neutral pose between keyposes
    second_hub: np.ndarray  # (10,) the second hand's
    signs: list[SignRecipe]


_SYLLABLES_C = "bdfgklmnprstvz"
_SYLLABLES_V = "aeiou"


def sign_names(n: int, seed: int) -> list[str]:
    """`n` distinct readable made-up words (two or three syllables), deterministic for a seed."""
    rng = np.random.default_rng([seed, 11])
    names: list[str] = []
    while len(names) < n:
        syl = 2 + int(rng.random() < 0.3)
        word = "".join(_SYLLABLES_C[rng.integers(len(_SYLLABLES_C))] + _SYLLABLES_V[rng.integers(5)]
                       for _ in range(syl))
        if word not in names:
            names.append(word)
    return names


def pool_size(num_signs: int) -> int:
    """Smallest keypose pool (at least 4) with enough distinct orders for `num_signs` signs."""
    k = 4
    while math.factorial(k) < num_signs:
        k += 1
    return k


def _keypose_pool(rng: np.random.Generator, k: int, box: tuple[float, float, float, float],
                  min_dist: float) -> np.ndarray:
    """k keyposes with well separated positions and distinct hand shapes."""
    x0, x1, y0, y1 = box
    pts: list[np.ndarray] = []
    while len(pts) < k:
        p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
        elif rng.random() < 0.01:  # keep going if the box is crowded: shrink the distance a little
            min_dist *= 0.97
    shapes = rng.permutation(list(HANDSHAPES))[:k]
    pool = np.zeros((k, N_PARAMS))
    pool[:, :2] = pts
    pool[:, P_ROLL] = rng.uniform(-0.6, 0.6, k)
    pool[:, P_YAW] = rng.uniform(-0.6, 0.6, k)
    pool[:, P_CURL] = [HANDSHAPES[s][:5] for s in shapes]
    pool[:, P_SPREAD] = [HANDSHAPES[s][5] for s in shapes]
    return pool


def make_recipes(num_signs: int, seed: int) -> Recipes:
    rng = np.random.default_rng([seed, 1])
    k = pool_size(num_signs)
    # Body units: shoulder width = 1, origin between the shoulders, y down (face centre ~ -0.42).
    pool = _keypose_pool(rng, k, (-0.8, 0.25, -0.8, 0.5), 0.38)
    second_pool = _keypose_pool(rng, 3, (0.2, 0.75, -0.3, 0.55), 0.3)
    perms = list(itertools.permutations(range(k)))
    chosen = rng.choice(len(perms), size=num_signs, replace=False)
    two = np.zeros(num_signs, dtype=bool)
    two[rng.choice(num_signs, size=num_signs // 3, replace=False)] = True
    second_perms = list(itertools.permutations(range(3)))
    names = sorted(sign_names(num_signs, seed))
    signs = [SignRecipe(names[i], tuple(int(v) for v in perms[chosen[i]]), bool(two[i]),
                        tuple(int(v) for v in second_perms[rng.integers(len(second_perms))]))
             for i in range(num_signs)]
    relaxed = np.array([0.0, 0.0, 0.0, 0.0, 0.3, 0.35, 0.35, 0.35, 0.35, 0.1])  # a half-open hand
    hub = relaxed.copy()
    hub[:2] = pool[:, :2].mean(axis=0)
    second_hub = relaxed.copy()
    second_hub[:2] = second_pool[:, :2].mean(axis=0)
    return Recipes(pool, second_pool, hub, second_hub, signs)


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
    # `apply(frames, rng) -> frames` and `mirrored` (asl_cli/data/synth_signers.py, `asl synth --hard`).
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


# --- one sequence -------------------------------------------------------------------------------

def _smoothstep(s: np.ndarray) -> np.ndarray:
    return s * s * (3 - 2 * s)


def _wave(rng: np.random.Generator, u: np.ndarray, amp: float) -> np.ndarray:
    """A smooth random signal over normalised time u (two sinusoids)."""
    f = rng.uniform(0.3, 1.6, 2)
    ph = rng.uniform(0, 2 * np.pi, 2)
    w = rng.uniform(0.4, 1.0, 2)
    return amp * (w[0] * np.sin(2 * np.pi * f[0] * u + ph[0]) + w[1] * np.sin(2 * np.pi * f[1] * u + ph[1])) / 2


def _chain_track(rng: np.random.Generator, chain: np.ndarray, holds: np.ndarray, times: np.ndarray, *,
                 hold: tuple[float, float], move: tuple[float, float], bulge: float) -> np.ndarray:
    """Parameters (T, 10) of a hand that passes through `chain`, pausing where `holds` is True.

    `times` in [0, 1] cover the whole chain. Moves ease in and out and bow sideways by a random
    amount; hold and move durations are random.
    """
    n = len(chain)
    knots_t, knots_p = [0.0], [0.0]
    for i in range(n):
        if holds[i]:
            knots_t.append(knots_t[-1] + rng.uniform(*hold))
            knots_p.append(float(i))
        if i < n - 1:
            knots_t.append(knots_t[-1] + rng.uniform(*move))
            knots_p.append(float(i + 1))
    kt = np.asarray(knots_t) / knots_t[-1]
    p = np.interp(times, kt, np.asarray(knots_p))
    lo = np.minimum(np.floor(p).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = p - lo
    s = _smoothstep(frac)[:, None]
    params = chain[lo] * (1 - s) + chain[hi] * s
    # Curved paths: push the position sideways, most in the middle of a move.
    d = chain[hi, :2] - chain[lo, :2]
    perp = np.stack([-d[:, 1], d[:, 0]], axis=1)
    amount = rng.normal(0.0, bulge, n)[lo] * np.sin(np.pi * frac)
    params[:, :2] += perp * amount[:, None]
    return params


def _via_hub(rng: np.random.Generator, keys: np.ndarray, hub: np.ndarray,
             jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """hub, k0, hub, k1, ..., hub: the chain through `keys` with a (jittered) return to the hub between.

    Why: a move straight from keypose a to b would pass through places that only the signs with
    a next to b visit, so a single frame would give the sign away; via the hub every sign visits
    every spoke (hub <-> keypose) exactly twice, in and out, and only the order differs.
    """
    k = len(keys)
    hubs = np.repeat(hub[None], k + 1, axis=0)
    hubs[:, :2] += rng.normal(0.0, jitter, (k + 1, 2))
    chain = np.empty((2 * k + 1, keys.shape[1]))
    chain[0::2], chain[1::2] = hubs, keys
    holds = np.zeros(2 * k + 1, dtype=bool)
    holds[1::2] = True
    return chain, holds


def _visibility(rng: np.random.Generator, t: int, miss: float, run: float = 2.0) -> np.ndarray:
    """Boolean (T,) visible frames from a two-state Markov chain: `miss` of the frames, runs of ~`run`."""
    miss = float(np.clip(miss, 0.0, 0.95))
    back = 1.0 / run
    lose = miss * back / max(1e-9, 1.0 - miss)
    r = rng.random(t)
    vis = np.empty(t, dtype=bool)
    state = rng.random() >= miss
    for i in range(t):
        vis[i] = state
        state = (r[i] >= lose) if state else (r[i] < back)
    return vis


def _rotations(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation matrices: turn (about y), then nod (about x), then tilt (about z)."""
    t = len(yaw)
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.zeros((t, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cy, sy, 1.0, -sy, cy
    rx = np.zeros((t, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1.0, cp, -sp, sp, cp
    rz = np.zeros((t, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = cr, -sr, sr, cr, 1.0
    return rz @ rx @ ry


def _elbow(shoulder: np.ndarray, wrist: np.ndarray, upper: float, fore: float) -> np.ndarray:
    """2-link inverse kinematics in the image plane; of the two solutions, the lower elbow."""
    d = wrist - shoulder
    dist = np.clip(np.linalg.norm(d, axis=1), 1e-6, None)
    reach = np.clip(dist, abs(upper - fore) + 1e-6, upper + fore - 1e-6)
    a = (upper ** 2 - fore ** 2 + reach ** 2) / (2 * reach)
    h = np.sqrt(np.clip(upper ** 2 - a ** 2, 0.0, None))
    u = d / dist[:, None]
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    n *= np.where(n[:, 1] < 0, -1.0, 1.0)[:, None]  # y grows downwards
    return shoulder + u * a[:, None] + n * h[:, None]


def synth_sequence(recipes: Recipes, sign: int, person: Participant, rng: np.random.Generator) -> np.ndarray:
    """One sequence of sign `sign` by `person`: float32 (T, 543, 3), NaN where nothing was seen."""
    recipe = recipes.signs[sign]
    # Log-normal around the signer's tempo, plus a few long takes (pauses, slow repeats): real
    # sequences run from a few frames to a few hundred.
    stretch = rng.uniform(1.5, 3.5) if rng.random() < 0.04 else 1.0
    t = int(np.clip(round(person.speed * stretch * math.exp(rng.normal(0.0, 0.5))), MIN_FRAMES, MAX_FRAMES))
    # Frame times cover the whole sign, with sampling jitter (the camera does not wait for the signer).
    u = (np.arange(t) + rng.uniform(0.2, 0.8, t)) / t
    u = np.clip(u + rng.normal(0.0, 0.15 / t, t), 0.0, 1.0)
    u.sort()

    body = person.body * rng.uniform(0.96, 1.04)
    neck = np.asarray(person.neck) + rng.normal(0.0, 0.015, 2)
    sway = np.stack([_wave(rng, u, 0.02), _wave(rng, u, 0.01)], axis=1)

    # Dominant (right) hand: the sign's keyposes, jittered, with optional lead-in/out from rest.
    keys = recipes.pool[list(recipe.order)].copy()
    keys[:, :2] += person.style[list(recipe.order)]
    keys[:, :2] += rng.normal(0.0, 0.05, (len(keys), 2))
    keys[:, P_ROLL] += rng.normal(0.0, 0.12, len(keys))
    keys[:, P_YAW] += rng.normal(0.0, 0.12, len(keys))
    keys[:, P_CURL] += rng.normal(0.0, 0.07, (len(keys), 5))
    chain, holds = _via_hub(rng, keys, recipes.hub, 0.06)
    # Sometimes the hand comes up from rest (below the image) and/or goes back down.
    lead_in, lead_out = rng.random() < 0.4, rng.random() < 0.4
    rest = recipes.hub.copy()
    rest[:2] = [-0.45, 1.25]
    chain = np.concatenate([rest[None]] * lead_in + [chain] + [rest[None]] * lead_out)
    holds = np.concatenate([[False]] * lead_in + [holds] + [[False]] * lead_out)
    right = _chain_track(rng, chain, holds, u, hold=(0.4, 1.0), move=(0.3, 0.6), bulge=0.2)

    # Second (left) hand: goes through its own pool via its hub, in a sign-specific order in
    # two-handed signs and in a random order (carrying no information) in one-handed signs.
    second = recipes.second_pool.copy()
    second[:, :2] += rng.normal(0.0, 0.05, (len(second), 2))
    second[:, P_CURL] += rng.normal(0.0, 0.07, (len(second), 5))
    order = list(recipe.second_order) if recipe.two_handed else list(rng.permutation(len(second)))
    chain, holds = _via_hub(rng, second[order], recipes.second_hub, 0.05)
    left = _chain_track(rng, chain, holds, u, hold=(0.4, 1.0), move=(0.3, 0.6), bulge=0.2)

    frames = np.empty((t, ROWS_PER_FRAME, 3))
    hand_len = person.hand * body
    wrists = {}
    for name, params, mirror in (("right_hand", right, False), ("left_hand", left, True)):
        wrist = neck + (params[:, :2] + sway) * body
        joints = hand_joints(params, mirror=mirror) * hand_len
        joints[..., :2] += wrist[:, None]
        joints[..., 2] -= joints[:, :1, 2]  # MediaPipe hand z is relative to the wrist
        off = TYPE_OFFSETS[name]
        frames[:, off:off + 21] = joints
        wrists[name] = (wrist, joints)

    # Face: rigid head motion (turn, nod, tilt), mouth opening and blinks.
    face = np.repeat(FACE_TEMPLATE[None], t, axis=0)
    mouth = np.clip(_wave(rng, u, 1.0) + rng.uniform(-0.3, 0.5), 0.0, 1.0)
    face[:, FACE_GROUPS["lower_lip"], 1] += 0.06 * mouth[:, None]
    face[:, FACE_GROUPS["chin"], 1] += 0.03 * mouth[:, None]
    if t > 2 and rng.random() < 0.4:
        b = int(rng.integers(t))
        face[b:b + 2, FACE_GROUPS["upper_lid"], 1] += 0.04
    yaw = rng.normal(0.0, 0.08) + _wave(rng, u, 0.1)
    pitch = rng.normal(0.0, 0.05) + _wave(rng, u, 0.08)
    roll = rng.normal(0.0, 0.05) + _wave(rng, u, 0.06)
    face_w = person.face * body
    rot = _rotations(yaw, pitch, roll) * face_w
    head = neck + np.array([0.0, -0.42]) * body + sway * body * 1.3
    frames[:, :468] = face @ rot.transpose(0, 2, 1)
    frames[:, :468, :2] += head[:, None]

    # Pose: head points from the face, arms by inverse kinematics to the hands, the lower body fixed.
    pose = np.empty((t, 33, 3))
    f = frames[:, :468]
    pose[:, 0] = f[:, 1]
    pose[:, 1], pose[:, 3], pose[:, 4], pose[:, 6] = f[:, 362], f[:, 263], f[:, 133], f[:, 33]
    pose[:, 2] = (f[:, 386] + f[:, 374]) / 2
    pose[:, 5] = (f[:, 159] + f[:, 145]) / 2
    pose[:, 7], pose[:, 8] = f[:, 454], f[:, 234]
    pose[:, 9], pose[:, 10] = f[:, 291], f[:, 61]
    pose[:, :11, 2] = f[:, [1], 2] - 1.2 * body
    shoulder = {11: neck + np.array([0.5, 0.0]) * body, 12: neck + np.array([-0.5, 0.0]) * body}
    pose[:, 11, :2] = shoulder[11] + sway * body
    pose[:, 12, :2] = shoulder[12] + sway * body
    for name, sh, el, wr, fingers in (("left_hand", 11, 13, 15, (17, 19, 21)),
                                      ("right_hand", 12, 14, 16, (18, 20, 22))):
        wrist, joints = wrists[name]
        pose[:, el, :2] = _elbow(pose[:, sh, :2], wrist, 0.62 * body, 0.58 * body)
        pose[:, wr, :2] = wrist
        for pp, hj in zip(fingers, (17, 5, 2)):
            pose[:, pp, :2] = joints[:, hj, :2]
    pose[:, 11:23, 2] = -0.4 * body + rng.normal(0.0, 0.05)
    lower = np.array([[0.32, 1.25], [-0.32, 1.25], [0.32, 2.15], [-0.32, 2.15], [0.3, 3.05], [-0.3, 3.05],
                      [0.3, 3.15], [-0.3, 3.15], [0.36, 3.22], [-0.36, 3.22]])
    pose[:, 23:33, :2] = neck + lower * body
    pose[:, 23:33, 2] = np.array([0.0, 0.0, 0.3, 0.3, 0.6, 0.6, 0.65, 0.65, 0.3, 0.3]) * body
    frames[:, TYPE_OFFSETS["pose"]:TYPE_OFFSETS["pose"] + 33] = pose

    # The signer's camera and handedness (hard sets only): a left-handed signer is the mirror image,
    # the dominant hand then being MediaPipe's left_hand.
    dominant, second = TYPE_OFFSETS["right_hand"], TYPE_OFFSETS["left_hand"]
    if person.view is not None:
        frames = person.view.apply(frames, rng)
        if person.view.mirrored:
            dominant, second = second, dominant

    out = frames.astype(np.float32)
    out[..., :2] += rng.standard_normal((t, ROWS_PER_FRAME, 2), dtype=np.float32) * np.float32(person.noise)

    # What the tracker missed: hands out of the image or lost, the face now and then.
    dominant_vis = _visibility(rng, t, person.miss, person.miss_run) & (out[:, dominant, 1] < 1.0)
    second_vis = _visibility(rng, t, rng.uniform(0.1, 0.9), run=4.0) & (out[:, second, 1] < 1.0)
    face_vis = _visibility(rng, t, 0.015)
    if person.view is not None:  # a moved camera can also put a wrist beside or above the image
        for vis, wrist in ((dominant_vis, dominant), (second_vis, second)):
            vis &= (out[:, wrist, 0] > 0.0) & (out[:, wrist, 0] < 1.0) & (out[:, wrist, 1] > 0.0)
    out *= np.float32(1 / QUANTUM)
    np.rint(out, out=out)
    out *= np.float32(QUANTUM)
    out[~dominant_vis, dominant:dominant + 21] = np.nan
    out[~second_vis, second:second + 21] = np.nan
    out[~face_vis, :468] = np.nan
    return out


# --- writing the asl-signs format ---------------------------------------------------------------

def _row_layout() -> tuple[np.ndarray, list[str], list[str]]:
    """Per row of one frame: landmark_index, type, "-<type>-<index>" (the row_id suffix)."""
    idx, types, suffix = [], [], []
    for name in TYPES:
        for i in range(TYPE_SIZES[name]):
            idx.append(i)
            types.append(name)
            suffix.append(f"-{name}-{i}")
    return np.asarray(idx, dtype=np.int16), types, suffix


def _pandas_metadata() -> bytes:
    """The `pandas` schema metadata pandas' `to_parquet` writes (as in the real files)."""
    import pyarrow as pa

    cols = [("frame", "int16", "int16"), ("row_id", "unicode", "object"), ("type", "unicode", "object"),
            ("landmark_index", "int16", "int16"), ("x", "float64", "float64"), ("y", "float64", "float64"),
            ("z", "float64", "float64")]
    try:
        pandas_version = metadata.version("pandas")
    except metadata.PackageNotFoundError:  # pragma: no cover - pandas is a dependency
        pandas_version = "unknown"
    meta = {"index_columns": [], "column_indexes": [],
            "columns": [{"name": n, "field_name": n, "pandas_type": pt, "numpy_type": nt, "metadata": None}
                        for n, pt, nt in cols],
            "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": pandas_version}
    return json.dumps(meta).encode()


class _RowIds:
    """The row_id column ("<frame>-<type>-<index>") built as Arrow buffers with numpy.

    Formatting ~15 000 strings per sequence in Python (or with Arrow's cast + join) cost more
    than the rest of the generator; here each frame's bytes are a fixed template with the frame
    number's digits written into known positions.
    """

    def __init__(self, suffixes: list[str]) -> None:
        enc = [x.encode("ascii") for x in suffixes]
        self.suffix_len = np.array([len(b) for b in enc])
        self.suffix_bytes = np.frombuffer(b"".join(enc), dtype=np.uint8)
        self._templates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _template(self, digits: int) -> tuple[np.ndarray, np.ndarray]:
        """One frame's bytes with zeros where the digits go, and the positions of those digits."""
        if digits not in self._templates:
            row_len = self.suffix_len + digits
            starts = np.concatenate([[0], np.cumsum(row_len)[:-1]])
            block = np.zeros(int(row_len.sum()), dtype=np.uint8)
            digit_pos = (starts[:, None] + np.arange(digits)).ravel()
            mask = np.ones(len(block), dtype=bool)
            mask[digit_pos] = False
            block[mask] = self.suffix_bytes
            self._templates[digits] = (block, digit_pos)
        return self._templates[digits]

    def build(self, frames: np.ndarray):
        import pyarrow as pa

        rows = len(self.suffix_len)
        data, lengths = [], []
        for digits in np.unique([len(str(int(f))) for f in frames]):
            group = np.array([f for f in frames if len(str(int(f))) == digits], dtype=np.int64)
            block, digit_pos = self._template(int(digits))
            chunk = np.tile(block, (len(group), 1))
            powers = 10 ** np.arange(digits - 1, -1, -1)
            ascii_digits = (group[:, None] // powers % 10 + ord("0")).astype(np.uint8)  # (m, digits)
            chunk[:, digit_pos] = np.tile(ascii_digits, (1, rows))
            data.append(chunk.ravel())
            lengths.append(np.tile(self.suffix_len + digits, len(group)))
        offsets = np.zeros(rows * len(frames) + 1, dtype=np.int32)
        np.cumsum(np.concatenate(lengths), out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), rows * len(frames),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(np.concatenate(data))])


class _ParquetWriter:
    """Writes (T, 543, 3) sequences as asl-signs parquet files: columns built with numpy/arrow."""

    def __init__(self) -> None:
        import pyarrow as pa

        self.pa = pa
        idx, types, suffix = _row_layout()
        self.schema = pa.schema([("frame", pa.int16()), ("row_id", pa.string()), ("type", pa.string()),
                                 ("landmark_index", pa.int16()), ("x", pa.float64()), ("y", pa.float64()),
                                 ("z", pa.float64())], metadata={b"pandas": _pandas_metadata()})
        # Per-row constant columns for the longest sequence; a sequence takes a zero-copy slice.
        self.landmark_index = pa.array(np.tile(idx, MAX_FRAMES))
        self.types = pa.array(types * MAX_FRAMES, type=pa.string())
        self.row_ids = _RowIds(suffix)

    def write(self, path: Path, frames: np.ndarray, first_frame: int) -> None:
        import pyarrow.parquet as pq

        pa = self.pa
        t = frames.shape[0]
        n = t * ROWS_PER_FRAME
        numbers = np.arange(first_frame, first_frame + t, dtype=np.int16)
        xyz = frames.reshape(n, 3).astype(np.float64)
        # NaN stays a NaN value (not a null), as in the real files.
        cols = [pa.array(np.repeat(numbers, ROWS_PER_FRAME)), self.row_ids.build(numbers), self.types.slice(0, n),
                self.landmark_index.slice(0, n), *(pa.array(np.ascontiguousarray(xyz[:, c])) for c in range(3))]
        table = pa.Table.from_arrays(cols, schema=self.schema)
        # Dictionary-encoding the unique row ids only to fall back to plain costs time for nothing.
        pq.write_table(table, path, compression="snappy", version="1.0",
                       use_dictionary=["frame", "type", "landmark_index", "x", "y", "z"])


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    sequences: int
    signs: int
    participants: int
    frames: int
    bytes: int
    seconds: float
    # With held-out signers: ((folder name, participants, sequences), ...) for train and test.
    splits: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class _Task:
    """One participant's repetitions of one sign: the unit of work of a generator process."""

    out: str
    num_signs: int
    num_participants: int
    seed: int
    participant: int
    sign: int
    seq_ids: tuple[int, ...]  # one per repetition
    signers: SignersFn | None = None  # None: make_participants


_WORKER_STATE: dict[tuple, tuple[Recipes, list[Participant], _ParquetWriter]] = {}


def _run_task(task: _Task) -> tuple[list[tuple[str, int, int, str]], int]:
    """Generate and write one task's sequences; returns their train.csv rows and frame count."""
    key = (task.num_signs, task.num_participants, task.seed, task.signers)
    if key not in _WORKER_STATE:
        recipes = make_recipes(task.num_signs, task.seed)
        _WORKER_STATE.clear()
        make_people = task.signers or make_participants
        _WORKER_STATE[key] = (recipes, make_people(task.num_participants, len(recipes.pool), task.seed),
                              _ParquetWriter())
    recipes, people, writer = _WORKER_STATE[key]
    person, name = people[task.participant], recipes.signs[task.sign].name
    rows, frames = [], 0
    for rep, sid in enumerate(task.seq_ids):
        rng = np.random.default_rng([task.seed, 4, task.participant, task.sign, rep])
        seq = synth_sequence(recipes, task.sign, person, rng)
        rel = f"{FILES_DIR}/{person.pid}/{sid}.parquet"
        writer.write(Path(task.out) / rel, seq, first_frame=int(rng.integers(1, 200)))
        rows.append((rel, person.pid, sid, name))
        frames += seq.shape[0]
    return rows, frames


def generate(out_dir: str | Path, *, num_signs: int = 20, num_participants: int = 12, repetitions: int = 10,
             seed: int = 0, workers: int | None = None, progress: ProgressFn | None = None,
             signers: SignersFn | None = None, holdout_signers: int = 0,
             about: dict | None = None) -> SynthSummary:
    """Write the synthetic set into `out_dir` (created; must be empty or absent) and return a summary.

    `workers`: generator processes (default: one per CPU, at most 8; 1 generates in this process;
    the output does not depend on it). `progress(done, total)` is called as sequences are written.

    `signers`: how the participants are made (default `make_participants`; the hard set's is
    `synth_signers.make_hard_participants`). `holdout_signers` N > 0: N of the `num_participants`
    (drawn with the seed) are held out, and `out_dir` gets two complete asl-signs folders,
    `train/` (the others) and `test/` (those N), with the same sign map and distinct sequence ids.
    `about`: extra entries for synth.json (e.g. the difficulty). With the defaults the files are
    those of earlier versions, byte for byte.

    The set is built in a temporary sibling folder (`.<name>.tmp-<pid>-<random>`) and renamed into
    place when complete, so an interrupted or failed generation (Ctrl-C, a full disk) leaves
    `out_dir` as it was; the temporary folder of a killed one is removed by the next generation
    beside it. DataError (exit 3) for a non-empty `out_dir`, RunIOError (exit 8) when it cannot be
    written.
    """
    if num_signs < 2 or num_participants < 1 or repetitions < 1:
        raise DataError(f"need >= 2 signs, >= 1 participant, >= 1 repetition (got {num_signs}, "
                        f"{num_participants}, {repetitions})")
    if num_signs > math.factorial(8):
        raise DataError(f"at most {math.factorial(8)} signs (got {num_signs})")
    if not 0 <= holdout_signers < num_participants:
        raise DataError(f"held-out signers must be 0 to participants - 1 = {num_participants - 1} "
                        f"(got {holdout_signers})")
    out = Path(out_dir)
    _check_empty_or_absent(out)
    kwargs = dict(num_signs=num_signs, num_participants=num_participants, repetitions=repetitions, seed=seed,
                  workers=workers, signers=signers, about=about)
    with _building(out, "output folder") as tmp:
        if holdout_signers:
            summary = _write_split(tmp, out, holdout_signers, progress=progress, **kwargs)
        else:
            summary = _write_set(tmp, out, progress=progress, **kwargs)
        _check_empty_or_absent(out)  # nothing appeared there meanwhile
        try:
            os.replace(tmp, out)  # over an empty folder too (POSIX rename)
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=out) from None
    return dataclasses.replace(summary, out_dir=out)


def _check_empty_or_absent(out: Path) -> None:
    try:
        if not out.exists():
            return
        if not out.is_dir():
            raise DataError("output path is a file, not a folder", path=out)
        if any(out.iterdir()):
            raise DataError("output folder is not empty", path=out)
    except OSError as exc:
        raise RunIOError(f"cannot use the output folder ({exc.strerror or exc})", path=out) from None


@contextlib.contextmanager
def _building(target: Path, what: str) -> Iterator[Path]:
    """A fresh temporary sibling of `target` to build a set in, for renaming into place.

    Leftovers of generators that no longer run are removed first; the temporary folder is removed
    on the way out unless it was renamed into place (also on Ctrl-C: nothing half-written stays).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunIOError(f"cannot create the {what} ({exc.strerror or exc})", path=target) from None
    _remove_leftovers(target)
    tmp = temp_sibling(target)
    try:
        tmp.mkdir()
    except OSError as exc:
        raise RunIOError(f"cannot create the {what} ({exc.strerror or exc})", path=target) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone when it was renamed into place


def heldout_participants(num_participants: int, holdout_signers: int, seed: int) -> np.ndarray:
    """Indices (into the participant list, sorted) of the signers a split holds out for testing."""
    rng = np.random.default_rng([seed, 6])
    return np.sort(rng.choice(num_participants, size=holdout_signers, replace=False))


def _write_split(out: Path, name: Path, holdout_signers: int, *, num_signs: int, num_participants: int,
                 repetitions: int, seed: int, progress: ProgressFn | None, **kwargs: Any) -> SynthSummary:
    """`out/train` and `out/test`: the same set, its participants split (`holdout_signers` to test)."""
    started = time.perf_counter()
    test = heldout_participants(num_participants, holdout_signers, seed)
    members = {"train": np.setdiff1d(np.arange(num_participants), test), "test": test}
    grand_total = num_signs * num_participants * repetitions
    done = 0
    parts = []
    for split in SPLITS:
        def relay(d: int, t: int, offset: int = done) -> None:
            if progress is not None:
                progress(offset + d, grand_total)

        try:
            (out / split).mkdir()
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=name) from None
        parts.append(_write_set(out / split, name / split, num_signs=num_signs, num_participants=num_participants,
                                repetitions=repetitions, seed=seed, progress=relay, members=members[split],
                                holdout_signers=holdout_signers, **kwargs))
        done += parts[-1].sequences
    return SynthSummary(out, sum(p.sequences for p in parts), num_signs, num_participants,
                        sum(p.frames for p in parts), sum(p.bytes for p in parts), time.perf_counter() - started,
                        splits=tuple((split, p.participants, p.sequences) for split, p in zip(SPLITS, parts)))


def _write_set(out: Path, name: Path, *, num_signs: int, num_participants: int, repetitions: int, seed: int,
               workers: int | None, progress: ProgressFn | None, signers: SignersFn | None = None,
               about: dict | None = None, members: np.ndarray | None = None,
               holdout_signers: int = 0) -> SynthSummary:
    """Generate the set into the existing empty folder `out`; errors name `name` (the final folder).

    `members`: only these participants (indices into the participant list; a held-out split).
    """
    started = time.perf_counter()
    recipes = make_recipes(num_signs, seed)
    people = (signers or make_participants)(num_participants, len(recipes.pool), seed)
    members = np.arange(num_participants) if members is None else np.asarray(members)
    total = num_signs * len(members) * repetitions
    # Sequence ids are drawn for every participant, so a train/test split's ids are distinct.
    seq_ids = _distinct_ids(np.random.default_rng([seed, 3]), num_signs * num_participants * repetitions)
    seq_ids = seq_ids.reshape(num_participants, num_signs, repetitions)
    tasks = [_Task(str(out), num_signs, num_participants, seed, int(p), s, tuple(int(v) for v in seq_ids[p, s]),
                   signers)
             for p in members for s in range(num_signs)]
    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, workers)
    rows: list[tuple[str, int, int, str]] = []
    frames_total = 0
    try:
        (out / FILES_DIR).mkdir()
        for p in members:
            (out / FILES_DIR / str(people[p].pid)).mkdir()
        for task_rows, frames in _map(_run_task, tasks, workers if total >= POOL_MIN_SEQUENCES else 1):
            rows += task_rows
            frames_total += frames
            if progress is not None:
                progress(len(rows), total)
        with open(out / "train.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["path", "participant_id", "sequence_id", "sign"])
            w.writerows(rows)
        sign_map = {r.name: i for i, r in enumerate(recipes.signs)}  # names are sorted
        (out / "sign_to_prediction_index_map.json").write_text(json.dumps(sign_map), encoding="utf-8")
        info = {"generator_version": GENERATOR_VERSION, "num_signs": num_signs,
                "num_participants": num_participants, "repetitions": repetitions, "seed": seed,
                "keypose_pool": recipes.pool.round(4).tolist(), "second_pool": recipes.second_pool.round(4).tolist(),
                "signs": [{"name": r.name, "order": list(r.order), "two_handed": r.two_handed,
                           "second_order": list(r.second_order) if r.two_handed else None}
                          for r in recipes.signs]}
        info.update(about or {})
        if holdout_signers:
            info.update(split=out.name, holdout_signers=holdout_signers,
                        split_participants=[people[p].pid for p in members])
        if any(people[p].view is not None for p in members):
            info["signers"] = [{"participant_id": people[p].pid, **people[p].view.describe()} for p in members]
        (out / INFO_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    except OSError as exc:
        raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=name) from None
    return SynthSummary(out, total, num_signs, len(members), frames_total, size,
                        time.perf_counter() - started)


def _map(fn: Callable, tasks: list, workers: int):
    """`map(fn, tasks)` in order, in `workers` spawned processes when more than one."""
    return imap_ordered(fn, tasks, workers, chunksize=4)


def _distinct_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct sequence ids in the uint32 range, like Kaggle's."""
    ids = np.unique(rng.integers(1_000_000, 4_294_967_295, size=n + n // 10 + 16))
    while len(ids) < n:  # pragma: no cover - astronomically unlikely
        ids = np.unique(np.concatenate([ids, rng.integers(1_000_000, 4_294_967_295, size=n)]))
    return rng.permutation(ids)[:n]


# --- the cached default set ---------------------------------------------------------------------

def _params(synth_cfg: Any) -> dict:
    return {"num_signs": int(synth_cfg.num_signs), "num_participants": int(synth_cfg.num_participants),
            "repetitions": int(synth_cfg.repetitions), "seed": int(synth_cfg.seed),
            "generator_version": GENERATOR_VERSION}


def default_dataset_dir(synth_cfg: Any, cache_root: str | Path | None = None) -> Path:
    """Where the set of these parameters is cached: `<$ASL_CACHE or ~/.cache/asl>/synth-<hash>`."""
    from asl_cli.data.cache import default_cache_root

    root = Path(cache_root).expanduser() if cache_root else default_cache_root()
    digest = hashlib.sha256(json.dumps(_params(synth_cfg), sort_keys=True).encode()).hexdigest()[:12]
    return root / f"synth-{digest}"


def _is_complete(path: Path, params: dict) -> bool:
    try:
        return json.loads((path / COMPLETE_FILE).read_text()) == params
    except (OSError, ValueError):
        return False


def default_dataset_ready(synth_cfg: Any, cache_root: str | Path | None = None) -> bool:
    """Whether the set of `synth_cfg` is already generated (`ensure_default_dataset` returns at once)."""
    return _is_complete(default_dataset_dir(synth_cfg, cache_root), _params(synth_cfg))


def ensure_default_dataset(synth_cfg: Any, *, progress: ProgressFn | None = None,
                           cache_root: str | Path | None = None) -> Path:
    """Generate the synthetic set of `synth_cfg` once (cached) and return its folder.

    The set is written into a temporary sibling folder, marked complete, and renamed into place,
    so a killed generation is never used: the next call removes its leftovers and starts again.
    """
    target = default_dataset_dir(synth_cfg, cache_root)
    params = _params(synth_cfg)
    if _is_complete(target, params):
        return target
    with _building(target, "cache folder") as tmp:
        _write_set(tmp, target, num_signs=params["num_signs"], num_participants=params["num_participants"],
                   repetitions=params["repetitions"], seed=params["seed"], workers=None, progress=progress)
        try:
            (tmp / COMPLETE_FILE).write_text(json.dumps(params), encoding="utf-8")
            if _is_complete(target, params):  # another process finished first (and may be using it)
                return target
            if target.exists():  # incomplete: move it aside, then remove it
                old = temp_sibling(target, "old")
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(tmp, target)
            except OSError:
                if not _is_complete(target, params):  # not "another process finished first"
                    raise
        except OSError as exc:
            raise RunIOError(f"cannot write the synthetic set ({exc.strerror or exc})", path=target) from None
    return target


def _remove_leftovers(target: Path) -> None:
    """Delete temporary/swapped-out folders of `target` whose generating process is gone."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    for tmp in abandoned(leftovers):
        shutil.rmtree(tmp, ignore_errors=True)


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under `path` (0 when it does not exist; unreadable entries are left out)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def default_dataset_facts(synth_cfg: Any, cache_root: str | Path | None = None) -> dict[str, Any]:
    """Where the synthetic default set of `synth_cfg` lives and what it takes on disk (pure but for
    reading the folders): its folder, whether it is generated, its sequence count and bytes, and its
    prepared cache (made by the first run that trains on it) with its bytes."""
    from asl_cli.data.cache import cache_path

    target = default_dataset_dir(synth_cfg, cache_root)
    params = _params(synth_cfg)
    ready = _is_complete(target, params)
    cache = cache_path(target, cache_root)
    cache_ready = (cache / "complete").is_file()
    return {"dir": str(target), "generated": ready,
            "sequences": params["num_signs"] * params["num_participants"] * params["repetitions"],
            "bytes": folder_bytes(target) if ready else 0,
            "cache_dir": str(cache), "cache_ready": cache_ready,
            "cache_bytes": folder_bytes(cache) if cache_ready else 0}


def describe_default_dataset(facts: dict[str, Any]) -> str:
    """One line for people: `<dir> (2,400 sequences, 328 MB; prepared cache 49 MB)`, or where it will go."""
    from asl_cli.units import human_bytes

    if not facts.get("generated"):
        return (f"not generated yet: the first run without --data writes {facts['sequences']:,} sequences "
                f"to {facts['dir']}")
    cache = f"; prepared cache {human_bytes(facts['cache_bytes'])} in {facts['cache_dir']}" \
        if facts.get("cache_ready") else ""
    total = facts["bytes"] + (facts.get("cache_bytes") or 0)
    return (f"{facts['dir']} ({facts['sequences']:,} sequences, {human_bytes(facts['bytes'])}{cache}; "
            f"{human_bytes(total)} in all)")
