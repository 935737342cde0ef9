"""The VLANet functional model and its margin-contrastive trainer."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vlanet_tf.config import ModelConfig, TrainConfig
from vlanet_tf.layers import (
    CascadedCrossModalAttention,
    ProposalBuilder,
    QueryEncoder,
    SurrogateSelect,
    WindowRanking,
)
from vlanet_tf import tga
from vlanet_tf.losses import LOSSES, contrastive_terms, select_negatives

INPUT_KEYS = ("query_tokens", "video_features", "video_length", "duration")
# TrainConfig.negative_direction: "sentence" pairs each video with other videos'
# sentences (eq. 14, SPEC §6), "video" each sentence with other videos, "both" does both.
NEGATIVE_DIRECTIONS = ("sentence", "video", "both")


def model_inputs(feature_dim: int) -> dict[str, keras.KerasTensor]:
    """The four inputs every VLANet graph takes (docs/ARCHITECTURE.md)."""
    return {
        "query_tokens": keras.Input((None,), dtype="int32", name="query_tokens"),
        "video_features": keras.Input(
            (None, feature_dim), dtype="float32", name="video_features"
        ),
        "video_length": keras.Input((), dtype="int32", name="video_length"),
        "duration": keras.Input((), dtype="float32", name="duration"),
    }


def build_vlanet(config: ModelConfig) -> keras.Model:
    """The functional VLANet: dict of inputs -> dict of outputs.

    Outputs: `similarity` [B] (eq. 13), `scores` [B, N] (SPEC §7), `moments` [B, N, 2]
    seconds, `valid` bool [B, N], `surrogate` bool [B, N] (the row went through the
    cascade), `attention_map` [B, N, M] (SPEC §10). N: see `match`.

    Every layer is built under the dtype policy `config.precision`; inputs and
    outputs are float32 (and int32, bool) whatever it is.

    `config.architecture == "tga"` builds the TGA baseline instead (`vlanet_tf.tga`),
    with the same inputs and outputs.
    """
    inputs = model_inputs(config.feature_dim)
    if config.architecture == "tga":
        return tga.build_tga(config, inputs)
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
    proposal_builder = ProposalBuilder(
        config.hidden_dim,
        config.proposal_mode,
        config.fps,
        config.stride_frames,
        config.window_frames,
        config.didemo_segments,
        config.segment_seconds,
        config.min_window_fraction,
        dtype=policy,
        name="proposal_builder",
    )
    surrogate_select = SurrogateSelect(
        enabled=config.use_surrogate_selection,
        rank_all_windows=ranks_all_windows(config),
        dtype=policy,
        name="surrogate_select",
    )
    cascade = CascadedCrossModalAttention(
        config.hidden_dim,
        config.use_self_attention,
        config.use_cross_attention,
        config.cross_steps,
        config.share_cross_weights,
        config.vla_reduction,
        config.attention_init_scale,
        video_self_attention_window(config),
        config.cascade_form,
        config.score_mix,
        config.attention_temperature,
        config.share_similarity_head,
        dtype=policy,
        name="cascaded_cross_modal_attention",
    )
    query = query_encoder(inputs["query_tokens"])
    proposals = proposal_builder(
        {k: inputs[k] for k in ("video_features", "video_length", "duration")}
    )
    outputs = match(surrogate_select, cascade, proposals, query)
    return keras.Model(inputs, outputs, name="vlanet")


def ranks_all_windows(config: ModelConfig) -> bool:
    """Whether the model's ranking holds every valid window, not only the surrogates.

    DiDeMo: yes, its protocol ranks all 21 candidate moments (SPEC §8). Sliding windows
    (Charades-STA): no; the protocol reads the top 5 only, a video longer than four
    strides already has more than 5 surrogates, and the rows (and the exported
    `proposals` outputs) would grow L-fold. Without surrogate selection every window
    is a row anyway.
    """
    return config.proposal_mode == "didemo"


def video_self_attention_window(config: ModelConfig) -> int:
    """The band of the video self-attention in cascade rows, from one in segment groups.

    With surrogate selection the rows are the K groups. Without it they are the K·L
    proposals, group-major, so ±w groups are about ±w·L rows.
    """
    if config.use_surrogate_selection:
        return config.video_self_attention_window
    return config.video_self_attention_window * config.num_scales


def match(
    surrogate_select: SurrogateSelect,
    cascade: CascadedCrossModalAttention,
    proposals: dict[str, Any],
    query: dict[str, Any],
) -> dict[str, Any]:
    """Surrogate selection (eqs. 3-6) then the cascade (eqs. 9-13) for one pairing.

    The rows of `scores`, `moments`, `valid`, `surrogate` and `attention_map`: the K
    surrogates (N = K) with surrogate selection; every window (N = K·L, group-major)
    without it, or with it when `surrogate_select.rank_all_windows` (DiDeMo), where
    `layers.WindowRanking` ranks the surrogates first and the other windows after them.
    """
    selected = surrogate_select(
        {
            "proposals": proposals["proposals"],
            "windows": proposals["windows"],
            "mask": proposals["mask"],
            "query_last": query["last"],
        }
    )
    attended = cascade(
        {
            "video": selected["surrogates"],
            "video_mask": selected["mask"],
            "query": query["words"],
            "query_mask": query["mask"],
            "fallback_scores": selected["cosine"],
        }
    )
    if surrogate_select.enabled and surrogate_select.rank_all_windows:
        ranked = WindowRanking(name="window_ranking")(
            {
                "windows": proposals["windows"],
                "mask": proposals["mask"],
                "index": selected["index"],
                "group_mask": selected["mask"],
                "cosines": selected["cosines"],
                "scores": attended["scores"],
                "attention_map": attended["attention_map"],
            }
        )
        return {"similarity": attended["similarity"], **ranked}
    return {
        "similarity": attended["similarity"],
        "scores": attended["scores"],
        "moments": selected["windows"],
        "valid": selected["mask"],
        # Every row went through the cascade.
        "surrogate": keras.ops.copy(selected["mask"]),
        "attention_map": attended["attention_map"],
    }


def video_keys(video_id: tf.Tensor) -> tf.Tensor:
    """int64 key per video id: sentences of one video share it (negatives, SPEC §6)."""
    return tf.strings.to_hash_bucket_fast(video_id, 2**62)


def _all_gather(ctx: tf.distribute.ReplicaContext, value: tf.Tensor) -> tf.Tensor:
    """`ctx.all_gather(value, axis=0)`, also with one replica per worker.

    MultiWorkerMirroredStrategy with one device per worker runs the replica function
    under no device scope, and inside a tf.function `all_gather` of a tensor without a
    device fails ("destinations can not be empty", TF 2.21); pinning the value to the
    worker's device gives the gather its destination.
    """
    devices = ctx.strategy.extended.worker_devices
    if len(devices) == 1:
        with tf.device(devices[0]):
            value = tf.identity(value)
    return ctx.all_gather(value, axis=0)


def _repeat_rows(tree: dict[str, tf.Tensor], times: int | tf.Tensor) -> dict[str, tf.Tensor]:
    return {k: tf.repeat(v, times, axis=0) for k, v in tree.items()}


def _gather_rows(tree: dict[str, tf.Tensor], index: tf.Tensor) -> dict[str, tf.Tensor]:
    return {k: tf.gather(v, index, axis=0) for k, v in tree.items()}


@keras.saving.register_keras_serializable(package="vlanet_tf")
class VLANet(keras.Model):
    """VLANet with the margin-contrastive training of eq. 14.

    Wraps the functional model of `build_vlanet` (`self.network`; calling this model
    calls it). `train_step`/`test_step` run one positive pass and `num_negatives`
    negative passes; the query-independent video work (projection and pooling) is done
    once and shared by all of them.

    Negatives are sentences of *other* videos in the batch (`losses.select_negatives`);
    with `gather_negatives` the candidates are the global batch across replicas (the
    token ids and video keys are gathered; each replica encodes its negatives itself,
    so gradients stay local). The loss on a replica is its hinge sum divided by the
    number of valid pairs in the global batch, so the gradients that the optimizer sums
    over replicas are those of the global mean.

    Beyond the paper (defaults keep eq. 14): `negative_direction` "video" pairs each
    sentence with the proposals of other videos (rows of the shared video encoding,
    drawn from this replica's batch: the video side is not gathered), "both" adds those
    pairs to the sentence ones; `num_negatives=0` takes every valid in-batch negative
    (B × (G − 1) cascade passes per direction, G the candidates: the global batch with
    `gather_negatives`, against B × n); `loss` turns a positive and its negatives into
    terms (`losses.contrastive_terms`) and the loss is the mean term over every
    direction and replica. `dropout` > 0 drops query word features (after the GRU)
    and proposal features (after the projection) in training passes only; inference
    (`call`, the exported graph) never sees it. `clipnorm` > 0 clips the global norm of
    that summed gradient; Keras' own `clipnorm` would clip each replica's partial
    gradient before the sum, which is a different (replica-count dependent) clip.

    The batch is a dict holding the model inputs and either `video_id` (string [B]) or
    `video_key` (int64 [B], `video_keys(video_id)`); the training input drops strings
    because Keras reduces the first distributed batch across replicas, which strings
    cannot take.
    """

    def __init__(
        self,
        model_config: ModelConfig | dict[str, Any],
        margin: float = 0.5,
        num_negatives: int = 1,
        gather_negatives: bool = False,
        clipnorm: float = 0.0,
        negative_direction: str = "sentence",
        loss: str = "hinge",
        temperature: float = 0.1,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model_config, dict):
            model_config = ModelConfig.from_dict(model_config)
        if num_negatives < 0:
            raise ValueError(f"num_negatives must be >= 0 (0: all), got {num_negatives}")
        if negative_direction not in NEGATIVE_DIRECTIONS:
            raise ValueError(
                f"negative_direction must be one of {NEGATIVE_DIRECTIONS}, "
                f"got {negative_direction!r}"
            )
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.model_config = model_config
        self.margin = float(margin)
        self.num_negatives = int(num_negatives)
        self.gather_negatives = bool(gather_negatives)
        self.clipnorm = float(clipnorm)
        self.negative_direction = negative_direction
        self.loss_name = loss
        self.temperature = float(temperature)
        self.dropout = float(dropout)
        self.network = build_vlanet(model_config)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.positive_tracker = keras.metrics.Mean(name="pos_sim")
        self.negative_tracker = keras.metrics.Mean(name="neg_sim")
        self.accuracy_tracker = keras.metrics.Mean(name="pos_beats_neg")
        self.built = True

    # Layers of the functional graph, reused by the training passes.
    @property
    def query_encoder(self) -> QueryEncoder:
        return self.network.get_layer("query_encoder")

    @property
    def proposal_builder(self) -> ProposalBuilder:
        return self.network.get_layer("proposal_builder")

    def set_word_vectors(self, matrix: np.ndarray) -> None:
        self.query_encoder.set_word_vectors(matrix)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        return self.network({k: inputs[k] for k in INPUT_KEYS}, training=training)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [
            self.loss_tracker,
            self.positive_tracker,
            self.negative_tracker,
            self.accuracy_tracker,
        ]

    def encode_video(self, data: dict[str, tf.Tensor], training: bool) -> dict[str, tf.Tensor]:
        """The query-independent video work (eq. 2), done once per batch and shared by
        the positive and every negative pass."""
        if self.model_config.architecture == "tga":
            return tga.encode_video(self.network, data, training)
        video = self.proposal_builder(
            {k: data[k] for k in ("video_features", "video_length", "duration")},
            training=training,
        )
        if training and self.dropout > 0:
            video = dict(video, proposals=self._drop(video["proposals"]))
        return video

    def match_queries(
        self, video: dict[str, tf.Tensor], tokens: tf.Tensor, training: bool
    ) -> dict[str, tf.Tensor]:
        """The model's outputs for (video row i, sentence row i) pairs: `video` from
        `encode_video` (rows repeated with `_repeat_rows` to pair a video with several
        sentences), `tokens` int32 [B, T]."""
        if self.model_config.architecture == "tga":
            return tga.match_queries(self.network, video, tokens, training)
        query = self.query_encoder(tokens, training=training)
        if training and self.dropout > 0:
            words = self._drop(query["words"])
            # w_M of eq. 1 is the last real word: the same dropped vector.
            length = tf.reduce_sum(tf.cast(query["mask"], tf.int32), axis=1)
            last = tf.gather(words, tf.maximum(length - 1, 0), axis=1, batch_dims=1)
            query = dict(query, words=words, last=last)
        return match(
            self.network.get_layer("surrogate_select"),
            self.network.get_layer("cascaded_cross_modal_attention"),
            video,
            query,
        )

    def _drop(self, features: tf.Tensor) -> tf.Tensor:
        """Dropout of `self.dropout` in a training pass. TF's stateful op, not a Keras
        layer: a Keras Dropout's seed state would be a weight, and the run's weights
        files would then differ with the rate."""
        return tf.nn.dropout(features, rate=self.dropout)

    def _candidates(
        self, tokens: tf.Tensor, keys: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(candidate tokens, candidate video keys, offset of this replica's rows)."""
        ctx = tf.distribute.get_replica_context()
        if not self.gather_negatives or ctx is None or ctx.num_replicas_in_sync == 1:
            return tokens, keys, tf.constant(0, tf.int32)
        lengths = _all_gather(ctx, tf.shape(tokens)[1:2])
        tokens = tf.pad(tokens, [[0, 0], [0, tf.reduce_max(lengths) - tf.shape(tokens)[1]]])
        offset = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.shape(tokens)[0]
        return _all_gather(ctx, tokens), _all_gather(ctx, keys), offset

    def contrastive_step(
        self, data: dict[str, tf.Tensor], training: bool
    ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Loss of eq. 14 (or its variants) for one (replica's) batch, scaled for the
        global batch.

        This is the one training computation: `train_step` (Model.fit) and the custom
        multi-worker loop both call it. Returns the loss and `positive` [B],
        `negative` [B, n] and `valid` [B, n] of each direction of negatives in turn
        (the sentence one first), concatenated along the n axis. The TGA architecture
        scores its pairs through its own `encode_video` / `match_queries`; its
        bidirectional ranking loss is `negative_direction="both"` with every in-batch
        negative (`num_negatives=0`) and the hinge.
        """
        tokens = tf.cast(data["query_tokens"], tf.int32)
        keys = data["video_key"] if "video_key" in data else video_keys(data["video_id"])
        video = self.encode_video(data, training)
        pos_sim = self.match_queries(video, tokens, training)["similarity"]
        directions = []
        if self.negative_direction in ("sentence", "both"):
            candidate_tokens, candidate_keys, offset = self._candidates(tokens, keys)
            index, valid = select_negatives(keys, candidate_keys, offset, self.num_negatives)
            times = tf.shape(index)[1]
            negative = self.match_queries(
                _repeat_rows(video, times),
                tf.gather(candidate_tokens, tf.reshape(index, [-1])),
                training,
            )
            directions.append((tf.reshape(negative["similarity"], [-1, times]), valid))
        if self.negative_direction in ("video", "both"):
            index, valid = select_negatives(keys, keys, 0, self.num_negatives)
            times = tf.shape(index)[1]
            negative = self.match_queries(
                _gather_rows(video, tf.reshape(index, [-1])),
                tf.repeat(tokens, times, axis=0),
                training,
            )
            directions.append((tf.reshape(negative["similarity"], [-1, times]), valid))
        terms, counted = [], []
        for neg_sim, valid in directions:
            t, c = contrastive_terms(
                pos_sim, neg_sim, valid, self.loss_name, self.margin, self.temperature
            )
            terms.append(tf.reshape(t, [-1]))
            counted.append(tf.reshape(tf.cast(c, t.dtype), [-1]))
        terms, counted = tf.concat(terms, 0), tf.concat(counted, 0)
        neg_sim = tf.concat([n for n, _ in directions], axis=1)
        valid = tf.concat([v for _, v in directions], axis=1)
        valid_f = tf.cast(valid, pos_sim.dtype)
        count = tf.reduce_sum(counted)
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
        loss = tf.reduce_sum(terms) / tf.maximum(count, 1.0)
        self.loss_tracker.update_state(terms, sample_weight=counted)
        self.positive_tracker.update_state(pos_sim)
        self.negative_tracker.update_state(neg_sim, sample_weight=valid_f)
        self.accuracy_tracker.update_state(
            tf.cast(pos_sim[:, None] > neg_sim, valid_f.dtype), sample_weight=valid_f
        )
        return loss, {"positive": pos_sim, "negative": neg_sim, "valid": valid}

    def compile(self, optimizer: Any = "rmsprop", **kwargs: Any) -> None:
        """Keras `compile`; under mixed_float16 the optimizer is wrapped in a
        `LossScaleOptimizer` (float16 gradients underflow unscaled; bfloat16 has
        float32's range and needs none). A LossScaleOptimizer given is kept as is.
        Call under the strategy's scope, like `compile` itself."""
        optimizer = keras.optimizers.get(optimizer)
        if self.model_config.precision == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, **kwargs)
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and not optimizer.built:
            # Built now so that `train_step` traces the scale variable, not the
            # constant `initial_scale` an unbuilt optimizer's `scale_loss` returns.
            optimizer.build(self.trainable_variables)

    def train_step(self, data: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One optimizer step on the loss of eq. 14.

        With a `keras.optimizers.LossScaleOptimizer` (mixed_float16) the gradient is
        taken of the scaled loss and stays scaled through the clip, whose norm is
        scaled with it (clipping g·s to clipnorm·s is clipping g to clipnorm); the
        optimizer unscales it, and skips the step and halves the scale when any
        gradient is not finite.
        """
        scaled = isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
        with tf.GradientTape() as tape:
            loss, _ = self.contrastive_step(data, training=True)
            if scaled:
                loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        if self.clipnorm > 0:
            scale = self.optimizer.dynamic_scale if scaled else 1.0
            gradients = self._clip_summed_gradients(gradients, scale)
        self.optimizer.apply(gradients, variables)
        return {m.name: m.result() for m in self.metrics}

    def _clip_summed_gradients(
        self, gradients: list[tf.Tensor], scale: tf.Tensor | float = 1.0
    ) -> list[tf.Tensor]:
        """Clips the all-replica gradient's global norm; returns this replica's share.

        `scale` is the loss scale the gradients carry: the clip norm is scaled by it. A
        non-finite gradient makes every clipped gradient NaN, so the loss-scale
        optimizer still sees the overflow and skips the step.
        """
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if replicas > 1:
            gradients = ctx.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
        gradients, _ = tf.clip_by_global_norm(
            gradients, tf.cast(scale, tf.float32) * self.clipnorm
        )
        if replicas > 1:
            # The optimizer sums the replicas' gradients again.
            gradients = [g / replicas for g in gradients]
        return gradients

    def test_step(self, data: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        self.contrastive_step(data, training=False)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_config": self.model_config.to_dict(),
            "margin": self.margin,
            "num_negatives": self.num_negatives,
            "gather_negatives": self.gather_negatives,
            "clipnorm": self.clipnorm,
            "negative_direction": self.negative_direction,
            "loss": self.loss_name,
            "temperature": self.temperature,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "VLANet":
        return cls(**config)

    @classmethod
    def from_configs(cls, model_config: ModelConfig, train_config: TrainConfig) -> "VLANet":
        """The VLANet that `train_config` trains (uncompiled, fresh weights)."""
        return cls(
            model_config,
            margin=train_config.margin,
            num_negatives=train_config.num_negatives,
            gather_negatives=train_config.gather_negatives,
            clipnorm=train_config.clipnorm,
            negative_direction=train_config.negative_direction,
            loss=train_config.loss,
            temperature=train_config.temperature,
            dropout=train_config.dropout,
        )
