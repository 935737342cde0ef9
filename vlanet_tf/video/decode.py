"""Streamed decoding with PyAV, resampled to a fixed frame rate.

Frame k of the resampled stream (time k / fps) is the last decoded frame whose
presentation time is at or before k / fps (the first frame before it starts). Frames
are decoded one at a time and only the requested ones are converted to RGB, so memory
does not grow with the video's length.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

UNREADABLE = "unreadable"
NO_VIDEO_STREAM = "no_video_stream"
ZERO_FRAMES = "zero_frames"
SHORTER_THAN_CLIP = "shorter_than_clip"
DECODE_ERROR = "decode_error"
REASONS = (UNREADABLE, NO_VIDEO_STREAM, ZERO_FRAMES, SHORTER_THAN_CLIP, DECODE_ERROR)


class VideoError(ValueError):
    """A video that yields no features; `reason` is one of REASONS."""

    def __init__(self, reason: str, path: str, detail: str = ""):
        super().__init__(f"{path}: {reason}" + (f" ({detail})" if detail else ""))
        self.reason, self.path, self.detail = reason, path, detail


def resampled_frames(
    path: str, fps: float, wanted: Callable[[int], bool], size: int
) -> Iterator[tuple[int, np.ndarray | None]]:
    """Yields (k, image uint8 [size, size, 3] or None) for every resampled frame k;
    the image only where `wanted(k)`. Raises VideoError."""
    import av

    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoError(UNREADABLE, path, str(error)) from error
    with container:
        if not container.streams.video:
            raise VideoError(NO_VIDEO_STREAM, path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base) if stream.time_base else 1.0 / 90000
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        k = 0
        previous = None  # (time, frame, cached image)
        first_time = None

        def emit(frame, cache, until: float):
            nonlocal k
            while k / fps < until - 1e-9:
                image = None
                if wanted(k):
                    if cache[0] is None:
                        cache[0] = frame.to_ndarray(format="rgb24", width=size, height=size)
                    image = cache[0]
                yield k, image
                k += 1

        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.pts is None:
                    t = index / rate
                else:
                    t = frame.pts * time_base
                if first_time is None:
                    first_time = t
                t -= first_time
                if previous is not None:
                    yield from emit(previous[1], previous[2], t)
                previous = (t, frame, [None])
        except av.FFmpegError as error:
            # Features of the part before the damage would come with a wrong duration;
            # the video is listed instead (FFmpeg conceals most damage without raising).
            raise VideoError(DECODE_ERROR, path, f"after {k} frames: {error}") from error
        if previous is None:
            raise VideoError(ZERO_FRAMES, path)
        frame_seconds = (
            float(getattr(previous[1], "duration", 0) or 0) * time_base or 1.0 / rate
        )
        yield from emit(previous[1], previous[2], previous[0] + frame_seconds)
