"""The margin contrastive loss of eq. 14, the choice of in-batch negatives, and the
bidirectional ranking loss of the TGA baseline."""

from __future__ import annotations

import tensorflow as tf


def select_negatives(
    video_keys: tf.Tensor,
    candidate_keys: tf.Tensor,
    offset: tf.Tensor | int,
    num_negatives: int,
) -> tuple[tf.Tensor, tf.Tensor]:
    """For each positive, the first `num_negatives` other-video sentences after it.

    Args:
        video_keys: int64 [B], the video of each positive (local batch).
        candidate_keys: int64 [G], the video of every candidate sentence (the local
            batch, or the global one when negatives are gathered across replicas).
        offset: position of the local batch's first row among the candidates.
        num_negatives: negatives per positive.

    Returns:
        `index` int32 [B, num_negatives] into the candidates and `valid` bool
        [B, num_negatives]. Candidates are scanned cyclically from the row after the
        positive, skipping every sentence of the positive's own video (SPEC §6), so the
        choice is deterministic given the batch order; a negative that cannot be found
        (a batch of one video) is marked invalid and left out of the loss.
    """
    g = tf.shape(candidate_keys)[0]
    b = tf.shape(video_keys)[0]
    rows = tf.range(b) + tf.cast(offset, tf.int32)
    candidates = (rows[:, None] + tf.range(1, tf.maximum(g, 2))[None, :]) % g  # [B, G-1]
    other_video = tf.not_equal(tf.gather(candidate_keys, candidates), video_keys[:, None])
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


def bidirectional_hinge(
    similarity: tf.Tensor, video_keys: tf.Tensor, margin: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """The bidirectional ranking loss of TGA (Mithun et al., CVPR 2019) on a batch.

    Every in-batch pairing is scored: `similarity[i, j]` is c(V_i, Q_j), and the
    diagonal holds the positives. Row i's sentence negatives are the sentences of
    other videos (max(0, Δ − c(V_i, Q_i) + c(V_i, Q_j))), and sentence i's video
    negatives the other videos (max(0, Δ − c(V_i, Q_i) + c(V_j, Q_i))); a sentence of
    the same video is never a negative (SPEC §6).

    Args:
        similarity: [B, B], videos by sentences.
        video_keys: int64 [B], the video of each row.
    Returns:
        (hinge [2, B, B]: sentence negatives then video negatives, zero where not
        valid; valid bool [B, B], the same for both directions).
    """
    positive = tf.linalg.diag_part(similarity)
    valid = tf.not_equal(video_keys[:, None], video_keys[None, :])
    to_sentences = tf.nn.relu(margin - positive[:, None] + similarity)
    to_videos = tf.nn.relu(margin - positive[:, None] + tf.transpose(similarity))
    hinge = tf.stack([to_sentences, to_videos])
    return tf.where(valid[None], hinge, tf.zeros_like(hinge)), valid
