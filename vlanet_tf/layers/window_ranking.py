"""Every valid window in the ranking: the surrogates first, then the rest (SPEC §7, §8)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT, output_spec

# How far below the lowest surrogate score the non-surrogate windows start: their score
# is floor - REST_OFFSET + cosine, and cosine <= 1, so every one ranks at least one
# below every surrogate.
REST_OFFSET = 2.0


@keras.saving.register_keras_serializable(package="vlanet_tf")
class WindowRanking(keras.layers.Layer):
    """The model's ranking rows over all K·L windows, the K surrogates ranked first.

    Surrogate selection keeps one window per segment group, so the cascade scores K of
    the K·L windows. DiDeMo's protocol (SPEC §8) ranks every one of its 21 candidate
    moments, and an annotator moment that is not a surrogate would otherwise have no
    rank at all. This layer lays the outputs out over every window, group-major (row
    k·L + l is window (k, l)):

    - a surrogate's row carries its SPEC §7 score (the log weight it carries into
      v_comp), unchanged;
    - every other valid window ranks after all the surrogates, in the order of its
      selection cosine with w_M (eq. 3): its score is
      floor − REST_OFFSET + cos(p_lk, w_M), floor being the example's lowest surrogate
      score. These scores order the ranking; they are not attention weights.
    - masked windows stay invalid (score MASKED_LOG_WEIGHT).

    Ties follow `vlanet_tf.ranking` (the lower row first).

    Call:
        inputs: dict with `windows` float32 [B, K, L, 2], `mask` bool [B, K, L] (of the
        proposals), `index` int32 [B, K] (l' of each group), `group_mask` bool [B, K],
        `cosines` float32 [B, K, L], `scores` float32 [B, K] and `attention_map`
        float32 [B, K, M] (of the cascade, one row per surrogate).
    Returns:
        dict with `scores` float32 [B, K·L], `moments` float32 [B, K·L, 2], `valid`
        bool [B, K·L], `surrogate` bool [B, K·L] (the row is a group's surrogate: it
        went through the cascade) and `attention_map` float32 [B, K·L, M]: each
        surrogate's row of the cascade's map at its window's row, zero elsewhere (a
        window that is not a surrogate received no attention).
    """

    @property
    def input_dtype(self) -> str:
        return "float32"

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        windows, mask = inputs["windows"], inputs["mask"]
        shape = tf.shape(mask)
        b, k, l = shape[0], shape[1], shape[2]
        n = k * l
        chosen = tf.one_hot(inputs["index"], l, on_value=True, off_value=False, dtype=tf.bool)
        surrogate = chosen & inputs["group_mask"][..., None] & mask  # [B, K, L]
        scores = tf.cast(inputs["scores"], tf.float32)
        group_mask = inputs["group_mask"]
        lowest = tf.reduce_min(tf.where(group_mask, scores, tf.float32.max), axis=1)
        floor = tf.where(tf.reduce_any(group_mask, axis=1), lowest, tf.zeros_like(lowest))
        rest = floor[:, None, None] - REST_OFFSET + tf.cast(inputs["cosines"], tf.float32)
        ranked = tf.where(surrogate, tf.broadcast_to(scores[..., None], shape), rest)
        ranked = tf.where(mask, ranked, tf.fill(shape, tf.constant(MASKED_LOG_WEIGHT)))
        attention = tf.cast(inputs["attention_map"], tf.float32)
        attention = tf.where(surrogate[..., None], attention[:, :, None, :], 0.0)
        m = tf.shape(attention)[-1]
        return {
            "scores": tf.reshape(ranked, [b, n]),
            "moments": tf.reshape(tf.cast(windows, tf.float32), [b, n, 2]),
            "valid": tf.reshape(mask, [b, n]),
            "surrogate": tf.reshape(surrogate, [b, n]),
            "attention_map": tf.reshape(attention, [b, n, m]),
        }

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> dict[str, tuple]:
        b, k, l = input_shape["mask"]
        n = None if k is None or l is None else k * l
        m = input_shape["attention_map"][-1]
        return {
            "scores": (b, n),
            "moments": (b, n, 2),
            "valid": (b, n),
            "surrogate": (b, n),
            "attention_map": (b, n, m),
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape({k: v.shape for k, v in inputs.items()})
        dtypes = {
            "scores": "float32",
            "moments": "float32",
            "valid": "bool",
            "surrogate": "bool",
            "attention_map": "float32",
        }
        return output_spec(shapes, dtypes)
