"""`asl test-fix` as a library: the seed's fixes, each checked for real on the real code.

Every check is a function `check_x(ws) -> (status, reason)` with status PASS, FAIL or SKIP, run
against the toolkit's own trainer, loaders, dataset and precision code on a tiny synthetic set
(a few dozen sequences, a 32-wide model) in a temporary folder, so the whole list takes well
under a minute on a CPU. Each check can fail: tests/test_test_fix.py breaks each property on
purpose and sees FAIL. An exception inside a check is a FAIL naming the exception.

    results = run_checks(load_config("rtx4070"))      # [CheckResult(name, title, status, reason, seconds)]

The torch.compile check runs in a subprocess started first (it compiles while the other checks
run) and is cut off after `compile_timeout` seconds (SKIP with the reason, never a hang).

Over 500 lines on purpose: one short, self-contained check per fix of the seed (twelve), read
side by side with docs/test-fix.md's table; splitting them would scatter that list.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from asl_cli.config import RunConfig, load_config, set_value, validate

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass
class CheckResult:
    name: str
    title: str
    status: str
    reason: str
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


# --- the shared tiny workspace ------------------------------------------------------------------

TINY = {
    "model.dim": 32, "model.blocks": 1, "model.num_heads": 4, "model.kernel_size": 5,
    "data.max_len": 32, "data.bucket_step": 8, "data.n_folds": 3, "data.val_fold": 0,
    "train.batch_size": 8, "train.gradient_accumulation_steps": 1, "train.epochs": 1, "train.max_steps": 0,
    "train.time_budget": 0.0, "train.log_every": 1, "train.compile": False, "train.use_mixed_precision": False,
    "optim.optimizer": "adamw", "optim.warmup_epochs": 0.0, "optim.awp_lambda": 0.0,
    "loader.num_workers": 0,
}
SYNTH = dict(num_signs=4, num_participants=6, repetitions=3, seed=0)


class Workspace:
    """A temporary folder with a tiny synthetic asl-signs set; builds tiny trainers from `base`.

    `base` is the configuration under test (a preset): the loader/cuDNN checks look at its
    values; the functional checks use it with the TINY sizes on top.
    """

    def __init__(self, base: RunConfig, root: Path):
        self.base = copy.deepcopy(base)
        self.root = Path(root)
        self._data: Path | None = None
        self._n = 0
        import torch

        self.cuda = torch.cuda.is_available()
        # A preset that names CUDA is still checked on a machine without one (on the CPU).
        self.device = self.base.train.device if self.cuda else "cpu"

    @property
    def data_dir(self) -> Path:
        if self._data is None:
            from asl_cli.data.synth import generate

            if not (self.root / "data" / "train.csv").is_file():  # a kept workdir is reused
                generate(self.root / "data", **SYNTH)
            self._data = self.root / "data"
        return self._data

    def cfg(self, overrides: dict[str, Any] | None = None, *, tiny: bool = True) -> RunConfig:
        cfg = copy.deepcopy(self.base)
        values = dict(TINY) if tiny else {}
        values.update({"data.data_dir": str(self.data_dir), "data.cache_dir": str(self.root / "cache"),
                       "data.limit": 0, "train.device": self.device, "runs_dir": str(self.root / "runs")})
        values.update(overrides or {})
        for key, value in values.items():
            set_value(cfg, key, value, source="test-fix")
        self._n += 1
        cfg.name = f"check-{self._n}-{uuid.uuid4().hex[:6]}"  # unique also in a reused workdir
        validate(cfg, source="test-fix")
        return cfg

    def trainer(self, cfg: RunConfig, **kwargs):
        from asl_cli.engine.trainer import ASLTrainer

        with _quiet():
            return ASLTrainer(cfg, **kwargs)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The engine's own warnings (e.g. "fp16 needs CUDA") are not check results."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_batch(loader) -> dict:
    return next(iter(loader))


def _reference(trainer, indices) -> list:
    """Un-augmented features of these sequences, through the real dataset code (augment=None)."""
    from asl_cli.data.dataset import SignDataset

    ds = SignDataset(trainer.cache, list(indices), max_len=trainer.cfg.data.max_len, augment=None,
                     seed=trainer.cfg.train.seed)
    return [ds[i]["features"] for i in range(len(ds))]


def _same_as_reference(batch: dict, refs: list) -> list[bool]:
    import numpy as np

    out = []
    feats, lengths = batch["features"].cpu().numpy(), batch["lengths"].cpu().numpy()
    for b, ref in enumerate(refs):
        n = int(lengths[b])
        out.append(n == ref.shape[0] and np.array_equal(feats[b, :n], ref))
    return out


# --- the checks ---------------------------------------------------------------------------------

ALL_ON = {"aug.use_augmentations": True, "aug.temporal_prob": 1.0, "aug.spatial_prob": 1.0,
          "aug.noise_prob": 1.0, "aug.mask_prob": 1.0}


def check_aug_train_only(ws: Workspace) -> tuple[str, str]:
    """With augmentations on, training batches differ from un-augmented preprocessing and
    validation batches equal it; with them off, training batches equal it too."""
    trainer = ws.trainer(ws.cfg(ALL_ON))
    if trainer.val_loader is None:
        return FAIL, "the trainer built no validation loader"
    tb = _first_batch(trainer.train_loader)
    vb = _first_batch(trainer.val_loader)
    t_same = _same_as_reference(tb, _reference(trainer, tb["index"].tolist()))
    v_same = _same_as_reference(vb, _reference(trainer, vb["index"].tolist()))
    off = ws.trainer(ws.cfg({"aug.use_augmentations": False}))
    ob = _first_batch(off.train_loader)
    o_same = _same_as_reference(ob, _reference(off, ob["index"].tolist()))
    t_diff = len(t_same) - sum(t_same)
    reason = (f"train {t_diff}/{len(t_same)} samples augmented; val {sum(v_same)}/{len(v_same)} unchanged; "
              f"with use_augmentations=false train {sum(o_same)}/{len(o_same)} unchanged")
    if t_diff == 0:
        return FAIL, "augmentations do not reach training batches: " + reason
    if not all(v_same):
        return FAIL, "validation batches are augmented: " + reason
    if not all(o_same):
        return FAIL, "use_augmentations=false still changes training batches: " + reason
    return PASS, reason


class KeySpy(dict):
    """A batch dict that records which keys are read."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)


def check_features_key(ws: Workspace) -> tuple[str, str]:
    """The training step reads batch["features"] (a batch without "landmarks" trains) and hands
    exactly those values to the model."""
    import torch

    trainer = ws.trainer(ws.cfg({"train.max_steps": 1}))
    real = _first_batch(trainer.train_loader)
    if "landmarks" in real:
        return FAIL, 'the loader still produces batch["landmarks"]'
    spy = KeySpy(real)
    seen: list[torch.Tensor] = []
    inner = trainer.step_fn.forward

    def forward(features, mask):
        seen.append(features.detach().cpu())
        return inner(features, mask)

    trainer.step_fn.forward = forward
    trainer.train_loader = [spy]  # one micro-batch: the step must make do with what is in it
    trainer.val_loader = None
    with _quiet():
        summary = trainer.fit()
    keys = sorted(set(spy.read))
    if "features" not in spy.read:
        return FAIL, f'the training step never read batch["features"] (read: {", ".join(keys)})'
    if not seen:
        return FAIL, "the model was never called"
    if not torch.equal(seen[0], real["features"]):
        return FAIL, 'the model got something other than batch["features"] (transformed again?)'
    if summary.get("steps") != 1:
        return FAIL, f"expected 1 optimizer step, got {summary.get('steps')}"
    return PASS, f"step read {', '.join(keys)}; model input == batch['features'] ({tuple(seen[0].shape)})"


def _preprocess_functions() -> dict[str, Callable]:
    from asl_cli.data import preprocess as pp

    funcs = {"preprocess": pp.preprocess}
    with contextlib.suppress(ImportError):
        from asl_cli.data import preprocess_torch as ppt

        funcs["preprocess_torch"] = ppt.preprocess_torch
    return funcs


@contextlib.contextmanager
def count_preprocess_calls() -> Iterator[dict[str, int]]:
    """Count calls of the preprocessing functions wherever an asl_cli module refers to them."""
    funcs = _preprocess_functions()
    counts = {name: 0 for name in funcs}
    patched: list[tuple[Any, str, Any]] = []

    def counting(name: str, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)
        wrapper.__wrapped__ = fn
        return wrapper

    wrappers = {name: counting(name, fn) for name, fn in funcs.items()}
    for mod_name, module in list(sys.modules.items()):
        if not mod_name.startswith("asl_cli") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            for name, fn in funcs.items():
                if value is fn:
                    patched.append((module, attr, value))
                    setattr(module, attr, wrappers[name])
    try:
        yield counts
    finally:
        for module, attr, value in patched:
            setattr(module, attr, value)


def check_preprocess_once(ws: Workspace) -> tuple[str, str]:
    """One epoch of the real train loader preprocesses each sample exactly once; the training
    step itself preprocesses nothing."""
    trainer = ws.trainer(ws.cfg({"aug.use_augmentations": True, "train.max_steps": 2}))
    with count_preprocess_calls() as counts:
        batches = list(trainer.train_loader)
        loaded = sum(int(b["labels"].shape[0]) for b in batches)
        during_loading = sum(counts.values())
        trainer.train_loader = batches  # the same batches, already preprocessed
        trainer.val_loader = None
        with _quiet():
            trainer.fit()
        during_training = sum(counts.values()) - during_loading
    if during_loading != loaded:
        return FAIL, f"loading {loaded} samples ran preprocessing {during_loading} times (expected {loaded})"
    if during_training:
        return FAIL, f"the training step ran preprocessing again ({during_training} calls for 2 steps)"
    return PASS, f"{loaded} samples -> {during_loading} preprocess calls in the loader, 0 in the training step"


def check_checkpoint_config(ws: Workspace) -> tuple[str, str]:
    """use_augmentations (and the rest of the resolved config) is saved in the checkpoint."""
    from asl_cli.engine.checkpoint import load_checkpoint

    cfg = ws.cfg({"aug.use_augmentations": False, "train.max_steps": 1, "train.gradient_clip_val": 0.5,
                  "aug.rotate_deg": 12.5})
    trainer = ws.trainer(cfg)
    with _quiet():
        summary = trainer.fit()
    path = summary.get("last_checkpoint")
    if not path or not Path(path).is_file():
        return FAIL, "no last checkpoint was written"
    ckpt = load_checkpoint(path, map_location="cpu")
    saved = ckpt.get("config")
    saved = json.loads(saved) if isinstance(saved, str) else saved
    if not isinstance(saved, dict):
        return FAIL, "the checkpoint has no config"
    if saved.get("aug", {}).get("use_augmentations") is not False:
        return FAIL, f"aug.use_augmentations is {saved.get('aug', {}).get('use_augmentations')!r} in the " \
                     f"checkpoint, the run had false"
    try:
        restored = RunConfig.from_dict(saved, source="checkpoint").to_dict()
    except Exception as exc:  # noqa: BLE001 - an unreadable config is the failure being checked
        return FAIL, f"the saved config does not load: {exc}"
    expected = trainer.cfg.to_dict()
    diff = sorted(k for k in _flat(expected) if _flat(expected).get(k) != _flat(restored).get(k))
    if diff:
        return FAIL, f"config differs after the round trip: {', '.join(diff[:4])}"
    return PASS, f"use_augmentations=false and all {len(_flat(expected))} settings round-trip through {Path(path).name}"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _tiny_model(ws: Workspace):
    import torch

    from asl_cli.config import ModelConfig
    from asl_cli.model import build_model

    torch.manual_seed(0)
    mc = ModelConfig(dim=32, blocks=1, num_heads=4, kernel_size=5, drop_rate=0.0)
    return build_model(mc, 4)


def _amp_step(ws: Workspace, device_type: str, name: str) -> tuple[bool, str]:
    """One TrainStep (micro-step + update) in `name` precision: did layers run in that dtype,
    is the loss finite, did the weights move?"""
    import torch

    from asl_cli.engine.precision import DTYPES, Precision
    from asl_cli.engine.step import TrainStep

    trainer = ws.trainer(ws.cfg())
    batch = _first_batch(trainer.train_loader)
    model = _tiny_model(ws).to(device_type).train()
    dtypes: set = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    before = [p.detach().clone() for p in model.parameters()]
    precision = Precision(device_type, name)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), precision,
                     nominal_window=int(batch["labels"].shape[0]), clip_val=1.0)
    step.micro_step(batch["features"].to(device_type), batch["mask"].to(device_type),
                    batch["labels"].to(device_type))
    applied, _norm, loss = step.update()
    for h in hooks:
        h.remove()
    moved = any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    want = DTYPES[name]
    ok = applied and moved and finite and want in dtypes
    scale = f", loss scale {precision.scale:.0f}" if precision.scale else ""
    detail = (f"layers ran in {', '.join(sorted(str(d).replace('torch.', '') for d in dtypes))}"
              f", loss {float(loss) / batch['labels'].shape[0]:.3f}, update applied={applied}, weights moved={moved}"
              f"{scale}")
    return ok, detail


def check_amp_bf16(ws: Workspace) -> tuple[str, str]:
    """A bf16 autocast training step works (CUDA with bf16, or the CPU's bf16 autocast)."""
    if ws.cuda:
        from asl_cli.engine.precision import cuda_has_native_bf16

        if not cuda_has_native_bf16():  # emulated bf16 (T4, V100) is not what `auto` would use
            return SKIP, "this GPU has no bf16 in hardware (fp16 + GradScaler is the AMP path here)"
        ok, detail = _amp_step(ws, "cuda", "bf16")
        return (PASS if ok else FAIL), "CUDA bf16: " + detail
    ok, detail = _amp_step(ws, "cpu", "bf16")
    return (PASS if ok else FAIL), "CPU bf16 autocast: " + detail + " (GPU AMP not checked: no CUDA)"


def check_amp_fp16(ws: Workspace) -> tuple[str, str]:
    """An fp16 step with the GradScaler works (CUDA only)."""
    if not ws.cuda:
        return SKIP, "no CUDA: fp16 + GradScaler is a CUDA feature (the CPU trains in fp32 or bf16)"
    ok, detail = _amp_step(ws, "cuda", "fp16")
    return (PASS if ok else FAIL), "CUDA fp16 + GradScaler: " + detail


def check_clipping(ws: Workspace) -> tuple[str, str]:
    """The trainer's update clips the whole gradient to gradient_clip_val before the step."""
    import torch

    clip = 1.0
    trainer = ws.trainer(ws.cfg({"train.gradient_clip_val": clip}))
    step = trainer.step_fn
    if abs(step.clip_val - clip) > 1e-12:
        return FAIL, f"the trainer's step clips at {step.clip_val}, the config says {clip}"
    batch = _first_batch(trainer.train_loader)
    inner = step.forward
    step.forward = lambda f, m: inner(f, m) * 1000.0  # huge logits -> gradients far above the limit
    norms: list[float] = []
    original_step = trainer.optimizer.step

    def recording_step(*args: Any, **kwargs: Any):
        grads = [p.grad.detach().float().norm() for p in trainer.model.parameters() if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0)
        return original_step(*args, **kwargs)

    trainer.optimizer.step = recording_step
    dev = trainer.device
    step.micro_step(batch["features"].to(dev), batch["mask"].to(dev), batch["labels"].to(dev))
    applied, pre_clip, _loss = step.update()
    if not norms:
        return FAIL, "the optimizer never stepped"
    pre = None if pre_clip is None else float(pre_clip)
    if pre is None or pre <= clip:
        return FAIL, f"no pre-clip norm above the limit was reported (got {pre})"
    if norms[0] > clip * (1 + 1e-3):
        return FAIL, f"gradient norm at the optimizer step is {norms[0]:.3g} > clip {clip} (pre-clip {pre:.3g})"
    return PASS, f"pre-clip norm {pre:.3g} -> {norms[0]:.4f} at the optimizer step (limit {clip})"


def check_accumulation(ws: Workspace) -> tuple[str, str]:
    """Accumulated micro-batches give the same update as one big batch: a full window (4+4+4 vs
    12) and a partial one with a short last batch (4+4+2 vs 10); and the training loop steps an
    epoch's last, partial window instead of dropping it or carrying it into the next epoch."""
    import torch

    from asl_cli.engine.precision import Precision
    from asl_cli.engine.step import TrainStep

    trainer = ws.trainer(ws.cfg({"train.batch_size": 12}))
    batch = _first_batch(trainer.train_loader)
    if batch["labels"].shape[0] < 12:
        return FAIL, f"need a batch of 12 for the comparison, the loader gave {batch['labels'].shape[0]}"
    dev = trainer.device
    f, m, y = (batch[k].to(dev) for k in ("features", "mask", "labels"))
    base = _tiny_model(ws).to(dev).eval()  # eval: no dropout, BatchNorm uses running stats

    def run(sizes: list[int], nominal: int):
        model = copy.deepcopy(base)
        step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=1.0), Precision(dev.type, "fp32"),
                         nominal_window=nominal, clip_val=0.0)
        start = 0
        for s in sizes:
            step.micro_step(f[start:start + s], m[start:start + s], y[start:start + s])
            start += s
        step.update()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    worst = 0.0
    for micro, big in (([4, 4, 4], 12), ([4, 4, 2], 10)):
        a = run(micro, nominal=4 * 3)  # batch 4 x accumulation 3
        b = run([big], nominal=big)  # one batch of the same samples
        moved = float((b - torch.cat([p.detach().flatten() for p in base.parameters()])).abs().max())
        err = float((a - b).abs().max())
        worst = max(worst, err / max(moved, 1e-12))
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-6):
            return FAIL, (f"{'+'.join(map(str, micro))} accumulated differs from one batch of {big}: "
                          f"max weight difference {err:.3g} (update size {moved:.3g})")
    tail = _partial_window_problem(ws)
    if tail:
        return FAIL, tail
    return PASS, (f"4+4+4 == 12 and 4+4+2 == 10 (largest difference {worst:.1e} of the update); "
                  f"an epoch's partial last window is stepped")


def _partial_window_problem(ws: Workspace) -> str:
    """Train one epoch whose batches do not fill the last accumulation window; "" when the loop
    applied every window, the partial one included, over exactly the epoch's samples."""
    batches = len(ws.trainer(ws.cfg()).train_loader)
    accum = next((k for k in (4, 3, 5, 2) if k < batches and batches % k), 0)
    if not accum:
        return ""  # too few batches for a partial window (not the tiny set's case)
    trainer = ws.trainer(ws.cfg({"train.gradient_accumulation_steps": accum}))
    windows: list[int] = []
    update = trainer.step_fn.update

    def recording_update():
        windows.append(trainer.step_fn.window_samples)
        return update()

    trainer.step_fn.update = recording_update
    trainer.val_loader = None
    with _quiet():
        trainer.fit()
    samples = len(trainer.train_loader.dataset)
    expected = -(-batches // accum)
    if len(windows) != expected or sum(windows) != samples:
        return (f"{batches} batches with accumulation {accum}: {len(windows)} updates over {sum(windows)} samples, "
                f"expected {expected} over {samples} (the last, partial window must be stepped)")
    return ""


def check_cudnn_flags(ws: Workspace) -> tuple[str, str]:
    """cudnn.benchmark / deterministic are set as the configuration says (CUDA only)."""
    import torch

    if not ws.cuda:
        return SKIP, "no CUDA: cuDNN is not used on the CPU"
    t = ws.base.train
    want_bench = bool(t.cudnn_benchmark) and not t.deterministic
    # Start from the opposite values, so flags the trainer leaves alone cannot pass by chance.
    torch.backends.cudnn.benchmark = not want_bench
    torch.backends.cudnn.deterministic = not bool(t.deterministic)
    trainer = ws.trainer(ws.cfg({"train.cudnn_benchmark": t.cudnn_benchmark, "train.deterministic": t.deterministic}))
    if trainer.device.type != "cuda":
        return SKIP, f"train.device={ws.device!r}: this configuration trains on the CPU, where cuDNN is not used"
    got = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if got != (want_bench, bool(t.deterministic)):
        return FAIL, f"cudnn.benchmark={got[0]}, deterministic={got[1]}; expected {want_bench}, {bool(t.deterministic)}"
    return PASS, f"cudnn.benchmark={got[0]}, deterministic={got[1]} as configured"


def check_loader_settings(ws: Workspace) -> tuple[str, str]:
    """The trainer's DataLoaders use the preset's workers, pin_memory (only with CUDA),
    persistent_workers and prefetch_factor."""
    from asl_cli.engine import parallelism

    ld = ws.base.loader
    cfg = ws.cfg({"loader.num_workers": ld.num_workers, "loader.pin_memory": ld.pin_memory,
                  "loader.persistent_workers": ld.persistent_workers, "loader.prefetch_factor": ld.prefetch_factor})
    trainer = ws.trainer(cfg)
    on_cuda = trainer.device.type == "cuda"
    workers = ld.num_workers
    if workers == parallelism.AUTO:  # the loaders must follow the trainer's plan for this machine (its
        workers = trainer.parallel.num_workers  # rule is tested on its own: tests/test_parallelism.py)
    problems, facts = [], []
    for name, loader in (("train", trainer.train_loader), ("val", trainer.val_loader)):
        if loader is None:
            continue
        want = {"num_workers": workers, "pin_memory": bool(ld.pin_memory and on_cuda),
                "persistent_workers": bool(ld.persistent_workers and workers > 0)}
        if workers > 0:
            want["prefetch_factor"] = ld.prefetch_factor
        for key, value in want.items():
            got = getattr(loader, key, None)
            if got != value:
                problems.append(f"{name}.{key}={got!r} (expected {value!r})")
    t = trainer.train_loader
    facts.append(f"num_workers {t.num_workers}" + (" (auto)" if ld.num_workers == parallelism.AUTO else "")
                 + f", pin_memory {t.pin_memory}"
                 + ("" if on_cuda or not ld.pin_memory else " (no CUDA: pinning would only cost)")
                 + f", persistent_workers {t.persistent_workers}")
    if problems:
        return FAIL, "; ".join(problems)
    return PASS, facts[0] + f" — as preset {ws.base.preset or '(custom)'} says"


COMPILE_SCRIPT = r"""
import json, sys, time, torch
from asl_cli.config import ModelConfig
from asl_cli.model import build_model
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"  # the device training would compile for
model = build_model(ModelConfig(dim=32, blocks=1, num_heads=4, kernel_size=5, drop_rate=0.0), 4).eval().to(dev)
x = torch.randn(2, 16, 708, device=dev); mask = torch.ones(2, 16, dtype=torch.bool, device=dev); mask[1, 10:] = False
t0 = time.perf_counter()
with torch.no_grad():
    out = torch.compile(model, backend=sys.argv[1])(x, mask)
    ref = model(x, mask)
print(json.dumps({"seconds": time.perf_counter() - t0, "max_diff": float((out - ref).abs().max()), "device": dev}))
"""


def _c_compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def start_compile_probe(backend: str = "inductor") -> subprocess.Popen | None:
    """Start the inductor compile in a subprocess (it runs while the other checks do)."""
    if not _c_compiler():
        return None
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.Popen([sys.executable, "-c", COMPILE_SCRIPT, backend], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def check_compile(ws: Workspace, probe: subprocess.Popen | None = None, timeout: float = 45.0,
                  started: float | None = None) -> tuple:
    """torch.compile works on the model: graph capture (aot_eager, in-process) matches eager, and
    the real inductor compile (subprocess, time-limited) does too.

    The inductor compile runs in a subprocess while the other checks run, so the time this function
    waits says nothing; where the compile's own time is known it is returned third, for the table's
    seconds column, the same figure the reason gives."""
    import torch

    if not hasattr(torch, "compile"):
        return SKIP, f"torch {torch.__version__} has no torch.compile"
    model = _tiny_model(ws).eval()
    x = torch.randn(2, 16, 708)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 10:] = False
    with torch.no_grad():
        out = torch.compile(model, backend="aot_eager")(x, mask)
        ref = model(x, mask)
    diff = float((out - ref).abs().max())
    if not torch.allclose(out, ref, atol=1e-5):
        return FAIL, f"graph capture (aot_eager) changes the output: max difference {diff:.3g}"
    captured = f"graph capture matches eager (max diff {diff:.1e})"
    if probe is None:
        return SKIP, f"{captured}; inductor not tried: no C compiler (cc/gcc/clang) found"
    left = timeout - (time.monotonic() - (started or time.monotonic()))
    try:
        stdout, stderr = probe.communicate(timeout=max(0.1, left))
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return SKIP, f"{captured}; inductor compile did not finish within {timeout:.0f} s on this machine " \
                     f"(raise --compile-timeout to wait longer)", float(timeout)
    if probe.returncode != 0:
        last = (stderr.strip().splitlines() or ["no output"])[-1][:200]
        return FAIL, f"{captured}; inductor compile failed: {last}"
    result = json.loads(stdout.strip().splitlines()[-1])
    if result["max_diff"] > 1e-4:
        return FAIL, f"inductor output differs from eager by {result['max_diff']:.3g}"
    seconds = float(result["seconds"])
    return PASS, f"{captured}; inductor compiled for {result.get('device', 'cpu')} and matched in " \
                 f"{seconds:.1f} s (in a subprocess, while the other checks ran)", seconds


CHECKS: list[tuple[str, str, Callable[..., tuple[str, str]]]] = [
    ("augment-train-only", "augmentations reach training batches only", check_aug_train_only),
    ("features-key", 'the trainer consumes batch["features"]', check_features_key),
    ("preprocess-once", "preprocessing runs once per sample", check_preprocess_once),
    ("checkpoint-config", "use_augmentations and the config round-trip a checkpoint", check_checkpoint_config),
    ("amp-bf16", "a bf16 autocast step works", check_amp_bf16),
    ("amp-fp16", "an fp16 + GradScaler step works", check_amp_fp16),
    ("clipping", "clipping bounds the gradient norm", check_clipping),
    ("accumulation", "accumulation equals the big batch", check_accumulation),
    ("cudnn-flags", "cuDNN flags as configured", check_cudnn_flags),
    ("compile", "torch.compile works", check_compile),
    ("loader-settings", "DataLoader settings as the preset says", check_loader_settings),
]
CHECK_NAMES = [c[0] for c in CHECKS]


def run_checks(base: RunConfig | None = None, *, only: list[str] | None = None, compile_timeout: float = 45.0,
               workdir: str | Path | None = None,
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run the checks (all, or `only`) against `base` (default: the cpu preset)."""
    from asl_cli.errors import ConfigError

    base = base or load_config("cpu")
    wanted = only or CHECK_NAMES
    unknown = [n for n in wanted if n not in CHECK_NAMES]
    if unknown:
        raise ConfigError(f"unknown check {unknown[0]!r} (checks: {', '.join(CHECK_NAMES)})")
    results: list[CheckResult] = []
    tmp = None if workdir else tempfile.TemporaryDirectory(prefix="asl-test-fix-")
    root = Path(workdir) if workdir else Path(tmp.name)
    started = time.monotonic()
    probe = start_compile_probe() if "compile" in wanted else None
    try:
        ws = Workspace(base, root)
        for name, title, fn in CHECKS:
            if name not in wanted:
                continue
            t0 = time.perf_counter()
            seconds = None  # a check may give its own (the compile: the subprocess's compile time)
            try:
                with _quiet():
                    if name == "compile":
                        status, reason, *own = fn(ws, probe, compile_timeout, started)
                    else:
                        status, reason, *own = fn(ws)
                seconds = own[0] if own else None
            except Exception as exc:  # noqa: BLE001 - a crash is a failed check, with its reason
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                status, reason = FAIL, f"raised {type(exc).__name__}: {first}"
            result = CheckResult(name, title, status, reason,
                                 time.perf_counter() - t0 if seconds is None else float(seconds))
            results.append(result)
            if on_result:
                on_result(result)
    finally:
        if probe is not None and probe.poll() is None:
            probe.kill()
            probe.communicate()
        if tmp is not None:
            tmp.cleanup()
    return results
