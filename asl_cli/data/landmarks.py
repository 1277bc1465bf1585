"""The MediaPipe Holistic landmark layout of asl-signs and the 1st-place solution's point selection.

Every index here is a flat row position within one frame of 543 rows
(face 0-467, left_hand 468-488, pose 489-521, right_hand 522-542).
"""

from __future__ import annotations

import numpy as np

ROWS_PER_FRAME = 543
FACE = range(0, 468)
LEFT_HAND_RANGE = range(468, 489)
POSE_RANGE = range(489, 522)
RIGHT_HAND_RANGE = range(522, 543)
TYPE_OFFSETS = {"face": 0, "left_hand": 468, "pose": 489, "right_hand": 522}
TYPE_SIZES = {"face": 468, "left_hand": 21, "pose": 33, "right_hand": 21}

LIP = [0, 61, 185, 40, 39, 37, 267, 269, 270, 409, 291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
       78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LHAND = list(LEFT_HAND_RANGE)
RHAND = list(RIGHT_HAND_RANGE)
NOSE = [1, 2, 98, 327]
REYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173]
LEYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398]

POINT_LANDMARKS = LIP + LHAND + RHAND + NOSE + REYE + LEYE
NUM_POINTS = len(POINT_LANDMARKS)  # 118
NUM_FEATURES = 6 * NUM_POINTS  # xy + dx + dx2 = 708
LIP_CENTRE = 17  # lower lip: the centring landmark

# Left <-> right pairs swapped by a horizontal flip (flat 543 indices).
LLIP = [84, 181, 91, 146, 61, 185, 40, 39, 37, 87, 178, 88, 95, 78, 191, 80, 81, 82]
RLIP = [314, 405, 321, 375, 291, 409, 270, 269, 267, 317, 402, 318, 324, 308, 415, 310, 311, 312]
LPOSE = [513, 505, 503, 501]
RPOSE = [512, 504, 502, 500]
FLIP_PAIRS = list(zip(LLIP, RLIP)) + list(zip(LPOSE, RPOSE)) + list(zip(LEYE, REYE)) \
    + [(98, 327)] + list(zip(LHAND, RHAND))


def flip_permutation(points: list[int] | None = None) -> np.ndarray:
    """Index array `p` such that `x[:, p]` swaps every left/right pair among `points`.

    `points` are the flat indices held by the array's point axis (default: all 543).
    A point whose partner is not among `points` stays where it is.
    """
    points = list(range(ROWS_PER_FRAME)) if points is None else list(points)
    partner = {}
    for a, b in FLIP_PAIRS:
        partner[a], partner[b] = b, a
    where = {p: i for i, p in enumerate(points)}
    return np.array([where.get(partner.get(p, p), i) for i, p in enumerate(points)], dtype=np.int64)
