"""A trained run, cut into the pieces a collection search calls separately.

The index needs only the query-independent video work (`ProposalBuilder`: projected,
pooled, normalised proposals and their windows); a query needs the query encoder (w_M
for stage 1, Q for the cascade) and surrogate selection + the cascade
(`vlanet_tf.model.match`) over cached proposals. All three are the run's own layers,
taken from its functional network by name, each behind one `tf.function`.

A run is identified by `fingerprint`: the SHA-256 of its config.json and weights file,
stored in an index so that a query with another model is refused.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
import tensorflow as tf

from vlanet_tf import files, text
from vlanet_tf.model import match
from vlanet_tf.run_dir import RunDir


def run_fingerprint(config_path: str, weights_path: str) -> str:
    """SHA-256 (hex) over a run's config.json bytes then its weights file bytes."""
    digest = hashlib.sha256()
    for path in (config_path, weights_path):
        digest.update(os.path.basename(path).encode("utf-8") + b"\0")
        files.update_digest(digest, path)
    return digest.hexdigest()


# What `encode_query` returns, for both models below.
ENCODED_QUERY = ("last", "words", "mask", "probe")


class SearchModel:
    """The run's layers as three compiled functions (video side, query side, cascade).

    Args:
      network: the functional VLANet (`VLANet.network`, `build_vlanet`).
      vocabulary: the training vocabulary (`vlanet_tf.text.Vocabulary`).
      fingerprint: the run's identity (`run_fingerprint`).
      max_query_length: tokens kept per query, as in training (None: all).
      source: where the run came from (stored in the index, for messages).
    """

    def __init__(
        self,
        network: Any,
        vocabulary: text.Vocabulary,
        fingerprint: str,
        max_query_length: int | None = None,
        source: str = "",
    ) -> None:
        self.network = network
        self.vocabulary = vocabulary
        self.fingerprint = fingerprint
        self.max_query_length = max_query_length
        self.source = source
        self.query_encoder = network.get_layer("query_encoder")
        self.proposal_builder = network.get_layer("proposal_builder")
        self.surrogate_select = network.get_layer("surrogate_select")
        self.cascade = network.get_layer("cascaded_cross_modal_attention")
        self.hidden_dim = int(self.proposal_builder.hidden_dim)
        self.num_scales = int(self.proposal_builder.num_scales)
        self.feature_dim = int(network.input["video_features"].shape[-1])
        d, scales = self.hidden_dim, self.num_scales
        self._videos = tf.function(
            self._encode_videos,
            input_signature=[
                tf.TensorSpec([None, None, self.feature_dim], tf.float32),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None], tf.float32),
            ],
        )
        self._queries = tf.function(
            self._encode_queries, input_signature=[tf.TensorSpec([None], tf.string)]
        )
        self._match = tf.function(
            self._match_one_query,
            input_signature=[
                tf.TensorSpec([None, None, scales, d], tf.float16),
                tf.TensorSpec([None, None, scales, 2], tf.float32),
                tf.TensorSpec([None, None, scales], tf.bool),
                tf.TensorSpec([None, d], tf.float32),
                tf.TensorSpec([None], tf.bool),
                tf.TensorSpec([d], tf.float32),
            ],
        )

    @classmethod
    def from_run(cls, model_dir: str, checkpoint: str = "best") -> "SearchModel":
        """A training run's model (`vlanet_tf.run_dir`), its vocabulary and identity."""
        run_dir = RunDir(model_dir)
        model, vocab_path, max_query_length, weights = run_dir.serving_parts(checkpoint)
        return cls(
            model.network,
            text.Vocabulary.load(vocab_path),
            run_fingerprint(run_dir.config_path, weights),
            max_query_length,
            source=os.path.abspath(model_dir),
        )

    # ------------------------------------------------------------------ graph parts

    def _encode_videos(self, features, length, duration):
        out = self.proposal_builder(
            {"video_features": features, "video_length": length, "duration": duration},
            training=False,
        )
        return {
            "proposals": tf.cast(out["proposals"], tf.float16),
            "windows": out["windows"],
            "mask": out["mask"],
        }

    def _encode_queries(self, sentences):
        ids = self.vocabulary.encode(sentences, max_length=self.max_query_length)
        tokens = ids.to_tensor(text.PAD_ID)
        out = self.query_encoder(tokens, training=False)
        return {
            "last": tf.cast(out["last"], tf.float32),
            "words": tf.cast(out["words"], tf.float32),
            "mask": out["mask"],
            "num_words": tf.reduce_sum(tf.cast(out["mask"], tf.int32), axis=1),
            "probe": self.cascade.similarity_probe(out["words"], out["mask"]),
        }

    def _match_one_query(self, proposals, windows, mask, words, word_mask, last):
        n = tf.shape(proposals)[0]
        query = {
            "words": tf.repeat(words[None], n, axis=0),
            "mask": tf.repeat(word_mask[None], n, axis=0),
            "last": tf.repeat(last[None], n, axis=0),
        }
        video = {
            "proposals": tf.cast(proposals, self.proposal_builder.compute_dtype),
            "windows": windows,
            "mask": mask,
        }
        out = match(self.surrogate_select, self.cascade, video, query)
        return {
            "similarity": tf.cast(out["similarity"], tf.float32),
            "scores": tf.cast(out["scores"], tf.float32),
            "moments": out["moments"],
            "valid": out["valid"],
        }

    # ------------------------------------------------------------------- NumPy side

    def encode_videos(
        self, features: np.ndarray, length: np.ndarray, duration: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Zero-padded features [B, T, F] -> proposals f16 [B, K, L, D], windows, mask."""
        out = self._videos(
            tf.constant(features, tf.float32),
            tf.constant(length, tf.int32),
            tf.constant(duration, tf.float32),
        )
        return {k: v.numpy() for k, v in out.items()}

    def encode_query(self, sentence: str) -> dict[str, np.ndarray]:
        """One sentence -> `last` (w_M) [D], `words` (Q) [M, D], `mask` [M], and
        `probe` [D] (the cascade head's first-order query vector, `similarity_probe`)."""
        out = self._queries(tf.constant([sentence]))
        if int(out["num_words"][0]) == 0:
            raise ValueError(
                f"the query {sentence!r} has no word left after tokenisation "
                "(only [a-z0-9'] count)"
            )
        return {k: out[k].numpy()[0] for k in ENCODED_QUERY}

    def match(
        self,
        proposals: np.ndarray,
        windows: np.ndarray,
        mask: np.ndarray,
        query: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """The cascade of one encoded query against N videos' cached proposals."""
        out = self._match(
            tf.constant(proposals, tf.float16),
            tf.constant(windows, tf.float32),
            tf.constant(mask, tf.bool),
            tf.constant(query["words"], tf.float32),
            tf.constant(query["mask"], tf.bool),
            tf.constant(query["last"], tf.float32),
        )
        return {k: v.numpy() for k, v in out.items()}


def saved_model_fingerprint(saved_model_dir: str) -> str:
    """SHA-256 (hex) over a SavedModel's saved_model.pb and variables/, in name order."""
    digest = hashlib.sha256()
    paths = [os.path.join(saved_model_dir, "saved_model.pb")]
    variables = os.path.join(saved_model_dir, "variables")
    if os.path.isdir(variables):
        paths += [os.path.join(variables, n) for n in sorted(os.listdir(variables))]
    for path in paths:
        digest.update(os.path.basename(path).encode("utf-8") + b"\0")
        files.update_digest(digest, path)
    return digest.hexdigest()


class SavedModelSearch:
    """`SearchModel`'s interface over an exported SavedModel (export/serving.py).

    Uses its `encode_video`, `encode_query` and `match_proposals` signatures, so an index
    can be built and queried without the training code or its data directory.
    """

    def __init__(self, saved_model_dir: str) -> None:
        if not os.path.isfile(os.path.join(saved_model_dir, "saved_model.pb")):
            raise ValueError(f"{saved_model_dir!r} is not a SavedModel (no saved_model.pb)")
        self.loaded = tf.saved_model.load(saved_model_dir)
        missing = {"encode_video", "encode_query", "match_proposals"} - set(
            self.loaded.signatures.keys()
        )
        if missing:
            raise ValueError(
                f"{saved_model_dir!r} lacks the signatures {sorted(missing)}: export it "
                "again with this version of export.saved_model"
            )
        self.fingerprint = saved_model_fingerprint(saved_model_dir)
        self.source = os.path.abspath(saved_model_dir)
        spec = self.loaded.signatures["match_proposals"].structured_input_signature[1]
        self.num_scales, self.hidden_dim = (int(n) for n in spec["proposals"].shape[2:])
        video = self.loaded.signatures["encode_video"].structured_input_signature[1]
        self.feature_dim = int(video["video_features"].shape[-1])

    def encode_videos(self, features, length, duration) -> dict[str, np.ndarray]:
        out = self.loaded.signatures["encode_video"](
            video_features=tf.constant(features, tf.float32),
            video_length=tf.constant(length, tf.int32),
            duration=tf.constant(duration, tf.float32),
        )
        out = {k: v.numpy() for k, v in out.items()}
        out["proposals"] = out["proposals"].astype(np.float16)
        return out

    def encode_query(self, sentence: str) -> dict[str, np.ndarray]:
        try:
            out = self.loaded.signatures["encode_query"](query=tf.constant([sentence]))
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                f"the query {sentence!r} has no word left after tokenisation "
                "(only [a-z0-9'] count)"
            ) from error
        # `probe` is absent from SavedModels exported before it existed.
        return {k: v.numpy()[0] for k, v in out.items() if k in ENCODED_QUERY}

    def match(self, proposals, windows, mask, query) -> dict[str, np.ndarray]:
        n = proposals.shape[0]
        out = self.loaded.signatures["match_proposals"](
            proposals=tf.constant(proposals, tf.float32),
            windows=tf.constant(windows, tf.float32),
            mask=tf.constant(mask, tf.bool),
            words=tf.constant(np.repeat(query["words"][None], n, 0), tf.float32),
            word_mask=tf.constant(np.repeat(query["mask"][None], n, 0), tf.bool),
            last=tf.constant(np.repeat(query["last"][None], n, 0), tf.float32),
        )
        return {k: v.numpy() for k, v in out.items()}


def load_model(source: str, kind: str = "run", checkpoint: str = "best"):
    """A `SearchModel` (kind "run": a training run) or `SavedModelSearch` ("saved_model")."""
    if kind == "saved_model":
        return SavedModelSearch(source)
    return SearchModel.from_run(source, checkpoint)
