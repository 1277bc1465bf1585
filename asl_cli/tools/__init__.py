"""Tools built on the engine, each the library behind one command: `ablation` (`asl ablate`),
`selfcheck` (`asl test-fix`) and `env_report` (`asl check-env`). Nothing in the engine, data or
model layers imports them."""
