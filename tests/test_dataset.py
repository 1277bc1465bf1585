"""Dataset, collate, batch samplers, participant folds and the loaders built from a RunConfig."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asl_cli.config import RunConfig
from asl_cli.data.dataset import (LengthBucketBatchSampler, RandomBatchSampler, SignDataset, build_loaders,
                                  collate, padded_length, participant_folds, train_val_indices)
from asl_cli.data.preprocess import preprocess
from asl_cli.errors import ConfigError


def fake_sample(t: int, label: int = 0, index: int = 0) -> dict:
    f = np.random.default_rng(t).normal(size=(t, 708)).astype(np.float32) + 1.0  # never exactly 0
    return {"features": f, "label": label, "index": index}


# --- collate ----------------------------------------------------------------------------------

def test_collate_shapes_mask_and_padding():
    samples = [fake_sample(3, 1, 10), fake_sample(17, 2, 11), fake_sample(5, 3, 12)]
    b = collate(samples, bucket_step=8)
    assert b["features"].shape == (3, 24, 708) and b["features"].dtype == torch.float32
    assert b["mask"].dtype == torch.bool and b["mask"].shape == (3, 24)
    assert b["lengths"].tolist() == [3, 17, 5] and b["mask"].sum(1).tolist() == [3, 17, 5]
    assert b["labels"].tolist() == [1, 2, 3] and b["index"].tolist() == [10, 11, 12]
    for i, s in enumerate(samples):
        n = len(s["features"])
        assert b["mask"][i, :n].all() and not b["mask"][i, n:].any()
        np.testing.assert_array_equal(b["features"][i, :n].numpy(), s["features"])
        assert (b["features"][i, n:] == 0).all()
    assert collate(samples, bucket_step=8, max_len=20)["features"].shape[1] == 20
    assert collate(samples, bucket_step=1)["features"].shape[1] == 17
    assert collate(samples, bucket_step=8, pad_to=64)["features"].shape[1] == 64
    with pytest.raises(ValueError):
        collate(samples, bucket_step=1, pad_to=10)


def test_collate_builds_one_block_a_worker_hands_over_as_one_segment():
    b = collate([fake_sample(3, 1, 10), fake_sample(9, 2, 11)], bucket_step=4)
    blocks = {t.untyped_storage().data_ptr() for t in b.values()}
    assert len(blocks) == 1  # one shared-memory segment per batch, not five
    b["labels"].add_(100)  # views of disjoint parts: writing one field leaves the others alone
    assert b["labels"].tolist() == [101, 102] and b["index"].tolist() == [10, 11]
    assert b["lengths"].tolist() == [3, 9] and b["mask"].sum().item() == 12


def test_padded_length():
    assert [padded_length(n, bucket_step=16) for n in (1, 16, 17, 33)] == [16, 16, 32, 48]
    assert padded_length(380, bucket_step=16, max_len=384) == 384
    assert padded_length(383, bucket_step=64, max_len=384) == 384


# --- samplers ---------------------------------------------------------------------------------

def lengths_like_asl(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(30), 0.8, size=n).astype(int), 1, 384)


def padding_fraction(batches, lengths, step=8):
    pad = total = 0
    for batch in batches:
        L = padded_length(max(lengths[batch]), bucket_step=step)
        pad += L * len(batch) - lengths[batch].sum()
        total += L * len(batch)
    return pad / total


def test_bucketing_keeps_lengths_close():
    lengths = lengths_like_asl()
    bucket = LengthBucketBatchSampler(lengths, 64, shuffle=True, seed=1)
    plain = RandomBatchSampler(len(lengths), 64, shuffle=True, seed=1)
    b_batches, p_batches = bucket.batches(0), plain.batches(0)
    # Padding to the batch maximum (step 1): mostly from the long tail when bucketed.
    assert padding_fraction(b_batches, lengths, step=1) < 0.15
    assert padding_fraction(p_batches, lengths, step=1) > 0.6
    assert np.median([np.ptp(lengths[b]) for b in b_batches]) <= 2
    # Every sample exactly once per epoch; batch order is shuffled (not sorted by length).
    for batches in (b_batches, p_batches):
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(len(lengths)))
    maxima = [lengths[b].max() for b in b_batches]
    assert maxima != sorted(maxima)
    assert len(bucket) == len(b_batches) == 47


def test_sampler_yields_epoch_and_is_deterministic():
    lengths = lengths_like_asl(500)
    s = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=3)
    s.set_epoch(4)
    first = list(s)
    assert all(e == 4 for batch in first for _, e in batch)
    again = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=3)
    again.set_epoch(4)
    assert list(again) == first
    again.set_epoch(5)
    assert [[i for i, _ in b] for b in again] != [[i for i, _ in b] for b in first]
    other_seed = LengthBucketBatchSampler(lengths, 32, shuffle=True, seed=4)
    other_seed.set_epoch(4)
    assert list(other_seed) != first


@pytest.mark.parametrize("cls", ["bucket", "plain"])
def test_sampler_state_round_trip(cls):
    lengths = lengths_like_asl(300)

    def make():
        if cls == "bucket":
            return LengthBucketBatchSampler(lengths, 16, shuffle=True, seed=7)
        return RandomBatchSampler(len(lengths), 16, shuffle=True, seed=7)

    s = make()
    s.set_epoch(2)
    full = list(s)
    it = iter(s)
    consumed = [next(it) for _ in range(5)]
    assert consumed == full[:5]
    state = s.state_dict()
    assert state["epoch"] == 2 and state["batches_done"] == 5
    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # the trainer sets the epoch again on resume: the position is kept
    assert list(resumed) == full[5:]
    assert list(resumed) == full  # the following pass over that epoch is complete again
    resumed.load_state_dict(s.state_dict(batches_done=3))  # explicit count (prefetching loaders)
    resumed.set_epoch(3)  # a different epoch starts from its beginning
    assert len(list(resumed)) == len(full)
    with pytest.raises(ConfigError):
        RandomBatchSampler(10, 4).load_state_dict(state)


def test_unshuffled_and_drop_last():
    lengths = np.array([5, 1, 4, 2, 3])
    s = LengthBucketBatchSampler(lengths, 2, shuffle=False)
    assert [[i for i, _ in b] for b in s] == [[1, 3], [4, 2], [0]]
    s = LengthBucketBatchSampler(lengths, 2, shuffle=True, drop_last=True)
    assert len(s) == 2 and all(len(b) == 2 for b in s)
    assert [[i for i, _ in b] for b in RandomBatchSampler(5, 2, shuffle=False)] == [[0, 1], [2, 3], [4]]


# --- folds ------------------------------------------------------------------------------------

def test_participant_folds_grouped_and_balanced():
    rng = np.random.default_rng(0)
    participants = rng.choice(np.arange(1000, 1021), size=4000, p=rng.dirichlet(np.ones(21) * 5))
    folds = participant_folds(participants, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for p in np.unique(participants):
        assert len(set(folds[participants == p].tolist())) == 1  # never split
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= np.bincount(np.unique(participants, return_inverse=True)[1]).max()
    np.testing.assert_array_equal(folds, participant_folds(participants, 5, seed=0))
    with pytest.raises(ConfigError, match="at least 5 participants") as info:
        participant_folds(np.array([1, 2, 3, 1]), 5)
    # the message names the setting to change (as `--set data.n_folds=...` spells it)
    assert str(info.value).startswith("data.n_folds = 5: ") and "set data.n_folds to at most 3" in str(info.value)
    with pytest.raises(ConfigError, match="data.n_folds must be at least 2"):
        participant_folds(np.array([1, 2]), 1)
    with pytest.raises(ConfigError, match="data.val_fold=-1"):  # one participant: no fold count works
        participant_folds(np.array([1, 1]), 2)


def test_train_val_indices(sample_cache):
    train, val = train_val_indices(sample_cache, 5, 0)
    assert len(train) + len(val) == len(sample_cache) and len(val) > 0
    assert not set(sample_cache.participants[train]) & set(sample_cache.participants[val])
    everything, none = train_val_indices(sample_cache, 5, -1)
    assert len(everything) == len(sample_cache) and len(none) == 0
    with pytest.raises(ConfigError):
        train_val_indices(sample_cache, 5, 5)


# --- dataset and loaders ----------------------------------------------------------------------

class RecordingAugment:
    """Adds noise drawn from the generator (a shift alone would be undone by the centring); counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, points, rng):
        self.calls += 1
        return points + rng.normal(0, 0.01, size=points.shape).astype(np.float32)


def test_dataset_item_and_seeding(sample_cache):
    idx = np.array([4, 9, 20])
    plain = SignDataset(sample_cache, idx, max_len=8)
    item = plain[(1, 0)]
    assert item["index"] == 9 and item["label"] == int(sample_cache.labels[9])
    np.testing.assert_array_equal(item["features"], preprocess(sample_cache.points(9), 8))
    aug = SignDataset(sample_cache, idx, max_len=8, augment=RecordingAugment(), seed=1)
    a, b, c = aug[(1, 0)], aug[(1, 0)], aug[(1, 1)]
    np.testing.assert_array_equal(a["features"], b["features"])  # same (seed, epoch, index)
    assert not np.array_equal(a["features"], c["features"])  # another epoch, other noise
    assert not np.array_equal(a["features"], item["features"])
    assert aug.augment.calls == 3


def test_loaders_from_config(sample_cache):
    cfg = RunConfig()
    cfg.data.max_len, cfg.data.bucket_step, cfg.data.n_folds, cfg.data.val_fold = 32, 8, 4, 1
    cfg.train.batch_size, cfg.train.seed = 16, 5
    aug = RecordingAugment()
    train, val = build_loaders(cfg, sample_cache, augment=aug, device_type="cpu")
    assert train.dataset.augment is aug and val.dataset.augment is None
    assert not train.pin_memory and train.num_workers == 0
    sampler = train.batch_sampler
    assert isinstance(sampler, LengthBucketBatchSampler)
    # Validation: every sample once, no augmentation, features exactly as preprocess gives them.
    seen = []
    for batch in val:
        for row, i in enumerate(batch["index"].tolist()):
            n = int(batch["lengths"][row])
            np.testing.assert_array_equal(batch["features"][row, :n].numpy(),
                                          preprocess(sample_cache.points(i), 32, drop_nan_frames=False))
        seen += batch["index"].tolist()
        assert batch["features"].shape[1] % 8 == 0 or batch["features"].shape[1] == 32
    assert aug.calls == 0
    assert sorted(seen) == sorted(val.dataset.indices.tolist())
    sampler.set_epoch(3)
    n_train = sum(len(b["labels"]) for b in train)
    assert n_train == len(train.dataset) and aug.calls == n_train
    assert not set(sample_cache.participants[seen]) & set(sample_cache.participants[train.dataset.indices])


def test_loaders_without_bucketing_or_validation(sample_cache):
    cfg = RunConfig()
    cfg.data.max_len, cfg.data.length_bucketing, cfg.data.val_fold = 48, False, -1
    cfg.train.batch_size = 32
    train, val = build_loaders(cfg, sample_cache)
    assert val is None and isinstance(train.batch_sampler, RandomBatchSampler)
    shapes = {tuple(b["features"].shape[1:]) for b in train}
    assert shapes == {(48, 708)}


def test_loader_with_workers(sample_cache):
    cfg = RunConfig()
    cfg.data.max_len, cfg.data.val_fold = 16, 0
    cfg.loader.num_workers, cfg.loader.persistent_workers, cfg.loader.pin_memory = 1, True, True
    cfg.train.batch_size = 64
    train, val = build_loaders(cfg, sample_cache, augment=RecordingAugment(), device_type="cpu")
    assert train.persistent_workers and not train.pin_memory and train.prefetch_factor == 2
    train.batch_sampler.set_epoch(0)
    e0 = [b["features"] for b in train]
    train.batch_sampler.set_epoch(1)
    e1 = [b["features"] for b in train]
    train.batch_sampler.set_epoch(0)
    e0_again = [b["features"] for b in train]
    # Persistent workers still see the epoch (it travels with each index).
    assert all(torch.equal(a, b) for a, b in zip(e0, e0_again))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(e0, e1))
    # A batch from a worker (one shared-memory block) equals the one built in this process.
    cfg.loader.num_workers = 0
    local, _ = build_loaders(cfg, sample_cache, augment=RecordingAugment(), device_type="cpu")
    local.batch_sampler.set_epoch(0)
    train.batch_sampler.set_epoch(0)
    for mine, theirs in zip(local, train):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_sample_rng_is_keyed_by_seed_epoch_index_and_forgets_earlier_use():
    from asl_cli.data.dataset import sample_rng

    first = sample_rng(7, 2, 11).standard_normal(6)
    sample_rng(7, 2, 11).random(3)  # partly consumed: must not leak into the next call
    assert np.array_equal(sample_rng(7, 2, 11).standard_normal(6), first)
    others = [sample_rng(8, 2, 11), sample_rng(7, 3, 11), sample_rng(7, 2, 12)]
    for gen in others:
        assert not np.array_equal(gen.standard_normal(6), first)


# --- the sample path: augment, then preprocess, then collate (numpy, bitwise) -----------------------

@pytest.mark.parametrize("profile", ["seed", "winner"])
def test_a_sample_is_its_augmentation_then_the_preprocessing(sample_cache, profile):
    from asl_cli.augment.pipeline import ASLAugmentations
    from asl_cli.config import AugConfig
    from asl_cli.data.dataset import sample_rng

    aug = ASLAugmentations(AugConfig(profile=profile), max_len=64)
    train = SignDataset(sample_cache, np.arange(8), max_len=64, augment=aug, seed=3)
    val = SignDataset(sample_cache, np.arange(8), max_len=64, seed=3)
    for i in range(8):
        want = preprocess(aug(sample_cache.points(i), sample_rng(3, 2, i)), 64, drop_nan_frames=False)
        np.testing.assert_array_equal(train[(i, 2)]["features"], want)
        np.testing.assert_array_equal(val[i]["features"],
                                      preprocess(sample_cache.points(i), 64, drop_nan_frames=False))


@pytest.mark.parametrize("augmented", [True, False])
def test_a_loader_batch_is_the_batch_of_its_samples(sample_cache, augmented):
    """What the DataLoader hands over == `collate` of the samples one by one, bitwise; padding zero."""
    from asl_cli.augment.pipeline import ASLAugmentations
    from asl_cli.config import AugConfig

    cfg = RunConfig()
    cfg.data.max_len, cfg.data.bucket_step, cfg.data.val_fold = 48, 8, -1
    cfg.train.batch_size, cfg.train.seed = 12, 5
    aug = ASLAugmentations(AugConfig(), max_len=48) if augmented else None
    train, _ = build_loaders(cfg, sample_cache, augment=aug, num_workers=0)
    train.batch_sampler.set_epoch(2)
    padded = 0
    for items, batch in zip(list(iter(train.batch_sampler)), train):
        eager = collate([train.dataset[i] for i in items], bucket_step=8, max_len=48)
        for key in eager:
            assert eager[key].dtype == batch[key].dtype and torch.equal(eager[key], batch[key]), key
        for row, n in enumerate(batch["lengths"].tolist()):
            padded += n < batch["features"].shape[1]
            assert not batch["features"][row, n:].any()
    assert padded  # some padding was checked


def test_collate_writes_every_byte_of_its_uninitialised_block(sample_cache, monkeypatch):
    """The block is allocated without zeroing: padding, mask and metadata must all be written."""
    from asl_cli.augment.pipeline import ASLAugmentations
    from asl_cli.config import AugConfig

    ds = SignDataset(sample_cache, np.arange(10), max_len=40, augment=ASLAugmentations(AugConfig(), max_len=40),
                     seed=1)
    samples = [ds[(i, 0)] for i in range(10)]
    clean = collate(samples, bucket_step=16, max_len=40)
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **k: real_empty(*a, **k).fill_(0xFF))  # dirty memory
    dirty = collate(samples, bucket_step=16, max_len=40)
    for key in clean:
        assert torch.equal(clean[key], dirty[key]), key
