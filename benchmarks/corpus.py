"""The `corpus` section: ranking N videos for one query with cached proposal features.

    python -m benchmarks.corpus [--quick]

The query-independent proposal features of every video are computed once
(`VLANet.proposal_builder`); per query only the query encoder and `model.match` run,
against every cached video. Beside it, the full model runs on every video per query.
Both rank the top 10 by similarity; `rankings_match` is the share of queries for which
the two top-10 lists are the same.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import common, reference
from benchmarks.common import BenchOptions


def measure(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """The `corpus` entry: ms per video and query, cached against the full model."""
    import tensorflow as tf

    n, t, m = options.corpus_videos, options.clips, options.words
    model = common.vlanet(common.model_config(feature_dim))
    match = common.match_fn()
    network = model.network
    builder = model.proposal_builder
    encoder = model.query_encoder
    select = network.get_layer("surrogate_select")
    cascade = network.get_layer("cascaded_cross_modal_attention")
    videos = common.synthetic_batch(n, t, feature_dim, m, seed=2)
    video_keys = ("video_features", "video_length", "duration")
    top = min(10, n)

    @tf.function
    def precompute(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return builder(inputs, training=False)

    @tf.function
    def rank(tokens: tf.Tensor, proposals: dict[str, tf.Tensor]) -> tf.Tensor:
        query = encoder(tokens, training=False)
        rows = tf.shape(proposals["proposals"])[0]
        query = {k: tf.repeat(v, rows, axis=0) for k, v in query.items()}
        similarity = match(select, cascade, proposals, query)["similarity"]
        return tf.math.top_k(similarity, top).indices

    @tf.function
    def rank_naive(tokens: tf.Tensor, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        rows = tf.shape(inputs["video_features"])[0]
        out = network({"query_tokens": tf.repeat(tokens, rows, axis=0), **inputs}, training=False)
        return tf.math.top_k(out["similarity"], top).indices

    video_inputs = {k: videos[k] for k in video_keys}
    start = time.perf_counter()
    proposals = precompute(video_inputs)
    proposals = {k: tf.identity(v) for k, v in proposals.items()}
    proposals["proposals"].numpy()
    precompute_first_s = time.perf_counter() - start
    precompute_s = reference.median(
        reference.time_calls(lambda: precompute(video_inputs)["proposals"].numpy(), 2)
    )
    queries = common.synthetic_batch(options.corpus_queries, 1, 1, m, seed=3)["query_tokens"]
    matches = 0
    for i in range(options.corpus_queries):
        tokens = queries[i : i + 1]
        cached = rank(tokens, proposals).numpy().tolist()
        matches += cached == rank_naive(tokens, video_inputs).numpy().tolist()
    reused, naive = [], []
    for _ in range(options.corpus_rounds):
        for i in range(options.corpus_queries):
            tokens = queries[i : i + 1]
            reused += reference.time_calls(lambda: rank(tokens, proposals).numpy(), 1)
            naive += reference.time_calls(lambda: rank_naive(tokens, video_inputs).numpy(), 1)
    figures = per_video_figures(reused, naive, n)
    return {
        "videos": n,
        "feature_dim": feature_dim,
        "clips": t,
        "queries": len(reused),
        **figures,
        "rankings_match": matches / options.corpus_queries,
        "reused_s": reused,
        "naive_s": naive,
        "precompute_ms_per_video": 1000.0 * precompute_s / n,
        "precompute_first_call_s": precompute_first_s,
        "proposal_cache_mb": sum(
            int(v.shape.num_elements()) * v.dtype.size for v in proposals.values()
        )
        / 2**20,
        "what": "query encoder once, then surrogate selection and the cascade against "
        "every cached video (model.match), top-10 by similarity; naive: the full model "
        "(projection and pooling included) on every video",
    }


def per_video_figures(reused_s: list[float], naive_s: list[float], videos: int) -> dict[str, Any]:
    """ms per video and query of each way, from the per-query seconds, and their ratio."""
    reused_ms = 1000.0 * reference.median(reused_s) / videos
    naive_ms = 1000.0 * reference.median(naive_s) / videos
    return {
        "ms_per_video": reused_ms,
        "naive_ms_per_video": naive_ms,
        "speedup": naive_ms / reused_ms,
    }


if __name__ == "__main__":
    sys.exit(
        common.section_main(lambda options, root: measure(max(options.feature_dims), options))
    )
