"""The text-guided-attention baseline (Mithun, Paul, Roy-Chowdhury, CVPR 2019).

VLANet's Table 1 row: clip features and the sentence embedding projected to a joint
space, a softmax attention over clips from their cosine to the sentence, the
attention-weighted clip feature as the text-guided video feature, and their cosine as
the pair's similarity (`layers.TextGuidedAttention`). It localises by ranking the same
candidate windows as VLANet (`ProposalGeometry`) by their mean attention (the
attention of their clips over their nominal length).

`build_tga` returns the same inputs and outputs as `model.build_vlanet` (selected by
`ModelConfig.architecture`), so the trainer (`model.VLANet`), inference, evaluation and
export use it unchanged. The trainer calls `encode_video` and `match_queries` below in
place of VLANet's. TGA's bidirectional ranking loss is the trainer's own with
`--negative_direction=both --num_negatives=0` (every in-batch pairing, both
directions, the hinge of eq. 14).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.config import ModelConfig
from vlanet_tf.layers import ClipEncoder, QueryEncoder, TextGuidedAttention

VIDEO_KEYS = ("video_features", "video_length", "duration")


def build_tga(config: ModelConfig, inputs: dict[str, keras.KerasTensor]) -> keras.Model:
    """The functional TGA model over `model.model_inputs`; outputs as `build_vlanet`.

    `attention_map` [B, N, M] is each window's attention (exp of its score) on every
    real word: TGA attends with the whole sentence, so the map has one value per window.
    """
    policy = keras.DTypePolicy(config.precision)
    query_encoder = QueryEncoder(
        config.vocab_size,
        config.word_dim,
        config.hidden_dim,
        config.gru_layers,
        config.train_embeddings,
        dtype=policy,
        name="query_encoder",
    )
    clip_encoder = ClipEncoder(
        config.hidden_dim,
        config.proposal_mode,
        config.fps,
        config.stride_frames,
        config.window_frames,
        config.didemo_segments,
        config.segment_seconds,
        config.min_window_fraction,
        dtype=policy,
        name="clip_encoder",
    )
    attention = TextGuidedAttention(
        config.hidden_dim, config.tga_temperature, dtype=policy, name="text_guided_attention"
    )
    video = clip_encoder({k: inputs[k] for k in VIDEO_KEYS})
    outputs = match(attention, video, query_encoder(inputs["query_tokens"]))
    return keras.Model(inputs, outputs, name="tga")


def match(
    attention: TextGuidedAttention, video: dict[str, Any], query: dict[str, Any]
) -> dict[str, Any]:
    """The model's outputs for (video row i, sentence row i) pairs."""
    out = attention(
        {
            "clips": video["clips"],
            "clip_mask": video["clip_mask"],
            "query": query["last"],
            "clip_start": video["clip_start"],
            "clip_end": video["clip_end"],
            "window_clips": video["window_clips"],
            "window_mask": video["window_mask"],
        }
    )
    window_weight = keras.ops.exp(out["scores"]) * keras.ops.cast(video["window_mask"], "float32")
    words = keras.ops.cast(query["mask"], "float32")
    return {
        "similarity": out["similarity"],
        "scores": out["scores"],
        "moments": video["windows"],
        "valid": video["window_mask"],
        # Every valid window is scored by the attention itself: no second tier of
        # rows ranked after the model's own (VLANet's DiDeMo windows).
        "surrogate": video["window_mask"],
        "attention_map": window_weight[:, :, None] * words[:, None, :],
    }


def encode_video(network: keras.Model, data: dict[str, tf.Tensor], training: bool) -> dict:
    """The query-independent video work: projected clips and the windows."""
    return network.get_layer("clip_encoder")(
        {k: data[k] for k in VIDEO_KEYS}, training=training
    )


def match_queries(
    network: keras.Model, video: dict[str, tf.Tensor], tokens: tf.Tensor, training: bool
) -> dict[str, tf.Tensor]:
    return match(
        network.get_layer("text_guided_attention"),
        video,
        network.get_layer("query_encoder")(tokens, training=training),
    )
