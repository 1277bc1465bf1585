"""Time-budgeted runs: the schedule runs on the share of the budget used, not on epochs.

With `train.time_budget = S` the run plans itself from its own clock:

    progress p = max(clock / planned_train_end, updates / update_cap)       in [0, 1]
    lr         = warm-up (updates), then a half cosine over p down to `min_lr` at p = 1
    stop       after the update that was given p = 1 (there is no room for another one)

`planned_train_end = 0.96 x S - reserve`, where the reserve is what the end costs after the last
update (the final evaluation and checkpoint, measured at the latest epoch boundary that had them,
or estimated from a timed forward pass before one has happened). The seconds per update are an
average re-estimated at every update, so evaluation, checkpoints and a machine that slows down
all move the plan: the run ends inside [0.9, 1.0] x S with its schedule completed. The update cap
is `epochs x updates per epoch` and/or `max_steps` when given: whichever limit comes first ends
the schedule at `min_lr`.

Epoch-keyed switches (late dropout, AWP) start at the fraction `start_epoch / epochs` of the plan
when `train.epochs` is set (the winner's late dropout at epoch 15 of 300 = 5 %); with no epoch
count (`epochs = 0`, budget only) they count real epochs. Warm-up stays counted in updates (it is
about the optimizer's first steps, not about time), at most a tenth of the plan.

`clock` is the seconds of the budget used so far. One process reads `time.perf_counter()`; under
torchrun every rank is handed rank 0's clock (see DistributedTrainStep), so all ranks take the
same decisions at the same update. The plan's state is saved in checkpoints: a resumed run goes on
with the clock where it stopped. Pure Python, no torch.
"""

from __future__ import annotations

import math
from typing import Any

from asl_cli.errors import ConfigError

TARGET = 0.96  # where the plan aims the end: inside [0.9, 1.0] x budget with room for misestimates
MAX_WARMUP_SHARE = 0.10  # warm-up (in updates) never takes more than this share of the plan
EMA = 0.2  # weight of the newest update interval in the seconds-per-update estimate
MAX_BUDGET_S = 30 * 24 * 3600.0  # above a month is a typo (ms for s, an extra 0...)
MIN_UPDATES = 5  # a budget that cannot fit this many updates plus the final evaluation is refused
EVAL_SHARE = 0.5  # an evaluation batch costs about this share of a training micro-batch (forward + data)
EVAL_GAP = 0.2  # evaluations at most every fifth of the expected run: validation must not eat the training time


def check_budget(seconds: float, *, source: str = "--time-budget") -> float:
    """`seconds` if it is a usable budget (0 < s <= 30 days), else ConfigError with one line."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        raise ConfigError(f"time budget {seconds!r} is not a number of seconds", path=source)
    if seconds <= 0:
        raise ConfigError(f"time budget must be a positive number of seconds, got {seconds:g} (to train by "
                          f"epochs instead, give --epochs N and no --time-budget)", path=source)
    if seconds > MAX_BUDGET_S:
        raise ConfigError(f"time budget {seconds:g} s is more than 30 days: is the unit right? "
                          f"(seconds, e.g. 3600 for an hour)", path=source)
    return float(seconds)


def cosine_factor(progress: float, floor: float) -> float:
    """1 at progress 0, `floor` at progress 1 (half cosine)."""
    p = min(1.0, max(0.0, progress))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


class TimePlan:
    """Where a budgeted run stands: progress, the next update's lr factor, and when to stop.

    The trainer calls `observe(clock, updates)` after every applied update (and `boundary(...)`
    after an epoch end's evaluation/checkpoint), then asks `next_factor(floor)` for the next
    update's learning rate and `finished` whether to stop.
    """

    def __init__(self, budget_s: float, *, update_cap: int | None = None, warmup_updates: int = 0,
                 end_estimate_s: float = 0.0, step_estimate_s: float | None = None, eval_batches: int = 0,
                 micro_batches: int = 1, save_s: float = 0.0):
        self.budget_s = float(budget_s)
        self.update_cap = int(update_cap) if update_cap else None
        self.warmup_updates = max(0, int(warmup_updates))
        self.clock = 0.0  # seconds of the budget used at the latest observation
        self.updates = 0  # applied updates so far
        self.step_s = step_estimate_s  # seconds per update (None until measured or estimated)
        self.end_s = float(end_estimate_s)  # what the end costs after the last update
        self.end_measured = False  # end_s comes from an epoch end that evaluated (else: estimates)
        # Until then the end is also estimated from the measured update rate (it follows the machine's load).
        self.eval_batches, self.micro_batches, self.save_s = int(eval_batches), max(1, int(micro_batches)), save_s
        self.warmup_done_at: float | None = None if self.warmup_updates else 0.0
        self.first_update_clock: float | None = None  # when the first update ended (warm-up's share)
        self.final_given = False  # the next update runs at p = 1 (min_lr): stop after it
        self.finished = False
        self._measured = False  # step_s is still the estimate from a timed forward pass
        self._skip_interval = True  # the next interval is not a training one (start, resume, boundary)

    def seed_from_forward(self, forward_s: float, *, micro_batches: int, eval_batches: int,
                          weight_bytes: int) -> float:
        """Estimates before the first update, from one timed forward pass of a typical batch; returns
        the shortest budget that fits MIN_UPDATES updates and the end (ConfigError if this one is shorter).

        An update costs ~3 forwards (forward + backward) per micro-batch, plus data work; the final
        evaluation ~1.5 forwards per validation batch, plus the checkpoint: weights, optimizer
        moments and Lookahead's copy, written at ~100 MB/s.
        """
        self.step_s = 1.2 * 3.0 * forward_s * max(1, int(micro_batches))
        self.save_s = 0.05 + 4 * weight_bytes / 100e6
        self.end_s = 1.5 * forward_s * int(eval_batches) + self.save_s
        self.eval_batches, self.micro_batches = int(eval_batches), max(1, int(micro_batches))
        needed = (MIN_UPDATES * self.step_s + self.end_s) / TARGET
        if self.budget_s < needed:
            raise ConfigError(
                f"time budget {self.budget_s:g} s is too short for this run here: one update takes "
                f"~{self.step_s:.2g} s and the final evaluation and checkpoint ~{self.end_s:.2g} s; give at "
                f"least --time-budget {math.ceil(needed)}", path="--time-budget")
        return needed

    # -- the plan --------------------------------------------------------------------------------

    def end_reserve(self) -> float:
        """Seconds the end needs after the last update: the final evaluation and checkpoint."""
        if self.end_measured or not self._measured:
            return self.end_s
        from_rate = self.eval_batches * self.step_s / self.micro_batches * EVAL_SHARE + self.save_s
        return max(self.end_s, from_rate)

    def train_end(self) -> float:
        """The clock at which the last update should be done."""
        return max(0.0, TARGET * self.budget_s - self.end_reserve())

    def progress_at(self, clock: float, updates: int) -> float:
        time_p = clock / self.train_end() if self.train_end() > 0 else 1.0
        count_p = updates / self.update_cap if self.update_cap else 0.0
        return min(1.0, max(time_p, count_p))

    @property
    def progress(self) -> float:
        return 1.0 if self.finished else self.progress_at(self.clock, self.updates)

    def _next_is_last(self) -> bool:
        """No room after the next update for one more (or the update cap is reached with it)."""
        if self.update_cap and self.updates + 1 >= self.update_cap:
            return True
        step = self.step_s or 0.0
        return self.clock + 2.0 * step > self.train_end()

    def next_factor(self, floor: float, *, schedule: str = "cosine") -> float:
        """The lr multiplier for the next update: warm-up, then cosine over the progress at its end."""
        if self.warmup_done_at is None:
            by_count = (self.updates + 1) / self.warmup_updates
            first = self.first_update_clock if self.first_update_clock is not None else self.clock
            span = self.train_end() - first  # the share of the training time, start-up left out
            by_share = (self.clock - first) / span / MAX_WARMUP_SHARE if span > 0 else 1.0
            if max(by_count, by_share) < 1.0:
                return max(by_count, by_share)
            self.warmup_done_at = self.progress_at(self.clock, self.updates)
        if self._next_is_last():
            self.final_given = True
        if schedule == "constant":
            return 1.0
        p_end = 1.0 if self.final_given else self.progress_at(self.clock + (self.step_s or 0.0), self.updates + 1)
        start = min(self.warmup_done_at, 0.99)
        return cosine_factor((p_end - start) / (1.0 - start), floor)

    def observe(self, clock: float, updates: int) -> None:
        """An update was applied; `clock` is the budget used now. Re-estimates the seconds per update."""
        interval = clock - self.clock
        if not self._skip_interval and interval > 0:
            if not self._measured:
                self.step_s, self._measured = interval, True
            else:
                self.step_s = (1 - EMA) * self.step_s + EMA * interval
        self._skip_interval = False
        if self.first_update_clock is None:
            self.first_update_clock = float(clock)
        self.clock, self.updates = float(clock), int(updates)
        if self.final_given:
            self.finished = True
        elif clock >= self.train_end():
            self._overshot()

    def boundary(self, clock: float, *, with_eval: bool) -> None:
        """An epoch end (checkpoint, maybe an evaluation) is over; `clock` is the budget used now.

        One with an evaluation measured what the end of the run will cost: it becomes the reserve.
        An epoch end that ran past the plan leaves one update at min_lr where it fits (`_overshot`).
        """
        if with_eval:
            self.end_s, self.end_measured = max(0.0, clock - self.clock), True
        self.clock = max(self.clock, float(clock))
        self._skip_interval = True  # the next update's interval includes the loader's restart
        if self.clock >= self.train_end() and not self.finished:
            self._overshot()

    def _overshot(self) -> None:
        """The clock passed the planned end before the last update was announced (a slow update, a
        long epoch end): one more update at min_lr where it still fits before 1.0 x budget (the plan
        keeps 4 % for this), else the run ends here."""
        if self.clock + (self.step_s or 0.0) <= self.budget_s - self.end_reserve():
            self.final_given = True
        else:
            self.finished = True

    def expected_end(self) -> float:
        """The clock at which the last update is expected: the planned end, or sooner where the update
        cap comes first (small data: 200 epochs of 112 sequences take 25 s of a 120 s budget)."""
        end = self.train_end()
        if self.update_cap and self.step_s:
            end = min(end, self.clock + max(0, self.update_cap - self.updates) * self.step_s)
        return end

    def eval_due(self, last_eval_clock: float) -> bool:
        """Evaluate at this epoch end? At most every fifth of the expected run (short epochs must not
        spend it on validation; a run the cap ends early still validates along the way, so its best
        checkpoint is chosen among several), and not when the final evaluation is near anyway (it
        could push the end past the plan)."""
        end = self.expected_end()
        if self.clock - last_eval_clock < EVAL_GAP * end:
            return False
        return end - self.clock > 2.0 * self.end_s

    def exclude_interval(self) -> None:
        """The update interval in progress is not a training one (it compiled a torch.compile graph):
        the seconds-per-update estimate leaves it out; the clock still counts it."""
        self._skip_interval = True

    def resumed(self) -> None:
        """A new session (start-up time is not part of an update)."""
        self._skip_interval = True

    def eta(self, now: float) -> float:
        """Seconds from `now` (the budget used, read between updates) to the planned end of the run."""
        return 0.0 if self.finished else max(0.0, TARGET * self.budget_s - now)

    def updates_left(self) -> int | None:
        """An estimate of the updates still to come (None before the rate is known)."""
        if self.finished:
            return 0
        left = None
        if self.step_s:
            left = max(0, int((self.train_end() - self.clock) / self.step_s))
        if self.update_cap:
            cap_left = max(0, self.update_cap - self.updates)
            left = cap_left if left is None else min(left, cap_left)
        return left

    def switch_on(self, start_epoch: int, epochs: int, epoch: int) -> bool:
        """An epoch-keyed switch (late dropout, AWP): a share of the plan, or real epochs without `epochs`."""
        if epochs > 0:
            return self.progress >= start_epoch / epochs
        return epoch >= start_epoch

    # -- checkpoints ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"budget_s": self.budget_s, "clock": self.clock, "updates": self.updates, "step_s": self.step_s,
                "end_s": self.end_s, "warmup_done_at": self.warmup_done_at, "final_given": self.final_given,
                "first_update_clock": self.first_update_clock, "end_measured": self.end_measured,
                "finished": self.finished}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = float(state["budget_s"])
        if abs(saved - self.budget_s) > 1e-9:
            raise ConfigError(f"this run was planned for a time budget of {saved:g} s; a resume cannot change it "
                              f"to {self.budget_s:g} s (the schedule is laid out on the first one). Resume "
                              f"without --time-budget, or start a new run")
        self.clock, self.updates = float(state["clock"]), int(state["updates"])
        self.step_s = None if state.get("step_s") is None else float(state["step_s"])
        self.end_s = float(state.get("end_s", 0.0))
        self.warmup_done_at = state.get("warmup_done_at")
        self.first_update_clock = state.get("first_update_clock")
        self.end_measured = bool(state.get("end_measured"))
        self.final_given, self.finished = bool(state.get("final_given")), bool(state.get("finished"))
        self._measured = self.step_s is not None
        self._skip_interval = True


class BudgetLR:
    """The learning-rate schedule of a budgeted run: each optimizer group's peak lr x the plan's factor.

    Same interface as torch's schedulers where the trainer uses them (`step()` once per applied
    update, `state_dict`/`load_state_dict`). The factor is computed when `step()` is called, after
    the plan observed the update that just finished (`clock` gives the budget used now).
    """

    def __init__(self, optimizer: Any, plan: TimePlan, *, min_lr: float, schedule: str, clock: Any,
                 scaled_decay: bool = False):
        self.optimizer = optimizer
        self.scaled_decay = scaled_decay  # optim.weight_decay_mode = "lr_scaled"
        self.plan = plan
        self.schedule = schedule
        self.clock = clock
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.floors = [min(1.0, float(min_lr) / g["initial_lr"]) if g["initial_lr"] > 0 else 0.0
                       for g in optimizer.param_groups]
        self._set(lambda floor: plan.next_factor(floor, schedule=schedule))

    def _set(self, factor_of) -> None:
        factors = [factor_of(floor) for floor in self.floors]
        for group, factor in zip(self.optimizer.param_groups, factors):
            group["lr"] = group["initial_lr"] * factor
        if self.scaled_decay:
            from asl_cli.engine.optim import follow_lr_with_decay
            follow_lr_with_decay(self.optimizer)

    def step(self) -> None:
        self.plan.observe(self.clock(), self.plan.updates + 1)
        self.replan()

    def replan(self) -> None:
        """Set the next update's lr from the plan as it stands (also after an epoch end moved the clock)."""
        if not self.plan.finished:
            self._set(lambda floor: self.plan.next_factor(floor, schedule=self.schedule))

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.state_dict(), "lrs": self.get_last_lr()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "plan" not in state:
            raise ConfigError("this run was trained by epochs; a resume cannot turn it into a time-budgeted "
                              "run. Resume without --time-budget, or start a new run")
        self.plan.load_state_dict(state["plan"])
        for group, lr in zip(self.optimizer.param_groups, state["lrs"]):
            group["lr"] = float(lr)
        if self.scaled_decay:
            from asl_cli.engine.optim import follow_lr_with_decay
            follow_lr_with_decay(self.optimizer)


__all__ = ["TimePlan", "BudgetLR", "check_budget", "cosine_factor", "TARGET", "MIN_UPDATES"]
