"""Compiled per-sample data work (optional numba): the augmentations and the preprocessing in one pass.

Why: on a CPU the data work of one training sample (augmentation ~110 us + preprocessing ~90 us,
docs/benchmarks.md) is dozens of numpy calls on arrays of ~2,000 values, so their fixed costs
dominate; the same arithmetic as one compiled loop takes a fraction of that, which is what lets the
data pipeline keep up with a small model on a 2-core machine.

numba is an optional extra (`pip install 'asl-cli[fast]'`). Without it, or with `ASL_NUMBA=0`, the
numpy code (asl_cli/augment/ops.py, asl_cli/data/preprocess.py) runs; it stays the reference the
kernel is tested against (tests/test_fast.py: the same features within float32 rounding).

What the kernel does, in the order of `augment.pipeline.apply_params`: resampling (the taps and
weights of `ops.resample_plan`) and the temporal crop, mirror (`perm`), affine map, Gaussian noise
(drawn by the caller, as `ops.gaussian_noise` draws it), temporal mask, landmark masks (feature
mask, dropout uniforms, spatial square), then the winner's preprocessing
(`preprocess(..., drop_nan_frames=False)`): centre on the lower lip, scale, truncate, xy + dx + dx2,
NaN -> 0. Every random number is drawn outside, by the same numpy calls in the same
order as the numpy path, so a run is reproducible either way.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Callable

import numpy as np

from asl_cli.data.landmarks import NUM_FEATURES, NUM_POINTS
from asl_cli.data.preprocess import CENTRE_POS, preprocess

ENV_SWITCH = "ASL_NUMBA"  # "0": use the numpy path even where numba is installed
_NO_TAPS = (np.zeros((0, 0), dtype=np.intp), np.zeros((0, 0), dtype=np.float32))
_EMPTY_PERM = np.zeros(0, dtype=np.intp)
_EMPTY_MASK = np.zeros(0, dtype=np.bool_)
_EMPTY_U2 = np.zeros((0, 0), dtype=np.float32)
_EMPTY_NOISE = np.zeros((0, 0, 0), dtype=np.float32)


def _switched_off() -> bool:
    return os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def _numba_version() -> str | None:
    try:
        import numba
    except Exception:  # not installed, or broken (e.g. a numpy it does not support yet)
        return None
    return str(numba.__version__)


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Callable | None, str]:
    """(kernel, "") or (None, why): imports asl_cli/data/fast_kernels.py, which compiles the kernel
    for its one signature (~2 s, the first time on a machine) or loads numba's on-disk cache of it
    (a fraction of a second), and runs it once on a tiny input. Any failure (numba unable to
    compile, no writable cache folder) means the numpy path, with one warning."""
    try:
        from asl_cli.data.fast_kernels import augment_and_preprocess

        iparams = np.array([1, 0, 1, 0, 0, 0, 0, 0, CENTRE_POS], dtype=np.int64)
        augment_and_preprocess(np.zeros((1, NUM_POINTS, 2), dtype=np.float32), *_NO_TAPS, _EMPTY_PERM,
                               _EMPTY_NOISE, _EMPTY_MASK, _EMPTY_U2, iparams, np.zeros(11, dtype=np.float32),
                               np.empty((1, NUM_FEATURES), dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - any numba failure: the numpy path still works
        why = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        warnings.warn(f"asl: numba is installed but the compiled data kernel failed ({why}); "
                      f"using the numpy data path", RuntimeWarning, stacklevel=3)
        return None, why
    return augment_and_preprocess, ""


def available() -> bool:
    """True when the compiled kernel is used: numba importable, not switched off (`ASL_NUMBA=0`)
    and the kernel compiled. The first call in a process compiles or loads it (see `_load`);
    `build_loaders` makes that call before any DataLoader worker starts, so workers inherit it."""
    return _numba_version() is not None and not _switched_off() and _load()[0] is not None


def status(requested: bool = True) -> str:
    """One line for check-env and logs: whether the compiled data path is used, and why not.
    `requested`: the run's `data.compiled` (False: the numpy path by configuration)."""
    if not requested:
        return "numpy data path (data.compiled = false)"
    version = _numba_version()
    if version is None:
        return "numpy data path (numba not installed: pip install 'asl-cli[fast]')"
    if _switched_off():
        return f"numpy data path (numba {version} installed, switched off by {ENV_SWITCH}=0)"
    kernel, why = _load()
    if kernel is None:
        return f"numpy data path (numba {version}: the kernel failed: {why})"
    return f"compiled data path (numba {version})"


class Pending:
    """One prepared kernel call: `shape` is its features' (rows, 708); `write(out)` computes them into
    `out` (float32, C-contiguous, that shape: e.g. a sample's rows of a batch, which then needs no
    copy); `run()` into a new array. Holds the points and the drawn values until it runs."""

    __slots__ = ("args", "shape")

    def __init__(self, args: tuple | None, rows: int):
        self.args = args  # None: an empty sequence (one zero row)
        self.shape = (rows, NUM_FEATURES)

    def write(self, out: np.ndarray) -> None:
        if out.shape != self.shape:  # the kernel trusts the shape (no bounds checks)
            raise ValueError(f"features of shape {self.shape} cannot be written into {out.shape}")
        if self.args is None:
            out[:] = 0
        else:
            _load()[0](*self.args, out)  # a float64 or strided `out` matches no signature: TypeError

    def run(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        self.write(out)
        return out


def prepare(points: np.ndarray, max_len: int, *, resample: tuple[np.ndarray, np.ndarray] | None = None,
            first: int = 0, length: int | None = None, permutation: np.ndarray | None = None,
            complex_affine: tuple[complex, complex, complex] | None = None,
            noise: np.ndarray | None = None, frames_masked: tuple[int, int] = (0, 0),
            points_masked: np.ndarray | None = None, dropout_uniforms: np.ndarray | None = None,
            dropout_prob: float = 0.0, square: tuple[float, float, float] | None = None) -> Pending:
    """The kernel call for `(T, 118, C>=2)` float32 points -> `(min(length, max_len), 708)` float32
    features, augmented on the way.

    resample: (taps, weights) of `ops.resample_plan` (source frames of the resampled sequence);
    first, length: the frames kept of the (resampled) sequence (the temporal crop; default all);
    permutation: the flip's landmark permutation (mirror on); complex_affine: (alpha, beta, gamma)
    of z' = alpha z + beta conj(z) + gamma (`ops.complex_coefficients`); noise: float32
    (length, N, 2) added to x and y (`ops.gaussian_noise_values`: numpy's vectorised transcendentals
    beat scalar ones in a loop); frames_masked: [start, stop); points_masked: boolean (N,);
    dropout_uniforms: float32 (length, N), missing where < dropout_prob; square: (x0, y0, side) of
    the spatial mask. Requires `available()`.
    """
    x = points if points.dtype == np.float32 and points.flags.c_contiguous else \
        np.ascontiguousarray(points, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != NUM_POINTS or x.shape[2] < 2:
        raise ValueError(f"expected (T, {NUM_POINTS}, C>=2) points, got shape {x.shape}")
    if x.shape[0] == 0:
        return Pending(None, 1)
    taps, weights = _NO_TAPS if resample is None else (np.ascontiguousarray(resample[0], dtype=np.intp),
                                                        np.ascontiguousarray(resample[1], dtype=np.float32))
    if length is None:
        length = (x.shape[0] if resample is None else taps.shape[1]) - first
    # float32 parameters, rounded as numpy rounds them (complex64 coefficients, float32 bounds)
    alpha, beta, gamma = complex_affine if complex_affine is not None else (1, 0, 0)
    x0, y0, side = square if square is not None else (0.0, 0.0, 0.0)
    fparams = np.array([alpha.real, alpha.imag, beta.real, beta.imag, gamma.real, gamma.imag, dropout_prob,
                        x0, x0 + side, y0, y0 + side], dtype=np.float32)
    iparams = np.array([max_len, first, length, permutation is not None, complex_affine is not None,
                        frames_masked[0], frames_masked[1], square is not None, CENTRE_POS], dtype=np.int64)
    # fixed dtypes and layouts: one compiled signature (no-ops for the arrays the pipeline passes)
    return Pending((x, taps, weights,
                    _EMPTY_PERM if permutation is None else np.ascontiguousarray(permutation, dtype=np.intp),
                    _EMPTY_NOISE if noise is None else np.ascontiguousarray(noise, dtype=np.float32),
                    _EMPTY_MASK if points_masked is None else np.ascontiguousarray(points_masked, dtype=np.bool_),
                    _EMPTY_U2 if dropout_uniforms is None else np.ascontiguousarray(dropout_uniforms,
                                                                                    dtype=np.float32),
                    iparams, fparams), min(int(length), int(max_len)))


def features(points: np.ndarray, max_len: int) -> np.ndarray:
    """`preprocess(points, max_len, drop_nan_frames=False)`, compiled where available."""
    if available():
        return prepare(points, max_len).run()
    return preprocess(points, max_len, drop_nan_frames=False)
