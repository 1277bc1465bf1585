"""One synthetic sequence: a signer performing a sign, as MediaPipe Holistic would track it.

`synth_sequence(recipes, sign, person, rng)` moves the hands through the sign's keyposes (via a
neutral hub, with random holds, moves and curvature), animates the face (head motion, mouth,
blinks), places the pose by inverse kinematics, applies the signer's camera (hard sets), adds
landmark noise and the tracker's losses, and rounds the coordinates (`QUANTUM`).
"""

from __future__ import annotations

import math

import numpy as np

from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS
from asl_cli.data.synth.signers import Participant
from asl_cli.data.synth.templates import FACE_GROUPS, FACE_TEMPLATE, P_CURL, P_ROLL, P_YAW, Recipes, hand_joints

MAX_FRAMES = 256
MIN_FRAMES = 4
QUANTUM = 2.0 ** -13  # coordinates are rounded to this (about a tenth of a pixel): smaller files


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
