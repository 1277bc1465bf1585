"""A time budget plans the run: the schedule completes (lr at min_lr) inside [0.9, 1.0] x the budget.

The plan itself is checked on a simulated clock (exact, any machine speed); the trainer with the
real clock on a tiny set; resumes, bad budgets and several processes through the real entry points.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from asl_cli.config import load_config
from asl_cli.engine.budget import TARGET, TimePlan, check_budget, cosine_factor
from asl_cli.errors import ConfigError, TrainingInterrupted
from kit import run_asl

FLOOR = 0.01


# --- the plan on a simulated clock ------------------------------------------------------------

def simulate(budget: float, step_s, *, epoch_updates: int = 50, eval_s: float = 1.0, startup_s: float = 2.0,
             cap: int | None = None, warmup: int = 0, estimate: float | None = None,
             end_estimate: float | None = None, eval_batches: int = 0):
    """Run a plan the way the trainer does; `step_s(i)` is the i-th update's duration.

    Returns (the clock when the final evaluation + checkpoint are done, the lr factor of each update).
    """
    plan = TimePlan(budget, update_cap=cap, warmup_updates=warmup, step_estimate_s=estimate,
                    end_estimate_s=eval_s if end_estimate is None else end_estimate, eval_batches=eval_batches)
    plan.resumed()
    clock, evaluated = startup_s, 0.0
    factors = [plan.next_factor(FLOOR)]
    while True:
        clock += step_s(len(factors) - 1)
        plan.observe(clock, plan.updates + 1)
        if plan.finished:
            break
        if plan.updates % epoch_updates == 0:  # an epoch end: a checkpoint, an evaluation when due
            evaluate = plan.eval_due(evaluated)
            evaluated = plan.clock if evaluate else evaluated
            clock += eval_s if evaluate else 0.01
            plan.boundary(clock, with_eval=evaluate)
            if plan.finished:
                break
        factors.append(plan.next_factor(FLOOR))
    return clock + eval_s, factors


@pytest.mark.parametrize("budget, step", [(b, s) for b in (5.0, 30.0, 240.0, 3600.0) for s in (0.01, 0.05, 0.2)
                                          if b >= 20 * s + 4])  # above the trainer's minimum for that step
def test_a_steady_run_ends_inside_the_budget_with_its_schedule_complete(budget, step):
    end, factors = simulate(budget, lambda i: step)
    assert 0.9 * budget <= end <= budget, end
    assert factors[-1] == pytest.approx(FLOOR)  # the last update runs at min_lr
    assert factors[0] > 0.99  # no warm-up asked for: it starts at the peak
    assert all(a >= b - 1e-12 for a, b in zip(factors, factors[1:]))  # a cosine that only goes down


def test_a_machine_that_slows_down_mid_run_still_ends_inside_the_budget():
    budget = 120.0
    end, factors = simulate(budget, lambda i: 0.05 if i < 600 else 0.15)  # 3x slower after 30 s
    assert 0.9 * budget <= end <= budget and factors[-1] == pytest.approx(FLOOR)


def test_evaluations_that_cost_more_than_first_estimated_are_planned_for():
    budget = 60.0
    end, _ = simulate(budget, lambda i: 0.05, eval_s=4.0, estimate=0.05)  # the plan starts believing 1 s
    assert 0.9 * budget <= end <= budget


def test_a_budget_shorter_than_an_epoch_estimates_its_end_from_the_update_rate():
    """No epoch end before the last update: the final evaluation's cost is only ever estimated.
    The timed forward pass said 0.1 s (a quiet machine); the machine is slower now, and the rate
    measured at every update (120 validation batches at half an update each: 3 s) moves the plan."""
    end, factors = simulate(20.0, lambda i: 0.05, epoch_updates=10**9, eval_s=3.0, end_estimate=0.1,
                            eval_batches=120)
    assert 0.9 * 20 <= end <= 20 and factors[-1] == pytest.approx(FLOOR)


def test_a_sudden_slow_update_just_before_the_end_still_leaves_the_last_update_at_min_lr():
    """The clock passes the planned end before the last update was announced: one more update at
    min_lr fits in the 4 % the plan keeps, and the run still ends inside the budget."""
    _, steady = simulate(60.0, lambda i: 0.05)
    slow_at = len(steady) - 3
    end, factors = simulate(60.0, lambda i: 1.2 if i == slow_at else 0.05)
    assert 0.9 * 60 <= end <= 60 and factors[-1] == pytest.approx(FLOOR)
    assert len(factors) < len(steady)  # the slow update cost the plan its last updates, not the floor


def test_a_noisy_step_time_still_ends_inside_the_budget():
    import random

    rng = random.Random(0)
    times = [rng.choice([0.01, 0.03, 0.09]) for _ in range(100000)]  # bucketed lengths: very uneven updates
    end, factors = simulate(90.0, lambda i: times[i])
    assert 0.9 * 90 <= end <= 90 and factors[-1] == pytest.approx(FLOOR)


def test_an_interval_that_compiled_a_graph_is_not_taken_for_a_slow_update():
    """torch.compile builds a graph for each new bucket length, minutes in, at dim 192 on a GPU: the
    trainer excludes that update's interval from the seconds-per-update estimate (the clock still
    counts it, so the budget stays honest)."""
    plan = TimePlan(600.0)
    plan.resumed()
    clock = 5.0
    plan.observe(clock, 1)  # start-up: skipped
    for n in range(2, 6):
        clock += 0.1
        plan.observe(clock, n)
    assert plan.step_s == pytest.approx(0.1)
    plan.exclude_interval()  # the next update's micro-step compiled a graph: 45 s
    clock += 45.1
    plan.observe(clock, 6)
    assert plan.step_s == pytest.approx(0.1) and plan.clock == pytest.approx(clock)
    clock += 0.1
    plan.observe(clock, 7)  # the next interval counts again
    assert plan.step_s == pytest.approx(0.1)
    without = TimePlan(600.0)  # the same intervals, not told: the estimate jumps by 20 % of 45 s
    without.resumed()
    for n, at in enumerate((5.0, 5.1, 5.2, 50.3), start=1):
        without.observe(at, n)
    assert without.step_s > 9


def test_an_update_cap_ends_the_schedule_when_it_comes_first():
    end, factors = simulate(1000.0, lambda i: 0.01, cap=300)
    assert len(factors) == 300 and factors[-1] == pytest.approx(FLOOR) and end < 100
    # half way through the cap is half way through the cosine
    assert factors[149] == pytest.approx(cosine_factor(150 / 300, FLOOR))


def test_a_run_the_cap_ends_early_still_validates_along_the_way():
    # 200 epochs of 4 updates at 0.03 s (the real 112-sequence sample) take ~25 s of a 120 s budget: spacing
    # evaluations by a fifth of the budget (24 s) gave one, at the end, so "best" chose nothing
    plan = TimePlan(120.0, update_cap=800, end_estimate_s=0.05)
    plan.resumed()
    clock, evaluated, evals = 1.0, 0.0, []
    while not plan.finished:
        plan.next_factor(FLOOR)
        clock += 0.03
        plan.observe(clock, plan.updates + 1)
        if not plan.finished and plan.updates % 4 == 0:  # an epoch end
            due = plan.eval_due(evaluated)
            if due:
                evaluated = plan.clock
                evals.append(plan.updates // 4)
            clock += 0.05 if due else 0.001
            plan.boundary(clock, with_eval=due)
    assert plan.updates == 800 and 4 <= len(evals) <= 5, evals  # every ~fifth of the 200 epochs, not 0
    assert evals[0] >= 30 and all(b - a >= 30 for a, b in zip(evals, evals[1:]))  # never every epoch


def test_warm_up_counts_updates_and_never_takes_more_than_a_tenth_of_the_plan():
    _, factors = simulate(60.0, lambda i: 0.01, warmup=100)
    assert factors[:3] == pytest.approx([0.01, 0.02, 0.03]) and factors[99] == pytest.approx(1.0, abs=1e-3)
    _, long = simulate(10.0, lambda i: 0.01, warmup=100000, startup_s=0.0, eval_s=0.01)
    peak = max(range(len(long)), key=long.__getitem__)
    assert 0.05 * len(long) < peak < 0.15 * len(long)  # cut at ~10 % of the updates instead


def test_epoch_keyed_switches_are_a_share_of_the_plan_or_real_epochs_without_an_epoch_count():
    plan = TimePlan(100.0)
    plan.observe(0.04 * TARGET * 100, 10)
    assert not plan.switch_on(15, 300, epoch=50)  # the winner's late dropout: 15 of 300 epochs = 5 %
    plan.observe(0.06 * TARGET * 100, 20)
    assert plan.switch_on(15, 300, epoch=0)
    assert not plan.switch_on(15, 0, epoch=14) and plan.switch_on(15, 0, epoch=15)


def test_the_plan_survives_a_checkpoint_and_refuses_another_budget():
    plan = TimePlan(60.0, update_cap=1000, warmup_updates=10)
    for i in range(1, 40):
        plan.next_factor(FLOOR)
        plan.observe(i * 0.5, i)
    again = TimePlan(60.0, update_cap=1000, warmup_updates=10)
    again.load_state_dict(json.loads(json.dumps(plan.state_dict())))  # plain JSON types only
    assert again.state_dict() == plan.state_dict()
    with pytest.raises(ConfigError, match="planned for a time budget of 60 s"):
        TimePlan(90.0).load_state_dict(plan.state_dict())


@pytest.mark.parametrize("value, message", [(0, "positive"), (-3, "positive"), (float("nan"), "not a number"),
                                            (float("inf"), "not a number"), (1e9, "more than 30 days")])
def test_bad_budgets_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        check_budget(value)
    assert check_budget(90) == 90.0


# --- the trainer, real clock (`tiny_data`: 5 signs x 5 participants x 6, conftest.py) --------------

def budget_cfg(tiny_data, tmp_path, *sets: str):
    return load_config("cpu", [f"data.data_dir={tiny_data.data}", f"data.cache_dir={tiny_data.cache}",
                               f"runs_dir={tmp_path}", "model.dim=32", "model.blocks=1", "train.batch_size=16",
                               "data.max_len=48", "train.device=cpu", "loader.num_workers=0", "train.log_every=1",
                               "train.epochs=0", *sets])  # the budget alone sizes these runs (no epoch cap)


def last_lr(run_dir: Path) -> float:
    return json.loads((Path(run_dir) / "status.json").read_text())["lr"]


def test_a_budgeted_run_ends_inside_the_budget_with_its_lr_at_min_lr(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    budget = 6.0
    cfg = budget_cfg(tiny_data, tmp_path, f"train.time_budget={budget}")
    assert cfg.train.epochs == 0  # the budget alone sizes the run
    summary = ASLTrainer(cfg).fit()
    assert 0.9 * budget <= summary["wall_s"] <= budget, summary["wall_s"]
    assert summary["budget_used_s"] == pytest.approx(summary["wall_s"], abs=0.05)
    assert last_lr(summary["run_dir"]) == pytest.approx(cfg.optim.min_lr, rel=1e-9)
    status = json.loads((Path(summary["run_dir"]) / "status.json").read_text())
    assert status["schedule_progress"] == 1.0 and status["eta_s"] == 0.0 and status["time_budget_s"] == budget
    assert summary["epochs_done"] >= 2 and summary["best_top1"] is not None


def test_a_resumed_budgeted_run_continues_its_plan(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    budget = 6.0
    cfg = budget_cfg(tiny_data, tmp_path, f"train.time_budget={budget}", "name=plan")
    first = ASLTrainer(cfg)
    first.callbacks.append(lambda e: e["event"] == "step" and e["step"] == 40 and first.request_stop())
    with pytest.raises(TrainingInterrupted):
        first.fit()
    saved = json.loads(json.dumps(first.scheduler.state_dict()))["plan"]
    assert 0 < saved["clock"] < budget and not saved["finished"]

    second = ASLTrainer(cfg, resume=first.run_dir)
    assert second.plan.clock == saved["clock"]  # the plan goes on where it stopped
    summary = second.fit()
    assert summary["steps"] > 40 and 0.9 * budget <= summary["budget_used_s"] <= budget
    assert summary["wall_s"] < budget - saved["clock"] + 0.5  # this session only had what was left
    assert last_lr(summary["run_dir"]) == pytest.approx(cfg.optim.min_lr, rel=1e-9)
    again = ASLTrainer(cfg, resume=first.run_dir).fit()  # nothing left: the plan is spent
    assert again["state"] == "already_finished" and "time budget of 6 s" in again["reason"]


def test_a_resume_cannot_change_the_budget_or_turn_it_into_epochs(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    cfg = budget_cfg(tiny_data, tmp_path, "train.time_budget=5", "train.max_steps=3", "name=b")
    run = ASLTrainer(cfg).fit()["run_dir"]
    other = budget_cfg(tiny_data, tmp_path, "train.time_budget=9", "train.max_steps=6", "name=b")
    with pytest.raises(ConfigError, match="planned for a time budget of 5 s"):
        ASLTrainer(other, resume=run)
    by_epochs = budget_cfg(tiny_data, tmp_path, "train.epochs=3", "name=b")
    assert by_epochs.train.time_budget == 0  # --epochs alone: the preset's budget gives way
    with pytest.raises(ConfigError, match="planned for a time budget of 5 s"):
        ASLTrainer(by_epochs, resume=run)


def test_a_budget_too_short_for_the_run_is_refused_before_any_training(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    with pytest.raises(ConfigError, match=r"too short for this run here: .* give at least --time-budget \d+"):
        ASLTrainer(budget_cfg(tiny_data, tmp_path / "runs", "train.time_budget=0.001"))
    assert not (tmp_path / "runs").exists()  # no run folder left behind


def test_epochs_and_a_budget_together_the_budget_plans_and_the_epochs_cap(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    cfg = budget_cfg(tiny_data, tmp_path, "train.time_budget=600", "train.epochs=2")
    assert cfg.train.time_budget == 600 and cfg.train.epochs == 2  # both given: both kept
    trainer = ASLTrainer(cfg)
    summary = trainer.fit()  # 2 tiny epochs come long before 600 s: they end the schedule
    assert summary["epochs_done"] == 2 and summary["steps"] == 2 * trainer.updates_per_epoch
    assert summary["wall_s"] < 60 and last_lr(summary["run_dir"]) == pytest.approx(cfg.optim.min_lr, rel=1e-9)


def test_late_dropout_starts_at_its_share_of_the_plan(tiny_data, tmp_path):
    from asl_cli.engine.trainer import ASLTrainer

    cfg = budget_cfg(tiny_data, tmp_path, "train.time_budget=600", "train.epochs=4", "model.late_dropout_start=2")
    trainer = ASLTrainer(cfg)
    seen = []
    trainer.callbacks.append(lambda e: e["event"] == "step" and seen.append(
        (e["schedule_progress"], trainer.model.late_dropout_active)))
    trainer.fit()
    assert any(on for _, on in seen) and any(not on for _, on in seen)
    assert all(on == (p >= 0.5) for p, on in seen)  # epoch 2 of 4 = half of the plan


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_json_shows_the_budget_and_the_summary_says_the_schedule_completed(tiny_data, tmp_path):
    args = ["train", "--data", tiny_data.data, "--set", f"data.cache_dir={tiny_data.cache}",
            "--set", "model.dim=32", "--set", "model.blocks=1", "--set", "data.max_len=48", "--runs-dir",
            tmp_path, "--workers", "0", "--time-budget", "5"]
    proc = run_asl(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all(e["time_budget_s"] == 5 and 0 <= e["budget_used_s"] <= 5 for e in steps)
    assert all(e["eta_s"] is not None and e["eta_s"] <= 5 for e in steps)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["time_budget_s"] == 5 and 4.5 <= summary["wall_s"] <= 5
    plain = run_asl(*args, "--plain")
    assert plain.returncode == 0 and "(time budget 5 s, schedule completed)" in plain.stdout
    assert "time 0:00:0" in plain.stdout  # the log line shows the budget used


def test_two_processes_share_rank_0s_clock_and_stop_at_the_same_update(tiny_data, tmp_path):
    budget = 12.0
    proc = run_asl("train", "--data", tiny_data.data, "--set", f"data.cache_dir={tiny_data.cache}",
                   "--set", "model.dim=32", "--set", "model.blocks=1", "--set", "data.max_len=48",
                   "--set", "train.batch_size=8", "--runs-dir", tmp_path, "--name", "two", "--workers", "0",
                   "--time-budget", budget, "--json", torchrun=2, timeout=240, cwd=tmp_path)
    # Ranks that disagreed on the last update would hang in a collective (the timeout) or fail.
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and 0.9 * budget <= summary["budget_used_s"] <= budget
    assert math.isclose(last_lr(tmp_path / "two"), 1e-6, rel_tol=1e-9)


@pytest.mark.parametrize("budgeted", [False, True])
def test_lr_scaled_weight_decay_follows_the_lr_in_both_schedules(budgeted):
    """optim.weight_decay_mode = lr_scaled: the decay factor is weight_decay x lr_t at every update
    (the winner's TF-Addons reading); decoupled keeps torch's constant factor."""
    import torch

    from asl_cli.config import RunConfig
    from asl_cli.engine.budget import BudgetLR
    from asl_cli.engine.optim import build_optimizer, build_scheduler

    for mode in ("decoupled", "lr_scaled"):
        cfg = RunConfig()
        cfg.optim.optimizer, cfg.optim.weight_decay, cfg.optim.weight_decay_mode = "adamw", 0.1, mode
        model = torch.nn.Linear(4, 3)
        opt = build_optimizer(model, cfg.optim)
        clock = {"t": 0.0}
        sched = (BudgetLR(opt, TimePlan(100.0), min_lr=1e-6, schedule="cosine", clock=lambda: clock["t"],
                          scaled_decay=mode == "lr_scaled")
                 if budgeted else build_scheduler(opt, cfg.optim, total_updates=50, updates_per_epoch=10))
        for i in range(30):
            model(torch.randn(2, 4)).sum().backward()
            opt.step()
            opt.zero_grad()
            clock["t"] += 1.0
            sched.step()
            decayed = next(g for g in opt.param_groups if g["params"][0].ndim >= 2)
            expected = 0.1 * decayed["lr"] if mode == "lr_scaled" else 0.1
            assert decayed["weight_decay"] == pytest.approx(expected, rel=1e-12)
        assert decayed["lr"] < cfg.optim.lr  # the schedule moved, and the decay with it
