"""Small tensor helpers shared by the layers."""

from __future__ import annotations

import tensorflow as tf

# Log-weight given to masked rows. Finite so that sums of several steps stay finite and
# gradients never meet inf - inf; exp() of it is exactly 0 in float32.
MASKED_LOG_WEIGHT = -1e9


def l2_normalize(x: tf.Tensor, axis: int = -1, epsilon: float = 1e-12) -> tf.Tensor:
    """x / ||x|| along `axis`; zero rows stay zero."""
    return x * tf.math.rsqrt(
        tf.maximum(tf.reduce_sum(tf.square(x), axis=axis, keepdims=True), epsilon)
    )


def masked_log_softmax(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """log softmax over the last axis counting only entries where `mask` is True.

    Masked entries get MASKED_LOG_WEIGHT (weight exactly 0). A row with no valid entry
    gets MASKED_LOG_WEIGHT everywhere instead of NaN.
    """
    logits = tf.where(mask, logits, tf.cast(MASKED_LOG_WEIGHT, logits.dtype))
    out = tf.nn.log_softmax(logits, axis=-1)
    return tf.where(mask, out, tf.cast(MASKED_LOG_WEIGHT, logits.dtype))
