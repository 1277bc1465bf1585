"""What the live views send to a terminal, and what a frame costs: flicker and load, measured.

    python benchmarks/bench_terminal.py [--rounds 5]

1. `asl gpu-watch --fake-gpu demo` on a pseudo-terminal at 80x24, 120x40 and 200x60 (`--interval
   0.25 --count 12`): frames, bytes a frame, full-screen clears (ESC[2J) and line erases (ESC[2K)
   a frame, and whether every frame is one synchronized update (ESC[?2026h ... ESC[?2026l).
2. `asl train` with the live dashboard on a 100x40 pseudo-terminal (tiny run on the committed real
   files, about 8 s): the same counts for its frames.
3. Render time of one frame in this process (CPU, median of --rounds x 20 frames): the gpu-watch
   frame with a run (3 fake GPUs, 20 samples of history) and the training dashboard's frame, each at
   the three sizes.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZES = ((80, 24), (120, 40), (200, 60))
BEGIN, END = b"\x1b[?2026h", b"\x1b[?2026l"


def on_terminal(cmd: list[str], columns: int, rows: int, timeout: float = 120) -> bytes:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "LINES": str(rows), "TERM": "xterm-256color",
           "PYTHONPATH": str(ROOT)}
    env.pop("ASL_FAKE_GPU", None)
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    proc.kill() if proc.poll() is None else None
    proc.wait()
    return out


def frame_stats(out: bytes) -> dict:
    frames = out.split(BEGIN)[1:]
    whole = [f.split(END)[0] for f in frames]
    outside = out.split(BEGIN)[0] + b"".join(f.split(END, 1)[1] if END in f else b"" for f in frames)
    return {"frames": len(frames), "closed": sum(END in f for f in frames),
            "bytes_per_frame": round(statistics.median(len(f) for f in whole)) if whole else 0,
            "clears_per_frame": statistics.mean(f.count(b"\x1b[2J") for f in whole) if whole else 0,
            "erases_per_frame": statistics.mean(f.count(b"\x1b[2K") for f in whole) if whole else 0,
            "erases_outside_frames": outside.count(b"\x1b[2K") + outside.count(b"\x1b[2J")}


def render_ms(render, columns: int, rows: int, rounds: int) -> float:
    from rich.console import Console

    times = []
    for _ in range(rounds):
        console = Console(width=columns, height=rows, file=io.StringIO(), force_terminal=True,
                          color_system="truecolor")
        t = time.process_time()
        for _ in range(20):
            console.print(render())
        times.append((time.process_time() - t) / 20 * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asl = [sys.executable, "-m", "asl_cli"]

    print("1. asl gpu-watch --fake-gpu demo --interval 0.25 --count 12, on a pseudo-terminal")
    print("| terminal | frames | synchronized | bytes/frame | clears/frame | erases/frame | erases outside a frame |")
    print("|---|---|---|---|---|---|---|")
    for columns, rows in SIZES:
        s = frame_stats(on_terminal([*asl, "gpu-watch", "--fake-gpu", "demo", "--interval", "0.25", "--count", "12"],
                                    columns, rows))
        print(f"| {columns}x{rows} | {s['frames']} | {s['closed']}/{s['frames']} | {s['bytes_per_frame']:,} | "
              f"{s['clears_per_frame']:.1f} | {s['erases_per_frame']:.1f} | {s['erases_outside_frames']} |")

    print("\n2. asl train (live dashboard, tiny run on tests/data/asl-signs-mini) on a 100x40 pseudo-terminal")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.monotonic()
        out = on_terminal([*asl, "train", "--data", str(ROOT / "tests/data/asl-signs-mini"), "--device", "cpu",
                           "--set", "model.dim=32", "--set", "data.max_len=32", "--set", "data.n_folds=3",
                           "--epochs", "6", "--runs-dir", f"{tmp}/runs", "--set", f"data.cache_dir={tmp}/cache",
                           "--fake-gpu", "demo"], 100, 40)
        wall = time.monotonic() - t
    s = frame_stats(out)
    print(f"frames {s['frames']} in {wall:.1f} s ({s['frames'] / wall:.1f}/s), synchronized {s['closed']}/{s['frames']}, "
          f"bytes/frame {s['bytes_per_frame']:,}, clears/frame {s['clears_per_frame']:.1f}, "
          f"erases/frame {s['erases_per_frame']:.1f}, erases outside a frame {s['erases_outside_frames']}")

    print(f"\n3. render time of one frame, this process (CPU ms, median of {args.rounds} x 20)")
    sys.path.insert(0, str(ROOT / "docs"))
    from capture_monitor import demo_status

    from asl_cli.monitor import GPUSampler, open_backend
    from asl_cli.ui.dashboard import LIVE, TrainDashboard
    from asl_cli.ui.gpu import watch_frame

    sampler = GPUSampler(open_backend("demo"), interval=1.0)
    for _ in range(20):
        sampler.sample_once()
    snaps, history = sampler.latest(), sampler.history()
    status = demo_status()
    board = TrainDashboard(LIVE, sampler=sampler)
    board.status = {k: v for k, v in status.items() if k != "config"}
    print("| terminal | gpu-watch frame (3 GPUs + a run) | training dashboard frame (1 GPU) |")
    print("|---|---|---|")
    for columns, rows in SIZES:
        watch = render_ms(lambda: watch_frame(snaps, history, status=status, run_detail=0, host="gpu-box",
                                              interval=1.0), columns, rows, args.rounds)
        dash = render_ms(board.renderable, columns, rows, args.rounds)
        print(f"| {columns}x{rows} | {watch:.1f} ms | {dash:.1f} ms |")


if __name__ == "__main__":
    main()
