"""torch.compile fitted to length bucketing (engine/compiled.py), on the CPU (Inductor compiles here too).

- one graph per bucket length; no new graph for a short batch, the late-dropout switch or evaluation
  (evaluation has its own entry point); counted with Dynamo's own `unique_graphs` counter;
- past the recompile limit a batch runs eagerly, counted, and the status says so;
- compile time stays out of samples/s, the ETA and the time plan's step-rate estimate.

Most tests use the `aot_eager` backend (graph capture and guards as with Inductor, no codegen:
seconds). One test runs the real Inductor over a bucketed epoch of the trainer (about a minute on
two cores): Inductor is what specialises the time axis (docs/engine.md "torch.compile").
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from asl_cli.engine.compiled import CompiledForward, bucket_lengths, graphs_made
from asl_cli.engine.trainer import ASLTrainer
from asl_cli.model.net import ASLNet
from test_trainer import make_cfg  # on conftest's tiny_data

NUM_FEATURES = 708


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def cheap_compile(monkeypatch):
    """torch.compile with the aot_eager backend (what the trainer asks for, minus Inductor's codegen)."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None, **kw: real(fn, backend="aot_eager",
                                                                                          dynamic=dynamic))


def batch(b: int, length: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, NUM_FEATURES, generator=g)
    lengths = torch.randint(1, length + 1, (b,), generator=g)
    lengths[0] = length
    return x, torch.arange(length) < lengths[:, None]


def tiny_model() -> ASLNet:
    torch.manual_seed(0)
    return ASLNet(num_classes=5, dim=32, blocks=1, num_heads=4)


def train_step(forward, model, b, length, seed=0):
    model.train()
    x, mask = batch(b, length, seed)
    F.cross_entropy(forward(x, mask), torch.zeros(b, dtype=torch.long)).backward()


def test_one_graph_per_length_nothing_for_short_batches_late_dropout_or_evaluation(monkeypatch):
    cheap_compile(monkeypatch)
    model = tiny_model()
    told = []
    forward = CompiledForward(model, "default", told.append, lengths=2, on_compile=told.append)
    before = graphs_made()
    for i, (b, length) in enumerate([(6, 16), (6, 32), (3, 16), (6, 32), (5, 32)]):
        if i == 3:
            model.set_late_dropout(True)  # a tensor: no guard, no recompile
        train_step(forward, model, b, length, seed=i)
    assert forward.graphs == 2 and graphs_made() - before == 2
    model.eval()
    with torch.no_grad():
        for b, length in [(6, 16), (2, 16), (6, 32)]:
            x, mask = batch(b, length)
            torch.testing.assert_close(forward(x, mask), model(x, mask))
    assert forward.graphs == 4 and graphs_made() - before == 4  # + one evaluation graph per length
    assert forward.state == "on" and forward.eager_batches == 0 and forward.compile_events == 4
    assert told == ["training graph for length 16", "training graph for length 32",
                    "evaluation graph for length 16", "evaluation graph for length 32"]
    assert "late_dropout_gate" not in model.state_dict()  # checkpoints keep their keys


def test_past_the_recompile_limit_batches_run_eagerly_counted_and_said(monkeypatch):
    cheap_compile(monkeypatch)
    model = tiny_model()
    warned, compiling = [], []
    with torch._dynamo.config.patch(recompile_limit=2):  # (pytest's monkeypatch breaks Dynamo's config module)
        forward = CompiledForward(model, "default", warned.append, lengths=1,  # plans 2 x 1 + 2 = 4 graphs
                                  on_compile=compiling.append)
        assert torch._dynamo.config.recompile_limit == forward.max_graphs == 4
        for length in (4, 8, 12, 16, 20, 24, 24, 8):
            train_step(forward, model, 3, length)
    assert forward.graphs == 4 and forward.eager_batches == 3  # 20, 24 and 24 again; 8 has its graph
    assert len(compiling) == 6  # a shape refused once is not announced (nor tried) again
    assert forward.state == "on, 3 batches eager (recompile limit)"
    assert len(warned) == 1 and "recompile limit (4 graphs)" in warned[0]
    model.eval()
    x, mask = batch(3, 24)
    with torch.no_grad():  # an eager batch computes the same thing
        torch.testing.assert_close(forward(x, mask), model(x, mask))


def test_bucket_lengths():
    assert bucket_lengths(384, 16, True) == 24
    assert bucket_lengths(64, 8, True) == 8
    assert bucket_lengths(50, 16, True) == 4
    assert bucket_lengths(384, 16, False) == 1


# --- the trainer ----------------------------------------------------------------------------------

def _counting_compile(monkeypatch, *, compile_on_calls=(1,), sleep=0.3):
    """A fake torch.compile: calls number `compile_on_calls` of the training entry point "compile"
    (Dynamo's graph counter goes up, `sleep` seconds pass); everything else runs eagerly."""
    from torch._dynamo.utils import counters

    calls = {"n": 0}

    def fake_compile(fn, **kwargs):
        def run(features, mask):
            if torch.is_grad_enabled():
                calls["n"] += 1
                if calls["n"] in compile_on_calls:
                    counters["stats"]["unique_graphs"] += 1
                    time.sleep(sleep)
            return fn(features, mask)
        return run

    monkeypatch.setattr(torch, "compile", fake_compile)
    return calls


def test_compile_time_is_left_out_of_throughput_eta_and_the_time_plan(tiny_data, tmp_path, monkeypatch):
    _counting_compile(monkeypatch, compile_on_calls=(1, 3), sleep=0.4)  # call 3: a recompile mid-run
    events = []
    cfg = make_cfg(tiny_data, tmp_path, "train.compile=true", "train.max_steps=5", "train.time_budget=600",
                   "train.epochs=0", "data.val_fold=-1")
    trainer = ASLTrainer(cfg, callbacks=[events.append])
    summary = trainer.fit()
    compile_events = [e for e in events if e["event"] == "compile"]
    assert [e["compiling"] for e in compile_events if "compiling" in e][:1]  # said before the compile
    assert [e["compile"] for e in compile_events if "compiling" in e][0] == "compiling"
    done = [e for e in compile_events if "compiled_s" in e]
    assert len(done) == 2 and all(e["compiled_s"] >= 0.4 for e in done)
    assert trainer.status["compile"] == "on" and trainer.status["compile_graphs"] == 2
    assert trainer.status["compile_s"] >= 0.8 and trainer.compile_s >= 0.8
    # the plan's seconds per update leave out the update that recompiled (call 3, not its first)
    assert trainer.plan.step_s < 0.3, trainer.plan.step_s
    # the summary's throughput leaves out the two micro-steps that compiled, their time and samples
    assert summary["compile_s"] == trainer.compile_s and trainer.compile_samples > 0
    expected = (trainer.samples_seen - trainer.compile_samples) / (summary["wall_s"] - summary["compile_s"])
    assert summary["samples_per_s"] == pytest.approx(expected, rel=1e-6)


def test_eta_without_a_plan_leaves_out_compile_time(tiny_data, tmp_path, monkeypatch):
    _counting_compile(monkeypatch, compile_on_calls=(1,), sleep=1.0)
    etas = []
    trainer = ASLTrainer(make_cfg(tiny_data, tmp_path, "train.compile=true", "train.max_steps=4",
                                  "data.val_fold=-1"),
                         callbacks=[lambda e: etas.append(e["eta_s"]) if e["event"] == "step" else None])
    trainer.fit()
    # after update 1 of 4 (the compile: 1 s), the ETA is 3 x the rate without the compile, well under 1 s
    assert etas[0] is not None and etas[0] < 0.9, etas


def test_a_bucketed_epoch_under_inductor_makes_one_graph_per_length(tiny_data, tmp_path):
    """The real Inductor over two epochs of the trainer with length buckets: a graph per bucket length
    seen in training and one per validation length (at most two each), none in epoch 2 (late dropout
    switched on there, batches in another order), nothing run eagerly."""
    graphs_at_eval = []
    # Augmentations off: a batch's length is then its longest sequence's bucket, the same every epoch
    # (the tiny set is one sorting pool: the same batches, in another order).
    cfg = make_cfg(tiny_data, tmp_path, "train.compile=true", "train.epochs=2", "data.max_len=32",
                   "data.bucket_step=16", "model.late_dropout_start=1", "aug.use_augmentations=false")
    trainer = ASLTrainer(cfg, callbacks=[lambda e: graphs_at_eval.append(e["compile_graphs"])
                                         if e["event"] == "eval" else None])
    shapes = [tuple(b["features"].shape[:2]) for b in trainer.train_loader]
    lengths = {length for _, length in shapes}
    val_lengths = {int(b["features"].shape[1]) for b in trainer.val_loader}
    before = graphs_made()
    summary = trainer.fit()
    graphs = trainer.status["compile_graphs"]
    assert len(lengths) == 2, shapes  # the point of the test: more than one bucket length
    assert trainer.status["compile"] == "on", trainer.status.get("warnings")
    assert graphs == graphs_made() - before  # the status counts what Dynamo made
    # One graph per (length, mode), plus at most one more per length for batch sizes across a threshold
    # of the convolution-backend choice (seen here: a first graph at batch 8 guarded 2 <= B <= 15, then
    # one for batch 16; a batch of one is the other case): the 2-per-length budget of the limit.
    assert len(lengths) + len(val_lengths) <= graphs <= 2 * (len(lengths) + len(val_lengths)), \
        (shapes, [tuple(b["features"].shape[:2]) for b in trainer.val_loader])
    assert trainer.status["compile_eager_batches"] == 0
    assert graphs_at_eval[0] == graphs_at_eval[-1] == graphs  # epoch 2 (late dropout on): no new graph
    assert trainer.model.late_dropout_active and summary["steps"] == 2 * trainer.updates_per_epoch
