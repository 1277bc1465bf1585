"""`asl extract` on real input (tests/data/pose-format: two sign videos and a MediaPipe .pose file, MIT), the
.pose import, bad inputs, resume, labels, and a labelled folder's round trip to a prediction on the video.

MediaPipe runs at ~20 frames/s on 2 cores: the two videos (120 frames) are extracted once, by the `extracted`
fixture, and the other tests read its output (or use the .pose file, which converts in milliseconds).

The tests that need the `video` extra skip where it is not installed (an environment made by hand, or a Python
without a mediapipe wheel); `.ci/run` installs `.[dev]`, which has it, and checks that it imports first, so
in CI they run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from asl_cli.cli.app import app
from asl_cli.data.landmarks import LEFT_HAND_RANGE, POSE_RANGE, RIGHT_HAND_RANGE, ROWS_PER_FRAME
from asl_cli.errors import EXIT_DATA, EXIT_IO, EXIT_PROBLEM, EXIT_USAGE
from kit import ROOT, run_asl, train_tiny_run
from realdata import SAMPLE_DIR

VIDEOS = ROOT / "tests" / "data" / "pose-format"
FOOTBALL, SIGNER, POSE_FILE = VIDEOS / "FOOTBALL.mp4", VIDEOS / "test_video.mp4", VIDEOS / "mediapipe.pose"
FACE = slice(0, 468)
LEFT_HAND, POSE, RIGHT_HAND = (slice(r.start, r.stop) for r in (LEFT_HAND_RANGE, POSE_RANGE, RIGHT_HAND_RANGE))
LEFT_WRIST, RIGHT_WRIST, LEFT_SHOULDER, RIGHT_SHOULDER = 489 + 15, 489 + 16, 489 + 11, 489 + 12  # pose rows

runner = CliRunner()


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


HAS_MEDIAPIPE, HAS_POSE_FORMAT = _installed("mediapipe"), _installed("pose_format")
needs_mediapipe = pytest.mark.skipif(not HAS_MEDIAPIPE, reason="the video extra (mediapipe) is not installed")
needs_pose_format = pytest.mark.skipif(not HAS_POSE_FORMAT, reason="the video extra (pose-format) is not installed")
needs_video_extra = pytest.mark.skipif(not (HAS_MEDIAPIPE and HAS_POSE_FORMAT),
                                       reason="the video extra is not installed")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The one line a failed command prints (nothing else but its progress bar)."""
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.fixture(scope="module")
def signs_folder(tmp_path_factory) -> Path:
    """A labelled folder: football/FOOTBALL.mp4, other/test_video.mp4 and other/mediapipe.pose."""
    root = tmp_path_factory.mktemp("signs")
    for sign, src in (("football", FOOTBALL), ("other", SIGNER), ("other", POSE_FILE)):
        (root / sign).mkdir(exist_ok=True)
        shutil.copy(src, root / sign / src.name)
    return root


@pytest.fixture(scope="module")
def extracted(signs_folder, tmp_path_factory) -> dict:
    """`asl extract signs --labels parent` run once: its output folder (read-only) and each input's landmarks."""
    out = tmp_path_factory.mktemp("extracted") / "set"
    res = invoke("extract", signs_folder, "--out", out, "--labels", "parent", "--participant", "7")
    assert res.exit_code == 0, res.output
    rows = {Path(r["source"]).name: r for r in _manifest(out)}
    from asl_cli.data.reader import read_landmarks

    arrays = {name: read_landmarks(out / r["path"]) for name, r in rows.items()}
    return {"out": out, "rows": rows, "arrays": arrays, "output": res.output}


def _manifest(out: Path) -> list[dict]:
    import csv

    with open(out / "extract.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def found(part: np.ndarray) -> np.ndarray:
    """Per frame: whether the part (T, n, 3) was found (every point of a part is NaN or none is)."""
    nan = np.isnan(part)
    assert np.array_equal(nan.all(axis=(1, 2)), nan.any(axis=(1, 2))), "a part found only in part"
    return ~nan.all(axis=(1, 2))


# --- the extracted files -------------------------------------------------------------------------

@needs_mediapipe
def test_mediapipe_names_are_those_of_the_layout():
    import mediapipe as mp

    from asl_cli.data.landmarks import HAND_POINT_NAMES, POSE_POINT_NAMES

    assert tuple(p.name for p in mp.solutions.holistic.PoseLandmark) == POSE_POINT_NAMES
    assert tuple(p.name for p in mp.solutions.holistic.HandLandmark) == HAND_POINT_NAMES


@needs_video_extra
def test_frames_rows_and_schema_are_those_of_asl_signs(extracted):
    rows = extracted["rows"]
    assert {n: int(r["frames"]) for n, r in rows.items()} == {"FOOTBALL.mp4": 62, "test_video.mp4": 58,
                                                                "mediapipe.pose": 170}
    real = next((SAMPLE_DIR / "train_landmark_files").rglob("*.parquet"))
    real_table = pq.read_table(real)
    for name, r in rows.items():
        table = pq.read_table(extracted["out"] / r["path"])
        assert table.schema.remove_metadata() == real_table.schema.remove_metadata()
        frames = int(r["frames"])
        assert table.num_rows == frames * ROWS_PER_FRAME
        assert np.array_equal(table.column("frame").to_numpy(), np.repeat(np.arange(frames), ROWS_PER_FRAME))
        # within a frame, asl-signs' order of types and indices (face, left_hand, pose, right_hand)
        for col in ("type", "landmark_index"):
            assert table.column(col).to_pylist()[:ROWS_PER_FRAME] == real_table.column(col).to_pylist()[:ROWS_PER_FRAME]
        assert table.column("row_id").to_pylist()[ROWS_PER_FRAME + 500] == "1-pose-11"
        assert r["path"] == f"train_landmark_files/7/{r['sequence_id']}.parquet"


@needs_video_extra
def test_parts_are_found_where_mediapipe_finds_them_and_nan_elsewhere(extracted):
    football, signer = extracted["arrays"]["FOOTBALL.mp4"], extracted["arrays"]["test_video.mp4"]
    for arr in (football, signer):
        assert found(arr[:, FACE]).all() and found(arr[:, POSE]).all()  # one person, facing the camera
        face = arr[:, FACE, :2]
        assert 0 < face.min() and face.max() < 1  # MediaPipe's normalised units
    # FOOTBALL: both hands sign (README of tests/data/pose-format: left in 62, right in 61 frames here)
    assert found(football[:, LEFT_HAND]).sum() >= 58 and found(football[:, RIGHT_HAND]).sum() >= 55
    # test_video: the right hand comes up for about 20 frames; the left hand is never found: NaN throughout
    assert 15 <= found(signer[:, RIGHT_HAND]).sum() <= 25
    assert np.isnan(signer[:, LEFT_HAND]).all()


@needs_video_extra
def test_hands_are_assigned_as_in_asl_signs(extracted):
    """Holistic's left_hand is the hand at the pose's left wrist, on the image's right for a signer facing the
    camera: the same relation in the real asl-signs files as in what extract writes (docs/extract.md#hands)."""
    from asl_cli.data.reader import read_landmarks

    def nearest_wrist(arr, hand):
        seen = found(arr[:, hand])
        wrist = arr[seen, hand.start, :2]
        to_left = np.linalg.norm(wrist - arr[seen, LEFT_WRIST, :2], axis=1)
        to_right = np.linalg.norm(wrist - arr[seen, RIGHT_WRIST, :2], axis=1)
        return seen.sum(), (to_left < to_right).sum()

    real = [read_landmarks(f) for f in sorted((SAMPLE_DIR / "train_landmark_files").rglob("*.parquet"))]
    ours = [extracted["arrays"][n] for n in ("FOOTBALL.mp4", "test_video.mp4", "mediapipe.pose")]
    for arrays, tolerance in ((real, 0.05), (ours, 0.0)):
        both = np.concatenate(arrays)
        left_seen, left_near_left = nearest_wrist(both, LEFT_HAND)
        right_seen, right_near_left = nearest_wrist(both, RIGHT_HAND)
        assert left_seen > 50 and right_seen > 50
        assert left_near_left >= (1 - tolerance) * left_seen and right_near_left <= tolerance * right_seen
        shoulders = both[:, [LEFT_SHOULDER, RIGHT_SHOULDER], 0]
        shoulders = shoulders[~np.isnan(shoulders).any(axis=1)]
        assert len(shoulders) > 100 and (shoulders[:, 0] > shoulders[:, 1]).all()  # the person's left: image right
    football = extracted["arrays"]["FOOTBALL.mp4"]
    two = found(football[:, LEFT_HAND]) & found(football[:, RIGHT_HAND])
    assert (football[two, LEFT_HAND.start, 0] > football[two, RIGHT_HAND.start, 0]).all()


@needs_pose_format
def test_a_pose_file_is_placed_by_point_name_in_normalised_units():
    from pose_format import Pose

    from asl_cli.extract.pose_file import read_pose_file

    arr = read_pose_file(POSE_FILE)
    pose = Pose.read(POSE_FILE.read_bytes())
    names = {c.name: list(c.points) for c in pose.header.components}
    assert arr.shape == (170, ROWS_PER_FRAME, 3)
    # the reduced face mesh (128 contour points) and pose (8 points): those rows only, NaN elsewhere
    present = ~np.isnan(arr[..., 0]).all(axis=0)
    assert sorted(np.flatnonzero(present[FACE])) == sorted(int(p) for p in names["FACE_LANDMARKS"])
    assert list(np.flatnonzero(present[POSE])) == [11, 12, 13, 14, 15, 16, 23, 24]
    assert names["POSE_LANDMARKS"][:2] == ["LEFT_SHOULDER", "RIGHT_SHOULDER"]
    assert np.isnan(arr[:, LEFT_HAND]).all() and found(arr[:, RIGHT_HAND]).sum() == 145
    # pixels back to MediaPipe's units: x / width, y / height (the header says 1250 x 1250)
    raw = np.asarray(pose.body.data[:, 0, 0])  # frame t's first point: LEFT_SHOULDER
    assert (pose.header.dimensions.width, pose.header.dimensions.height) == (1250, 1250)
    assert np.allclose(arr[:, LEFT_SHOULDER, 0], raw[:, 0] / 1250) and np.allclose(arr[:, LEFT_SHOULDER, 1],
                                                                                   raw[:, 1] / 1250)


def _openpose_file(path: Path) -> Path:
    from pose_format import Pose
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.openpose import OpenPose_Components

    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(640, 480, 0), components=OpenPose_Components)
    n = header.total_points()
    body = NumPyPoseBody(fps=25, data=np.full((4, 1, n, 2), 100, np.float32), confidence=np.ones((4, 1, n), np.float32))
    with open(path, "wb") as fh:
        Pose(header, body).write(fh)
    return path


@needs_pose_format
def test_a_non_holistic_pose_file_is_one_clear_error(tmp_path):
    bad = _openpose_file(tmp_path / "openpose.pose")
    res = invoke("extract", bad, "--out", tmp_path / "out")
    assert res.exit_code == EXIT_DATA
    line = error_line(res)
    assert str(bad) in line and "not a MediaPipe Holistic .pose file" in line and "pose_keypoints_2d" in line


# --- bad inputs ----------------------------------------------------------------------------------

@needs_mediapipe
def test_damaged_videos_and_a_video_without_a_person_are_data_errors(tmp_path):
    import cv2

    from asl_cli.errors import DataError
    from asl_cli.extract.holistic import extract_video

    cut = tmp_path / "cut.mp4"
    cut.write_bytes(FOOTBALL.read_bytes()[:20_000])  # header intact, most frames gone
    empty = tmp_path / "empty.mp4"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 64))
    for _ in range(6):
        writer.write(np.full((64, 64, 3), 90, np.uint8))
    writer.release()
    # how many frames of the cut file decode is the decoder's business: the message's form is ours
    for path, says in ((cut, r"cut short: \d+ of the 64 frames"), (empty, "no person found in any of its 6 frames")):
        with pytest.raises(DataError) as info:
            extract_video(path)
        assert re.search(says, info.value.message) and info.value.path == str(path) and info.value.skippable


@needs_video_extra
def test_a_corrupt_video_stops_the_job_or_is_skipped(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    res = invoke("extract", garbage, POSE_FILE, "--out", tmp_path / "a")
    assert res.exit_code == EXIT_DATA
    line = error_line(res)
    assert f"{garbage}: cannot read the video" in line and "--skip-bad" in line
    res = invoke("extract", garbage, POSE_FILE, "--out", tmp_path / "b", "--skip-bad", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["extracted"] == 1 and [s["file"] for s in report["skipped"]] == [str(garbage)]
    assert "cannot read the video" in report["skipped"][0]["error"]
    res = invoke("extract", garbage, "--out", tmp_path / "c", "--skip-bad")  # nothing readable: still an error
    assert res.exit_code == EXIT_DATA and "cannot read the video" in error_line(res)


def test_without_the_video_extra_one_line_names_the_install_command(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    for module in ("mediapipe", "pose_format"):
        (blocker / f"{module}.py").write_text("raise ImportError('not installed')\n")
    for source in (FOOTBALL, POSE_FILE):
        res = run_asl("extract", source, "--out", tmp_path / "out", env={"PYTHONPATH": f"{blocker}:{ROOT}"})
        assert res.returncode == EXIT_PROBLEM, res.stderr
        assert res.stderr.strip().count("\n") == 0 and 'pip install "asl-cli[video]"' in res.stderr


# --- resume, labels, workers ---------------------------------------------------------------------

@needs_video_extra
def test_a_rerun_skips_what_is_there_and_force_extracts_again(extracted, signs_folder, tmp_path):
    out = tmp_path / "set"
    shutil.copytree(extracted["out"], out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    res = invoke("extract", signs_folder, "--out", out, "--labels", "parent", "--participant", "7", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["extracted"], report["existing"], report["sequences"], report["signs"]) == (0, 3, 3, 2)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    pose_copy = signs_folder / "other" / "mediapipe.pose"
    res = invoke("extract", pose_copy, "--out", out, "--labels", "parent", "--participant", "7", "--force", "--json")
    assert json.loads(res.stdout)["extracted"] == 1
    target = out / extracted["rows"]["mediapipe.pose"]["path"]
    assert target.stat().st_mtime_ns != before[target]
    assert target.read_bytes() == (extracted["out"] / extracted["rows"]["mediapipe.pose"]["path"]).read_bytes()
    assert (out / "train.csv").read_text() == (extracted["out"] / "train.csv").read_text()  # nothing lost
    res = invoke("extract", pose_copy, "--out", out, "--model-complexity", "2")  # not mixed in silently
    assert res.exit_code == EXIT_USAGE and "was extracted with model_complexity 1" in error_line(res)


@needs_video_extra
def test_labels_from_folders_and_from_a_csv(extracted, tmp_path):
    import csv

    with open(extracted["out"] / "train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["sign"] for r in rows) == ["football", "other", "other"]
    assert json.loads((extracted["out"] / "sign_to_prediction_index_map.json").read_text()) == {"football": 0,
                                                                                                "other": 1}
    pose = tmp_path / "clips" / "a.pose"
    pose.parent.mkdir()
    shutil.copy(POSE_FILE, pose)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,sign,participant_id\nclips/a.pose,thankyou,31\n")
    out = tmp_path / "set"
    res = invoke("extract", "--labels", labels, "--out", out)  # no INPUT: the CSV's files
    assert res.exit_code == 0, res.output
    (row,) = list(csv.DictReader(open(out / "train.csv", newline="")))
    assert (row["sign"], row["participant_id"]) == ("thankyou", "31") and (out / row["path"]).is_file()
    other = tmp_path / "clips" / "b.pose"
    shutil.copy(_openpose_file(tmp_path / "x.pose"), other)
    res = invoke("extract", pose, other, "--labels", labels, "--out", tmp_path / "set2")
    assert res.exit_code == EXIT_DATA and "not listed in the labels file" in error_line(res)


@needs_pose_format
def test_the_same_content_twice_is_one_sequence_and_two_labels_for_it_an_error(tmp_path):
    for sign in ("hello", "bye"):
        (tmp_path / sign).mkdir()
        shutil.copy(POSE_FILE, tmp_path / sign / "x.pose")
    res = invoke("extract", tmp_path / "hello", tmp_path / "bye", "--labels", "parent", "--out", tmp_path / "out")
    assert res.exit_code == EXIT_DATA and "same content as" in error_line(res)
    shutil.copy(POSE_FILE, tmp_path / "hello" / "y.pose")
    res = invoke("extract", tmp_path / "hello", "--labels", "parent", "--out", tmp_path / "out", "--json")
    report = json.loads(res.stdout)
    assert res.exit_code == 0 and report["extracted"] == 1 and report["sequences"] == 1
    assert report["same_content"] == [{"file": str(tmp_path / "hello" / "y.pose"),
                                       "as": f"same content as {tmp_path / 'hello' / 'x.pose'}"}]


@needs_pose_format
def test_worker_processes_write_the_same_files(tmp_path):
    from pose_format import Pose

    pose = Pose.read(POSE_FILE.read_bytes())
    shorter = Pose(pose.header, pose.body[:100])  # another content: another sequence
    with open(tmp_path / "short.pose", "wb") as fh:
        shorter.write(fh)
    inputs = [POSE_FILE, tmp_path / "short.pose"]
    for workers in (1, 2):
        res = invoke("extract", *inputs, "--out", tmp_path / f"w{workers}", "--workers", workers)
        assert res.exit_code == 0, res.output
    w1, w2 = (sorted(p.relative_to(tmp_path / w) for p in (tmp_path / w).rglob("*.parquet")) for w in ("w1", "w2"))
    assert len(w1) == 2 and w1 == w2
    assert all((tmp_path / "w1" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes() for f in w1)


# --- the round trip: extract -> prepare -> train -> predict on the video --------------------------

@needs_video_extra
def test_a_labelled_folder_trains_and_predicts_on_the_video(extracted, tmp_path):
    out = extracted["out"]
    res = invoke("prepare", out, "--cache-dir", tmp_path / "cache")
    assert res.exit_code == 0, res.output
    assert "sequences 3  frames 290  classes 2" in res.output
    run = train_tiny_run(out, tmp_path, "data.val_fold=-1")  # one participant: no validation fold
    assert (run / "checkpoints" / "last.pt").is_file()
    parquet = out / extracted["rows"]["FOOTBALL.mp4"]["path"]
    res = invoke("predict", run, FOOTBALL, parquet, POSE_FILE, "--json")
    assert res.exit_code == 0, res.output
    video, from_file, pose = json.loads(res.stdout)["predictions"]
    assert (video["frames"], pose["frames"]) == (62, 170)
    assert {t["sign"] for t in video["top"]} == {"football", "other"}
    # the video's landmarks extracted in memory are those extract wrote: the same probabilities
    assert [t["sign"] for t in video["top"]] == [t["sign"] for t in from_file["top"]]
    assert np.allclose([t["probability"] for t in video["top"]], [t["probability"] for t in from_file["top"]],
                       atol=1e-6)


@needs_video_extra
def test_show_draws_a_video_and_a_pose_file(tmp_path):
    pytest.importorskip("matplotlib")
    for source, says in ((SIGNER, "8 of 58 frames"), (POSE_FILE, "8 of 170 frames")):
        res = invoke("show", source, "--out", tmp_path / f"{source.stem}.png")
        assert res.exit_code == 0, res.output
        assert says in res.output and (tmp_path / f"{source.stem}.png").stat().st_size > 10_000


# --- records, resume and bad input (found in review) ---------------------------------------------

def _pose_variant(dst: Path, *, frames: int | None = None, nobody: bool = False) -> Path:
    """The real .pose file, shortened to `frames` (another content) or with every confidence 0 (nobody)."""
    from pose_format import Pose

    pose = Pose.read(POSE_FILE.read_bytes())
    body = pose.body if frames is None else pose.body[:frames]
    if nobody:
        body.confidence[:] = 0
    with open(dst, "wb") as fh:
        Pose(pose.header, body).write(fh)
    return dst


def _train_rows(out: Path) -> list[dict]:
    import csv

    with open(out / "train.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@needs_pose_format
def test_a_rerun_without_labels_keeps_the_signs_and_train_csv_follows_the_record(tmp_path):
    (tmp_path / "hello").mkdir()
    _pose_variant(tmp_path / "hello" / "a.pose", frames=40)
    out = tmp_path / "set"
    assert invoke("extract", tmp_path / "hello", "--labels", "parent", "--out", out).exit_code == 0
    res = invoke("extract", tmp_path / "hello", "--out", out, "--force")  # a resume without --labels
    assert res.exit_code == 0, res.output
    assert [r["sign"] for r in _train_rows(out)] == ["hello"]
    assert [r["sign"] for r in _manifest(out)] == ["hello"]


@needs_pose_format
def test_a_rerun_without_participant_keeps_the_recorded_one(tmp_path):
    out = tmp_path / "set"
    clip = _pose_variant(tmp_path / "a.pose", frames=40)
    assert invoke("extract", clip, "--out", out, "--participant", "7").exit_code == 0
    (before,) = _manifest(out)
    res = invoke("extract", clip, "--out", out, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["existing"] == 1  # not moved to participant 0
    assert _manifest(out) == [before] and before["participant_id"] == "7"
    assert invoke("extract", POSE_FILE, "--out", out).exit_code == 0  # a new input without one: participant 0
    assert sorted(r["participant_id"] for r in _manifest(out)) == ["0", "7"]


@needs_pose_format
def test_bad_inputs_found_in_review_are_one_line_each(tmp_path):
    nobody = _pose_variant(tmp_path / "nobody.pose", nobody=True)
    res = invoke("extract", nobody, "--out", tmp_path / "a")
    assert res.exit_code == EXIT_DATA and "no person in any of its 170 frames" in error_line(res)
    # --skip-bad with only a bad input and its copy: nothing extracted is still an error
    shutil.copy(nobody, tmp_path / "copy.pose")
    res = invoke("extract", nobody, tmp_path / "copy.pose", "--out", tmp_path / "b", "--skip-bad")
    assert res.exit_code == EXIT_DATA and "no person" in error_line(res)
    # an output that is a file
    (tmp_path / "file").write_text("x")
    res = invoke("extract", POSE_FILE, "--out", tmp_path / "file")
    assert res.exit_code == EXIT_IO and "the output is a file" in error_line(res)
    # a labels CSV that gives one file two signs
    labels = tmp_path / "labels.csv"
    labels.write_text(f"file,sign\n{POSE_FILE},hello\n{POSE_FILE},bye\n")
    res = invoke("extract", POSE_FILE, "--labels", labels, "--out", tmp_path / "c")
    assert res.exit_code == EXIT_DATA and "line 3:" in error_line(res) and "(line 2: 'hello'" in error_line(res)


@needs_pose_format
def test_a_pose_file_longer_than_int16_frame_numbers_is_a_data_error(tmp_path, monkeypatch):
    import asl_cli.extract.pose_file as pose_file

    monkeypatch.setattr(pose_file, "MAX_FRAME_NUMBER", 99)  # the real limit, 32,767, is a 100 MB file
    res = invoke("extract", POSE_FILE, "--out", tmp_path / "a")
    assert res.exit_code == EXIT_DATA and "170 frames: asl-signs' int16 frame numbers hold at most 100" in error_line(res)


@needs_pose_format
def test_damaged_outputs_and_abandoned_temp_files_are_replaced_on_a_rerun(tmp_path):
    out = tmp_path / "set"
    assert invoke("extract", POSE_FILE, "--out", out).exit_code == 0
    (row,) = _manifest(out)
    target = out / row["path"]
    good = target.read_bytes()
    target.write_bytes(b"not parquet")  # damaged since
    dead = target.parent / f".{target.name}.tmp-{2 ** 22 + 7}-0e990786"  # a writer that is gone
    dead.write_bytes(b"half")
    res = invoke("extract", POSE_FILE, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["extracted"] == 1 and target.read_bytes() == good and not dead.exists()


@needs_video_extra
def test_forced_new_settings_on_part_of_a_folder_are_refused(extracted, tmp_path):
    out = tmp_path / "set"
    shutil.copytree(extracted["out"], out)  # two videos and a .pose file, Holistic's default settings
    res = invoke("extract", FOOTBALL, "--out", out, "--model-complexity", "2")
    assert res.exit_code == EXIT_USAGE and "rerun with those options, or add --force" in error_line(res)
    res = invoke("extract", FOOTBALL, "--out", out, "--force", "--model-complexity", "2")
    assert res.exit_code == EXIT_USAGE and "2 sequence(s)" in error_line(res) and "would keep the old ones" in error_line(res)


@needs_pose_format
def test_a_folder_of_pose_files_records_no_holistic_settings(tmp_path):
    out = tmp_path / "set"
    assert invoke("extract", POSE_FILE, "--out", out).exit_code == 0
    assert json.loads((out / "extract.json").read_text())["holistic"] is None  # Holistic never ran
    short = _pose_variant(tmp_path / "short.pose", frames=30)
    assert invoke("extract", short, "--out", out, "--model-complexity", "2").exit_code == 0  # binds nothing


@needs_video_extra
def test_worker_processes_extract_videos_to_the_same_bytes_as_one_process(extracted, tmp_path):
    # two videos in two processes, in the other order: a fresh Holistic graph per video, no state carried over
    out = tmp_path / "w2"
    res = invoke("extract", SIGNER, FOOTBALL, "--out", out, "--workers", 2, "--participant", 7)
    assert res.exit_code == 0, res.output
    for name in ("FOOTBALL.mp4", "test_video.mp4"):
        path = extracted["rows"][name]["path"]
        assert (out / path).read_bytes() == (extracted["out"] / path).read_bytes(), name


@needs_video_extra
def test_ctrl_c_with_workers_stops_them_and_the_record_matches_the_files(tmp_path):
    import signal
    import subprocess
    import time

    from kit import start_asl

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(6):  # distinct content (trailing bytes), each decodes as FOOTBALL.mp4
        (videos / f"c{i}.mp4").write_bytes(FOOTBALL.read_bytes() + bytes(16 + i))
    out = tmp_path / "set"
    proc = start_asl("extract", str(videos), "--out", str(out), "--workers", "2")
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("train_landmark_files/*/*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    assert "stopped by Ctrl-C: files extracted so far are kept" in err and "Traceback" not in err
    written = sorted(str(p.relative_to(out)) for p in out.glob("train_landmark_files/*/*.parquet"))
    assert 1 <= len(written) < 6 and written == sorted(r["path"] for r in _manifest(out))  # none after the record
    # a rerun goes on: what is there is kept, a stopped worker's temp file is swept
    res = invoke("extract", videos / "c0.mp4", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    assert not list(out.glob("train_landmark_files/*/.*.tmp-*"))
