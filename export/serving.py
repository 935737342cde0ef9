"""The serving graph of a trained VLANet and its SavedModel export (library).

`python -m export.saved_model --model_dir=M --export_base=E` (the main) writes
`E/<version>/`, the next integer after the largest version already there (the
layout TF Serving's file-system source watches). The SavedModel is written to a hidden
temporary folder beside it and renamed at the end, so a server never loads a
half-written version.

Signatures (B batch, T clips, F feature size, M words, k = --top_k, N surrogates):

- `serving_default`: `query` string [B], `video_features` float32 [B, T, F],
  `video_length` int32 [B], `duration` float32 [B] -> `moments` float32 [B, k, 2]
  seconds, `scores` float32 [B, k], `similarity` float32 [B], `num_moments` int32 [B].
- `serve_examples`: `examples` string [B], serialized `tf.train.Example`s (see
  `EXAMPLE_SPEC`) -> as `serving_default`.
- `serve_tokens`: `query_tokens` int32 [B, M] instead of `query` -> as `serving_default`.
- `serve_tokens_single`: as `serve_tokens` with B = 1 and no input checks (the source of
  the TFLite and ONNX converters).
- `proposals`: as `serving_default` -> every ranked row (the surrogates; DiDeMo: every
  window, the surrogates first, `vlanet_tf.layers.WindowRanking`): `moments`
  [B, N, 2], `scores` [B, N], `valid` bool [B, N], `surrogate` bool [B, N] (the row
  went through the cascade), `similarity` [B], `attention_map` [B, N, M].
- `encode_query`: `query` string [B] -> `last` float32 [B, D] (w_M, the stage-1 vector
  of `vlanet_tf.search`), `words` float32 [B, M, D] (Q), `mask` bool [B, M], and for
  VLANet `probe` float32 [B, D] (the cascade head's first-order query vector, stage 1 of
  `--stage1=similarity`): the query side alone, so a collection search can run stage 1
  beside TF Serving.
- `encode_video`: `video_features`, `video_length`, `duration` -> `proposals` float32
  [B, K, L, D] (unit rows), `windows` [B, K, L, 2] seconds, `mask` bool [B, K, L]: the
  query-independent work a collection index caches (no request checks).
- `match_proposals`: cached `proposals`, `windows`, `mask` of N videos and one encoded
  query per row (`words` [N, M, D], `word_mask` [N, M], `last` [N, D]) -> `similarity`
  [N], `scores` [N, S], `moments` [N, S, 2], `valid` [N, S]: surrogate selection and the
  cascade (`vlanet_tf.model.match`) on them (no request checks).

Ranking is SPEC §7 inside the graph, `vlanet_tf.ranking.top_moments`: the tie rule of
`vlanet_tf.ranking.rank` (equal scores keep the lower surrogate index first), after the
run's temporal NMS when it has one (`--nms_iou`). When a video has fewer than k valid surrogates
the rows past `num_moments` are padding: moment [0, 0] and score `PADDED_SCORE`.

The query string is tokenised and looked up in the graph by `vlanet_tf.text.Vocabulary`,
the code the training input pipeline runs; vocab.txt is also copied into the SavedModel's
`assets/` for clients of the token-id signatures (TFLite, ONNX).

Request checks (`serving_default`, `serve_examples`, `serve_tokens`, `proposals`) fail
with InvalidArgumentError and a message naming the problem: a query with no word left
after tokenisation, T = 0, a `video_length` outside [1, T], a non-positive duration,
NaN or Inf in the features or the duration, mismatched batch sizes, and (tf.Example) a
`feature_dim` or byte count that does not match, and a feature size other than F. A query made only of unknown words is served: every
token is `<unk>` (id 1), as in training.

Requests are bounded, so that one request cannot set the work: B = 0 or B >
`MAX_BATCH`, a duration implying more than `MAX_SEGMENT_GROUPS` segment groups (K =
ceil(duration / stride), whatever T is), T > `MAX_CLIPS`, a query longer than
`MAX_QUERY_WORDS` tokens, and (`serve_tokens`) a token id outside [0, vocab_size) are
refused with InvalidArgumentError. The largest per-request tensors are then the
video self-attention [B, K, K] and the proposals [B, K·L, D]: at most
MAX_BATCH · MAX_SEGMENT_GROUPS² · 4 bytes = 1 GiB for the attention (README,
"Serving limits").
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping

import keras
import tensorflow as tf

from vlanet_tf import text
from vlanet_tf.model import INPUT_KEYS, match
from vlanet_tf.ranking import PADDED_SCORE, top_moments
from vlanet_tf.run_dir import RunDir

DEFAULT_TOP_K = 5
SERVING_SIGNATURE = "serving_default"
EXAMPLE_SIGNATURE = "serve_examples"
TOKENS_SIGNATURE = "serve_tokens"
SINGLE_SIGNATURE = "serve_tokens_single"
PROPOSALS_SIGNATURE = "proposals"
ENCODE_QUERY_SIGNATURE = "encode_query"
ENCODE_VIDEO_SIGNATURE = "encode_video"
MATCH_SIGNATURE = "match_proposals"
RANKED_OUTPUTS = ("moments", "scores", "similarity", "num_moments")
PROPOSAL_OUTPUTS = ("moments", "scores", "valid", "surrogate", "similarity", "attention_map")

VOCAB_ASSET = "vocab.txt"
# Beside the SavedModel proper; TF Serving ignores assets.extra/ except its warmup file.
EXPORT_INFO = os.path.join("assets.extra", "vlanet_export.json")

# The serve_examples record: one (video, sentence) pair. The feature keys and their
# encoding are those of the training shards (vlanet_tf.data.schema).
EXAMPLE_SPEC = {
    "query": tf.io.FixedLenFeature([], tf.string),
    "features": tf.io.FixedLenFeature([], tf.string),
    "num_clips": tf.io.FixedLenFeature([], tf.int64),
    "feature_dim": tf.io.FixedLenFeature([], tf.int64),
    "duration": tf.io.FixedLenFeature([], tf.float32),
}


# Per-request bounds (module docstring); the README states the memory they imply.
MAX_BATCH = 64
MAX_SEGMENT_GROUPS = 2048
MAX_CLIPS = 4096
MAX_QUERY_WORDS = 128


class VLANetServing(tf.Module):
    """The serving graph: text and example parsing, input checks, model, top-k.

    Args:
      network: the functional VLANet (`build_vlanet`, or `VLANet.network`).
      vocabulary_path: vocab.txt of the data the network was trained on.
      top_k: k of the ranked outputs.
      max_query_length: tokens kept per query, as in training (None: all).
      nms_iou: temporal NMS threshold of the ranking (`ranking.top_moments`); 0: off.
    """

    def __init__(
        self,
        network: keras.Model,
        vocabulary_path: str,
        top_k: int = DEFAULT_TOP_K,
        max_query_length: int | None = None,
        nms_iou: float = 0.0,
    ) -> None:
        super().__init__(name="vlanet_serving")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.network = network
        self.vocabulary = text.Vocabulary.load(vocabulary_path)
        vocab_size = network.get_layer("query_encoder").vocab_size
        if self.vocabulary.size != vocab_size:
            raise ValueError(
                f"{vocabulary_path} has {self.vocabulary.size} tokens, the model's "
                f"embedding has {vocab_size} rows"
            )
        self.vocabulary_file = tf.saved_model.Asset(vocabulary_path)
        self.top_k = int(top_k)
        self.nms_iou = float(nms_iou)
        self.max_query_length = max_query_length
        self.feature_dim = int(network.input["video_features"].shape[-1])
        self.vocab_size = int(vocab_size)
        # VLANet's proposal layer, or the clip encoder of the TGA baseline (same geometry).
        self.search = any(layer.name == "proposal_builder" for layer in network.layers)
        geometry = network.get_layer(
            "proposal_builder" if self.search else "clip_encoder"
        ).geometry
        # The longest video whose K stays within MAX_SEGMENT_GROUPS (DiDeMo's K is fixed).
        self.max_duration = (
            float("inf") if geometry.mode == "didemo"
            else MAX_SEGMENT_GROUPS * geometry.stride_seconds
        )

    # ------------------------------------------------------------------ shared pieces

    def tokens(self, query: tf.Tensor) -> tf.Tensor:
        """Sentences [B] -> int32 ids [B, M], exactly as the input pipeline makes them."""
        ids = self.vocabulary.encode(query, max_length=self.max_query_length)
        return ids.to_tensor(text.PAD_ID)

    def _checked(self, inputs: dict[str, tf.Tensor], source: str) -> dict[str, tf.Tensor]:
        """`inputs` behind assertions that turn bad requests into clear errors."""
        tokens, features = inputs["query_tokens"], inputs["video_features"]
        length, duration = inputs["video_length"], inputs["duration"]
        batch = tf.shape(features)[0]
        clips = tf.shape(features)[1]
        words = tf.reduce_sum(tf.cast(tokens != text.PAD_ID, tf.int32), axis=1)
        bounds = [
            tf.debugging.assert_positive(
                batch, message="the request has B = 0 rows; at least 1 is needed"
            ),
            tf.debugging.assert_less_equal(
                batch, MAX_BATCH, message=f"the request has more than {MAX_BATCH} rows"
            ),
            tf.debugging.assert_less_equal(
                clips, MAX_CLIPS, message=f"video_features has more than {MAX_CLIPS} clips"
            ),
            tf.debugging.assert_less_equal(
                tf.shape(tokens)[1],
                MAX_QUERY_WORDS,
                message=f"a query has more than {MAX_QUERY_WORDS} tokens",
            ),
            tf.debugging.assert_non_negative(
                tokens, message="query_tokens holds a negative token id"
            ),
            tf.debugging.assert_less(
                tokens,
                self.vocab_size,
                message=f"query_tokens holds an id >= the vocabulary size {self.vocab_size}",
            ),
        ]
        if self.max_duration != float("inf"):
            bounds.append(
                tf.debugging.assert_less_equal(
                    # NaN and Inf are left to their own check below.
                    tf.where(tf.math.is_finite(duration), duration, tf.zeros_like(duration)),
                    tf.constant(self.max_duration, duration.dtype),
                    message=f"duration implies more than {MAX_SEGMENT_GROUPS} segment "
                    f"groups (at most {self.max_duration:g} s)",
                )
            )
        with tf.control_dependencies(bounds):
            batch = tf.identity(batch)
        checks = [
            tf.debugging.assert_equal(
                tf.stack([tf.shape(tokens)[0], tf.shape(length)[0], tf.shape(duration)[0]]),
                tf.fill([3], batch),
                message="query, video_length and duration must have one row per "
                "video_features row (batch sizes differ)",
            ),
            tf.debugging.assert_positive(
                words,
                message=f"every {source} needs at least one word: got one with no word "
                "left after tokenisation (only [a-z0-9'] count)",
            ),
            # The signature's static shape already says F, but a loaded signature does
            # not always enforce it; without this the error would be a matmul's.
            tf.debugging.assert_equal(
                tf.shape(features)[2],
                self.feature_dim,
                message=f"video_features must have {self.feature_dim} features per clip "
                "(the model's F)",
            ),
            tf.debugging.assert_positive(
                clips, message="video_features has T = 0 clips; at least 1 is needed"
            ),
            tf.debugging.assert_positive(
                length, message="video_length must be >= 1 (the number of valid clips)"
            ),
            tf.debugging.assert_less_equal(
                length,
                clips,
                message="video_length is larger than the clips in video_features (T)",
            ),
            tf.debugging.assert_all_finite(
                features, message="video_features holds NaN or Inf"
            ),
            tf.debugging.assert_all_finite(duration, message="duration holds NaN or Inf"),
        ]
        with tf.control_dependencies(checks):
            positive = tf.debugging.assert_positive(
                duration, message="duration must be > 0 seconds"
            )
        with tf.control_dependencies([positive]):
            return {k: tf.identity(v) for k, v in inputs.items()}

    def _forward(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return self.network({k: inputs[k] for k in INPUT_KEYS}, training=False)

    def _ranked(self, inputs: dict[str, tf.Tensor], check: str | None) -> dict[str, tf.Tensor]:
        if check is not None:
            inputs = self._checked(inputs, check)
        out = self._forward(inputs)
        ranked = top_moments(
            out["scores"], out["moments"], out["valid"], self.top_k, self.nms_iou
        )
        return {**ranked, "similarity": out["similarity"]}

    def _video_specs(self, batch: int | None) -> dict[str, tf.TensorSpec]:
        return {
            "video_features": tf.TensorSpec(
                [batch, None, self.feature_dim], tf.float32, name="video_features"
            ),
            "video_length": tf.TensorSpec([batch], tf.int32, name="video_length"),
            "duration": tf.TensorSpec([batch], tf.float32, name="duration"),
        }

    # -------------------------------------------------------------------- signatures

    def signatures(self) -> dict[str, Any]:
        """{signature name: concrete function}, for `tf.saved_model.save`."""
        video = self._video_specs(None)
        single = self._video_specs(1)
        query = tf.TensorSpec([None], tf.string, name="query")

        @tf.function(input_signature=[query, *video.values()])
        def serve(query, video_features, video_length, duration):
            inputs = {
                "query_tokens": self.tokens(query),
                "video_features": video_features,
                "video_length": video_length,
                "duration": duration,
            }
            return self._ranked(inputs, check="query")

        @tf.function(input_signature=[query, *video.values()])
        def proposals(query, video_features, video_length, duration):
            inputs = self._checked(
                {
                    "query_tokens": self.tokens(query),
                    "video_features": video_features,
                    "video_length": video_length,
                    "duration": duration,
                },
                "query",
            )
            out = self._forward(inputs)
            return {k: out[k] for k in PROPOSAL_OUTPUTS}

        @tf.function(
            input_signature=[tf.TensorSpec([None], tf.string, name="examples")]
        )
        def serve_examples(examples):
            return self._ranked(self.parse_examples(examples), check="query")

        @tf.function(input_signature=[query])
        def encode_query(query):
            tokens = self.tokens(query)
            words = tf.reduce_sum(tf.cast(tokens != text.PAD_ID, tf.int32), axis=1)
            check = tf.debugging.assert_positive(
                words,
                message="every query needs at least one word: got one with no word "
                "left after tokenisation (only [a-z0-9'] count)",
            )
            with tf.control_dependencies([check]):
                tokens = tf.identity(tokens)
            out = self.network.get_layer("query_encoder")(tokens, training=False)
            encoded = {
                "last": tf.cast(out["last"], tf.float32),
                "words": tf.cast(out["words"], tf.float32),
                "mask": out["mask"],
            }
            if self.search:
                cascade = self.network.get_layer("cascaded_cross_modal_attention")
                encoded["probe"] = cascade.similarity_probe(out["words"], out["mask"])
            return encoded

        # The search signatures cache VLANet's proposals; the TGA baseline has none.
        builder = self.network.get_layer("proposal_builder" if self.search else "clip_encoder")
        d, scales = int(builder.hidden_dim), int(builder.geometry.num_scales)

        @tf.function(input_signature=[*video.values()])
        def encode_video(video_features, video_length, duration):
            out = builder(
                {
                    "video_features": video_features,
                    "video_length": video_length,
                    "duration": duration,
                },
                training=False,
            )
            return {
                "proposals": tf.cast(out["proposals"], tf.float32),
                "windows": out["windows"],
                "mask": out["mask"],
            }

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, scales, d], tf.float32, name="proposals"),
                tf.TensorSpec([None, None, scales, 2], tf.float32, name="windows"),
                tf.TensorSpec([None, None, scales], tf.bool, name="mask"),
                tf.TensorSpec([None, None, d], tf.float32, name="words"),
                tf.TensorSpec([None, None], tf.bool, name="word_mask"),
                tf.TensorSpec([None, d], tf.float32, name="last"),
            ]
        )
        def match_proposals(proposals, windows, mask, words, word_mask, last):
            out = match(
                self.network.get_layer("surrogate_select"),
                self.network.get_layer("cascaded_cross_modal_attention"),
                {
                    "proposals": tf.cast(proposals, builder.compute_dtype),
                    "windows": windows,
                    "mask": mask,
                },
                {"words": words, "mask": word_mask, "last": last},
            )
            return {
                "similarity": tf.cast(out["similarity"], tf.float32),
                "scores": tf.cast(out["scores"], tf.float32),
                "moments": out["moments"],
                "valid": out["valid"],
            }

        tokens = tf.TensorSpec([None, None], tf.int32, name="query_tokens")

        @tf.function(input_signature=[tokens, *video.values()])
        def serve_tokens(query_tokens, video_features, video_length, duration):
            inputs = {
                "query_tokens": query_tokens,
                "video_features": video_features,
                "video_length": video_length,
                "duration": duration,
            }
            return self._ranked(inputs, check="query_tokens row")

        # Converters (TFLite, ONNX) start from this one: a fixed batch of 1 keeps the
        # GRU on builtin TFLite ops, and assertions are not convertible ops.
        @tf.function(
            input_signature=[
                tf.TensorSpec([1, None], tf.int32, name="query_tokens"),
                *single.values(),
            ]
        )
        def serve_tokens_single(query_tokens, video_features, video_length, duration):
            inputs = {
                "query_tokens": query_tokens,
                "video_features": video_features,
                "video_length": video_length,
                "duration": duration,
            }
            return self._ranked(inputs, check=None)

        signatures = {
            SERVING_SIGNATURE: serve.get_concrete_function(),
            EXAMPLE_SIGNATURE: serve_examples.get_concrete_function(),
            TOKENS_SIGNATURE: serve_tokens.get_concrete_function(),
            SINGLE_SIGNATURE: serve_tokens_single.get_concrete_function(),
            PROPOSALS_SIGNATURE: proposals.get_concrete_function(),
            ENCODE_QUERY_SIGNATURE: encode_query.get_concrete_function(),
        }
        if self.search:
            signatures[ENCODE_VIDEO_SIGNATURE] = encode_video.get_concrete_function()
            signatures[MATCH_SIGNATURE] = match_proposals.get_concrete_function()
        return signatures

    def parse_examples(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Serialized tf.Examples [B] -> the model inputs, features zero-padded to max T."""
        parsed = tf.io.parse_example(examples, EXAMPLE_SPEC)
        num_clips = tf.cast(parsed["num_clips"], tf.int32)
        feature_dim = tf.cast(parsed["feature_dim"], tf.int32)
        size = tf.strings.length(parsed["features"])
        checks = [
            tf.debugging.assert_equal(
                feature_dim,
                self.feature_dim,
                message=f"feature_dim must be {self.feature_dim} (the model's F)",
            ),
            tf.debugging.assert_equal(
                size,
                num_clips * feature_dim * 4,
                message="features must hold num_clips * feature_dim little-endian float32 "
                "values (byte count does not match)",
            ),
        ]
        with tf.control_dependencies(checks):
            longest = tf.reduce_max(tf.concat([size, [0]], axis=0))
            # decode_raw with fixed_length zero-pads the shorter videos of the batch.
            flat = tf.io.decode_raw(
                parsed["features"], tf.float32, little_endian=True, fixed_length=longest
            )
        features = tf.reshape(flat, tf.stack([tf.shape(flat)[0], -1, self.feature_dim]))
        return {
            "query_tokens": self.tokens(parsed["query"]),
            "video_features": features,
            "video_length": num_clips,
            "duration": parsed["duration"],
        }


# ------------------------------------------------------------------ from a model_dir


def resolve_run(
    model_dir: str,
    data_dir: str | None = None,
    max_query_length: int | None = None,
    checkpoint: str = "best",
    precision: str | None = None,
) -> tuple[keras.Model, str, int | None, str]:
    """(functional network, vocab.txt path, max_query_length, weights file) of a run.

    The run's options come from its directory (`vlanet_tf.run_dir`): the vocabulary
    from its data directory and its query length, unless `data_dir` or
    `max_query_length` are given. `checkpoint` is best|last|PATH. The network computes
    in the run's precision unless `precision` is given: the weights are float32 in
    every precision, so e.g. a mixed_bfloat16 run exported with "float32" serves its
    own weights in float32 (what TFLite needs: it converts no bfloat16 ops).
    """
    run_dir = RunDir(model_dir)
    options = run_dir.load_options(data_dir=data_dir, max_query_length=max_query_length)
    if precision is not None:
        options = options.with_model(precision=precision)
    model, vocab_path, max_query_length, weights = run_dir.serving_parts(checkpoint, options)
    return model.network, vocab_path, max_query_length, weights


def next_version(export_base: str) -> int:
    """One more than the largest integer version folder under `export_base` (1 if none)."""
    if not tf.io.gfile.isdir(export_base):
        return 1
    versions = [
        int(name.rstrip("/"))
        for name in tf.io.gfile.listdir(export_base)
        if re.fullmatch(r"\d+/?", name)
    ]
    return max(versions, default=0) + 1


def save(
    module: VLANetServing,
    export_base: str,
    version: int | None = None,
    info: Mapping[str, Any] | None = None,
) -> str:
    """Writes `export_base/<version>/` atomically; returns its path."""
    version = next_version(export_base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = os.path.join(export_base, str(version))
    if tf.io.gfile.exists(final):
        raise ValueError(f"{final!r} already exists; versions are never overwritten")
    tf.io.gfile.makedirs(export_base)
    # Hidden and not an integer, so TF Serving does not take it for a version.
    staging = os.path.join(export_base, f".staging-{version}-{os.getpid()}")
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    signatures = module.signatures()
    tf.saved_model.save(module, staging, signatures=signatures)
    details = {
        "version": version,
        "top_k": module.top_k,
        "nms_iou": module.nms_iou,
        "feature_dim": module.feature_dim,
        "max_query_length": module.max_query_length,
        "vocab_size": module.vocabulary.size,
        "padded_score": PADDED_SCORE,
        "signatures": list(signatures),
        **dict(info or {}),
    }
    tf.io.gfile.makedirs(os.path.join(staging, "assets.extra"))
    with tf.io.gfile.GFile(os.path.join(staging, EXPORT_INFO), "w") as f:
        f.write(json.dumps(details, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(staging, final)
    return final


def read_export_info(saved_model_dir: str) -> dict[str, Any]:
    """The export's settings (top_k, feature_dim, ...) written beside the SavedModel."""
    path = os.path.join(saved_model_dir, EXPORT_INFO)
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"{saved_model_dir!r} has no {EXPORT_INFO}: not written by export.saved_model"
        )
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def vocabulary_path(saved_model_dir: str) -> str:
    """The vocab.txt copied into the SavedModel's assets."""
    return os.path.join(saved_model_dir, "assets", VOCAB_ASSET)


def export_run(
    model_dir: str,
    export_base: str,
    checkpoint: str = "best",
    top_k: int = DEFAULT_TOP_K,
    data_dir: str | None = None,
    version: int | None = None,
    max_query_length: int | None = None,
    precision: str | None = None,
    nms_iou: float | None = None,
) -> str:
    """Exports a training run's checkpoint; returns the version folder written.

    The run's options are reloaded from its directory; `data_dir`,
    `max_query_length`, `precision` (the compute format, see `resolve_run`) and
    `nms_iou` (the ranking's NMS, `RunConfig.nms_iou`) override them when given. Inputs and outputs are float32 in every precision.
    """
    network, vocab_path, max_query_length, weights = resolve_run(
        model_dir, data_dir, max_query_length, checkpoint, precision
    )
    if nms_iou is None:
        nms_iou = RunDir(model_dir).load_options(data_dir=data_dir).run.nms_iou
    module = VLANetServing(network, vocab_path, top_k, max_query_length, nms_iou)
    return save(
        module,
        export_base,
        version,
        info={
            "model_dir": os.path.abspath(model_dir),
            "weights": os.path.abspath(weights),
            # predict --video extracts with exactly this (vlanet_tf.video).
            "extractor": RunDir(model_dir).extractor(),
            # What the run was trained on (model, vocabulary and data hashes).
            "fingerprint": RunDir(model_dir).saved_fingerprint(),
        },
    )
