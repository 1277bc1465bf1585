"""The synthetic set's body parts and signs: the face mesh, the hand skeleton, handshapes, sign recipes.

Everything a sign is made of, before any signer or sequence: a 468-point MediaPipe face-mesh
template, 21 hand joints computed from a keypose's shape parameters, and the recipes (keypose pools,
each sign an order of visits to them) that `make_recipes` draws for a seed. The motion of one
sequence is motion.py's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


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
