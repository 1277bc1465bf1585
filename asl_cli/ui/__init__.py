"""What the user sees: Rich renderables and plain/NDJSON lines, split by what they draw.

- `gpu`: GPU cards, `asl gpu-watch` frames and plain GPU lines (from `asl_cli.monitor` snapshots)
- `training`: the train, augmentation and configuration panels and the plain training log line
  (from the status dict the trainer writes)
- `env`: the `asl check-env` report
- `ndjson`: `--json` output (plain JSON types, one object per line; no Rich)
- `widgets`: the formatters and small widgets (bar, sparkline) the panels share
- `dashboard`: `TrainDashboard`, the trainer callback that shows a run live, as plain lines or NDJSON

The views are pure: nothing polls, sleeps or reads files (the dashboard only holds what the trainer
and the sampler hand it). Only the CLI imports this package; the engine and the monitor do not.
"""
