"""loader.num_workers = -1 (auto): the rule that shares the cores between workers and compute."""

from __future__ import annotations

import json

import pytest
import torch

from asl_cli.config import load_config
from asl_cli.engine import parallelism
from asl_cli.engine.parallelism import AUTO, plan
from asl_cli.errors import ConfigError
from kit import folder_is_free


@pytest.mark.parametrize("workers", [0, 3])
def test_explicit_workers_are_kept_and_leave_the_threads_alone(workers):
    p = plan(workers, device_type="cpu", cpus=16, torch_threads=16)
    assert (p.num_workers, p.torch_threads) == (workers, 16)


@pytest.mark.parametrize("cpus, threads, want", [
    (1, 1, (0, 1)),
    (2, 2, (0, 2)),  # both cores compute: the data runs between steps (measured the faster choice)
    (3, 3, (1, 2)),  # a worker needs a core of its own: the threads give one up
    (4, 4, (1, 3)),
    (8, 4, (1, 4)),  # torch's threads (physical cores) already leave a core free: untouched
    (16, 1, (1, 1)),  # OMP_NUM_THREADS=1 is never raised
])
def test_auto_on_a_cpu_gives_the_data_a_core_only_when_one_is_left(cpus, threads, want):
    p = plan(AUTO, device_type="cpu", cpus=cpus, torch_threads=threads)
    assert (p.num_workers, p.torch_threads) == want
    assert p.reason.startswith("auto:")


def test_the_plan_reads_no_load_only_the_cores_this_process_may_use(monkeypatch):
    """Configuration and core count decide, never what else runs at the moment: `plan_here` is
    `plan` of `available_cpus()` and torch's thread setting, and opens no file (no /proc/stat)."""
    import builtins

    assert not hasattr(parallelism, "busy_cores_elsewhere")
    monkeypatch.setattr(parallelism, "available_cpus", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        monkeypatch.setattr(builtins, "open", lambda *a, **k: pytest.fail(f"plan_here opened {a[0]}"))
        for device in ("cpu", "cuda"):
            for workers in (AUTO, 0, 2):
                assert parallelism.plan_here(workers, device_type=device) == \
                    plan(workers, device_type=device, cpus=4, torch_threads=4)
        assert parallelism.plan_here(AUTO, device_type="cpu", local_processes=2) == \
            plan(AUTO, device_type="cpu", cpus=4, torch_threads=4, local_processes=2)
    finally:
        torch.set_num_threads(before)


def test_available_cpus_without_affinity_masks_is_the_cpu_count(tmp_path, monkeypatch):
    import os

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert parallelism.available_cpus(str(tmp_path / "no-cgroup")) == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one core
    assert parallelism.available_cpus(str(tmp_path / "no-cgroup")) == 1


def test_auto_on_a_cpu_splits_the_cores_between_local_processes():
    # torchrun with 4 processes on 8 cores: 2 each, as on a 2-core machine
    assert plan(AUTO, device_type="cpu", cpus=8, torch_threads=1, local_processes=4).num_workers == 0
    assert plan(AUTO, device_type="cpu", cpus=12, torch_threads=1, local_processes=4).num_workers == 1


@pytest.mark.parametrize("cpus, local, want", [(1, 1, 0), (4, 1, 3), (16, 1, 8), (64, 1, 8), (16, 2, 7),
                                               (8, 8, 0)])
def test_auto_beside_a_gpu_feeds_it_from_every_core_but_the_loop_s(cpus, local, want):
    p = plan(AUTO, device_type="cuda", cpus=cpus, torch_threads=8, local_processes=local)
    assert (p.num_workers, p.torch_threads) == (want, 8)


def test_available_cpus_follows_the_affinity_mask_lowered_by_a_cpu_quota(tmp_path):
    """Faked cgroup files: the machine's own (a `docker --cpus` below the core count) must not
    decide the outcome."""
    import os

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no affinity masks here")
    cores = len(os.sched_getaffinity(0))
    assert parallelism.available_cpus(str(tmp_path / "no-cgroup")) == cores  # no quota: the mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert parallelism.available_cpus(str(tmp_path)) == cores  # unlimited quota: the mask
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # docker --cpus=0.5
    assert parallelism.available_cpus(str(tmp_path)) == 1  # rounded up, never below one
    (tmp_path / "cpu.max").write_text(f"{100000 * cores + 50000} 100000\n")  # a quota above the cores
    assert parallelism.available_cpus(str(tmp_path)) == cores


def test_a_cpu_quota_lowers_the_core_count(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # docker --cpus=1.5
    assert parallelism.cgroup_cpu_quota(str(v2)) == 1.5
    assert parallelism.available_cpus(str(v2)) == min(2, parallelism.available_cpus(str(tmp_path / "none")))
    (v2 / "cpu.max").write_text("max 100000\n")
    assert parallelism.cgroup_cpu_quota(str(v2)) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert parallelism.cgroup_cpu_quota(str(tmp_path / "v1")) == 3.0
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert parallelism.cgroup_cpu_quota(str(tmp_path / "v1")) is None


def test_build_loaders_on_its_own_resolves_auto(monkeypatch):
    from asl_cli.data.dataset import build_loaders

    cfg = load_config("cpu")
    monkeypatch.setattr(parallelism, "available_cpus", lambda: 4)

    class Cache:  # what build_loaders needs of a prepared cache (no sample is read here)
        lengths = [5] * 10
        labels = [0, 1] * 5
        participants = list(range(10))

        def __len__(self):
            return 10

    train, val = build_loaders(cfg, Cache(), device_type="cpu")
    assert train.num_workers == 1 and val.num_workers == 1
    train, _ = build_loaders(cfg, Cache(), device_type="cpu", num_workers=0)
    assert train.num_workers == 0


def test_config_takes_auto_and_refuses_below_it():
    assert load_config("cpu").loader.num_workers == AUTO
    assert load_config("cpu", ["loader.num_workers=3"]).loader.num_workers == 3
    with pytest.raises(ConfigError, match="num_workers: -2 is below the minimum -1"):
        load_config("cpu", ["loader.num_workers=-2"])


def test_trainer_resolves_auto_records_it_and_sets_threads_for_fit_only(tiny_sets, tmp_path, monkeypatch):
    from asl_cli.engine.trainer import ASLTrainer

    small = tiny_sets(signs=3, participants=5, repetitions=3, seed=2)  # one short epoch
    monkeypatch.setattr(parallelism, "available_cpus", lambda: 3)  # 3 cores: one worker, 2 threads
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        cfg = load_config("cpu", [f"data.data_dir={small.data}", f"data.cache_dir={small.cache}",
                                  f"runs_dir={tmp_path}", "model.dim=32", "train.epochs=1",
                                  "train.batch_size=8", "train.log_every=1", "train.device=cpu"])
        assert cfg.loader.num_workers == AUTO
        seen = []
        trainer = ASLTrainer(cfg, callbacks=[lambda e: seen.append(torch.get_num_threads())
                                             if e["event"] == "step" else None])
        assert trainer.train_loader.num_workers == 1 and trainer.val_loader.num_workers == 1
        assert torch.get_num_threads() == 4  # nothing changes before fit()
        trainer.fit()
        assert seen and set(seen) == {2}
        assert torch.get_num_threads() == 4  # given back
        written = json.loads((trainer.run_dir / "config.json").read_text())
        assert written["loader"]["num_workers"] == AUTO  # a resume works it out again for its machine
        status = json.loads((trainer.run_dir / "status.json").read_text())
        assert (status["num_workers"], status["torch_threads"]) == (1, 2)
        # the persistent worker lives on, and must not keep the run folder locked
        assert trainer.train_loader._iterator is not None and folder_is_free(trainer.run_dir)
    finally:
        torch.set_num_threads(before)
