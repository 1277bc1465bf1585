"""Inference latency on CPU: batched vs one-by-one PyTorch, and the exported ONNX graph.

(a) one-by-one: `predict_features(model, [features])` per sequence (batch of 1)
(b) batched:    `predict_features(model, all_features, batch_size=64)`: length-sorted batches
                built with the project's `collate` (what `asl predict FILE...` does)
(c) ONNX:       the raw-landmark graph of `asl export` (preprocessing inside), onnxruntime CPU,
                one sequence per call; file size; also on a 384-frame sequence (the longest a
                max_len-384 model looks at)
plus the cost of reading + preprocessing one parquet file (the same in (a) and (b)).

Model: the winner's size (dim 192, 2 block groups, 250 classes, max_len 384), untrained weights
(latency and size do not depend on the values), or `--checkpoint` for a trained run. Inputs: the
real sample's 168 sequences (2-108 frames, median 14). One thread (torch and onnxruntime), rounds
alternating (a)/(b); the best round of each is reported, with the median, and the ratio.
Usage: python benchmarks/bench_inference.py [--checkpoint RUN_OR_PT] [--rounds 5]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/asl-signs-sample"


def winner_sized(sample: Path):
    """An untrained dim-192, 2-block, 250-class model wrapped as a LoadedModel."""
    from asl_cli.config import load_config
    from asl_cli.serve.inference import LoadedModel
    from asl_cli.model import build_model

    cfg = load_config("cpu", ["model.dim=192", "model.blocks=2", "data.max_len=384"])
    sign_map = json.loads((sample / "sign_to_prediction_index_map.json").read_text())
    model = build_model(cfg.model, len(sign_map)).eval()
    return LoadedModel(model=model, config=cfg, sign_map=sign_map, checkpoint_path=Path("untrained"))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from asl_cli.data.reader import read_landmarks
    from asl_cli.serve.inference import features_from_landmarks, load_for_inference, predict_features

    loaded = load_for_inference(args.checkpoint) if args.checkpoint else winner_sized(args.data)
    files = sorted((args.data / "train_landmark_files").rglob("*.parquet"))
    n = len(files)
    t_cold = timed(lambda: [read_landmarks(f) for f in files])  # first pass: file system cache, pyarrow start
    raw = [read_landmarks(f) for f in files]
    t_read = min(timed(lambda: [read_landmarks(f) for f in files]) for _ in range(3))
    t_prep = timed(lambda: [features_from_landmarks(x, loaded.max_len) for x in raw])
    feats = [features_from_landmarks(x, loaded.max_len) for x in raw]
    lengths = [f.shape[0] for f in feats]
    m = loaded.model
    print(f"model: dim {loaded.config.model.dim}, blocks {loaded.config.model.blocks}, {loaded.num_classes} classes, "
          f"max_len {loaded.max_len} ({'checkpoint ' + str(args.checkpoint) if args.checkpoint else 'untrained'})")
    print(f"inputs: {n} real sequences, {min(lengths)}-{max(lengths)} frames, median {int(np.median(lengths))}; "
          f"1 thread")

    predict_features(m, feats[:8])  # warm-up
    one, batched = [], []
    for _ in range(args.rounds):
        one.append(timed(lambda: [predict_features(m, [f]) for f in feats]) / n * 1000)
        batched.append(timed(lambda: predict_features(m, feats, batch_size=64)) / n * 1000)
    a, b = min(one), min(batched)
    print(f"read parquet        {t_read / n * 1000:7.2f} ms/file (best of 3 warm passes; first pass "
          f"{t_cold / n * 1000:.2f})")
    print(f"preprocess          {t_prep / n * 1000:7.2f} ms/sequence")
    print(f"(a) one-by-one      {a:7.2f} ms/sequence (median {statistics.median(one):.2f})")
    print(f"(b) batched, 64     {b:7.2f} ms/sequence (median {statistics.median(batched):.2f})")
    print(f"    b is {a / b:.1f}x faster than a")

    try:
        from asl_cli.serve.export import export_onnx, require_onnx, _session

        require_onnx()
    except Exception as exc:  # the onnx extra is optional
        print(f"(c) ONNX skipped: {exc}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(loaded, Path(tmp) / "model.onnx", example=raw[0])
        size = path.stat().st_size
        sess = _session(path)
        for x in raw[:8]:
            sess.run(None, {"landmarks": x})
        rounds = []
        for _ in range(args.rounds):
            rounds.append(timed(lambda: [sess.run(None, {"landmarks": x}) for x in raw]) / n * 1000)
        from asl_cli.serve.export import synthetic_landmarks

        long = synthetic_landmarks(np.random.default_rng(0), 384)
        sess.run(None, {"landmarks": long})
        long_runs = [timed(lambda: sess.run(None, {"landmarks": long})) * 1000 for _ in range(10)]
    print(f"(c) ONNX raw graph  {min(rounds):7.2f} ms/sequence incl. preprocessing (median "
          f"{statistics.median(rounds):.2f}); 384 frames: {min(long_runs):.1f} ms (median "
          f"{statistics.median(long_runs):.1f}); file {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
