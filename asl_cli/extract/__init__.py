"""From videos and `.pose` files to asl-signs landmarks (`asl extract`; predict and show on videos).

    holistic.py    MediaPipe Holistic over a video -> float32 (T, 543, 3), NaN where nothing was found
    pose_file.py   a pose-format `.pose` file (MediaPipe Holistic components) -> the same array
    load.py        `load_landmarks(path)`: parquet, video or .pose, the one sample path of predict and show
    job.py         `asl extract` as a library: inputs, labels, sequence ids, worker processes, resume,
                   skip-bad; files written with `asl_cli.data.landmark_writer`

mediapipe and pose-format are the optional extra `video`, imported on first use only (docs/extract.md).
"""

INSTALL = 'pip install "asl-cli[video]"'
