"""The margin contrastive loss of eq. 14, its variants, and the choice of in-batch
negatives."""

from __future__ import annotations

import tensorflow as tf

# TrainConfig.loss: what the similarities of a positive and its negatives are turned
# into. "hinge" is eq. 14 (a term per pair); "hinge_hardest" keeps the hardest negative
# of each positive (VSE++); "infonce" is the cross-entropy of the positive among its
# negatives at a temperature.
LOSSES = ("hinge", "hinge_hardest", "infonce")


def select_negatives(
    video_keys: tf.Tensor,
    candidate_keys: tf.Tensor,
    offset: tf.Tensor | int,
    num_negatives: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """For each positive, the first `num_negatives` other-video candidates after it.

    Args:
        video_keys: int64 [B], the video of each positive (local batch).
        candidate_keys: int64 [G], the video of every candidate sentence (the local
            batch, or the global one when negatives are gathered across replicas).
        offset: position of the local batch's first row among the candidates.
        num_negatives: negatives per positive; 0 takes every other-video candidate.

    Returns:
        `index` int32 [B, n] into the candidates and `valid` bool [B, n], n =
        `num_negatives` (G - 1 when it is 0: every candidate but the positive's own
        row, those of its own video marked invalid). Candidates are scanned cyclically from the row after the
        positive, skipping every sentence of the positive's own video (SPEC §6), so the
        choice is deterministic given the batch order; a negative that cannot be found
        (a batch of one video) is marked invalid and left out of the loss.
    """
    g = tf.shape(candidate_keys)[0]
    b = tf.shape(video_keys)[0]
    rows = tf.range(b) + tf.cast(offset, tf.int32)
    candidates = (rows[:, None] + tf.range(1, tf.maximum(g, 2))[None, :]) % g  # [B, G-1]
    other_video = tf.not_equal(tf.gather(candidate_keys, candidates), video_keys[:, None])
    if num_negatives == 0:
        return candidates, other_video
    rank = tf.cumsum(tf.cast(other_video, tf.int32), axis=1)
    index, valid = [], []
    for r in range(1, num_negatives + 1):
        hit = other_video & tf.equal(rank, r)
        first = tf.argmax(tf.cast(hit, tf.int32), axis=1, output_type=tf.int32)
        index.append(tf.gather(candidates, first, batch_dims=1))
        valid.append(tf.reduce_any(hit, axis=1))
    return tf.stack(index, axis=1), tf.stack(valid, axis=1)


def margin_hinge(
    positive: tf.Tensor, negative: tf.Tensor, valid: tf.Tensor, margin: float
) -> tf.Tensor:
    """max(0, Δ − c(V, Q+) + c(V, Q−)) per (positive, negative) pair (eq. 14).

    Args:
        positive: [B] similarities of the positive pairs.
        negative: [B, n] similarities of the same videos with negative sentences.
        valid: bool [B, n].
    Returns:
        [B, n], zero where not valid.
    """
    hinge = tf.nn.relu(margin - positive[:, None] + negative)
    return tf.where(valid, hinge, tf.zeros_like(hinge))


def contrastive_terms(
    positive: tf.Tensor,
    negative: tf.Tensor,
    valid: tf.Tensor,
    loss: str = "hinge",
    margin: float = 0.5,
    temperature: float = 0.1,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The loss terms of one direction of negatives and which of them count.

    Args:
        positive: [B] similarities of the positive pairs.
        negative: [B, n] similarities of each positive's negative pairs.
        valid: bool [B, n].
        loss: one of `LOSSES`.
    Returns:
        (terms, counted): "hinge" gives `margin_hinge`'s [B, n], counted = `valid`;
        "hinge_hardest" the largest hinge of each positive, [B]; "infonce"
        −log(e^{c+/τ} / (e^{c+/τ} + Σ_valid e^{c−/τ})), [B]. For those two a positive
        counts when it has a valid negative. Terms that do not count are 0.
    """
    if loss == "hinge":
        return margin_hinge(positive, negative, valid, margin), valid
    counted = tf.reduce_any(valid, axis=1)
    if loss == "hinge_hardest":
        hardest = tf.reduce_max(margin_hinge(positive, negative, valid, margin), axis=1)
        return tf.where(counted, hardest, tf.zeros_like(hardest)), counted
    if loss == "infonce":
        logits = tf.concat([positive[:, None], negative], axis=1) / temperature
        keep = tf.concat([tf.ones_like(valid[:, :1]), valid], axis=1)
        logits = tf.where(keep, logits, tf.fill(tf.shape(logits), logits.dtype.min))
        terms = tf.reduce_logsumexp(logits, axis=1) - logits[:, 0]
        return tf.where(counted, terms, tf.zeros_like(terms)), counted
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
