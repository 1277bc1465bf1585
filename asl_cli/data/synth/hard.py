"""Signers whose recordings differ: the opt-in hard synthetic set (`asl synth --hard`).

The default set (`make_participants`, signers.py) varies its participants mildly: position and
size in the image, hand size, tempo, noise, a little tracking loss. Real asl-signs signers differ
much more, and a model that is tested on signers it never saw has to cope with it. A hard
participant adds:

- a camera of its own (`SignerView`, signers.py): turned (yaw, about the vertical axis through the
  signer's neck, up to +-30 degrees), tilted (pitch, up to +-17 degrees), nearer or further (the
  whole image scaled about its centre, 0.75-1.3x) and shifted; the 3D landmarks are rotated, so a
  turned camera narrows the shoulders and foreshortens the hands as a real one does. Every
  sequence jitters the camera a little (the signer sits down again);
- handedness: a fifth of the signers are left-handed. Their recordings are the mirror image of a
  right-handed signer's, as MediaPipe would see them: x mirrored about the signer's neck and every
  left/right landmark pair swapped (face mesh, pose, and the two hands), so the dominant hand is
  MediaPipe's `left_hand`, on the image right;
- tracking loss: the dominant hand is lost in 5-45 % of the frames (default set 2-15 %), in runs of
  1.5-6 frames; a hand whose wrist leaves the image on any side is NaN;
- tempo: median 8-40 frames per sign (default 12-26), log-uniform;
- larger personal offsets of the keyposes (the signer's own way of placing the hand).

`make_hard_participants` is the `signers` function `generate` (writer.py) takes; `generate_hard`
writes a hard set, optionally split by signer (`holdout_signers`). Everything is seeded as in the
default set: the same seed gives the same files. Nothing else in the package imports this module
but the package's `__init__`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from asl_cli.data.synth.signers import Participant, SignerView, make_participants
from asl_cli.data.synth.writer import ProgressFn, SynthSummary, generate

HARD_VERSION = 1  # bump when the hard set's output for a given seed changes
# `asl synth --hard` without --signs/--participants/--repetitions: a benchmark-sized set.
HARD_DEFAULTS = {"num_signs": 64, "num_participants": 40, "repetitions": 2}
LEFT_HANDED_SHARE = 0.2
YAW_MAX, PITCH_MAX = 0.52, 0.3  # radians (30 and 17 degrees)
SCALE_RANGE = (0.75, 1.3)
OFFSET_MAX = (0.1, 0.06)  # image units, x and y


def make_hard_participants(num: int, k: int, seed: int) -> list[Participant]:
    """`num` participants of the hard set (keypose pool size `k`), deterministic for a seed.

    The ids and body placement are those of `make_participants` (same seed, same ids); the
    rest is drawn from a stream of its own.
    """
    base = make_participants(num, k, seed)
    rng = np.random.default_rng([seed, 2, HARD_VERSION])
    out = []
    for person in base:
        view = SignerView(yaw=float(rng.uniform(-YAW_MAX, YAW_MAX)), pitch=float(rng.uniform(-PITCH_MAX, PITCH_MAX)),
                          scale=float(math.exp(rng.uniform(*np.log(SCALE_RANGE)))),
                          offset=(float(rng.uniform(-OFFSET_MAX[0], OFFSET_MAX[0])),
                                  float(rng.uniform(-OFFSET_MAX[1], OFFSET_MAX[1]))),
                          mirrored=bool(rng.random() < LEFT_HANDED_SHARE))
        out.append(dataclasses.replace(
            person, speed=float(math.exp(rng.uniform(math.log(8.0), math.log(40.0)))),
            miss=float(rng.uniform(0.05, 0.45)), miss_run=float(rng.uniform(1.5, 6.0)),
            style=rng.normal(0.0, 0.07, (k, 2)), view=view))
    return out


def generate_hard(out_dir: str | Path, *, num_signs: int = HARD_DEFAULTS["num_signs"],
                  num_participants: int = HARD_DEFAULTS["num_participants"],
                  repetitions: int = HARD_DEFAULTS["repetitions"], seed: int = 0, holdout_signers: int = 0,
                  workers: int | None = None, progress: ProgressFn | None = None) -> SynthSummary:
    """The hard set (see the module docstring) in the asl-signs format; `holdout_signers` N > 0
    writes `out_dir/train` and `out_dir/test` (N signers never seen in train). As `generate`."""
    return generate(out_dir, num_signs=num_signs, num_participants=num_participants,
                    repetitions=repetitions, seed=seed, workers=workers, progress=progress,
                    signers=make_hard_participants, holdout_signers=holdout_signers,
                    about={"difficulty": "hard", "hard_version": HARD_VERSION})
