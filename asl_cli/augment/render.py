"""Pictures of landmark sequences, before and after augmentation (`asl show`).

matplotlib is an optional extra (`pip install 'asl-cli[plot]'`), imported only when drawing; without
it `require_matplotlib` raises one clear `ASLError`. No pyplot: figures are drawn on an Agg canvas,
so nothing depends on a display or on global pyplot state.

Landmarks are (T, 543, C>=2) in MediaPipe image coordinates (y grows downwards). Colours mark the
landmark slots: a flip moves a hand from the left-hand slots (green) to the right-hand slots
(purple), which is exactly what a correct flip must do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from asl_cli.data.landmarks import LEFT_HAND_RANGE, LEYE, LIP, NOSE, POSE_RANGE, REYE, RIGHT_HAND_RANGE
from asl_cli.errors import ASLError, RunIOError

# slot group -> (flat indices, colour, marker size)
GROUPS: dict[str, tuple[list[int], str, float]] = {
    "face": (list(range(0, 468)), "#c8c8c8", 0.6),
    "pose": (list(POSE_RANGE), "#444444", 6.0),
    "lips": (LIP, "#d62728", 3.0),
    "eyes": (LEYE + REYE, "#1f77b4", 3.0),
    "nose": (NOSE, "#ff7f0e", 5.0),
    "left hand": (list(LEFT_HAND_RANGE), "#2ca02c", 6.0),
    "right hand": (list(RIGHT_HAND_RANGE), "#9467bd", 6.0),
}
_HAND = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
         (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20)]
_POSE = [(11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24)]
EDGES: list[tuple[int, int, str]] = (
    [(468 + a, 468 + b, GROUPS["left hand"][1]) for a, b in _HAND]
    + [(522 + a, 522 + b, GROUPS["right hand"][1]) for a, b in _HAND]
    + [(489 + a, 489 + b, GROUPS["pose"][1]) for a, b in _POSE]
)
PANEL_INCHES = 1.7
DPI = 100


def require_matplotlib():
    """The matplotlib modules needed here, or one clear error line when the extra is missing."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ASLError("drawing needs matplotlib, an optional extra: pip install 'asl-cli[plot]'") from None
    return matplotlib, Figure, FigureCanvasAgg


@dataclass
class Row:
    """One sequence to draw: a title, its landmarks, and an optional square drawn on every frame."""

    title: str
    landmarks: np.ndarray  # (T, 543, C>=2)
    square: tuple[float, float, float] | None = None  # (x0, y0, side), e.g. the spatial mask


def frame_positions(length: int, count: int) -> np.ndarray:
    """`count` frame indices spread evenly over `length` frames (first and last included)."""
    if count <= 1 or length == 1:
        return np.zeros(max(1, count), dtype=np.int64)
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def view_box(rows: Sequence[Row]) -> tuple[float, float, float, float]:
    """A square region (x0, x1, y0, y1) around the landmarks of every row, with a margin."""
    # upper body, hands and face: pose landmarks 23+ (hips, legs) are often guessed off-screen
    body = np.r_[0:468, POSE_RANGE.start:POSE_RANGE.start + 23, LEFT_HAND_RANGE.start:LEFT_HAND_RANGE.stop,
                 RIGHT_HAND_RANGE.start:RIGHT_HAND_RANGE.stop]
    xy = np.concatenate([r.landmarks[:, body, :2].reshape(-1, 2) for r in rows])
    xy = xy[~np.isnan(xy).any(axis=1)]
    if xy.size == 0:
        return 0.0, 1.0, 0.0, 1.0
    lo, hi = np.percentile(xy, 0.2, axis=0), np.percentile(xy, 99.8, axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.05) * 1.08
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def _draw_frame(ax, frame: np.ndarray, box, square) -> None:
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[3], box[2])  # image coordinates: y down
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    xy = frame[:, :2]
    if np.isnan(xy).all():
        ax.text(0.5, 0.5, "all missing", transform=ax.transAxes, ha="center", va="center",
                fontsize=7, color="#999999")
    for a, b, colour in EDGES:
        if not (np.isnan(xy[a]).any() or np.isnan(xy[b]).any()):
            ax.plot([xy[a, 0], xy[b, 0]], [xy[a, 1], xy[b, 1]], color=colour, lw=0.7)
    for idx, colour, size in GROUPS.values():
        pts = xy[idx]
        pts = pts[~np.isnan(pts).any(axis=1)]
        if len(pts):
            ax.scatter(pts[:, 0], pts[:, 1], s=size, c=colour, linewidths=0)
    if square is not None:
        from matplotlib.patches import Rectangle

        x0, y0, side = square
        ax.add_patch(Rectangle((x0, y0), side, side, fill=False, ls="--", lw=0.8, ec="#d62728"))


def _legend(fig) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=colour, label=name)
               for name, (_, colour, _) in GROUPS.items() if name != "face"]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False,
               borderaxespad=0.2)


def _save(fig, canvas_cls, out: Path) -> None:
    canvas_cls(fig)
    try:
        fig.savefig(out, dpi=DPI)
    except OSError as exc:
        raise RunIOError(f"cannot write the picture ({exc.strerror or exc})", path=out) from None


def render_grid(rows: Sequence[Row], out: str | Path, *, frames: int = 8) -> tuple[int, int]:
    """A PNG: one row of `frames` evenly spaced frames per sequence. Returns (width, height) in px."""
    _, Figure, FigureCanvasAgg = require_matplotlib()
    out = Path(out)
    box = view_box(rows)
    fig = Figure(figsize=(frames * PANEL_INCHES, len(rows) * PANEL_INCHES + 0.35), dpi=DPI)
    top = 1 - 0.25 / (len(rows) * PANEL_INCHES + 0.35)
    axes = fig.subplots(len(rows), frames, squeeze=False,
                        gridspec_kw=dict(left=0.025, right=0.995, top=top, bottom=0.1, wspace=0.04, hspace=0.2))
    for r, row in enumerate(rows):
        t = row.landmarks.shape[0]
        for c, f in enumerate(frame_positions(t, frames)):
            ax = axes[r, c]
            _draw_frame(ax, row.landmarks[f], box, row.square)
            ax.set_title(f"frame {f + 1}/{t}", fontsize=7, loc="left")
        axes[r, 0].set_ylabel(row.title, fontsize=8)
    _legend(fig)
    _save(fig, FigureCanvasAgg, out)
    return int(round(fig.get_figwidth() * DPI)), int(round(fig.get_figheight() * DPI))


def render_gif(rows: Sequence[Row], out: str | Path, *, frames: int | None = None, fps: int = 10) -> tuple[int, int]:
    """An animated GIF (matplotlib's PillowWriter): the sequences side by side, played over the same
    relative time, `frames` steps (default: the longest sequence's length). Returns (width, height)."""
    _, Figure, FigureCanvasAgg = require_matplotlib()
    from matplotlib.animation import PillowWriter

    out = Path(out)
    box = view_box(rows)
    steps = int(frames) if frames else max(r.landmarks.shape[0] for r in rows)
    fig = Figure(figsize=(len(rows) * PANEL_INCHES * 1.6, PANEL_INCHES * 1.6 + 0.3), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(rows), squeeze=False,
                        gridspec_kw=dict(left=0.01, right=0.99, top=0.9, bottom=0.1, wspace=0.04))[0]
    _legend(fig)
    positions = [frame_positions(r.landmarks.shape[0], steps) for r in rows]
    writer = PillowWriter(fps=fps)
    try:
        with writer.saving(fig, str(out), DPI):
            for step in range(steps):
                for ax, row, pos in zip(axes, rows, positions):
                    ax.clear()
                    f = int(pos[step])
                    _draw_frame(ax, row.landmarks[f], box, row.square)
                    ax.set_title(f"{row.title.replace(chr(10), ': ')}  frame {f + 1}/{row.landmarks.shape[0]}",
                                 fontsize=7, loc="left")
                writer.grab_frame()
    except OSError as exc:
        raise RunIOError(f"cannot write the animation ({exc.strerror or exc})", path=out) from None
    return int(round(fig.get_figwidth() * DPI)), int(round(fig.get_figheight() * DPI))
