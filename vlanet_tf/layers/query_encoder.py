"""Query representation, eq. 1 of VLANet."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vlanet_tf.layers.ops import l2_normalize, output_spec


@keras.saving.register_keras_serializable(package="vlanet_tf")
class QueryEncoder(keras.layers.Layer):
    """Word embeddings -> GRU -> every hidden state L2-normalised (eq. 1).

    Shapes: B batch, M words (right-padded with id 0), D `hidden_dim`.

    Call:
        tokens: int32 [B, M]; 0 is padding, 1 is the unknown word.
    Returns:
        dict with
        - `words`: [B, M, D], Q = [w_1 ... w_M], unit rows; padded rows are 0.
        - `mask`: bool [B, M], True on real tokens.
        - `last`: [B, D], w_M taken at the last *real* token of each sentence.

    The GRU runs left to right over right-padded input, so the state at a real token
    never sees padding; w_M is gathered at index `length - 1` rather than read from the
    final state, which would have run over the padding.

    Dtypes: the embedding and GRUs get the `dtype` policy (variables float32, compute in
    its compute dtype); `words` and `last` have the compute dtype, and the L2 norm is
    taken in float32.
    """

    def __init__(
        self,
        vocab_size: int,
        word_dim: int = 300,
        hidden_dim: int = 256,
        gru_layers: int = 1,
        train_embeddings: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 (<pad>, <unk>), got {vocab_size}")
        if gru_layers < 1:
            raise ValueError(f"gru_layers must be >= 1, got {gru_layers}")
        self.vocab_size = vocab_size
        self.word_dim = word_dim
        self.hidden_dim = hidden_dim
        self.gru_layers = gru_layers
        self.train_embeddings = train_embeddings
        self.embedding = keras.layers.Embedding(
            vocab_size,
            word_dim,
            trainable=train_embeddings,
            dtype=self.dtype_policy,
            name="word_embedding",
        )
        self.grus = [
            keras.layers.GRU(
                hidden_dim, return_sequences=True, dtype=self.dtype_policy, name=f"gru_{i}"
            )
            for i in range(gru_layers)
        ]

    def build(self, tokens_shape: tuple) -> None:
        self.embedding.build(tokens_shape)
        shape = (tokens_shape[0], tokens_shape[1], self.word_dim)
        for gru in self.grus:
            gru.build(shape)
            shape = (tokens_shape[0], tokens_shape[1], self.hidden_dim)

    def set_word_vectors(self, matrix: np.ndarray) -> None:
        """Loads the [vocab_size, word_dim] matrix prepared by data_prep."""
        matrix = np.asarray(matrix, dtype="float32")
        if matrix.shape != (self.vocab_size, self.word_dim):
            raise ValueError(
                f"word vectors must have shape {(self.vocab_size, self.word_dim)}, "
                f"got {matrix.shape}"
            )
        if not self.embedding.built:
            self.embedding.build((None, None))
        self.embedding.embeddings.assign(matrix)

    def call(self, tokens: tf.Tensor) -> dict[str, tf.Tensor]:
        tokens = tf.cast(tokens, tf.int32)
        mask = tf.not_equal(tokens, 0)
        x = self.embedding(tokens)
        for gru in self.grus:
            x = gru(x)
        words = l2_normalize(x) * tf.cast(mask, x.dtype)[..., None]
        length = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        last = tf.gather(words, tf.maximum(length - 1, 0), axis=1, batch_dims=1)
        return {"words": words, "mask": mask, "last": last}

    def compute_output_shape(self, tokens_shape: tuple) -> dict[str, tuple]:
        b, m = tokens_shape[0], tokens_shape[1]
        return {
            "words": (b, m, self.hidden_dim),
            "mask": (b, m),
            "last": (b, self.hidden_dim),
        }

    def compute_output_spec(self, tokens: keras.KerasTensor) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape(tokens.shape)
        dtypes = {"words": self.compute_dtype, "mask": "bool", "last": self.compute_dtype}
        return output_spec(shapes, dtypes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            word_dim=self.word_dim,
            hidden_dim=self.hidden_dim,
            gru_layers=self.gru_layers,
            train_embeddings=self.train_embeddings,
        )
        return config
