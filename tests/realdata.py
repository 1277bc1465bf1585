"""The real asl-signs data committed with the tests (tests/data/asl-signs-mini, CC BY 4.0: see its README).

25 unmodified Kaggle files (~3.8 MB) so that a fresh clone runs every real-data test; the larger
shared sample beside the checkout (shared/data/asl-signs-sample) is for the benchmarks only.
`tests/` is on sys.path through its conftest, so tests import these names directly.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "asl-signs-mini"
SEQUENCES = 25  # rows of its train.csv
PARTICIPANTS = 12
SHOW_FILE = "train_landmark_files/16069/1430039129.parquet"  # 18 frames, left hand only
LONG_FILE = "train_landmark_files/28656/4249804146.parquet"  # 52 frames: longer than the tests' max_len
