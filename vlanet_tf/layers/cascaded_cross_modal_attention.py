"""Cascaded Cross-modal Attention and the video-level similarity, eqs. 9-13 of VLANet."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from vlanet_tf.layers.dense_attention import CASCADE_FORMS, DenseAttention
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT, l2_normalize, output_spec


def _masked(log_scale: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    return tf.where(mask, tf.cast(log_scale, tf.float32), MASKED_LOG_WEIGHT)


@keras.saving.register_keras_serializable(package="vlanet_tf")
class CascadedCrossModalAttention(keras.layers.Layer):
    """Self-attention, then cross-attention in series, then c = E(v_comp, Q).

    Shapes: B batch, N video rows (K surrogates, or K·L proposals without surrogate
    selection), M words, D hidden size.

    1. Self-attention (eqs. 9-10): V <- A(V, V); Q <- A(Q, Q).
    2. Cross-attention (eqs. 11-12), `cross_steps` steps alternating Q2V, V2Q, Q2V, ...:
       V <- A(V, Q), Q <- A(Q, V), ... Each step has its own W1, W2 unless
       `share_cross_weights`, where all V-updates share one pair and all Q-updates
       another.
    3. v_comp = sum_k V_k and c = E(v_comp, Q) with its own W1, W2 (eq. 13), or,
       with `share_similarity_head` (an option beyond the paper), with the W1, W2 of
       the last Q2V step: the E that weighs each surrogate in that step is then the
       function the loss scores the pair by. Without cross-attention the head keeps
       its own pair.

    `video_self_attention_window` = w > 0 restricts E(v_n, V) in the video
    self-attention to the rows within ±w of n (see DenseAttention's `window`), which
    makes that step, the only one quadratic in N, linear in N; 0 is the paper's full
    A(V, V). No other step is banded: their X and Y are different sequences.

    A only re-weights rows, so the rows are kept as (direction, log scale): the final
    V_k is exp(log_scale_k) s_k. Products of many softmax weights underflow float32 for
    long videos; their logs do not. v_comp's direction is computed from the softmax of
    the log scales, which equals the direction of the plain sum.

    `form` picks the reading of eqs. 7-13 (README, "Deviations from the paper"):
    - "project" (the default): every E is taken on the rows' directions, Y's rows are
      mixed by their current weights, `reduction` applies, and c = E of v_comp's
      direction. The log scales above are then only the rows' weights.
    - "paper": the equations as printed. Every E is on the re-weighted rows
      themselves (DenseAttention's paper form, a sum over the valid m), v_comp is the
      plain sum sum_k V_k and c = E(v_comp, Q) with the final, re-weighted Q.
      `reduction` is not read. The rows are still carried as (input row, log scale),
      which is exact: with μ the largest log scale of the video, v_comp = exp(μ) · u,
      u = sum_k exp(log_scale_k - μ) s_k, and the head takes u with log scale μ, so
      its dot products are scaled by exp(μ + log_scale_m) inside the tanh exactly as
      if v_comp had been formed; only the underflowing weights are never formed.

    Dtypes: every DenseAttention gets this layer's `dtype` policy, so their projections
    and pairwise energies run in its compute dtype (variables stay float32). The log
    scales, the softmax shares, v_comp's weighted sum and norm, and the attention map
    are float32: the shares of a 90-group video underflow float16 and the log scales
    hold MASKED_LOG_WEIGHT. All four outputs are float32.

    Call:
        inputs: dict with `video` [B, N, D] and `query` [B, M, D] (unit rows),
        `video_mask` bool [B, N], `query_mask` bool [B, M], and `fallback_scores`
        [B, N] (read as float32; the selection cosines), used as localisation scores
        when no step updates V.
    Returns:
        dict with `similarity` [B] (c), `scores` [B, N] (log of the weight each video
        row carries into v_comp, plus `score_mix` times its `fallback_scores` when
        `score_mix` > 0; MASKED_LOG_WEIGHT where masked), `query_log_scale`
        [B, M], `attention_map` [B, N, M] (outer product of the final V and Q, each
        normalised to unit total weight; SPEC §10).
    """

    def __init__(
        self,
        hidden_dim: int = 256,
        use_self_attention: bool = True,
        use_cross_attention: bool = True,
        cross_steps: int = 3,
        share_cross_weights: bool = False,
        reduction: str = "mean",
        init_scale: float = 1.0,
        video_self_attention_window: int = 0,
        form: str = "project",
        score_mix: float = 0.0,
        attention_temperature: float = 1.0,
        share_similarity_head: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not score_mix >= 0:
            raise ValueError(f"score_mix must be >= 0, got {score_mix}")
        if form not in CASCADE_FORMS:
            raise ValueError(f"form must be one of {CASCADE_FORMS}, got {form!r}")
        if cross_steps < 1:
            raise ValueError(f"cross_steps must be >= 1, got {cross_steps}")
        self.hidden_dim = hidden_dim
        self.use_self_attention = use_self_attention
        self.use_cross_attention = use_cross_attention
        self.cross_steps = cross_steps
        self.share_cross_weights = share_cross_weights
        self.reduction = reduction
        self.init_scale = init_scale
        self.video_self_attention_window = video_self_attention_window
        self.form = form
        self.score_mix = float(score_mix)
        self.attention_temperature = float(attention_temperature)
        self.share_similarity_head = bool(share_similarity_head)

        def attention(
            name: str, window: int = 0, temperature: float = self.attention_temperature
        ) -> DenseAttention:
            return DenseAttention(
                hidden_dim,
                reduction,
                init_scale,
                window,
                form,
                temperature,
                dtype=self.dtype_policy,
                name=name,
            )

        self.self_video = (
            attention("self_video", video_self_attention_window) if use_self_attention else None
        )
        self.self_query = attention("self_query") if use_self_attention else None
        self.cross = []
        if use_cross_attention:
            if share_cross_weights:
                shared = [attention("cross_q2v"), attention("cross_v2q")]
                self.cross = [shared[i % 2] for i in range(cross_steps)]
            else:
                self.cross = [
                    attention(f"cross_{i}_{'q2v' if i % 2 == 0 else 'v2q'}")
                    for i in range(cross_steps)
                ]
        # c is E itself: the head's temperature would only reach weights nobody reads.
        q2v_steps = self.cross[::2]  # steps 0, 2, ... update V
        if share_similarity_head and q2v_steps:
            # The last Q2V step's E(s_k, Q) ranks the surrogates and c = E(v_comp, Q)
            # scores the pair: one function attends and matches (vla reads no τ).
            self.similarity_head = q2v_steps[-1]
        else:
            self.similarity_head = attention("similarity", temperature=1.0)

    @property
    def input_dtype(self) -> str:
        # `fallback_scores` are log-scale scores; `video` and `query` are cast to the
        # compute dtype in `call`.
        return "float32"

    @property
    def updates_video(self) -> bool:
        return self.use_self_attention or self.use_cross_attention

    def build(self, input_shape: dict[str, tuple]) -> None:
        video, query = input_shape["video"], input_shape["query"]
        if self.use_self_attention:
            self.self_video.build({"x": video, "y": video})
            self.self_query.build({"x": query, "y": query})
        for i, layer in enumerate(self.cross):
            if not layer.built:
                x, y = (video, query) if i % 2 == 0 else (query, video)
                layer.build({"x": x, "y": y})
        if not self.similarity_head.built:
            self.similarity_head.build({"x": (video[0], 1, video[-1]), "y": query})

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        video = tf.cast(inputs["video"], self.compute_dtype)
        query = tf.cast(inputs["query"], self.compute_dtype)
        video_mask, query_mask = inputs["video_mask"], inputs["query_mask"]
        v_log = _masked(tf.zeros(tf.shape(video)[:2]), video_mask)
        q_log = _masked(tf.zeros(tf.shape(query)[:2]), query_mask)

        def step(layer, x, x_mask, x_log, y, y_mask, y_log):
            args = {"x": x, "y": y, "x_mask": x_mask, "y_mask": y_mask, "y_log_scale": y_log}
            if self.form == "paper":
                args["x_log_scale"] = x_log
            out = layer(args)
            return _masked(x_log + out["log_weights"], x_mask)

        if self.use_self_attention:
            v_new = step(self.self_video, video, video_mask, v_log, video, video_mask, v_log)
            q_log = step(self.self_query, query, query_mask, q_log, query, query_mask, q_log)
            v_log = v_new
        for i, layer in enumerate(self.cross):
            if i % 2 == 0:
                v_log = step(layer, video, video_mask, v_log, query, query_mask, q_log)
            else:
                q_log = step(layer, query, query_mask, q_log, video, video_mask, v_log)

        v_share = tf.nn.softmax(v_log, axis=-1)
        v_share = tf.where(video_mask, v_share, tf.zeros_like(v_share))
        video32, query32 = tf.cast(video, tf.float32), tf.cast(query, tf.float32)
        if self.form == "paper":
            similarity = self._paper_similarity(
                video32, video_mask, v_log, query, query_mask, q_log
            )
        else:
            v_comp = l2_normalize(tf.linalg.matvec(video32, v_share, transpose_a=True))
            similarity = self.similarity_head.vla(v_comp[:, None, :], query, query_mask, q_log)
        q_share = tf.where(query_mask, tf.nn.softmax(q_log, axis=-1), tf.zeros_like(q_log))
        attention_map = tf.einsum(
            "bnd,bmd->bnm", video32 * v_share[..., None], query32 * q_share[..., None]
        )
        if not self.updates_video:
            scores = _masked(inputs["fallback_scores"], video_mask)
        elif self.score_mix > 0:
            # log a_n + λ·cos(s_n, w_M): the cascade's weight and the eq. 3 selection
            # cosine together (`score_mix`; c and the training loss do not read it).
            fallback = tf.cast(inputs["fallback_scores"], tf.float32)
            scores = _masked(v_log + self.score_mix * fallback, video_mask)
        else:
            scores = v_log
        return {
            "similarity": similarity[:, 0],
            "scores": scores,
            "query_log_scale": q_log,
            "attention_map": attention_map,
        }

    def _paper_similarity(self, video32, video_mask, v_log, query, query_mask, q_log):
        """c = E(v_comp, Q) of eq. 13, v_comp = sum_k V_k: [B, 1] float32.

        v_comp = exp(μ) · u with μ the largest valid log scale, so no weight is
        formed that could underflow (see the class docstring).
        """
        peak = tf.reduce_max(v_log, axis=-1, keepdims=True)  # [B, 1]
        relative = tf.where(video_mask, tf.exp(v_log - peak), tf.zeros_like(v_log))
        u = tf.linalg.matvec(video32, relative, transpose_a=True)  # [B, D]
        return self.similarity_head.vla(
            tf.expand_dims(u, 1), query, query_mask, q_log, peak
        )

    def similarity_probe(self, query: tf.Tensor, query_mask: tf.Tensor) -> tf.Tensor:
        """A query-only vector u [B, D] (float32, unit) whose inner product with a video
        direction x ranks x as c's head does to first order.

        c = sum_m mix_m tanh((W1 x) . (W2 q_m)) (eq. 13 on directions). For small
        energies tanh(z) ~ z, and with mix taken uniform over the valid words,
        c ~ x . W1^T (mean_m W2 q_m) = x . u (up to u's norm, which is the same for every
        video of one query). This needs no video: a collection search can take
        max_p <p, u> over cached proposals p as its first stage
        (`vlanet_tf.search`, `--stage1=similarity`).
        """
        head = self.similarity_head
        projected = tf.cast(head.w2(l2_normalize(tf.cast(query, self.compute_dtype))), tf.float32)
        weights = tf.cast(query_mask, tf.float32)[..., None]
        mean = tf.reduce_sum(projected * weights, axis=1) / tf.maximum(
            tf.reduce_sum(weights, axis=1), 1.0
        )
        kernel = tf.cast(head.w1.kernel, tf.float32)  # [D_in, D_out]: W1 x = x @ kernel
        return l2_normalize(tf.matmul(mean, kernel, transpose_b=True))

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> dict[str, tuple]:
        b, n, _ = input_shape["video"]
        m = input_shape["query"][1]
        return {
            "similarity": (b,),
            "scores": (b, n),
            "query_log_scale": (b, m),
            "attention_map": (b, n, m),
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape({k: v.shape for k, v in inputs.items()})
        return output_spec(shapes, dict.fromkeys(shapes, "float32"))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            use_self_attention=self.use_self_attention,
            use_cross_attention=self.use_cross_attention,
            cross_steps=self.cross_steps,
            share_cross_weights=self.share_cross_weights,
            reduction=self.reduction,
            init_scale=self.init_scale,
            video_self_attention_window=self.video_self_attention_window,
            form=self.form,
            score_mix=self.score_mix,
            attention_temperature=self.attention_temperature,
            share_similarity_head=self.share_similarity_head,
        )
        return config
