"""SPEC §7 ranking: one rule, in NumPy and in the graph.

A surrogate's score is the log of the weight it carries into v_comp (`scores` of the
model; with DiDeMo the model's rows also hold the other windows, scored below every
surrogate, `layers/window_ranking.py`). The ranking holds the valid rows only, by
descending score; **equal scores
keep the surrogates' order** (the lower index first). `rank` (NumPy, used by dataset
inference, the CLIs and the predictions files) and `top_moments` (the graph version of
the exported SavedModel) both follow this rule — `np.argsort(kind="stable")` and
`tf.math.top_k` both guarantee it — and a test checks that they give identical
rankings, ties included. Scores must be finite: `rank` refuses NaN and infinities.

Temporal NMS (`RunConfig.nms_iou`, off by default as in the compared methods) is one
more step on the ranked list, the same in both: walking the ranking best first, a
moment is dropped when its IoU with a moment kept before it is >= the threshold
(`spans.temporal_nms`; `suppress_overlaps` in the graph).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vlanet_tf import spans
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT

# Score of the padding rows of `top_moments` past `num_moments`. Finite, so REST
# responses stay valid JSON; the masked log weight of the model.
PADDED_SCORE = MASKED_LOG_WEIGHT


def rank(
    scores: np.ndarray,
    moments: np.ndarray,
    valid: np.ndarray,
    top_k: int | None = 5,
    nms_threshold: float | None = None,
) -> list[list[float]]:
    """Ranked [start, end, score] of one example's valid rows, best first.

    Args:
      scores: [N] log attention weight of each surrogate (higher is better).
      moments: [N, 2] seconds.
      valid: bool [N]; invalid rows are never ranked.
      top_k: how many to keep (None or 0: all).
      nms_threshold: temporal NMS IoU threshold; None or <= 0 turns NMS off, the
        default of the compared methods (SPEC §7).
    """
    index = np.flatnonzero(np.asarray(valid, bool))
    if index.size == 0:
        return []
    s, m = np.asarray(scores)[index], np.asarray(moments)[index]
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(m))):
        # Sorting NaN would silently rank the first rows best.
        raise ValueError(
            f"refusing to rank non-finite scores or moments ({int(np.sum(~np.isfinite(s)))} "
            f"of {s.size} valid scores are NaN or infinite): the model's weights or "
            "inputs are not finite"
        )
    keep = spans.temporal_nms(m, s, nms_threshold, top_k or None)
    return [[float(m[i, 0]), float(m[i, 1]), float(s[i])] for i in keep]


def suppress_overlaps(
    scores: tf.Tensor, moments: tf.Tensor, valid: tf.Tensor, threshold: float
) -> tf.Tensor:
    """Greedy temporal NMS in the graph: `valid` less the rows it suppresses.

    The valid rows are walked in ranking order (descending score, ties by index, as
    `rank`); a row is suppressed when its IoU with an earlier row that was kept is >=
    `threshold`. N steps of a [B, N] update, after one [B, N, N] IoU.

    Args:
      scores: float [B, N]; moments: float [B, N, 2] seconds; valid: bool [B, N].
    Returns:
      bool [B, N], in the rows' own order.
    """
    n = tf.shape(scores)[1]
    lowest = tf.constant(scores.dtype.min, scores.dtype)
    _, order = tf.math.top_k(tf.where(valid, scores, lowest), k=n, sorted=True)
    ranked = tf.cast(tf.gather(moments, order, batch_dims=1), tf.float32)
    start, end = ranked[..., 0], ranked[..., 1]
    inter = tf.nn.relu(
        tf.minimum(end[:, :, None], end[:, None, :])
        - tf.maximum(start[:, :, None], start[:, None, :])
    )
    length = end - start
    union = length[:, :, None] + length[:, None, :] - inter
    overlaps = tf.math.divide_no_nan(inter, union) >= threshold  # [B, N, N]
    later = tf.range(n)[None, :]

    def step(p: tf.Tensor, keep: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        drop = keep[:, p : p + 1] & overlaps[:, p, :] & (later > p)
        return p + 1, keep & ~drop

    _, keep = tf.while_loop(
        lambda p, _: p < n, step, [tf.constant(0), tf.gather(valid, order, batch_dims=1)]
    )
    return tf.gather(keep, tf.argsort(order, axis=1), batch_dims=1)


def top_moments(
    scores: tf.Tensor,
    moments: tf.Tensor,
    valid: tf.Tensor,
    k: int,
    nms_iou: float = 0.0,
) -> dict[str, tf.Tensor]:
    """The k best valid surrogates of each example, best first: `rank` in the graph.

    Args:
      scores: float [B, N]; moments: float [B, N, 2]; valid: bool [B, N].
      k: how many to return; N may be smaller (rows are padded).
      nms_iou: temporal NMS threshold (`suppress_overlaps`); <= 0: off.

    Returns:
      `moments` [B, k, 2], `scores` [B, k], `num_moments` int32 [B] = min(k, valid
      count, after NMS). Rows from `num_moments` on hold moment [0, 0] and score PADDED_SCORE.
    """
    if nms_iou > 0:
        valid = suppress_overlaps(scores, moments, valid, nms_iou)
    batch = tf.shape(scores)[0]
    # Invalid rows and k padding columns rank below every valid row (the lowest finite
    # value: converters lower tf.where to arithmetic, where -inf would make NaN); the
    # padding makes top_k legal when N < k (a video shorter than k groups).
    lowest = tf.constant(scores.dtype.min, scores.dtype)
    candidates = tf.concat(
        [tf.where(valid, scores, lowest), tf.fill(tf.stack([batch, k]), lowest)], axis=1
    )
    windows = tf.concat([moments, tf.zeros(tf.stack([batch, k, 2]), moments.dtype)], axis=1)
    best, index = tf.math.top_k(candidates, k=k, sorted=True)
    count = tf.minimum(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1), k)
    keep = tf.range(k)[None, :] < count[:, None]
    picked = tf.gather(windows, index, batch_dims=1)
    return {
        "moments": tf.where(keep[..., None], picked, tf.zeros_like(picked)),
        "scores": tf.where(keep, best, tf.constant(PADDED_SCORE, best.dtype)),
        "num_moments": count,
    }
