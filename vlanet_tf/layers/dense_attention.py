"""Dense Attention and the VLA function, eqs. 7-8 of VLANet."""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.layers.ops import l2_normalize, masked_log_softmax, output_spec

# The two readings of eqs. 7-13 (ModelConfig.cascade_form): "project", E on the rows'
# directions with Y mixed by its rows' weights (the default), and "paper", the
# equations as printed, E on the re-weighted rows themselves.
CASCADE_FORMS = ("project", "paper")


@keras.saving.register_keras_serializable(package="vlanet_tf")
class DenseAttention(keras.layers.Layer):
    """A(X, Y) = diag(softmax_n E(x_n, Y)) X with E the VLA function (eqs. 7-8).

    Shapes: B batch, N rows of X, M rows of Y, D hidden size.

    E(x_n, Y) = reduce_m tanh((W1 x̂_n) · (W2 ŷ_m)), where x̂, ŷ are the rows'
    directions. Because A only re-weights rows, a row of X is always its original
    direction times the product of the weights it received; E is computed on the
    direction (SPEC §5) and the product is carried as a log scale by the caller, which
    keeps a 90-group video finite after any number of steps. The rows' scales still
    matter on the Y side: the reduction over m is a mean weighted by the Y rows'
    current scales (softmax of `y_log_scale` over valid rows), which is the plain
    mean over valid m [decided] while Y has not been re-weighted. `reduction="sum"`
    multiplies that mean by the number of valid rows (the paper's sum).

    `window` = w > 0 restricts the reduction over m to the band |n - m| <= w: the same
    π weights, renormalised over the valid rows of the band (and `sum` multiplies by
    the band's valid count). It is only meaningful when X and Y are the same sequence,
    row n of X being row n of Y (the video self-attention A(V, V)); the softmax over n
    in A still spans every valid row. The band costs O(N·w·D) time and O(N·w) memory
    instead of the O(N·M) energy matrix; once w >= N it equals the full reduction.
    w = 0 (the default) is the paper's full reduction.

    `temperature` τ divides E before the softmax over n: softmax_n(E / τ). E is
    bounded (|E| < 1 with `mean`), so at τ = 1 one step can favour a row over another
    by at most e^2; τ < 1 lets the weights peak on a moment. `energy` is E itself.

    W1 and W2 start as N(0, (init_scale / sqrt(D))^2), so E is near 0 and the
    attention near uniform at initialisation; SPEC §5 reports that a sharp start keeps
    the full cascade from learning.

    `form="paper"` is eq. 7 as printed: E(x_n, Y) = sum_m tanh((W1 x_n) · (W2 y_m)) on
    the rows themselves, always a sum over the valid m (`reduction` is not read), with
    no normalisation. The rows are passed as (given row, log scale): x_n =
    exp(x_log_scale_n) · x[n] and y_m = exp(y_log_scale_m) · y[m] (both log scales
    default to 0, the rows as given). W1, W2 are linear, so (W1 x_n) · (W2 y_m) =
    exp(x_log_scale_n + y_log_scale_m) · (W1 x[n]) · (W2 y[m]): the product of the two
    scales is formed once, from the sum of their logs, in float32, and multiplies the
    dot product inside the tanh. That is equal to the literal value; it only avoids
    forming the re-weighted rows, whose weights underflow float16 (and, for long
    cascades, float32) while the scaled dot product does not. The band works the same
    way. `outputs` is still diag(weights) · x, the given rows re-weighted; the caller
    adds `log_weights` to its log scale.

    Dtypes: W1, W2 and the pairwise tanh((W1 x̂_n) · (W2 ŷ_m)), the O(N·M·D) part, run
    in the compute dtype of the `dtype` policy (variables stay float32). The reduction
    over m, the softmax over n and everything in log scale are float32: `y_log_scale`
    is read as float32, the row norms are taken in float32, and `weights`,
    `log_weights` and `energy` are float32 (MASKED_LOG_WEIGHT overflows float16);
    `outputs` has the compute dtype.

    (In the paper form the dot product runs in the compute dtype and the scaling and
    the tanh in float32.)

    Call:
        inputs: dict with `x` [B, N, D], `y` [B, M, D], and optional `x_mask` bool
        [B, N], `y_mask` bool [B, M] (default: all valid) and `y_log_scale` [B, M]
        (default: log of the Y rows' norms; 0 in the paper form), and in the paper
        form `x_log_scale` [B, N] (default 0).
    Returns:
        dict with `outputs` [B, N, D] = A(X, Y), `weights` [B, N] (0 on masked rows),
        `log_weights` [B, N] (MASKED_LOG_WEIGHT on masked rows), `energy` [B, N] = E.
    """

    def __init__(
        self,
        hidden_dim: int = 256,
        reduction: str = "mean",
        init_scale: float = 1.0,
        window: int = 0,
        form: str = "project",
        temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if form not in CASCADE_FORMS:
            raise ValueError(f"form must be one of {CASCADE_FORMS}, got {form!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 0:
            raise ValueError(f"window must be an int >= 0 (0: no band), got {window!r}")
        self.hidden_dim = hidden_dim
        self.reduction = reduction
        self.init_scale = float(init_scale)
        self.window = int(window)
        self.form = form
        self.temperature = float(temperature)
        init = keras.initializers.RandomNormal(stddev=self.init_scale / math.sqrt(hidden_dim))
        self.w1 = keras.layers.Dense(
            hidden_dim, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name="w1"
        )
        self.w2 = keras.layers.Dense(
            hidden_dim, use_bias=False, kernel_initializer=init, dtype=self.dtype_policy, name="w2"
        )

    def build(self, input_shape: dict[str, tuple]) -> None:
        self.w1.build(input_shape["x"])
        self.w2.build(input_shape["y"])

    @property
    def input_dtype(self) -> str:
        # Float inputs are converted to float32, not to the compute dtype: `y_log_scale`
        # may hold MASKED_LOG_WEIGHT. `x` and `y` are cast to the compute dtype in `vla`.
        return "float32"

    def vla(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        y_mask: tf.Tensor | None = None,
        y_log_scale: tf.Tensor | None = None,
        x_log_scale: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """E(x_n, Y) for every row n: float32 [B, N], in (-1, 1) with `mean`."""
        if y_mask is None:
            y_mask = tf.ones(tf.shape(y)[:2], tf.bool)
        if self.form == "paper":
            return self._paper_vla(x, y, y_mask, y_log_scale, x_log_scale)
        if y_log_scale is None:
            norm = tf.norm(tf.cast(y, tf.float32), axis=-1)
            y_log_scale = tf.math.log(tf.maximum(norm, 1e-30))
        y_log_scale = tf.cast(y_log_scale, tf.float32)
        a = self.w1(l2_normalize(tf.cast(x, self.compute_dtype)))
        b = self.w2(l2_normalize(tf.cast(y, self.compute_dtype)))
        if self.window:
            return self._banded_vla(a, b, y_mask, y_log_scale)
        pairwise = tf.cast(tf.tanh(tf.einsum("bnd,bmd->bnm", a, b)), tf.float32)
        mix = tf.exp(masked_log_softmax(y_log_scale, y_mask))  # [B, M], 0 where masked
        energy = tf.linalg.matvec(pairwise, mix)
        if self.reduction == "sum":
            energy *= tf.reduce_sum(tf.cast(y_mask, energy.dtype), axis=-1, keepdims=True)
        return energy

    def _paper_vla(
        self,
        x: tf.Tensor,
        y: tf.Tensor,
        y_mask: tf.Tensor,
        y_log_scale: tf.Tensor | None,
        x_log_scale: tf.Tensor | None,
    ) -> tf.Tensor:
        """Eq. 7 as printed: sum over valid m of tanh((W1 x_n) · (W2 y_m)), x_n and y_m
        the re-weighted rows exp(log scale) · given row (see the class docstring)."""
        if y_log_scale is None:
            y_log_scale = tf.zeros(tf.shape(y)[:2])
        if x_log_scale is None:
            x_log_scale = tf.zeros(tf.shape(x)[:2])
        y_log_scale = tf.cast(y_log_scale, tf.float32)
        x_log_scale = tf.cast(x_log_scale, tf.float32)
        a = self.w1(tf.cast(x, self.compute_dtype))
        b = self.w2(tf.cast(y, self.compute_dtype))
        if self.window:
            return self._banded_vla(a, b, y_mask, y_log_scale, x_log_scale)
        dot = tf.cast(tf.einsum("bnd,bmd->bnm", a, b), tf.float32)
        # New axes from expand_dims: TFLite has no builtin strided slice that adds them.
        scale = tf.exp(tf.expand_dims(x_log_scale, 2) + tf.expand_dims(y_log_scale, 1))
        pairwise = tf.where(tf.expand_dims(y_mask, 1), tf.tanh(dot * scale), 0.0)
        return tf.reduce_sum(pairwise, axis=-1)

    def _banded_vla(
        self,
        a: tf.Tensor,
        b: tf.Tensor,
        y_mask: tf.Tensor,
        y_log_scale: tf.Tensor,
        x_log_scale: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """E(x_n, Y) over the band |n - m| <= w, from a = W1 x̂ [B, N, D], b = W2 ŷ.

        Rows are taken in blocks of c = min(2w + 1, N); block j's band lies within the
        L = min(c + 2w, N) rows of Y starting at clip(j·c - w, 0, N - L), so one
        [c, D] x [D, L] product per block gives every energy the band needs and the
        N x N matrix is never formed. Built from range, gather, batched matmul and
        select only, so that it converts to TFLite builtins with a free N.

        With `x_log_scale` (the paper form) a, b are W1 x, W2 y of the given rows and
        the band sums tanh(exp(x_log_scale_n + y_log_scale_m) · a_n · b_m) over its
        valid m; without it, the project form's π-weighted mean (or sum).
        """
        if a.shape[1] is not None and b.shape[1] is not None and a.shape[1] != b.shape[1]:
            raise ValueError(
                "a banded Dense Attention needs X and Y to be the same sequence, got "
                f"{a.shape[1]} rows of X and {b.shape[1]} of Y"
            )
        n = tf.shape(b)[1]
        w = tf.constant(self.window, tf.int32)
        block = tf.minimum(2 * w + 1, n)
        columns = tf.minimum(block + 2 * w, n)
        blocks = (n + block - 1) // block
        # Global row of each (block, row in block), and global Y row of each
        # (block, column): the column window slides to stay inside [0, N). New axes
        # come from expand_dims: TFLite has no builtin for a strided slice that adds
        # them.
        first_rows = tf.range(blocks) * block
        rows = tf.expand_dims(first_rows, 1) + tf.expand_dims(tf.range(block), 0)
        starts = tf.clip_by_value(first_rows - w, 0, n - columns)
        cols = tf.expand_dims(starts, 1) + tf.expand_dims(tf.range(columns), 0)
        a_blocks = tf.gather(a, tf.minimum(rows, n - 1), axis=1)  # [B, nb, c, D]
        b_blocks = tf.gather(b, cols, axis=1)  # [B, nb, L, D]
        dot = tf.linalg.matmul(a_blocks, b_blocks, transpose_b=True)
        in_band = tf.abs(tf.expand_dims(rows, 2) - tf.expand_dims(cols, 1)) <= w  # [nb, c, L]
        band_mask = tf.logical_and(
            tf.expand_dims(in_band, 0), tf.expand_dims(tf.gather(y_mask, cols, axis=1), 2)
        )
        band_log_scale = tf.broadcast_to(
            tf.expand_dims(tf.gather(y_log_scale, cols, axis=1), 2), tf.shape(band_mask)
        )
        if x_log_scale is not None:
            row_log_scale = tf.gather(x_log_scale, tf.minimum(rows, n - 1), axis=1)
            scale = tf.exp(tf.expand_dims(row_log_scale, 3) + band_log_scale)
            pairwise = tf.where(band_mask, tf.tanh(tf.cast(dot, tf.float32) * scale), 0.0)
            energy = tf.reduce_sum(pairwise, axis=-1)
            energy = tf.reshape(energy, [tf.shape(a)[0], blocks * block])
            return energy[:, :n]
        pairwise = tf.cast(tf.tanh(dot), tf.float32)
        # π renormalised over the band: a softmax of Y's log scales per row n.
        mix = tf.exp(masked_log_softmax(band_log_scale, band_mask))
        energy = tf.reduce_sum(pairwise * mix, axis=-1)
        if self.reduction == "sum":
            energy *= tf.reduce_sum(tf.cast(band_mask, energy.dtype), axis=-1)
        energy = tf.reshape(energy, [tf.shape(a)[0], blocks * block])
        return energy[:, :n]

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = tf.cast(inputs["x"], self.compute_dtype), inputs["y"]
        x_mask = inputs.get("x_mask")
        if x_mask is None:
            x_mask = tf.ones(tf.shape(x)[:2], tf.bool)
        energy = self.vla(
            x, y, inputs.get("y_mask"), inputs.get("y_log_scale"), inputs.get("x_log_scale")
        )
        log_weights = masked_log_softmax(energy / self.temperature, x_mask)
        weights = tf.where(x_mask, tf.exp(log_weights), tf.zeros_like(log_weights))
        return {
            "outputs": x * tf.cast(weights, x.dtype)[..., None],
            "weights": weights,
            "log_weights": log_weights,
            "energy": energy,
        }

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> dict[str, tuple]:
        b, n, d = input_shape["x"]
        return {
            "outputs": (b, n, d),
            "weights": (b, n),
            "log_weights": (b, n),
            "energy": (b, n),
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape({k: v.shape for k, v in inputs.items()})
        dtypes = {**dict.fromkeys(shapes, "float32"), "outputs": self.compute_dtype}
        return output_spec(shapes, dtypes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            reduction=self.reduction,
            init_scale=self.init_scale,
            window=self.window,
            form=self.form,
            temperature=self.temperature,
        )
        return config

