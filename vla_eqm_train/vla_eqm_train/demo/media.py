"""The demo's pictures: the annotated camera GIF and a contact sheet of each episode."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_eqm_train.demo.timeline import Decode, Frame, latest_decode


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def annotated(frame: Frame, decode: Decode | None, task: str, scale: int = 3):
    """The frame upscaled (nearest) with a caption band: task, step, iterations, residual."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(frame.image).resize(
        (frame.image.shape[1] * scale, frame.image.shape[0] * scale), Image.NEAREST)
    size = max(9, 4 * scale)
    band = 2 * size + 8
    canvas = Image.new("RGB", (img.width, img.height + band), (20, 20, 20))
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(size)
    if decode is None:
        solver = "no decode yet"
    else:
        solver = (f"k={decode.iterations} r={decode.residual:.3g} tau={decode.tau:.3g}"
                  f"{' warm' if decode.warm else ' cold'}")
    draw.text((4, img.height + 2), f"{task[:30]}  step {frame.step}", fill=(255, 255, 255),
              font=font)
    draw.text((4, img.height + 4 + size), solver, fill=(255, 220, 90), font=font)
    return canvas


def _pick(frames: Sequence[Frame], every: int) -> list[Frame]:
    """Every ``every``-th sim step of each episode, plus each episode's last frame."""
    out = []
    for i, f in enumerate(frames):
        last = i + 1 == len(frames) or frames[i + 1].episode != f.episode
        if f.step % every == 0 or last:
            out.append(f)
    return out


def write_gif(path: Path, frames: Sequence[Frame], decodes: Sequence[Decode],
              tasks: dict[int, str], every: int = 4, scale: int = 3,
              frame_ms: int = 80) -> int:
    """An animated GIF of ``frames`` (one every ``every`` sim steps); returns its frame count."""
    picked = _pick(frames, max(1, every))
    if not picked:
        return 0
    images = [annotated(f, latest_decode(decodes, f.episode, f.stamp_ns),
                        tasks.get(f.episode, "?"), scale) for f in picked]
    images[0].save(path, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   optimize=False)
    return len(images)


def write_contact_sheet(path: Path, frames: Sequence[Frame], decodes: Sequence[Decode],
                        tasks: dict[int, str], columns: int = 6, per_episode: int = 6,
                        scale: int = 3) -> int:
    """A PNG grid: ``per_episode`` evenly spaced frames of each episode, one row per episode
    (wrapped at ``columns``); returns the tile count."""
    from PIL import Image

    by_episode: dict[int, list[Frame]] = defaultdict(list)
    for f in frames:
        by_episode[f.episode].append(f)
    tiles = []
    for ep, fs in by_episode.items():
        idx = np.unique(np.linspace(0, len(fs) - 1, min(per_episode, len(fs))).round().astype(int))
        row = [annotated(fs[i], latest_decode(decodes, ep, fs[i].stamp_ns), tasks.get(ep, "?"),
                         scale) for i in idx]
        tiles.extend(row + [None] * (-len(row) % columns))  # each episode starts a new row
    if not tiles:
        return 0
    w, h = next(t for t in tiles if t is not None).size
    rows = len(tiles) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (255, 255, 255))
    for k, tile in enumerate(tiles):
        if tile is not None:
            sheet.paste(tile, ((k % columns) * w, (k // columns) * h))
    sheet.save(path)
    return sum(t is not None for t in tiles)


# --------------------------------------------------------------------------- plots
