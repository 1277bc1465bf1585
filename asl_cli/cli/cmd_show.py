"""`asl show SEQUENCE`: draw a sequence's landmarks, before and after augmentation.

Thin: options -> read the sequence (`extract.load.load_landmarks`: a parquet file as training reads it, all
543 landmarks, x and y, so any file training accepts can be drawn; a video's or `.pose` file's landmarks
extracted as `asl extract` does) -> `ASLAugmentations` on the whole layout (so pose
pairs flip too) -> a PNG frame grid or an animated GIF (`asl_cli.augment.render`, matplotlib imported
only there). The summary line says how many of the sequence's frames were drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asl_cli.cli.app import app
from asl_cli.cli.common import user_errors
from asl_cli.cli.options import SetOpt

SUFFIXES = (".png", ".gif")
MAX_GRID_FRAMES = 32


@app.command("show")
def show_command(
    sequence: Annotated[Path, typer.Argument(help="One landmark parquet file (asl-signs format), video or "
                                             ".pose file.",
                                             show_default=False)],
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Also draw the sequence after "
                       "augmentation, next to the original.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the augmentation draw.")] = 0,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1, max=400, help="PNG: frames per row "
                      "(default 8). GIF: animation steps (default: the longest sequence's length).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output picture: .png (frame grid) or .gif "
                   "(animation).")] = Path("show.png"),
    profile: Annotated[Optional[str], typer.Option("--profile", help="aug.profile: seed or winner "
                       "(default: the preset's).")] = None,
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset whose aug settings are used "
                      "(see `asl presets`).")] = "cpu",
    sets: SetOpt = None,
) -> None:
    """Draw a sequence's landmarks (hands, lips, eyes, pose in their own colours), optionally next to
    its augmented version, as a PNG frame grid or an animated GIF."""
    with user_errors():
        import numpy as np

        from asl_cli.augment import ASLAugmentations
        from asl_cli.augment.render import Row, frame_positions, render_gif, render_grid, require_matplotlib
        from asl_cli.config import apply_overrides, load_config
        from asl_cli.config_io import apply_cli
        from asl_cli.data.reader import COORDINATES
        from asl_cli.extract.load import load_landmarks
        from asl_cli.errors import ConfigError

        if out.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"--out must end in .png or .gif, got {out.name!r}")
        if out.suffix.lower() == ".png" and frames and frames > MAX_GRID_FRAMES:
            raise ConfigError(f"--frames {frames}: a PNG grid holds at most {MAX_GRID_FRAMES} frames per row "
                              "(write a .gif to see them all)")
        cfg = load_config(preset)  # defaults -> preset -> named flags -> --set, as everywhere
        if profile:
            apply_overrides(cfg, [f"aug.profile={profile}"], source="--profile")
        apply_cli(cfg, sets)
        require_matplotlib()  # fail before reading anything when the extra is missing
        landmarks = load_landmarks(sequence, columns=COORDINATES)
        rows = [Row("original", landmarks)]
        detail = ""
        if augment:
            aug_cfg = cfg.aug
            if not aug_cfg.use_augmentations:
                raise ConfigError("--augment with aug.use_augmentations=false: nothing to show")
            aug = ASLAugmentations.from_config(aug_cfg, max_len=cfg.data.max_len, points=range(543))
            augmented, params = aug.augment(landmarks, np.random.default_rng(seed))
            square = (params.spatial_mask_x0, params.spatial_mask_y0, params.spatial_mask_side) \
                if params.spatial_mask else None
            rows.append(Row(f"augmented\n{aug_cfg.profile} profile, seed {seed}", augmented, square))
            detail = f"{aug_cfg.profile} profile, seed {seed}: {params.summary()}"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from asl_cli.errors import RunIOError

            raise RunIOError(f"cannot create the folder ({exc.strerror})", path=out.parent) from None
        gif = out.suffix.lower() == ".gif"
        # the same count the renderer uses: PNG panels per row, GIF steps (default: the longest row)
        count = (frames or max(r.landmarks.shape[0] for r in rows)) if gif else (frames or 8)
        if gif:
            width, height = render_gif(rows, out, frames=count)
        else:
            width, height = render_grid(rows, out, frames=count)
        total = landmarks.shape[0]
        drawn = len(np.unique(frame_positions(total, count)))  # distinct frames of the original drawn
        what = (f"{drawn} of {total} frames" if drawn < total else
                "its 1 frame" if total == 1 else f"all {total} frames")
        if gif:
            what += f", {count} animation steps"
        typer.echo(f"wrote {out} ({width}x{height} px, {what})")
        if detail:
            typer.echo(f"  {detail}")
