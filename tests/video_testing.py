"""Real encoded videos for the extraction tests, written with PyAV: a background with a
coloured shape that appears during known seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230),
           "yellow": (230, 220, 30)}
SHAPES = ("square", "circle")


def frame_image(size: int, shape: str | None, colour: str | None, background: int = 90):
    image = np.full((size, size, 3), background, np.uint8)
    if shape is None:
        return image
    y, x = np.mgrid[:size, :size]
    c, r = size / 2, size / 3
    if shape == "square":
        mask = (abs(y - c) < r) & (abs(x - c) < r)
    else:
        mask = (y - c) ** 2 + (x - c) ** 2 < r**2
    image[mask] = COLOURS[colour]
    return image


def write_video(path: Path, seconds: float, fps: int = 24, size: int = 32,
                shape: str | None = None, colour: str | None = None,
                appear: Sequence[float] = (0.0, 0.0), codec: str = "mpeg4") -> Path:
    """An encoded video; the shape is visible while appear[0] <= t < appear[1]."""
    import av

    blank = frame_image(size, None, None)
    shown = frame_image(size, shape, colour) if shape else blank
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(round(seconds * fps))):
            t = i / fps
            image = shown if appear[0] <= t < appear[1] else blank
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
