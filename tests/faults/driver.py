"""Runs `asl` with one test fault armed (never imported by the toolkit itself).

    python tests/faults/driver.py KIND N MARK -- asl arguments...

KIND `save`: the N-th checkpoint write stops half-way through its temporary file; `eval`: the N-th
validation batch stops after its forward pass; `prepare`: `asl prepare` stops after reading
its N-th sequence; `none`: nothing. At that point the driver writes
the file MARK and sleeps, so the test can SIGKILL the process exactly there. The hooks are
monkeypatches in this process only: the toolkit has no fault-injection code path.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path


def arm(kind: str, n: int, mark: Path) -> None:
    calls = [0]

    def reached() -> bool:
        calls[0] += 1
        return calls[0] == n

    def park() -> None:
        mark.write_text(kind)
        time.sleep(120)  # the test kills us here

    if kind == "save":
        import asl_cli.engine.checkpoint as checkpoint

        real_save = checkpoint.torch.save

        def half_written_save(obj, f, *args, **kwargs):
            if not reached():
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            park()

        checkpoint.torch.save = half_written_save
    elif kind == "eval":
        import asl_cli.engine.trainer as trainer

        real_topk = trainer.topk_correct

        def topk_then_park(*args, **kwargs):
            out = real_topk(*args, **kwargs)
            if reached():
                park()
            return out

        trainer.topk_correct = topk_then_park
    elif kind == "prepare":
        import asl_cli.data.cache as cache

        real_load = cache.load_sequence

        def load_then_park(path):
            out = real_load(path)
            if reached():
                park()
            return out

        cache.load_sequence = load_then_park
    elif kind != "none":
        raise SystemExit(f"unknown fault kind {kind!r}")


if __name__ == "__main__":
    kind, n, mark, sep, *rest = sys.argv[1:]
    assert sep == "--"
    arm(kind, int(n), Path(mark))
    sys.argv = ["asl", *rest]
    from asl_cli.cli.app import main

    main()
