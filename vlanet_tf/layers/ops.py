"""Small tensor helpers shared by the layers.

Dtypes under a mixed-precision policy: log-scale bookkeeping (log weights, scores,
log softmax) is always float32, because MASKED_LOG_WEIGHT does not fit in float16 and
the log scales of a long cascade leave its range; norms are taken in float32 and the
result cast back to the input's dtype.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

# Log-weight given to masked rows. Finite so that sums of several steps stay finite and
# gradients never meet inf - inf; exp() of it is exactly 0 in float32. It overflows
# float16 (max 65504), so tensors that can hold it are kept in float32.
MASKED_LOG_WEIGHT = -1e9


def l2_normalize(x: tf.Tensor, axis: int = -1, epsilon: float = 1e-12) -> tf.Tensor:
    """x / ||x|| along `axis`; zero rows stay zero.

    The norm is computed in float32 (epsilon underflows float16, and a sum of squares
    can overflow it); the result has x's dtype.
    """
    x32 = tf.cast(x, tf.float32)
    unit = x32 * tf.math.rsqrt(
        tf.maximum(tf.reduce_sum(tf.square(x32), axis=axis, keepdims=True), epsilon)
    )
    return tf.cast(unit, x.dtype)


def masked_log_softmax(logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """log softmax over the last axis counting only entries where `mask` is True.

    Computed and returned in float32 whatever the dtype of `logits`. Masked entries get
    MASKED_LOG_WEIGHT (weight exactly 0). A row with no valid entry gets
    MASKED_LOG_WEIGHT everywhere instead of NaN.
    """
    logits = tf.where(mask, tf.cast(logits, tf.float32), MASKED_LOG_WEIGHT)
    out = tf.nn.log_softmax(logits, axis=-1)
    return tf.where(mask, out, MASKED_LOG_WEIGHT)


def output_spec(
    shapes: dict[str, tuple], dtypes: dict[str, Any]
) -> dict[str, keras.KerasTensor]:
    """Symbolic outputs with per-output dtypes.

    Keras' default spec from `compute_output_shape` gives every output the compute
    dtype, which is wrong for masks, indices and the float32 log-scale outputs.
    """
    return {k: keras.KerasTensor(shape, dtype=dtypes[k]) for k, shape in shapes.items()}
