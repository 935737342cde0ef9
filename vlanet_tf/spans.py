"""Span arithmetic shared by the proposals, the post-processing and the evaluator.

Every function here is pure NumPy, so the inference ranking, the metrics and the
evaluator agree on what a moment and an IoU are. Where candidate moments lie is
`vlanet_tf.geometry`'s job.

Two kinds of span appear:
- moments in seconds, ``[..., 2]`` arrays of (start, end) with end exclusive;
- DiDeMo segment pairs, ``(s, e)`` indices of 5-second segments with e *inclusive*,
  as in the released annotation files (``(0, 0)`` is the first 5 seconds).
"""

from __future__ import annotations

import numpy as np

from vlanet_tf.geometry import DIDEMO_SEGMENT_SECONDS


def _check_last_axis(name: str, x: np.ndarray) -> None:
    if x.shape[-1:] != (2,):
        raise ValueError(
            f"{name} must have a last axis of size 2 (start, end), got shape {x.shape}"
        )


def temporal_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of moments in seconds, broadcasting over the leading axes.

    Args:
      a: float array ``[..., 2]`` of (start, end).
      b: float array ``[..., 2]``, broadcastable against ``a``.

    Returns:
      float array of the broadcast leading shape. Two empty moments give 0, never NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _check_last_axis("a", a)
    _check_last_axis("b", b)
    inter = np.maximum(
        0.0, np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0])
    )
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def inclusive_index_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of DiDeMo segment pairs whose end index is inclusive (SPEC §8).

    inter = max(0, min(e) - max(s) + 1), union = max(e) - min(s) + 1, exactly the
    original DiDeMo evaluation; broadcasting like `temporal_iou`.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    _check_last_axis("a", a)
    _check_last_axis("b", b)
    inter = np.maximum(
        0, np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]) + 1
    )
    union = np.maximum(a[..., 1], b[..., 1]) - np.minimum(a[..., 0], b[..., 0]) + 1
    return inter / union


def temporal_nms(
    moments: np.ndarray,
    scores: np.ndarray,
    threshold: float | None = None,
    top_k: int | None = None,
) -> np.ndarray:
    """Greedy temporal non-maximum suppression.

    Args:
      moments: ``[N, 2]`` (start, end) in seconds.
      scores: ``[N]``; higher is better.
      threshold: a moment is dropped when its IoU with an already kept, better
        moment is >= threshold. ``None`` or <= 0 turns suppression off: the result is
        then just the ranking by score.
      top_k: keep at most this many (``None``: all).

    Returns:
      int64 indices into ``moments``, best first. Ties in score keep input order, so
      the ranking is deterministic.
    """
    moments = np.asarray(moments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(moments) != len(scores):
        raise ValueError(
            f"moments and scores must have the same length, got {len(moments)} moments "
            f"and {len(scores)} scores"
        )
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    order = np.argsort(-scores, kind="stable")
    limit = len(order) if top_k is None else min(top_k, len(order))
    if threshold is None or threshold <= 0:
        return order[:limit].astype(np.int64)
    kept: list[int] = []
    suppressed = np.zeros(len(order), dtype=bool)
    for position, index in enumerate(order):
        if suppressed[position]:
            continue
        kept.append(int(index))
        if len(kept) == limit:
            break
        rest = order[position + 1 :]
        suppressed[position + 1 :] |= (
            temporal_iou(moments[index], moments[rest]) >= threshold
        )
    return np.asarray(kept, dtype=np.int64)


def seconds_to_didemo_segments(
    start: np.ndarray | float,
    end: np.ndarray | float,
    segment_seconds: float = DIDEMO_SEGMENT_SECONDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds -> inclusive DiDeMo segment indices.

    The inverse of `didemo_segments_to_seconds`. It also accepts an end clipped to a
    video shorter than its last segment (27 s still means segment 5), because the
    model clips windows at the video end; hence the end is rounded *up* to a segment
    boundary with a small tolerance for float error.
    """
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    tolerance = 1e-6
    s = np.floor(start / segment_seconds + tolerance).astype(np.int64)
    e = np.ceil(end / segment_seconds - tolerance).astype(np.int64) - 1
    # A zero-length moment still covers the segment it starts in.
    return s, np.maximum(e, s)


def didemo_segments_to_seconds(
    s: np.ndarray | int,
    e: np.ndarray | int,
    segment_seconds: float = DIDEMO_SEGMENT_SECONDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive segment indices (s, e) -> seconds (s·5, (e + 1)·5)."""
    s = np.asarray(s, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    return s * segment_seconds, (e + 1.0) * segment_seconds


def clip_moment(moment: np.ndarray, duration: float) -> np.ndarray:
    """Clips moments ``[..., 2]`` in seconds into [0, duration]."""
    moment = np.asarray(moment, dtype=np.float64)
    _check_last_axis("moment", moment)
    if duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    return np.clip(moment, 0.0, duration)
