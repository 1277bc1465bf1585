"""A synthetic data set in exactly the Kaggle asl-signs format (the embedded default of `asl train`).

Layout written by `generate(out_dir, ...)`, as in the real data:

    train_landmark_files/<participant_id>/<sequence_id>.parquet   one per sequence
    train.csv                                                     path,participant_id,sequence_id,sign
    sign_to_prediction_index_map.json                             {sign: index}, signs sorted by name
    synth.json                                                    how it was made (parameters, sign recipes)

Each parquet has the real schema (frame int16, row_id string "<frame>-<type>-<index>", type string,
landmark_index int16, x/y/z float64 holding float32 values, pandas metadata, one row group, snappy)
and 543 rows per frame: face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20. Frame numbers
start at a random offset (1-199), as in the real data.

What makes it learnable but not trivial. Every sign is an ORDER of the same small pool of
keyposes (a keypose = dominant-hand position, hand shape, palm roll and yaw): sign A may visit
keyposes 2-0-3-1, sign B 1-3-0-2, each time returning to a neutral "hub" pose in between. All
signs therefore show the same frames; only the order of the visits tells them apart. Hold and
move durations, the number of frames, the lead-in from and lead-out to the rest position,
per-keypose jitter and the curvature of each move are drawn per sequence, so a single frame
carries (almost) no information about the sign: a model has to use the motion over time. About a
third of the signs are two-handed: their second hand visits a second pool of keyposes in a
sign-specific order; in one-handed signs it makes the same visits in a random order per sequence,
so its single-frame distribution is the same in both kinds. docs/synthetic.md has the figures.

Participants differ in body size and position in the image, hand size, signing speed (sequence
length), landmark noise, how often the tracker loses a hand and small personal offsets of the
keyposes. A hand whose wrist leaves the image (rest position) or that the tracker "loses" is
NaN for all 21 points; the face is occasionally lost too; pose is always present (as in the data).

Opt-in, for a benchmark: `generate(..., signers=make_hard_participants)` (`asl synth --hard`,
hard.py) gives every signer a camera of their own, left-handers (mirrored), more tracking loss and
a wider tempo; `holdout_signers=N` writes `train/` and `test/`
folders whose participants are disjoint. The defaults write exactly the files they always did.

Everything is drawn from `numpy.random.default_rng` seeded with (seed, purpose, ...), so a seed
gives byte-identical files (for a given pyarrow version), independent of generation order.

The package, by concern (each module's docstring has the details):

    templates.py    face mesh, hand skeleton, handshapes, sign recipes (what a sign is)
    signers.py      participants and how their recordings look (camera, handedness)
    motion.py       one sequence: a signer performing a sign, as the tracker sees it
    writer.py       `generate`: the asl-signs folder layout, worker processes, held-out signers (each file
                    written by `asl_cli.data.landmark_writer`, which `asl extract` shares)
    default_set.py  the cached default set of `asl train` without --data
    hard.py         the opt-in hard set (`asl synth --hard`)

The names below are the package's public interface (`from asl_cli.data import synth`).
"""

from __future__ import annotations

from asl_cli.data.synth.default_set import (COMPLETE_FILE, default_dataset_dir, default_dataset_facts,
                                            default_dataset_ready, describe_default_dataset,
                                            ensure_default_dataset, folder_bytes)
from asl_cli.data.synth.hard import HARD_DEFAULTS, HARD_VERSION, generate_hard, make_hard_participants
from asl_cli.data.synth.motion import MAX_FRAMES, MIN_FRAMES, QUANTUM, synth_sequence
from asl_cli.data.landmark_writer import TYPES
from asl_cli.data.synth.signers import MIRROR, Participant, SignerView, make_participants, mirror, turn
from asl_cli.data.synth.templates import (FACE_GROUPS, FACE_TEMPLATE, HANDSHAPES, Recipes, SignRecipe, hand_joints,
                                          make_recipes, pool_size, sign_names)
from asl_cli.data.synth.writer import (FILES_DIR, GENERATOR_VERSION, INFO_FILE, SPLITS, ProgressFn, SignersFn,
                                       SynthSummary, generate, heldout_participants)

__all__ = [
    "COMPLETE_FILE", "FACE_GROUPS", "FACE_TEMPLATE", "FILES_DIR", "GENERATOR_VERSION", "HANDSHAPES",
    "HARD_DEFAULTS", "HARD_VERSION", "INFO_FILE", "MAX_FRAMES", "MIN_FRAMES", "MIRROR", "Participant",
    "ProgressFn", "QUANTUM", "Recipes", "SPLITS", "SignRecipe", "SignerView", "SignersFn", "SynthSummary",
    "TYPES", "default_dataset_dir", "default_dataset_facts", "default_dataset_ready", "describe_default_dataset",
    "ensure_default_dataset", "folder_bytes", "generate", "generate_hard", "hand_joints", "heldout_participants",
    "make_hard_participants", "make_participants", "make_recipes", "mirror", "pool_size", "sign_names",
    "synth_sequence", "turn",
]
