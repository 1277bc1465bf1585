"""Data-loading throughput with augmentations: cache -> augment -> preprocess -> collate, per core.

Runs what one DataLoader worker does, in this one process (set OMP_NUM_THREADS=1), on the real
asl-signs sample (168 sequences, 2-108 frames, median 14) prepared into a temporary cache:
`SignDataset` (memory-mapped cache slice, `ASLAugmentations` with a generator seeded from
(seed, epoch, index), `preprocess`) batched by the length-bucketing sampler and `collate`.
Variants run interleaved, round after round; the median round and the best round are reported. Throughput per core
is counted in CPU time of this process (time.process_time: one thread with OMP_NUM_THREADS=1 and
torch.set_num_threads(1)), so other processes on a shared machine do not lower it; wall-clock
throughput is printed next to it:

  no augmentation   cache -> preprocess -> collate (the validation path)
  seed profile      every augmentation on, the seed's group probabilities (0.5/0.7/0.3/0.2)
  winner profile    the notebook's order and probabilities
  augment alone     cache -> augment only (seed, winner), no preprocess or collate

Goal (issue 3): >= 5,000 samples/s per core for the seed profile end to end.
Usage: OMP_NUM_THREADS=1 python benchmarks/bench_augment.py [--rounds 7] [--epochs 6] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/asl-signs-sample"


def per_op(length: int) -> None:
    """Microseconds per call of each operation on one (length, 118, 2) sample (best of 5)."""
    import timeit

    from asl_cli.augment import ops
    from asl_cli.augment.pipeline import draw_params
    from asl_cli.config import AugConfig
    from asl_cli.data.landmarks import POINT_LANDMARKS, flip_permutation
    from asl_cli.data.dataset import sample_rng

    rng = np.random.default_rng(0)
    x = rng.random((length, 118, 2), dtype=np.float32)
    x[: length // 3, 40:61] = np.nan  # a hand missing in a third of the frames
    perm = flip_permutation(POINT_LANDMARKS)
    m, b = ops.affine_matrix(scale=1.1, shear_x=0.1, degrees=12, shift=(0.05, -0.03))
    new = int(1.23 * length)
    cfg = AugConfig()
    cases = {
        "draw_params (all scalar draws)": lambda: draw_params(rng, cfg, length=length, num_points=118, max_len=384),
        f"resample linear {length}->{new} (plan cached)": lambda: ops.resample(x, new, "linear"),
        f"resample cubic {length}->{new} (plan cached)": lambda: ops.resample(x, new, "cubic"),
        f"resample nearest {length}->{new} (plan cached)": lambda: ops.resample(x, new, "nearest"),
        "resample plan, cubic (a cache miss)": lambda: ops.resample_plan.__wrapped__(length, new, "cubic"),
        "flip": lambda: ops.flip_horizontal(x, perm),
        "affine (scale+shear+rotate+shift)": lambda: ops.affine(x, m, b),
        "gaussian noise": lambda: ops.gaussian_noise(x, 0.01, rng),
        "temporal mask": lambda: ops.temporal_mask(x, 3, 5),
        "feature mask (12 landmarks)": lambda: ops.mask_landmarks(x, np.arange(0, 118, 10)),
        "landmark dropout": lambda: ops.landmark_dropout(x, 0.05, rng),
        "spatial mask": lambda: ops.spatial_mask(x, 0.3, 0.3, 0.3),
        "sample_rng(seed, epoch, index) (the dataset's generator)": lambda: sample_rng(0, 1, 2),
        "np.random.default_rng([seed, epoch, index]) (for comparison)": lambda: np.random.default_rng([0, 1, 2]),
    }
    print(f"\nper operation, one ({length}, 118, 2) float32 sample (the sample's mean length):")
    for name, fn in cases.items():
        best = min(timeit.repeat(fn, number=2000, repeat=5)) / 2000
        print(f"  {name:60s} {best * 1e6:7.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SAMPLE), help="asl-signs folder (default: the real sample)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=6, help="passes over the data per round and variant")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=384)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from asl_cli.augment import ASLAugmentations
    from asl_cli.config import AugConfig
    from asl_cli.data.dataset import LengthBucketBatchSampler, SignDataset, collate, sample_rng
    from asl_cli.data.cache import prepare

    with tempfile.TemporaryDirectory() as tmp:
        cache = prepare(args.data, tmp, workers=1)
        lengths = np.asarray(cache.lengths)
        idx = np.arange(len(cache))
        print(f"data: {len(cache)} sequences from {args.data}; frames min {lengths.min()}, median "
              f"{int(np.median(lengths))}, mean {lengths.mean():.1f}, max {lengths.max()}")
        print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads "
              f"{torch.get_num_threads()}, batch {args.batch}, max_len {args.max_len}, numpy {np.__version__}, "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

        augs = {"seed": ASLAugmentations(AugConfig(), max_len=args.max_len),
                "winner": ASLAugmentations(AugConfig(profile="winner"), max_len=args.max_len)}
        sampler = LengthBucketBatchSampler(np.minimum(lengths, args.max_len), args.batch, shuffle=True, seed=0)

        def pipeline(aug):
            ds = SignDataset(cache, idx, max_len=args.max_len, augment=aug, seed=0)

            def run(epoch: int) -> int:
                n = 0
                for batch in sampler.batches(epoch):
                    collate([ds[(int(i), epoch)] for i in batch], bucket_step=16, max_len=args.max_len)
                    n += len(batch)
                return n
            return run

        def augment_alone(aug):
            def run(epoch: int) -> int:
                for i in idx:
                    aug(cache.points(int(i)), sample_rng(0, epoch, int(i)))
                return len(idx)
            return run

        variants = {
            "no augmentation: cache -> preprocess -> collate": pipeline(None),
            "seed profile: cache -> augment -> preprocess -> collate": pipeline(augs["seed"]),
            "winner profile: cache -> augment -> preprocess -> collate": pipeline(augs["winner"]),
        }
        variants["augment alone, seed profile"] = augment_alone(augs["seed"])
        variants["augment alone, winner profile"] = augment_alone(augs["winner"])
        rates: dict[str, list[float]] = {k: [] for k in variants}  # samples per CPU-second
        walls: dict[str, list[float]] = {k: [] for k in variants}  # samples per wall-clock second
        for fn in variants.values():  # warm-up (imports, caches)
            fn(0)
        for r in range(args.rounds):
            for name, fn in variants.items():
                c0, t0 = time.process_time(), time.perf_counter()
                n = sum(fn(1 + r * args.epochs + e) for e in range(args.epochs))
                rates[name].append(n / max(time.process_time() - c0, 1e-9))
                walls[name].append(n / (time.perf_counter() - t0))

    per_op(19)
    base = statistics.median(rates["no augmentation: cache -> preprocess -> collate"])
    print(f"\n{'variant (medians of the rounds)':68s} {'samples/CPU-s':>13s} {'us/sample':>9s} {'vs no aug':>9s} "
          f"{'best round':>10s} {'samples/wall-s':>14s}")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:68s} {med:13.0f} {1e6 / med:9.1f} {med / base:9.2f} {max(values):10.0f} "
              f"{statistics.median(walls[name]):14.0f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    seed_rate = statistics.median(rates["seed profile: cache -> augment -> preprocess -> collate"])
    print(f"goal >= 5000 samples/s per core (seed profile end to end, per CPU-second of this process): "
          f"{'met' if seed_rate >= 5000 else 'NOT met'} ({seed_rate:.0f})")


if __name__ == "__main__":
    sys.exit(main())
