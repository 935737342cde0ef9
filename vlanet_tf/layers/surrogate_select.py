"""Surrogate Proposal Selection, eqs. 3-6 of VLANet."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT, output_spec


@keras.saving.register_keras_serializable(package="vlanet_tf")
class SurrogateSelect(keras.layers.Layer):
    """Picks, in every segment group, the proposal closest to the query (eqs. 3-6).

    Shapes: B batch, K segment groups, L scales, D hidden size.

    Call:
        inputs: dict with `proposals` [B, K, L, D] (unit rows), `windows` float32
        [B, K, L, 2], `mask` bool [B, K, L], `query_last` [B, D] (w_M, a unit vector).
    Returns:
        dict with `surrogates` [B, K, D] (s_k = p_{l'k}, the compute dtype), `windows`
        float32 [B, K, 2] (each surrogate's start/end seconds), `mask` bool [B, K] (the
        group has at least one valid window), `index` int32 [B, K] (l'), `cosine`
        float32 [B, K] (cos(s_k, w_M); 0 for empty groups), `cosines` float32
        [B, K, L] (cos(p_lk, w_M) of every window, eq. 3; 0 where masked).

    Dtypes: windows (seconds) and the cosines are float32 whatever the `dtype` policy,
    so that the argmax does not change with the compute dtype nor tie on its rounding;
    only the surrogates take the compute dtype.

    The argmax is not differentiated. With `method="gather"` the surrogate is read with
    `tf.gather` at l', whose gradient is a scatter into the selected proposal only; with
    `method="mask"` it is the sum of the proposals times a stop-gradient one-hot mask.
    Either way the non-selected proposals of a group get exactly zero gradient. Masked
    windows score MASKED_LOG_WEIGHT and so are never selected while a valid one exists.

    `enabled=False` is the "without surrogate selection" ablation (SPEC §9): every
    proposal becomes a row, so the outputs have N = K·L rows instead of K.

    `rank_all_windows` is read by `vlanet_tf.model.match`, not here: the model's
    ranking then holds every valid window, the surrogates first
    (`layers.window_ranking`). DiDeMo's protocol needs it (SPEC §8 ranks all 21
    candidates); the layer's own outputs are the same either way.
    """

    def __init__(
        self,
        method: str = "gather",
        enabled: bool = True,
        rank_all_windows: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if method not in ("gather", "mask"):
            raise ValueError(f"method must be 'gather' or 'mask', got {method!r}")
        self.method = method
        self.enabled = enabled
        self.rank_all_windows = bool(rank_all_windows)

    @property
    def input_dtype(self) -> str:
        # `windows` are seconds; the proposals are cast to the compute dtype in `call`.
        return "float32"

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        proposals = inputs["proposals"]
        mask = inputs["mask"]
        query = tf.cast(inputs["query_last"], tf.float32)
        cosine = tf.einsum("bkld,bd->bkl", tf.cast(proposals, tf.float32), query)
        cosines = tf.where(mask, cosine, tf.zeros_like(cosine))
        proposals = tf.cast(proposals, self.compute_dtype)
        if not self.enabled:
            return {
                **self._all_proposals(proposals, inputs["windows"], mask, cosine),
                "cosines": cosines,
            }
        masked = tf.where(mask, cosine, MASKED_LOG_WEIGHT)
        index = tf.argmax(tf.stop_gradient(masked), axis=-1, output_type=tf.int32)
        if self.method == "gather":
            surrogates = tf.gather(proposals, index, axis=2, batch_dims=2)
        else:
            one_hot = tf.stop_gradient(
                tf.one_hot(index, tf.shape(proposals)[2], dtype=proposals.dtype)
            )
            surrogates = tf.reduce_sum(proposals * one_hot[..., None], axis=2)
        windows = tf.gather(inputs["windows"], index, axis=2, batch_dims=2)
        group_mask = tf.reduce_any(mask, axis=-1)
        # An empty group has no surrogate: zero it so nothing flows back through it.
        surrogates *= tf.cast(group_mask, surrogates.dtype)[..., None]
        selected_cosine = tf.gather(cosine, index, axis=2, batch_dims=2)
        selected_cosine = tf.where(group_mask, selected_cosine, tf.zeros_like(selected_cosine))
        return {
            "surrogates": surrogates,
            "windows": windows,
            "mask": group_mask,
            "index": index,
            "cosine": selected_cosine,
            "cosines": cosines,
        }

    @staticmethod
    def _all_proposals(proposals, windows, mask, cosine) -> dict[str, tf.Tensor]:
        shape = tf.shape(proposals)
        n = shape[1] * shape[2]
        return {
            "surrogates": tf.reshape(proposals, [shape[0], n, shape[3]]),
            "windows": tf.reshape(windows, [shape[0], n, 2]),
            "mask": tf.reshape(mask, [shape[0], n]),
            "index": tf.zeros([shape[0], n], tf.int32),
            "cosine": tf.reshape(tf.where(mask, cosine, tf.zeros_like(cosine)), [shape[0], n]),
        }

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> dict[str, tuple]:
        b, k, l, d = input_shape["proposals"]
        if not self.enabled:
            k = None if k is None or l is None else k * l
        return {
            "surrogates": (b, k, d),
            "windows": (b, k, 2),
            "mask": (b, k),
            "index": (b, k),
            "cosine": (b, k),
            "cosines": input_shape["mask"],
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape({k: v.shape for k, v in inputs.items()})
        dtypes = {
            "surrogates": self.compute_dtype,
            "windows": "float32",
            "mask": "bool",
            "index": "int32",
            "cosine": "float32",
            "cosines": "float32",
        }
        return output_spec(shapes, dtypes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            method=self.method, enabled=self.enabled, rank_all_windows=self.rank_all_windows
        )
        return config
