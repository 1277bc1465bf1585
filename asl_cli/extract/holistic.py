"""MediaPipe Holistic over a video: its landmarks as asl-signs holds them.

`extract_video(path, settings) -> float32 (T, 543, 3)`: row i is the file's i-th decoded frame, the
543 landmarks in asl-signs order (face 468, left_hand 21, pose 33, right_hand 21), x/y/z as MediaPipe
gives them (x, y normalised by the image width and height, not clipped: a wrist below the picture has
y > 1; z in MediaPipe's relative units), NaN for a part it did not find in that frame. Frames go to
MediaPipe as decoded, never mirrored, and the hands are Holistic's own `left_hand_landmarks` /
`right_hand_landmarks` (the hand at the pose's LEFT_WRIST / RIGHT_WRIST), which is what asl-signs
holds: docs/extract.md#hands has the evidence.

mediapipe (and the OpenCV it brings) is the optional extra `video`, imported on first use; without it
(or on a Python it has no wheel for) `require_mediapipe` raises one line with the install command.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from asl_cli.data.landmark_writer import MAX_FRAME_NUMBER
from asl_cli.data.landmarks import ROWS_PER_FRAME, TYPE_OFFSETS, TYPE_SIZES
from asl_cli.errors import ConfigError, DataError, MissingExtraError, first_line
from asl_cli.extract import INSTALL

MEDIAPIPE_VERSION = "0.10.21"  # the last release whose legacy Holistic ships its models (works offline)
MAX_FRAMES = MAX_FRAME_NUMBER + 1  # asl-signs' `frame` column is int16
EXACT_FRAME_COUNT = (".mp4", ".mov")  # containers whose header holds the exact frame count
CUT_SHORT = 0.9  # fewer decoded frames than this share of the announced count: a damaged file
SHOW_NATIVE_LOGS = "ASL_MEDIAPIPE_LOGS"  # set to 1 to see MediaPipe's own log lines


@dataclass(frozen=True)
class HolisticSettings:
    """MediaPipe Holistic's options; the defaults are Holistic's own, which fit asl-signs (468 face points:
    no refined irises; video mode, so tracking carries over from frame to frame)."""

    model_complexity: int = 1  # 0, 1 or 2: the pose model's size
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5

    def __post_init__(self) -> None:
        if self.model_complexity not in (0, 1, 2):
            raise ConfigError(f"model complexity must be 0, 1 or 2, got {self.model_complexity}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name.replace('_', ' ')} must be between 0 and 1, got {getattr(self, name)}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def require_mediapipe():
    """`(mediapipe, cv2)`, or one clear line when the `video` extra is missing or has no wheel here."""
    try:
        import cv2
        import mediapipe as mp

        holistic = mp.solutions.holistic
    except (ImportError, AttributeError) as exc:
        where = f"Python {sys.version_info.major}.{sys.version_info.minor}"
        # installed but broken (numpy 2 or protobuf 5 beside mediapipe 0.10.21): say what broke it
        broken = f"; it is installed but does not import: {first_line(exc)}" if _installed("mediapipe") else ""
        raise MissingExtraError(
            f"reading videos needs MediaPipe {MEDIAPIPE_VERSION}, the optional extra `video`: {INSTALL} "
            f"(its wheels are for Python 3.9-3.12; this is {where}){broken}") from None
    return holistic, cv2


def _installed(module: str) -> bool:
    """Whether `module` is on the path (found without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # blocked or half-imported: sys.modules holds None or a spec-less module
        return False


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """MediaPipe's C++ code writes log lines ("Created TensorFlow Lite XNNPACK delegate", feedback-tensor
    warnings) straight to file descriptor 2 from its own threads; they would bury the one-line messages
    of the command. Here fd 2 points to /dev/null (Python's own sys.stderr writes are flushed first)."""
    if os.environ.get(SHOW_NATIVE_LOGS) == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _part(landmarks: Any, count: int) -> np.ndarray | None:
    """A part's first `count` landmarks as (count, 3), or None when MediaPipe did not find the part."""
    if landmarks is None:
        return None
    return np.array([(p.x, p.y, p.z) for p in landmarks.landmark[:count]], dtype=np.float32)


def frame_landmarks(results: Any) -> np.ndarray:
    """One frame's Holistic results as (543, 3) in asl-signs order, NaN for the parts not found."""
    out = np.full((ROWS_PER_FRAME, 3), np.nan, dtype=np.float32)
    for name, found in (("face", results.face_landmarks), ("left_hand", results.left_hand_landmarks),
                        ("pose", results.pose_landmarks), ("right_hand", results.right_hand_landmarks)):
        points = _part(found, TYPE_SIZES[name])
        if points is not None:
            out[TYPE_OFFSETS[name]:TYPE_OFFSETS[name] + len(points)] = points
    return out


def extract_video(path: str | Path, settings: HolisticSettings = HolisticSettings()) -> np.ndarray:
    """The video's landmarks as float32 (T, 543, 3), one row per decoded frame (see the module's docstring).

    DataError (skippable: `--skip-bad` goes on) for a file OpenCV cannot decode or that is cut short (an
    MP4/MOV that decodes under 90% of the frames its header counts), for more frames than asl-signs'
    frame numbers hold, and when no person is found in any frame.
    """
    holistic, cv2 = require_mediapipe()
    path = Path(path)
    if not path.is_file():
        raise DataError("video not found" if not path.exists() else "not a file", path=path)
    frames: list[np.ndarray] = []
    with native_logs_silenced():  # FFmpeg's complaints about a damaged file too: the DataError says it once
        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise DataError("cannot read the video (not a format OpenCV decodes, or a damaged file)",
                                path=path, skippable=True)
            announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            # A fresh Holistic per video: its tracking state must not carry over from another file, so that
            # a file's landmarks do not depend on which files a worker process read before it.
            with holistic.Holistic(static_image_mode=False, smooth_landmarks=True, refine_face_landmarks=False,
                                   model_complexity=settings.model_complexity,
                                   min_detection_confidence=settings.min_detection_confidence,
                                   min_tracking_confidence=settings.min_tracking_confidence) as model:
                while True:
                    ok, bgr = capture.read()
                    if not ok:
                        break
                    if len(frames) == MAX_FRAMES:
                        raise DataError(f"more than {MAX_FRAMES} frames: asl-signs' int16 frame numbers do not "
                                        "hold them (cut the video into signs)", path=path, skippable=True)
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # OpenCV decodes BGR; MediaPipe expects RGB
                    frames.append(frame_landmarks(model.process(rgb)))
        except cv2.error as exc:
            raise DataError(f"cannot decode the video ({first_line(exc)})", path=path, skippable=True) from None
        finally:
            capture.release()
    # MP4/MOV headers count their frames exactly (the sample table; FOOTBALL.mp4 announces 64 and decodes 62):
    # far fewer decoded frames is a file cut short, whose first frames alone would pass for a whole sign.
    if path.suffix.lower() in EXACT_FRAME_COUNT and announced > 0 and len(frames) < CUT_SHORT * announced:
        raise DataError(f"damaged or cut short: {len(frames)} of the {announced} frames its header announces "
                        "could be decoded", path=path, skippable=True)
    if not frames:
        raise DataError("cannot read the video (no frame could be decoded: not a video, or a damaged file)",
                        path=path, skippable=True)
    landmarks = np.stack(frames)
    if np.isnan(landmarks).all():
        raise DataError(f"no person found in any of its {len(frames)} frames (MediaPipe Holistic saw no face, "
                        "pose or hand)", path=path, skippable=True)
    return landmarks
