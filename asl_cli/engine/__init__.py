"""The training engine: trainer loop, precision, optimizers and schedules, AWP, checkpoints, run folders."""
