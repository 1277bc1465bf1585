"""Inference: a checkpoint as a ready model, batch prediction over many files, evaluation metrics.

- `load_for_inference(RUN_DIR | FILE.pt) -> LoadedModel`: the model in eval mode on the CPU, the
  checkpoint's own resolved RunConfig (preprocessing `max_len`, data split) and its sign map.
  A run folder means its best checkpoint, else its last (`engine.run_dir.find_model_checkpoint`).
- `predict_features` / `predict_files`: probabilities for many sequences, batched by similar
  length with the data pipeline's `collate` (padding never changes a sequence's logits).
- `evaluate_split` / `evaluation_metrics`: top-1/top-5, per-sign accuracy, confusion matrix and the
  most confused sign pairs (pure numpy on labels and probabilities).

Every problem is one toolkit error naming the file: a bad checkpoint is CheckpointError (exit 4),
bad input data (unreadable parquet, video or .pose file, a data set whose sign map is not the checkpoint's)
DataError (exit 3); a video or .pose file without the `video` extra MissingExtraError (exit 1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from asl_cli.errors import CheckpointError, ConfigError, DataError


@dataclass
class LoadedModel:
    model: torch.nn.Module  # eval mode, on the requested device (CPU by default)
    config: Any  # asl_cli.config.RunConfig, as resolved when the run was trained
    sign_map: dict[str, int]
    checkpoint_path: Path
    run_dir: Path | None = None
    metrics: dict = field(default_factory=dict)  # validation metrics stored with the checkpoint

    @property
    def classes(self) -> list[str]:
        """Sign names ordered by their prediction index."""
        return sorted(self.sign_map, key=self.sign_map.__getitem__)

    @property
    def num_classes(self) -> int:
        return len(self.sign_map)

    @property
    def max_len(self) -> int:
        return int(self.config.data.max_len)


def load_for_inference(run_or_checkpoint: str | Path, device: str = "cpu") -> LoadedModel:
    """The checkpoint's model (eval mode, on `device`: cpu, cuda, auto), its resolved config and sign map.

    CheckpointError if the file is unusable. A `device` that is no device (exit 2) or a GPU this
    machine lacks (exit 5) is refused naming `--device`, the option of `asl evaluate` / `asl predict`.
    """
    from asl_cli.config import RunConfig
    from asl_cli.engine.checkpoint import load_checkpoint
    from asl_cli.engine.run_dir import find_model_checkpoint
    from asl_cli.model import build_model

    path, run = find_model_checkpoint(run_or_checkpoint)
    payload = load_checkpoint(path, map_location="cpu")
    try:
        cfg = RunConfig.from_dict(json.loads(payload["config"]), source=str(path))
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"checkpoint has no usable configuration ({exc})", path=path) from None
    sign_map = payload.get("sign_map")
    if not isinstance(sign_map, dict) or len(sign_map) < 2:
        raise CheckpointError("checkpoint has no sign map (class names)", path=path)
    sign_map = {str(k): int(v) for k, v in sign_map.items()}
    if sorted(sign_map.values()) != list(range(len(sign_map))):
        raise CheckpointError("checkpoint's sign map is not a 0..N-1 numbering", path=path)
    model = build_model(cfg.model, len(sign_map))
    try:
        model.load_state_dict(payload["model"])
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"weights do not fit the model in its own config ({first})", path=path) from None
    if device != "cpu":
        from asl_cli.engine.device import resolve_device
        model.to(resolve_device(device, option="--device"))
    model.eval()
    return LoadedModel(model=model, config=cfg, sign_map=sign_map, checkpoint_path=path,
                       run_dir=None if run is None else run.path,
                       metrics=dict(payload.get("metrics") or {}))


# --- prediction -------------------------------------------------------------------------------

def features_from_landmarks(landmarks: np.ndarray, max_len: int) -> np.ndarray:
    """`(T, 543, C>=2)` raw landmarks -> `(T', 708)` model features (the 118 points, preprocessed; x, y only)."""
    from asl_cli.data.preprocess import preprocess, select_points

    return preprocess(select_points(landmarks), max_len)


@torch.inference_mode()
def predict_features(model: torch.nn.Module, features: Sequence[np.ndarray], *, batch_size: int = 64,
                     probabilities: bool = True) -> np.ndarray:
    """`(N, classes)` probabilities (or logits) for N feature sequences, in input order.

    Sequences are sorted by length and batched with `collate`, so a batch pads little; the model
    masks padding, so a sequence's output does not depend on its batch-mates.
    """
    from asl_cli.data.dataset import collate

    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    n = len(features)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    order = np.argsort([f.shape[0] for f in features], kind="stable")
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    for start in range(0, n, batch_size):
        chunk = order[start:start + batch_size]
        batch = collate([{"features": features[i], "label": 0, "index": int(i)} for i in chunk])
        logits = model(batch["features"].to(device), batch["mask"].to(device)).float()
        values = torch.softmax(logits, dim=-1) if probabilities else logits
        if out is None:
            out = np.empty((n, values.shape[1]), dtype=np.float32)
        out[chunk] = values.cpu().numpy()
    return out


@dataclass
class FilePredictions:
    files: list[Path]  # the files that were read, in input order
    probabilities: np.ndarray  # (len(files), classes)
    frames: list[int]  # raw frames per file
    skipped: list[str] = field(default_factory=list)  # "path: reason" for each unreadable file


def predict_files(loaded: LoadedModel, files: Sequence[str | Path], *, batch_size: int = 64,
                  skip_bad: bool = False) -> FilePredictions:
    """Read, preprocess and classify landmark files: asl-signs parquet files (and their variants), videos
    and `.pose` files (landmarks extracted in memory: `asl_cli.extract.load.load_landmarks`).

    A bad file raises its DataError, unless `skip_bad`: then it is listed in `.skipped` and the
    others are still predicted. When no file at all could be read there is nothing to show, so
    `skip_bad` too raises one DataError: the first bad file's, with how many others failed.
    """
    from asl_cli.data.reader import COORDINATES
    from asl_cli.extract.load import load_landmarks

    good: list[Path] = []
    feats: list[np.ndarray] = []
    frames: list[int] = []
    skipped: list[str] = []
    first_error: DataError | None = None
    for f in files:
        try:
            landmarks = load_landmarks(f, columns=COORDINATES)  # what training reads: one rule
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            first_error = first_error or exc
            continue
        good.append(Path(f))
        frames.append(int(landmarks.shape[0]))
        feats.append(features_from_landmarks(landmarks, loaded.max_len))
    if first_error is not None and not good:
        raise all_unreadable(first_error, len(skipped))
    probs = predict_features(loaded.model, feats, batch_size=batch_size)
    if not good:
        probs = np.zeros((0, loaded.num_classes), dtype=np.float32)
    return FilePredictions(files=good, probabilities=probs, frames=frames, skipped=skipped)


def all_unreadable(first: DataError, count: int) -> DataError:
    """One line for `count` unreadable files: the first one's own error, and how many more failed."""
    if count == 1:
        return first
    return DataError(f"{first.message}; none of the {count} files could be read", path=first.path)


def top_k(probabilities: np.ndarray, classes: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Per row, the k most probable (sign, probability), best first."""
    k = max(1, min(int(k), probabilities.shape[1]))
    idx = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(row[j])) for j in cols] for row, cols in zip(probabilities, idx)]


# --- evaluation -------------------------------------------------------------------------------

def evaluation_metrics(labels: np.ndarray, probabilities: np.ndarray, classes: Sequence[str], *,
                       top_pairs: int = 10) -> dict[str, Any]:
    """Top-1/top-5, per-sign accuracy, the confusion matrix and the most confused pairs.

    The confusion matrix is restricted to the signs that occur as a label or a prediction (rows:
    true sign, columns: predicted sign), so it stays small for 250 classes and a small split.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = int(labels.shape[0])
    pred = probabilities.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    k5 = min(5, probabilities.shape[1]) if n else 1
    top5 = np.argsort(-probabilities, axis=1, kind="stable")[:, :k5] if n else np.zeros((0, 1), np.int64)
    correct1 = pred == labels
    correct5 = (top5 == labels[:, None]).any(axis=1)
    present = np.unique(np.concatenate([labels, pred])).astype(np.int64)
    pos = {int(c): i for i, c in enumerate(present)}
    matrix = np.zeros((len(present), len(present)), dtype=np.int64)
    for t, p in zip(labels.tolist(), pred.tolist()):
        matrix[pos[t], pos[p]] += 1
    per_sign = []
    for c in np.unique(labels):
        sel = labels == c
        per_sign.append({"sign": classes[int(c)], "index": int(c), "n": int(sel.sum()),
                         "correct": int(correct1[sel].sum()), "accuracy": float(correct1[sel].mean())})
    per_sign.sort(key=lambda r: (r["accuracy"], -r["n"], r["sign"]))
    pairs = [{"true": classes[int(present[i])], "predicted": classes[int(present[j])], "count": int(matrix[i, j])}
             for i, j in zip(*np.nonzero(matrix)) if i != j]
    pairs.sort(key=lambda r: (-r["count"], r["true"], r["predicted"]))
    return {
        "n": n,
        "top1": float(correct1.mean()) if n else None,
        "top5": float(correct5.mean()) if n else None,
        "correct": int(correct1.sum()),
        "per_sign": per_sign,
        "confused_pairs": pairs[:top_pairs],
        "confusion": {"signs": [classes[int(c)] for c in present], "matrix": matrix.tolist()},
    }


def _open_data(loaded: LoadedModel, data_dir: str | Path | None):
    """The prepared cache of `data_dir`, or of the run's own data (its data_dir or synthetic set)."""
    from asl_cli.data.cache import prepare
    from asl_cli.data.reader import SIGN_MAP, read_sign_map

    d = loaded.config.data
    # `--data` naming the folder the run trained on is still the run's own data (its limit applies).
    own = data_dir is None or _same_folder(data_dir, d.data_dir if d.data_dir is not None else
                                           _default_synth_dir(loaded.config.synth))
    if own and data_dir is None:
        data_dir = d.data_dir
        if data_dir is None:
            from asl_cli.data.synth import ensure_default_dataset
            data_dir = ensure_default_dataset(loaded.config.synth, progress=None)
    root = Path(data_dir)
    if (root / SIGN_MAP).is_file():  # refuse a foreign data set before preparing its cache
        check_sign_map(read_sign_map(root / SIGN_MAP), loaded, root)
    # The run's own limit reproduces its split; another data set is used whole.
    cache = prepare(root, d.cache_dir, skip_bad=d.skip_bad, limit=d.limit if own else 0, progress=False)
    check_sign_map(cache.sign_map, loaded, root)
    return cache, root


def _default_synth_dir(synth_cfg) -> Path:
    from asl_cli.data.synth import default_dataset_dir

    return default_dataset_dir(synth_cfg)


def _same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def check_sign_map(data_map: dict[str, int], loaded: LoadedModel, data_dir: Path) -> None:
    """DataError unless the data set numbers its signs exactly as the checkpoint does."""
    if data_map == loaded.sign_map:
        return
    missing = sorted(set(data_map) - set(loaded.sign_map))
    moved = sorted(s for s in set(data_map) & set(loaded.sign_map) if data_map[s] != loaded.sign_map[s])
    detail = (f"{len(missing)} sign(s) unknown to the model, e.g. {missing[0]!r}" if missing else
              f"{len(moved)} sign(s) numbered differently, e.g. {moved[0]!r}" if moved else
              f"{len(data_map)} signs vs the checkpoint's {len(loaded.sign_map)}")
    raise DataError(f"sign map disagrees with the checkpoint's ({detail}); evaluate with the data it was "
                    f"trained on", path=data_dir / "sign_to_prediction_index_map.json")


def evaluate_split(loaded: LoadedModel, data_dir: str | Path | None = None, *, split: str = "val",
                   batch_size: int = 64, top_pairs: int = 10) -> dict[str, Any]:
    """Metrics of the checkpoint on `split` ("val": the run's participant-held-out fold; "all")."""
    from asl_cli.data.dataset import train_val_indices
    from asl_cli.data.preprocess import preprocess

    if split not in ("val", "all"):
        raise ConfigError(f"--split must be 'val' or 'all', got {split!r}")
    cache, root = _open_data(loaded, data_dir)
    d = loaded.config.data
    if split == "all":
        indices = np.arange(len(cache), dtype=np.int64)
    else:
        if d.val_fold == -1:
            raise ConfigError("this run trained on every fold (data.val_fold = -1): it has no validation "
                              "split; use --split all")
        _, indices = train_val_indices(cache, d.n_folds, d.val_fold)
    # The cache already dropped all-NaN frames (as the training pipeline does).
    features = [preprocess(cache.points(int(i)), loaded.max_len, drop_nan_frames=False) for i in indices]
    probs = predict_features(loaded.model, features, batch_size=batch_size)
    if not len(indices):
        probs = np.zeros((0, loaded.num_classes), dtype=np.float32)
    labels = np.asarray(cache.labels)[indices]
    result = evaluation_metrics(labels, probs, loaded.classes, top_pairs=top_pairs)
    result.update({"checkpoint": str(loaded.checkpoint_path), "data_dir": str(root), "split": split,
                   "n_folds": d.n_folds, "val_fold": d.val_fold if split == "val" else None,
                   "sequence_ids": np.asarray(cache.sequence_ids)[indices].tolist(),
                   # one file of the split, for a next step such as `asl predict`
                   "example_file": str(Path(cache.data_dir) / str(cache.paths[int(indices[0])])) if len(indices)
                   else None})
    return result


def plot_confusion(confusion: dict[str, Any], out: str | Path, *, title: str = "") -> Path:
    """Write the (restricted) confusion matrix as a PNG; ImportError if matplotlib is missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signs, matrix = confusion["signs"], np.asarray(confusion["matrix"], dtype=np.int64)
    n = len(signs)
    size = min(16.0, max(4.0, 0.3 * n + 2))
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    if n <= 60:  # names stay readable up to about this many
        ax.set_xticks(range(n), signs, rotation=90, fontsize=7)
        ax.set_yticks(range(n), signs, fontsize=7)
        if n <= 20:
            for i, j in zip(*np.nonzero(matrix)):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted sign")
    ax.set_ylabel("true sign")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
