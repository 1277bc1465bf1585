"""A plain PyTorch reference loop: what `asl train` is measured against in bench_quality.py.

    python benchmarks/plain_loop.py --data TRAIN --test TEST --seconds 60 [--seed 0] [--cache-dir DIR]

The same network (`build_model` with the `cpu` preset's model config) and the same inputs as the
toolkit's validation path (prepared cache -> `SignDataset` without augmentation -> `collate`),
trained on every sequence of TRAIN with nothing else: no augmentation, no validation split, no
schedule, no clipping, no label smoothing; AdamW at a fixed 1e-3, cross-entropy, shuffled batches of
the preset's size, for `--seconds` of wall time (the loop; preparing the data is not counted).
Then top-1 on every sequence of TEST. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from asl_cli.config import load_config
from asl_cli.data.cache import prepare
from asl_cli.data.dataset import SignDataset, collate
from asl_cli.model import build_model


def features(cache, cfg) -> list[dict]:
    """Every sequence's unaugmented sample, exactly as validation batches are built from them."""
    ds = SignDataset(cache, np.arange(len(cache)), max_len=cfg.data.max_len, augment=None)
    return [ds[i] for i in range(len(ds))]


def batch(samples: list[dict], cfg) -> dict:
    return collate(samples, bucket_step=cfg.data.bucket_step, max_len=cfg.data.max_len)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="asl-signs folder to train on (every sequence)")
    parser.add_argument("--test", required=True, help="asl-signs folder to test on (every sequence)")
    parser.add_argument("--seconds", type=float, required=True, help="wall time of the training loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--cache-dir", default=None, help="prepared caches (default: $ASL_CACHE or ~/.cache/asl)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    cfg = load_config("cpu")
    train_cache, test_cache = prepare(args.data, args.cache_dir), prepare(args.test, args.cache_dir)
    if train_cache.sign_map != test_cache.sign_map:
        raise SystemExit("the train and test folders have different sign maps")
    train, test = features(train_cache, cfg), features(test_cache, cfg)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_model(cfg.model, train_cache.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    size = cfg.train.batch_size
    setup_s = time.perf_counter() - started

    model.train()
    steps, begun = 0, time.perf_counter()
    per_epoch = -(-len(train) // size)
    while time.perf_counter() - begun < args.seconds:
        order = rng.permutation(len(train))
        for i in range(0, len(order), size):
            b = batch([train[j] for j in order[i:i + size]], cfg)
            loss = torch.nn.functional.cross_entropy(model(b["features"], b["mask"]), b["labels"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if time.perf_counter() - begun >= args.seconds:
                break
    train_s = time.perf_counter() - begun

    model.eval()
    correct = 0
    by_length = np.argsort([s["features"].shape[0] for s in test], kind="stable")
    with torch.inference_mode():
        for i in range(0, len(test), 64):
            b = batch([test[j] for j in by_length[i:i + 64]], cfg)
            correct += int((model(b["features"], b["mask"]).argmax(1) == b["labels"]).sum())
    print(json.dumps({"seconds": args.seconds, "epochs": round(steps / per_epoch, 2), "test_top1": correct / len(test),
                      "steps": steps, "train_s": round(train_s, 1), "setup_s": round(setup_s, 1),
                      "train_sequences": len(train), "test_sequences": len(test), "lr": args.lr,
                      "seed": args.seed, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
