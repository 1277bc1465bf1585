"""The training engine: the loop (`trainer.ASLTrainer`), precision, checkpoints, run folders, metrics,
optimizers and schedules. See docs/engine.md."""
