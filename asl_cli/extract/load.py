"""One sequence's landmarks from any file asl reads: an asl-signs parquet, a video, or a `.pose` file.

`load_landmarks(path, columns)` is the one sample path of `asl predict` and `asl show`: a parquet file is
read as training reads it (`data.reader.read_landmarks`), a video is run through MediaPipe Holistic in
memory (`holistic.extract_video`), a `.pose` file is converted (`pose_file.read_pose_file`); each gives
float32 (T, 543, len(columns)) with NaN where nothing was found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv")
POSE_SUFFIXES = (".pose",)
AXES = ("x", "y", "z")


def source_kind(path: str | Path) -> str:
    """"video", "pose" or "parquet" (anything else is read as a parquet file, which says what is wrong)."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix in POSE_SUFFIXES:
        return "pose"
    return "parquet"


def load_landmarks(path: str | Path, columns: Sequence[str] = AXES, *, settings=None) -> np.ndarray:
    """float32 (T, 543, len(columns)) from a parquet, video or .pose file; `settings`: the
    `HolisticSettings` for a video (default: Holistic's own)."""
    kind = source_kind(path)
    if kind == "parquet":
        from asl_cli.data.reader import read_landmarks

        return read_landmarks(path, columns=columns)
    unknown = [c for c in columns if c not in AXES]
    if unknown:  # before a video is run through MediaPipe, not after
        raise ValueError(f"unknown coordinate column(s) {unknown}")
    if kind == "video":
        from asl_cli.extract.holistic import HolisticSettings, extract_video

        landmarks = extract_video(path, settings or HolisticSettings())
    else:
        from asl_cli.extract.pose_file import read_pose_file

        landmarks = read_pose_file(path)
    return np.ascontiguousarray(landmarks[..., [AXES.index(c) for c in columns]])
