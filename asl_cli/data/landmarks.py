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

# MediaPipe's names of the pose and hand landmarks, in their index order (`mp.solutions.holistic`'s
# PoseLandmark and HandLandmark enums; the face mesh's points are named by their index). `.pose` files
# name their points so (`asl_cli.extract.pose_file`).
POSE_POINT_NAMES = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX")
HAND_POINT_NAMES = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP", "INDEX_FINGER_MCP", "INDEX_FINGER_PIP",
    "INDEX_FINGER_DIP", "INDEX_FINGER_TIP", "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP",
    "MIDDLE_FINGER_TIP", "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP", "PINKY_MCP",
    "PINKY_PIP", "PINKY_DIP", "PINKY_TIP")

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
