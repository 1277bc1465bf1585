"""`torch.compile` fitted to length bucketing, with a status that says what really runs.

    forward = CompiledForward(model, "default", warn, lengths=24)
    logits = forward(features, mask)      # compiled training graph (train mode, grad on)
    with torch.no_grad(): forward(...)    # compiled evaluation graph (its own cache and limit)

Why a plan per bucket length (measured on torch 2.13, docs/engine.md "torch.compile"): Inductor's
lowering of `convolution_backward` guards the depthwise convolution's strides as integers, so a
graph marked dynamic on the time axis is specialised to one length anyway (`mark_dynamic` on the
time axis raises ConstraintViolationError; automatic dynamic shapes just recompile per length).
So the time axis is static, one graph per bucket length, and the batch axis is dynamic: short
batches reuse their length's graph (a batch of exactly one sample, or a backend's guard on a size,
can give a length a second graph). Nothing else that used to recompile does: evaluation runs through
a second compiled entry point (its own code object, so its graphs neither evict nor count against
the training ones), and the model's late-dropout switch is a tensor, not a Python attribute.
Dynamo's per-function `recompile_limit` (8 by default) is raised to cover 2 graphs per bucket
length; past it a call raises instead of silently running eagerly (`fail_on_recompile_limit_hit`),
and that batch runs eagerly, counted.

Compile time is measured per call (the call that made a graph, forward and backward, is timed by
the caller: `TrainStep` reports it so throughput, ETA and the time plan leave it out).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

# A bucket length's graph + one more: a batch of one (0/1 specialisation), or a batch size on the other
# side of a threshold in torch's convolution-backend choice (`_select_conv_backend`, asked while
# tracing: TORCH_LOGS=recompiles showed the guard `2 <= B <= 15` in the CPU trainer test, then a
# second graph for batch 16 at the same length). Which thresholds CUDA's choice has is for a GPU run.
GRAPHS_PER_LENGTH = 2
SPARE_GRAPHS = 2


def is_compiler_error(exc: BaseException) -> bool:
    """An error of torch.compile's machinery (Dynamo, AOTAutograd backends, Inductor codegen)."""
    from torch._dynamo.exc import FailOnRecompileLimitHit, TorchDynamoException

    return (isinstance(exc, (TorchDynamoException, FailOnRecompileLimitHit))
            or type(exc).__module__.startswith("torch._inductor"))


def bucket_lengths(max_len: int, bucket_step: int, bucketing: bool) -> int:
    """How many distinct padded lengths the loader can produce (one when it pads to max_len)."""
    if not bucketing:
        return 1
    step = max(1, int(bucket_step))
    return -(-int(max_len) // step)


def graphs_made() -> int:
    """Dynamo's process-wide count of graphs compiled so far (its `unique_graphs` counter)."""
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - an older/newer torch without the counter: no compile accounting
        return 0


def _evaluation_entry(model: torch.nn.Module) -> Callable:
    """A function of its own (its own code object, hence its own Dynamo cache) that runs `model`."""
    def evaluate(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(features, mask)
    return evaluate


class CompiledForward:
    """A `torch.compile`d forward (training and evaluation entry points) with a clean fallback to eager.

    `state` is what runs: "compiling" (inside a call that compiles a graph), "on", "fallback (eager)"
    (a compiler failure: one warning, eager from then on) or "on, N batches eager (recompile limit)".
    """

    def __init__(self, model: torch.nn.Module, mode: str, on_fallback: Callable[[str], None], *,
                 lengths: int = 1, on_compile: Callable[[str], None] | None = None):
        self.eager = model  # evaluation and the fallback
        self.train_module: Any = model  # what training runs (the DDP wrapper under torchrun)
        self.mode = mode
        self.on_fallback = on_fallback
        self.on_compile = on_compile  # told before a call expected to compile ("compiling ...")
        self.max_graphs = GRAPHS_PER_LENGTH * max(1, int(lengths)) + SPARE_GRAPHS
        self.graphs = 0  # graphs compiled through this object (training + evaluation)
        self.compile_s = 0.0  # wall seconds of the calls that compiled (forward only; see TrainStep)
        self.compile_events = 0  # calls that compiled at least one graph
        self.eager_batches = 0  # calls past the recompile limit, run eagerly
        self.reason: str | None = None  # why it fell back to eager
        self.compiling = False
        self._seen: set[tuple] = set()  # (training, length, batch of one) that ran compiled
        self._over_limit: set[tuple] = set()  # ... that the recompile limit refused: eager from then on
        self._train: Callable | None = None
        self._eval: Callable | None = None
        try:
            self._raise_limit()
            self._train = torch.compile(model, mode=mode, dynamic=False)
            self._eval = torch.compile(_evaluation_entry(model), mode=mode, dynamic=False)
        except Exception as exc:  # noqa: BLE001 - any failure means: run eagerly
            self._fallback(exc)

    def _raise_limit(self) -> None:
        config = torch._dynamo.config
        config.recompile_limit = max(int(config.recompile_limit), self.max_graphs)

    def train_with(self, module: Any) -> None:
        """Train through `module` (the DDP wrapper around the same model); evaluation keeps the model."""
        self.train_module = module
        if self._train is not None:
            try:
                self._train = torch.compile(module, mode=self.mode, dynamic=False)
            except Exception as exc:  # noqa: BLE001
                self._fallback(exc)

    @property
    def compiled(self) -> Callable | None:
        """The compiled training entry point, None after a fallback."""
        return self._train

    @property
    def state(self) -> str:
        if self._train is None:
            return "fallback (eager)"
        if self.compiling:
            return "compiling" if self.graphs == 0 else f"recompiling (graph {self.graphs + 1})"
        if self.eager_batches:
            return f"on, {self.eager_batches} batches eager (recompile limit)"
        return "on"

    def _fallback(self, exc: BaseException) -> None:
        self._train = self._eval = None
        self.compiling = False
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        self.reason = f"{type(exc).__name__}: {first}"
        self.on_fallback(f"torch.compile unavailable, running eagerly ({self.reason})")

    def backward_failed(self, exc: BaseException) -> bool:
        """True (after falling back to eager, one warning) when `exc` is a compiler failure raised
        by the compiled backward pass; False for anything else (an OOM, a real error)."""
        if self._train is None or not is_compiler_error(exc):
            return False
        self._fallback(exc)
        return True

    def __call__(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        training = self.eager.training and torch.is_grad_enabled()
        fn = self._train if training else self._eval
        eager = self.train_module if training else self.eager
        if fn is None:
            return eager(features, mask)
        for t in (features, mask):  # short batches reuse their length's graph
            torch._dynamo.maybe_mark_dynamic(t, 0)
        key = (training, int(features.shape[1]), int(features.shape[0]) == 1)
        if key in self._over_limit:  # never compiled, refused once: straight to eager, no "compiling" again
            self.eager_batches += 1
            return eager(features, mask)
        if key not in self._seen:
            self.compiling = True
            if self.on_compile is not None:
                self.on_compile(f"{'training' if training else 'evaluation'} graph for length {key[1]}")
        before, begin = graphs_made(), time.perf_counter()
        try:
            from torch._dynamo.exc import FailOnRecompileLimitHit
            try:
                with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
                    out = fn(features, mask)
            except FailOnRecompileLimitHit:
                self.eager_batches += 1
                if key not in self._seen:  # (a length that has a graph may still match it another time)
                    self._over_limit.add(key)
                if self.eager_batches == 1:
                    self.on_fallback(f"torch.compile: recompile limit ({self.max_graphs} graphs) reached at "
                                     f"length {key[1]}; batches of new shapes run eagerly")
                return eager(features, mask)
        except (torch.cuda.OutOfMemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - compilation failed at a forward: go eager
            self._fallback(exc)
            return eager(features, mask)
        finally:
            self.compiling = False
        made = graphs_made() - before
        if made > 0:
            self.graphs += made
            self.compile_events += 1
            self.compile_s += time.perf_counter() - begin
        self._seen.add(key)
        return out

    def summary(self) -> dict[str, Any]:
        """Status keys: graphs compiled, seconds spent in calls that compiled, eager batches, why eager."""
        return {"compile_graphs": self.graphs, "compile_s": round(self.compile_s, 3),
                "compile_eager_batches": self.eager_batches, "compile_reason": self.reason}


__all__ = ["CompiledForward", "is_compiler_error", "bucket_lengths", "graphs_made", "GRAPHS_PER_LENGTH"]
