"""Real encoded videos for the extraction tests, written with PyAV: a background with a
coloured shape that appears during known seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230),
           "yellow": (230, 220, 30)}
SHAPES = ("square", "circle")


def frame_image(size: int, shape: str | None, colour: str | None, background: int = 90,
                height: int | None = None):
    height = height or size
    image = np.full((height, size, 3), background, np.uint8)
    if shape is None:
        return image
    y, x = np.mgrid[:height, :size]
    c, r = height / 2, height / 3
    if shape == "square":
        mask = (abs(y - c) < r) & (abs(x - size / 2) < r)
    else:
        mask = (y - c) ** 2 + (x - size / 2) ** 2 < r**2
    image[mask] = COLOURS[colour]
    return image


def write_video(path: Path, seconds: float, fps: int = 24, size: int = 32,
                shape: str | None = None, colour: str | None = None,
                appear: Sequence[float] = (0.0, 0.0), codec: str = "mpeg4",
                height: int | None = None) -> Path:
    """An encoded video (size wide, height or size high); the shape is visible while
    appear[0] <= t < appear[1]."""
    import av

    blank = frame_image(size, None, None, height=height)
    shown = frame_image(size, shape, colour, height=height) if shape else blank
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size, height or size
        stream.pix_fmt = "yuv420p"
        for i in range(int(round(seconds * fps))):
            t = i / fps
            image = shown if appear[0] <= t < appear[1] else blank
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def own_videos(root: Path, num_videos: int, seconds: float = 20.0, fps: int = 12,
               size: int = 32, seed: int = 0) -> list[dict]:
    """`num_videos` encoded videos under root/videos, each showing one coloured shape for
    8-10 s at a random time; returns one annotation row per video (video, sentence,
    start, end)."""
    rng = np.random.default_rng(seed)
    folder = root / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(num_videos):
        colour = list(COLOURS)[i % len(COLOURS)]
        shape = SHAPES[(i // len(COLOURS)) % len(SHAPES)]
        length = float(rng.uniform(8, 10))
        start = float(np.round(rng.uniform(0, seconds - length), 1))
        end = round(start + length, 1)
        video_id = f"clip{i:03d}"
        write_video(folder / f"{video_id}.mp4", seconds, fps, size, shape, colour,
                    (start, end))
        rows.append({"video": video_id, "sentence": f"the {colour} {shape} appears",
                     "start": start, "end": end})
    return rows


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    import json

    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def write_word_vectors(path: Path, dim: int = 8, seed: int = 0) -> Path:
    """A GloVe-format text file covering the sentences' words."""
    rng = np.random.default_rng(seed)
    words = ["the", "a", "appears", "shows", *COLOURS, *SHAPES]
    with open(path, "w", encoding="utf-8") as f:
        for word in words:
            f.write(word + " " + " ".join(f"{v:.4f}" for v in rng.normal(size=dim)) + "\n")
    return path


def tiny_weights(path: Path, image_size: int = 32) -> Path:
    """A randomly initialised tiny_cnn saved with save_weights (the test backbone)."""
    from vlanet_tf.video import backbones

    backbones.tiny_cnn(image_size).save_weights(str(path))
    return path


def write_audio_only(path: Path) -> Path:
    """A container with one audio stream and no video stream."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def write_zero_frames(path: Path) -> Path:
    """A container (AVI) with a video stream that holds no frame."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path
