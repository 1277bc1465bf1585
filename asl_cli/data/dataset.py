"""Datasets and batching: cache -> (augment) -> preprocess -> padded batches of similar length.

- `SignDataset[(position, epoch)]` slices one sequence from the prepared cache, augments it (training
  only) with a generator seeded from (seed, epoch, sequence index), and preprocesses it exactly once.
  The epoch travels inside the index tuple, so randomness is right even in persistent workers.
- `collate` pads to the batch's longest sequence rounded up to `bucket_step` (few distinct shapes
  for cuDNN autotuning and torch.compile), or to a fixed `pad_to`.
- `LengthBucketBatchSampler` groups similar lengths; `RandomBatchSampler` does not. Both are
  deterministic per (seed, epoch) and resumable mid-epoch (`state_dict` / `load_state_dict`).
- `participant_folds` / `train_val_indices`: participant-grouped k-fold splits.
- `build_loaders(cfg, cache)` wires it all from a `RunConfig`.

torch is imported only where tensors are made (`collate`, `build_loaders`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from asl_cli.data.landmarks import NUM_FEATURES
from asl_cli.data.preprocess import preprocess
from asl_cli.errors import ConfigError

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SignDataset:
    """Samples `indices` (sequence numbers in `cache`) of a prepared cache.

    `dataset[(position, epoch)]` (or `dataset[position]`, epoch 0) returns
    `{"features": float32 (T', 708), "label": int, "index": sequence number in the cache}`.
    """

    def __init__(self, cache, indices: Sequence[int] | np.ndarray, *, max_len: int,
                 augment: Augment | None = None, seed: int = 0):
        self.cache = cache
        self.indices = np.asarray(indices, dtype=np.int64)
        self.max_len = int(max_len)
        self.augment = augment
        self.seed = int(seed)
        self.labels = np.asarray(cache.labels)[self.indices]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """Stored frame counts (before augmentation, not truncated)."""
        return np.asarray(self.cache.lengths)[self.indices]

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any]:
        position, epoch = item if isinstance(item, tuple) else (item, 0)
        index = int(self.indices[position])
        points = self.cache.points(index)
        # All-NaN frames were dropped when the cache was built (before augmentation, as the
        # winner does); frames an augmentation masks out stay, as zero rows.
        if self.augment is not None:
            points = self.augment(points, sample_rng(self.seed, int(epoch), index))
        features = preprocess(points, self.max_len, drop_nan_frames=False)
        return {"features": features, "label": int(self.labels[position]), "index": index}


_PHILOX = np.random.Philox(0)
_SAMPLE_GEN = np.random.Generator(_PHILOX)
_STATE = _PHILOX.state  # a template the setter copies from: key and counter rewritten per sample
_KEY = _STATE["state"]["key"]


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one (seed, epoch, sample): a counter-based Philox stream keyed by them.

    Philox streams with different keys are independent by design, so re-keying one generator per
    process is as good as building a new one, at a fifth of the cost (building a SeedSequence per
    sample was the largest single cost of the augmented pipeline). The returned generator is
    shared: use it before asking for the next sample's (one thread at a time).
    """
    _KEY[0] = index & 0xFFFFFFFFFFFFFFFF
    _KEY[1] = ((seed & 0xFFFFFFFF) << 32) | (epoch & 0xFFFFFFFF)
    _STATE["state"]["counter"][:] = 0
    _STATE["buffer_pos"] = 4  # drop buffered output of the previous sample
    _STATE["has_uint32"] = 0
    _PHILOX.state = _STATE
    return _SAMPLE_GEN


def padded_length(longest: int, *, bucket_step: int, max_len: int | None = None) -> int:
    """`longest` rounded up to a multiple of `bucket_step`, capped at `max_len`."""
    step = max(1, int(bucket_step))
    length = -(-int(longest) // step) * step
    return min(length, int(max_len)) if max_len else length


def collate(samples: list[dict[str, Any]], *, bucket_step: int = 1, pad_to: int | None = None,
            max_len: int | None = None) -> dict[str, Any]:
    """Stack samples (`SignDataset` items) into zero-padded tensors.

    Returns features (B, L, 708) float32, mask (B, L) bool (True = valid frame), lengths (B,),
    labels (B,), index (B,) (int64). L is the longest sample rounded up to `bucket_step` and capped
    at `max_len`, or exactly `pad_to` when given.

    The five tensors are views of ONE block of memory: a DataLoader worker hands a batch to the
    training process through one shared-memory segment instead of five, and each segment costs a
    socket round trip to the worker (benchmarks/bench_loader.py).
    """
    import torch

    b = len(samples)
    lengths = np.fromiter((s["features"].shape[0] for s in samples), dtype=np.int64, count=b)
    longest = int(lengths.max())
    L = int(pad_to) if pad_to else padded_length(longest, bucket_step=bucket_step, max_len=max_len)
    if longest > L:
        raise ValueError(f"a sample has {longest} frames, more than the padded length {L}")
    # Layout: int64 lengths, labels, index | float32 features | bool mask (each part stays aligned).
    meta_bytes, feature_bytes = 3 * b * 8, b * L * NUM_FEATURES * 4
    block = torch.empty(meta_bytes + feature_bytes + b * L, dtype=torch.uint8)  # every byte is written below
    meta = block[:meta_bytes].view(torch.int64).view(3, b)
    features = block[meta_bytes: meta_bytes + feature_bytes].view(torch.float32).view(b, L, NUM_FEATURES)
    mask = block[meta_bytes + feature_bytes:].view(torch.bool).view(b, L)
    meta_np, features_np = meta.numpy(), features.numpy()
    meta_np[0] = lengths
    meta_np[1] = [s["label"] for s in samples]
    meta_np[2] = [s["index"] for s in samples]
    for i, s in enumerate(samples):
        n = lengths[i]
        features_np[i, :n] = s["features"]
        features_np[i, n:] = 0
    mask.numpy()[:] = np.arange(L) < lengths[:, None]
    return {"features": features, "mask": mask, "lengths": meta[0], "labels": meta[1], "index": meta[2]}


# --- batch samplers ---------------------------------------------------------------------------

class ResumableBatchSampler:
    """Yields this epoch's `batches()` as lists of `(position, epoch)`, resumable mid-epoch.

    Subclasses define `batches(epoch)` (deterministic per epoch) and their state's other fields.
    `state_dict(batches_done)` records the epoch and how many of its batches were consumed; pass
    the consumed count yourself when a DataLoader prefetches (num_workers > 0), since the sampler
    only knows how many batches it has handed out. After `load_state_dict` the next iteration
    continues at that batch of that epoch.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self._skip = 0  # batches to skip at the start of the next iteration (resume)
        self._handed_out = 0

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self._skip = 0  # a resume position belongs to the epoch it was saved in
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        self._handed_out = skip
        for batch in self.batches(epoch)[skip:]:
            self._handed_out += 1
            yield [(int(i), epoch) for i in batch]

    def _position(self, batches_done: int | None) -> dict[str, int]:
        done = self._handed_out if batches_done is None else int(batches_done)
        return {"epoch": self.epoch, "batches_done": done}

    def _restore_position(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self._skip = int(state["batches_done"])
        self._handed_out = self._skip


class _EpochBatchSampler(ResumableBatchSampler):
    """Batches of one split, deterministic per (seed, epoch); subclasses choose the order."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int, drop_last: bool):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        super().__init__()
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)

    def _order(self, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This epoch's batches (positions), in the order they will be yielded."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        order = self._order(rng)
        cut = (self.n // self.batch_size) * self.batch_size if self.drop_last else self.n
        batches = [order[i: i + self.batch_size] for i in range(0, cut, self.batch_size)]
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def state_dict(self, batches_done: int | None = None) -> dict[str, int]:
        return self._position(batches_done) | {"seed": self.seed, "n": self.n, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if int(state.get("n", self.n)) != self.n or int(state.get("batch_size", self.batch_size)) != self.batch_size:
            raise ConfigError(f"sampler state is for {state.get('n')} samples in batches of "
                              f"{state.get('batch_size')}, not {self.n} in batches of {self.batch_size}")
        self.seed = int(state.get("seed", self.seed))
        self._restore_position(state)


class LengthBucketBatchSampler(_EpochBatchSampler):
    """Batches of similar length, in shuffled order.

    Shuffled: the epoch's random permutation is cut into pools of `pool_batches` batches, each pool
    is sorted by length and cut into batches, and the batch order is shuffled. Batches differ from
    epoch to epoch while lengths within a batch stay close. Not shuffled: sorted by length.
    """

    def __init__(self, lengths: Sequence[int] | np.ndarray, batch_size: int, *, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False, pool_batches: int = 64):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        super().__init__(len(self.lengths), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.pool = max(1, int(pool_batches)) * self.batch_size

    def _order(self, rng):
        if rng is None:
            return np.argsort(self.lengths, kind="stable")
        perm = rng.permutation(self.n)
        pools = [perm[i: i + self.pool] for i in range(0, self.n, self.pool)]
        return np.concatenate([p[np.argsort(self.lengths[p], kind="stable")] for p in pools])


class RandomBatchSampler(_EpochBatchSampler):
    """Plain batches: a random permutation (or file order) cut into batches."""

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        super().__init__(n, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def _order(self, rng):
        return rng.permutation(self.n) if rng is not None else np.arange(self.n)


# --- folds ------------------------------------------------------------------------------------

def participant_folds(participants: Sequence[int] | np.ndarray, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold id (0..n_folds-1) per sequence; a participant's sequences all share one fold.

    Participants are taken largest first (ties in a seeded random order) and each goes to the
    fold with the fewest sequences so far, which balances fold sizes.
    """
    participants = np.asarray(participants)
    ids, inverse, counts = np.unique(participants, return_inverse=True, return_counts=True)
    if n_folds < 2:
        raise ConfigError(f"data.n_folds must be at least 2, got {n_folds}")
    if len(ids) < n_folds:
        raise ConfigError(f"data.n_folds = {n_folds}: {n_folds} participant-grouped folds need at least "
                          f"{n_folds} participants; the data has {len(ids)} (set data.n_folds to at most "
                          f"{len(ids)})" if len(ids) >= 2 else
                          f"data.n_folds = {n_folds}: participant-grouped folds need at least 2 participants; "
                          f"the data has {len(ids)} (set data.val_fold=-1 to train without validation)")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(ids))
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    fold_of = np.empty(len(ids), dtype=np.int64)
    sizes = np.zeros(n_folds, dtype=np.int64)
    for p in order:
        f = int(np.argmin(sizes))
        fold_of[p] = f
        sizes[f] += counts[p]
    return fold_of[inverse]


def train_val_indices(cache, n_folds: int, val_fold: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) sequence indices; `val_fold=-1`: everything trains, no validation.

    The split depends only on the participants and `seed` (not the training seed), so runs that
    differ in their training seed validate on the same participants.
    """
    n = len(cache)
    if val_fold == -1:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if not 0 <= val_fold < n_folds:
        raise ConfigError(f"data.val_fold {val_fold} is not in 0..{n_folds - 1} (or -1 for no validation)")
    folds = participant_folds(cache.participants, n_folds, seed)
    return np.flatnonzero(folds != val_fold).astype(np.int64), np.flatnonzero(folds == val_fold).astype(np.int64)


# --- loaders ----------------------------------------------------------------------------------

def build_loaders(cfg, cache, *, augment: Augment | None = None, device_type: str = "cpu",
                  num_workers: int | None = None):
    """(train_loader, val_loader or None) from a RunConfig; `augment` is used for training only.

    `train_loader.batch_sampler` is the sampler to `set_epoch` and checkpoint. `num_workers`
    overrides `cfg.loader.num_workers`, whose -1 (auto) is otherwise worked out here
    (`asl_cli.engine.parallelism`; the trainer passes the count it planned with its threads).
    """
    from torch.utils.data import DataLoader

    d, ld = cfg.data, cfg.loader
    train_idx, val_idx = train_val_indices(cache, d.n_folds, d.val_fold)
    if len(train_idx) == 0:
        raise ConfigError("no training sequences (the validation fold holds them all)")
    batch_size, seed = cfg.train.batch_size, cfg.train.seed
    capped = np.minimum(np.asarray(cache.lengths), d.max_len)

    def sampler(idx: np.ndarray, shuffle: bool):
        if d.length_bucketing:
            return LengthBucketBatchSampler(capped[idx], batch_size, shuffle=shuffle, seed=seed)
        return RandomBatchSampler(len(idx), batch_size, shuffle=shuffle, seed=seed)

    collate_fn = partial(collate, bucket_step=d.bucket_step, max_len=d.max_len,
                         pad_to=None if d.length_bucketing else d.max_len)
    if num_workers is None:
        from asl_cli.engine.parallelism import plan_here
        num_workers = plan_here(ld.num_workers, device_type=device_type).num_workers
    workers = int(num_workers)
    kwargs: dict[str, Any] = dict(num_workers=workers, collate_fn=collate_fn,
                                  pin_memory=bool(ld.pin_memory and device_type == "cuda"))
    if workers > 0:
        kwargs.update(persistent_workers=bool(ld.persistent_workers), prefetch_factor=ld.prefetch_factor)

    train_ds = SignDataset(cache, train_idx, max_len=d.max_len, augment=augment, seed=seed)
    train_loader = DataLoader(train_ds, batch_sampler=sampler(train_idx, True), **kwargs)
    val_loader = None
    if len(val_idx):
        val_ds = SignDataset(cache, val_idx, max_len=d.max_len, augment=None, seed=seed)
        val_loader = DataLoader(val_ds, batch_sampler=sampler(val_idx, False), **kwargs)
    return train_loader, val_loader
