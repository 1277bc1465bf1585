"""The "next:" block that ends `train`, `ablate`, `evaluate`, `synth` and `prepare`: the exact commands a
user runs next for this run or data set, with what each gives, ready to copy.

    next:
      asl evaluate runs/cpu-20261206-2112                        # accuracy per sign, confusion matrix
      asl predict runs/cpu-20261206-2112 /root/.cache/asl/....   # the top-5 signs of one sequence
      ...

Pure: each `after_*` function returns `Step`s from facts the command already has; `lines` renders
them for a terminal or a log, `as_json` as the `next` field of the command's JSON output. A step
that needs a missing optional extra says so (`needs`), with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

@dataclass(frozen=True)
class Step:
    what: str  # a short key: evaluate, predict, show, export, watch, train, ...
    command: str  # the exact command line
    why: str  # what it gives, in a few words
    needs: str | None = None  # an optional extra this step needs and that is not installed

    def to_dict(self) -> dict[str, Any]:
        d = {"what": self.what, "command": self.command, "why": self.why, "needs": self.needs}
        if self.needs:
            d["install"] = _install(self.needs)
        return d


def _install(extra: str) -> str:
    from asl_cli.tools.env_report import install_command

    return install_command(extra)


def quote(path: Any) -> str:
    """A path as a shell word (quoted only when it needs it)."""
    return shlex.quote(str(path))


_q = quote


def extra_installed(extra: str, find_spec: Callable[[str], Any] = importlib.util.find_spec) -> bool:
    """Whether every package of an optional extra (env_report.EXTRAS) can be imported here."""
    from asl_cli.tools.env_report import EXTRAS

    names = next((packages for name, packages, _ in EXTRAS if name == extra), ())  # import names = package names
    try:
        return all(find_spec(m) is not None for m in names)
    except (ImportError, ValueError):
        return False


def _needs(extra: str, installed: Callable[[str], bool]) -> str | None:
    return None if installed(extra) else extra


# --- the steps of each command ----------------------------------------------------------------

def after_train(run_dir: str | Path, *, example: str | Path | None = None, device: str = "",
                installed: Callable[[str], bool] = extra_installed) -> list[Step]:
    """After `asl train` (finished, or nothing left to train): evaluate, predict and draw a sequence of
    its data set (`example`: a file that exists, preferably one it did not train on), export, and on a GPU
    the monitor."""
    run = _q(run_dir)
    steps = [Step("evaluate", f"asl evaluate {run}", "accuracy per sign, confused pairs, confusion matrix")]
    if example is not None:
        steps.append(Step("predict", f"asl predict {run} {_q(example)}", "the top-5 signs of one sequence"))
        steps.append(Step("show", f"asl show {_q(example)} --augment", "draw that sequence, before/after augmentation",
                          _needs("plot", installed)))
    steps.append(Step("export", f"asl export {run}", "an ONNX model, verified against PyTorch",
                      _needs("onnx", installed)))
    if str(device).startswith("cuda"):
        steps.append(Step("watch", f"asl gpu-watch --run {run}", "the GPUs and this run's status, live"))
    return steps


def after_ablate(out_dir: str | Path, runs: Sequence[str], *, example: str | Path | None = None,
                 installed: Callable[[str], bool] = extra_installed) -> list[Step]:
    """After `asl ablate`: evaluate the baseline (and the first variant), predict with it, the chart."""
    out = Path(str(out_dir))
    steps = []
    for name in list(runs)[:2]:
        steps.append(Step("evaluate", f"asl evaluate {_q(out / name)}",
                          f"{name}: accuracy per sign, confused pairs, confusion matrix"))
    if example is not None and runs:
        steps.append(Step("predict", f"asl predict {_q(out / runs[0])} {_q(example)}",
                          f"{runs[0]}: the top-5 signs of one sequence"))
    if runs:
        steps.append(Step("export", f"asl export {_q(out / runs[0])}", f"{runs[0]} as ONNX, verified",
                          _needs("onnx", installed)))
    return steps


def after_evaluate(checkpoint: str | Path, *, split: str, example: str | Path | None = None,
                   installed: Callable[[str], bool] = extra_installed) -> list[Step]:
    """After `asl evaluate`: predict one of its files, the other split, export."""
    ckpt = _q(checkpoint)
    steps = []
    if example is not None:
        steps.append(Step("predict", f"asl predict {ckpt} {_q(example)}", "the top-5 signs of one sequence"))
    if split == "val":
        steps.append(Step("evaluate", f"asl evaluate {ckpt} --split all", "every sequence, not only the held-out fold"))
    steps.append(Step("export", f"asl export {ckpt}", "an ONNX model, verified against PyTorch",
                      _needs("onnx", installed)))
    return steps


def after_data(data_dir: str | Path, *, checked: bool = False) -> list[Step]:
    """After `asl synth` / `asl prepare`: check it, train on it."""
    data = _q(data_dir)
    steps = []
    if not checked:
        steps.append(Step("check", f"asl check-env --data {data}", "every file readable, counts"))
    steps.append(Step("train", f"asl train --data {data}", "train on it (the cpu preset: about 2 minutes)"))
    return steps


# --- rendering ----------------------------------------------------------------------------------

ALIGN_UP_TO = 40  # commands up to this long get their `# why` aligned

def lines(steps: Iterable[Step]) -> list[str]:
    """`next:` and one indented line per step: the command, then `# why` (a shell comment, so a whole
    line can be copied), aligned."""
    steps = list(steps)
    if not steps:
        return []
    width = min(ALIGN_UP_TO, max(len(s.command) for s in steps))  # long paths: no wide gap before `#`
    out = ["next:"]
    for s in steps:
        why = s.why + (f" (needs the {s.needs} extra: {_install(s.needs)})" if s.needs else "")
        out.append(f"  {s.command.ljust(width)}   # {why}")
    return out


def as_json(steps: Iterable[Step]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in steps]


def example_from_data(data_dir: str | Path | None, synth_cfg: Any = None) -> Path | None:
    """The first sequence file listed in a data set's train.csv that exists (the synthetic default set of
    `synth_cfg` when `data_dir` is None); None when there is none."""
    try:
        if data_dir is None:
            from asl_cli.data.synth import default_dataset_dir

            data_dir = default_dataset_dir(synth_cfg)
        root = Path(data_dir)
        with open(root / "train.csv", encoding="utf-8") as fh:
            next(fh)  # the header
            for _, line in zip(range(20), fh):
                path = root / line.split(",", 1)[0].strip()
                if path.is_file():
                    return path
    except Exception:  # noqa: BLE001 - a hint, never a failure
        return None
    return None


def example_file(cache: Any, indices: Any = None) -> Path | None:
    """A file of a prepared cache's data set that exists: the first of `indices` (e.g. the validation
    fold: a sequence the run did not train on), else the first sequence; None when there is none."""
    try:
        root = Path(str(cache.data_dir))
        order = [int(i) for i in (indices if indices is not None and len(indices) else range(len(cache)))]
        for i in order[:20]:
            path = root / str(cache.paths[i])
            if path.is_file():
                return path
    except Exception:  # noqa: BLE001 - a hint, never a failure
        return None
    return None
