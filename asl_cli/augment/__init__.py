"""Training augmentations: pure array operations (`ops`) composed by `ASLAugmentations`.

numpy only (no torch): they run per sample inside DataLoader workers.
"""

from asl_cli.augment.pipeline import ASLAugmentations, AugParams, apply_params, draw_params

__all__ = ["ASLAugmentations", "AugParams", "apply_params", "draw_params"]
