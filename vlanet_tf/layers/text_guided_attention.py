"""Text-guided attention over clips (Mithun, Paul, Roy-Chowdhury, CVPR 2019)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT, l2_normalize, masked_log_softmax, output_spec


# Floor of a window's mean attention before its log: a window whose clips all have
# underflowed attention scores far below any other but stays finite.
_TINY = 1e-30


@keras.saving.register_keras_serializable(package="vlanet_tf")
class TextGuidedAttention(keras.layers.Layer):
    """The TGA baseline's pair scoring and its localisation.

    With clip features c_t (unit rows, `ClipEncoder`) and a sentence embedding q:
    s = L2(W_s q + b_s) in the joint space; the attention over the valid clips is
    a = softmax_t(cos(c_t, s) / temperature); the text-guided video feature is
    v = L2(W_v Σ_t a_t c_t + b_v), and the pair's similarity is cos(v, s).

    A candidate window's score is the log of its mean attention: the attention of the
    clips it covers over its nominal length in clips, so that a window cut short by the
    video's end is not favoured by averaging fewer clips (a log weight like VLANet's
    scores); invalid windows get MASKED_LOG_WEIGHT.

    Shapes: B batch, T clips, D hidden_dim, N windows.

    Call:
        inputs: dict with `clips` [B, T, D], `clip_mask` bool [B, T], `query` [B, D]
        (the sentence embedding), `clip_start`, `clip_end` int32 [B, N] (half-open clip
        ranges), `window_clips` float32 [B, N] (nominal lengths in clips) and
        `window_mask` bool [B, N].
    Returns:
        dict with `similarity` float32 [B], `scores` float32 [B, N] and `attention`
        float32 [B, T] (zero on padding).

    Dtypes: the two projections run in the compute dtype; cosines, the softmax and
    every output are float32, the prefix sums of the attention float64.
    """

    def __init__(self, hidden_dim: int = 256, temperature: float = 0.1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.hidden_dim = hidden_dim
        self.temperature = float(temperature)
        self.sentence_projection = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="sentence_projection"
        )
        self.video_projection = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="video_projection"
        )

    def build(self, input_shape: dict[str, tuple]) -> None:
        self.sentence_projection.build(input_shape["query"])
        self.video_projection.build((input_shape["clips"][0], input_shape["clips"][-1]))

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        clips = tf.cast(inputs["clips"], tf.float32)
        clip_mask = inputs["clip_mask"]
        sentence = tf.cast(
            l2_normalize(self.sentence_projection(tf.cast(inputs["query"], self.compute_dtype))),
            tf.float32,
        )
        cosine = tf.einsum("btd,bd->bt", clips, sentence)
        log_attention = masked_log_softmax(cosine / self.temperature, clip_mask)
        attention = tf.exp(log_attention) * tf.cast(clip_mask, tf.float32)
        guided = tf.einsum("bt,btd->bd", attention, clips)
        video = l2_normalize(self.video_projection(tf.cast(guided, self.compute_dtype)))
        similarity = tf.reduce_sum(tf.cast(video, tf.float32) * sentence, axis=-1)
        # Attention mass of each window's clips, by prefix sums, over its length. The
        # sums are float64: a window of weak clips is a difference of two sums near 1.
        prefix = tf.pad(tf.cumsum(tf.cast(attention, tf.float64), axis=1), [[0, 0], [1, 0]])
        start, end = inputs["clip_start"], inputs["clip_end"]
        total = tf.cast(
            tf.gather(prefix, end, batch_dims=1) - tf.gather(prefix, start, batch_dims=1),
            tf.float32,
        )
        length = tf.maximum(tf.cast(inputs["window_clips"], tf.float32), 1.0)
        mean = tf.maximum(total / length, _TINY)
        scores = tf.where(inputs["window_mask"], tf.math.log(mean), MASKED_LOG_WEIGHT)
        return {"similarity": similarity, "scores": scores, "attention": attention}

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        b, t = inputs["clips"].shape[:2]
        n = inputs["clip_start"].shape[1]
        shapes = {"similarity": (b,), "scores": (b, n), "attention": (b, t)}
        return output_spec(shapes, {k: "float32" for k in shapes})

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, temperature=self.temperature)
        return config
