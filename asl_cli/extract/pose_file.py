"""A `.pose` file (pose-format, the sign-language-processing ecosystem's format) as asl-signs landmarks.

`read_pose_file(path) -> float32 (T, 543, 3)`, the same array `holistic.extract_video` returns:

- MediaPipe Holistic's components are placed by point name: POSE_LANDMARKS (MediaPipe's pose names),
  FACE_LANDMARKS (points named by their mesh index, "0".."467"), LEFT_HAND_LANDMARKS and
  RIGHT_HAND_LANDMARKS (MediaPipe's hand names). A file that holds fewer points (a reduced face mesh, a
  few pose points) leaves the others NaN; POSE_WORLD_LANDMARKS (metres, not image units) and the refined
  irises (face points 468-477) have no place in asl-signs and are left out.
- pose-format stores x and y in pixels (MediaPipe's x * width, y * height, the header's dimensions);
  they are divided back into MediaPipe's normalised units. z is kept as stored (pose-format's
  Holistic writer stores MediaPipe's z unchanged; training reads only x and y).
- A point whose confidence is 0 (pose-format's "not found", stored as zeros) is NaN, as in asl-signs.
- The first person of a multi-person file; row i is the file's frame i.

A file with none of those components (OpenPose, AlphaPose and other skeletons) is one DataError naming
its components. pose-format (extra `video`) is imported on first use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asl_cli.data.landmarks import HAND_POINT_NAMES, POSE_POINT_NAMES, ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.data.landmark_writer import MAX_FRAME_NUMBER
from asl_cli.errors import DataError, MissingExtraError, first_line
from asl_cli.extract import INSTALL


# component name -> (asl-signs type, {point name: index within the type})
HOLISTIC_COMPONENTS: dict[str, tuple[str, dict[str, int]]] = {
    "FACE_LANDMARKS": ("face", {str(i): i for i in range(TYPE_SIZES["face"])}),
    "LEFT_HAND_LANDMARKS": ("left_hand", {name: i for i, name in enumerate(HAND_POINT_NAMES)}),
    "POSE_LANDMARKS": ("pose", {name: i for i, name in enumerate(POSE_POINT_NAMES)}),
    "RIGHT_HAND_LANDMARKS": ("right_hand", {name: i for i, name in enumerate(HAND_POINT_NAMES)}),
}
REFINED_IRIS = {str(i) for i in range(468, 478)}  # refine_face_landmarks=True adds these; asl-signs has none


def require_pose_format():
    """pose-format's `Pose`, or one clear line when the `video` extra is missing."""
    try:
        from pose_format import Pose
    except ImportError:
        raise MissingExtraError(f"reading .pose files needs pose-format, the optional extra `video`: {INSTALL}") \
            from None
    return Pose


def component_targets(name: str, points: list[str], path: Path) -> np.ndarray:
    """Flat 543-row index of each point of a Holistic component (-1: a point asl-signs does not hold)."""
    kind, index_of = HOLISTIC_COMPONENTS[name]
    targets = np.full(len(points), -1, dtype=np.int64)
    for j, point in enumerate(points):
        if point in index_of:
            targets[j] = TYPE_OFFSETS[kind] + index_of[point]
        elif not (kind == "face" and point in REFINED_IRIS):
            raise DataError(f"component {name} has a point {point!r} that MediaPipe Holistic does not have",
                            path=path, skippable=True)
    return targets


def read_pose_file(path: str | Path) -> np.ndarray:
    """The file's MediaPipe Holistic landmarks as float32 (T, 543, 3) (see the module's docstring)."""
    Pose = require_pose_format()
    path = Path(path)
    if not path.is_file():
        raise DataError("pose file not found" if not path.exists() else "not a file", path=path)
    try:
        pose = Pose.read(path.read_bytes())
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path, skippable=True) from None
    except Exception as exc:  # noqa: BLE001 - pose-format raises struct.error, ValueError, ... on a damaged file
        raise DataError(f"not a readable .pose file ({first_line(exc)})", path=path, skippable=True) from None
    header, body = pose.header, pose.body
    names = [c.name for c in header.components]
    if not any(n in HOLISTIC_COMPONENTS for n in names):
        raise DataError(f"not a MediaPipe Holistic .pose file: its components are {', '.join(names) or 'none'} "
                        f"(asl-signs holds {', '.join(HOLISTIC_COMPONENTS)}; other skeletons, such as OpenPose's, "
                        "have no place in it)", path=path, skippable=True)
    width, height = header.dimensions.width, header.dimensions.height
    if width <= 0 or height <= 0:
        raise DataError(f"the header's dimensions are {width}x{height}: cannot convert pixels back to "
                        "MediaPipe's normalised coordinates", path=path, skippable=True)
    data = np.ma.asarray(body.data)  # (frames, people, points, dims), masked where not found
    confidence = np.asarray(body.confidence)  # (frames, people, points)
    if data.ndim != 4 or data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"no frames (data of shape {tuple(data.shape)})", path=path, skippable=True)
    if data.shape[0] > MAX_FRAME_NUMBER + 1:
        raise DataError(f"{data.shape[0]} frames: asl-signs' int16 frame numbers hold at most {MAX_FRAME_NUMBER + 1} "
                        "(cut the file into signs)", path=path, skippable=True)
    values = np.ma.filled(data[:, 0].astype(np.float64), np.nan)  # the first person
    values[confidence[:, 0] <= 0] = np.nan
    out = np.full((values.shape[0], ROWS_PER_FRAME, 3), np.nan, dtype=np.float32)
    offset = 0
    for component in header.components:
        count = len(component.points)
        if component.name in HOLISTIC_COMPONENTS:
            targets = component_targets(component.name, list(component.points), path)
            keep = targets >= 0
            dims = [d for d in component.format if d != "C"]  # the data's last axis, in this order
            for axis, letter in enumerate("XYZ"):
                if letter in dims:
                    column = values[:, offset:offset + count, dims.index(letter)][:, keep]
                    scale = width if letter == "X" else height if letter == "Y" else 1.0
                    out[:, targets[keep], axis] = column / scale
        offset += count
    if np.isnan(out).all():  # as for a video: a sequence with nobody in it is not a sign
        raise DataError(f"no person in any of its {out.shape[0]} frames (every Holistic point has confidence 0)",
                        path=path, skippable=True)
    return out
