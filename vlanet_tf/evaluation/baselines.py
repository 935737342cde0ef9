"""The reference rows of SPEC §8: Random and (DiDeMo) Upper Bound.

Both rank exactly the candidates a model with the same `ProposalGeometry` can return,
so the model and its baselines are scored on one candidate set.
"""

from __future__ import annotations

import functools

import numpy as np

from vlanet_tf import spans
from vlanet_tf.evaluation import metrics
from vlanet_tf.evaluation.ground_truth import DIDEMO, Queries
from vlanet_tf.evaluation.predictions import Rankings
from vlanet_tf.evaluation.scoring import score
from vlanet_tf.geometry import ProposalGeometry

BASELINES = ("random", "upper_bound")


def with_rank_scores(moments: np.ndarray) -> np.ndarray:
    """[C, 2] ranked -> [C, 3] with a score falling from 1 by rank."""
    scores = 1.0 - np.arange(len(moments)) / len(moments)
    return np.concatenate([moments, scores[:, None]], axis=1)


def candidates(queries: Queries, geometry: ProposalGeometry) -> dict[str, np.ndarray]:
    """The candidate moments each query's video offers, ``[C, 2]`` seconds."""
    return {q.query_id: geometry.candidates(q.duration) for q in queries.values()}


def segment_candidates(queries: Queries, geometry: ProposalGeometry) -> dict[str, np.ndarray]:
    """DiDeMo: each query's candidates as inclusive segment pairs ``[C, 2]``, the
    model's valid windows (`ProposalGeometry.num_segments` of the video)."""
    if geometry.mode != "didemo":
        raise ValueError(f"segment candidates need didemo proposals, got {geometry.mode!r}")
    return {
        q.query_id: geometry.didemo_pairs(geometry.num_segments(q.duration))
        for q in queries.values()
    }


def evaluate_baseline(
    kind: str,
    dataset: str,
    queries: Queries,
    geometry: ProposalGeometry,
    seeds: int = 5,
) -> tuple[dict, Rankings]:
    """A reference row: (metrics, one of its rankings to write out).

    random: mean and std over ``seeds`` uniformly random rankings of the candidates
    (the rankings written are seed 0's). upper_bound (DiDeMo): the per-metric oracle of
    `metrics.didemo_upper_bound`; the rankings written are the agreement rankings,
    which reach its R@1 and R@5 (its mIoU picks its own top-1).
    """
    if kind == "random":
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        pool = candidates(queries, geometry)
        result = metrics.random_baseline(pool, functools.partial(score, dataset, queries), seeds)
        rankings = metrics.random_ranking(pool, seed=0)
        return result, {k: with_rank_scores(v) for k, v in rankings.items()}
    if kind == "upper_bound":
        if dataset != DIDEMO:
            raise ValueError(f"--baseline=upper_bound is defined for didemo only, got {dataset!r}")
        truth = {q.query_id: q.segments for q in queries.values()}
        pool = segment_candidates(queries, geometry)
        result = metrics.didemo_upper_bound(truth, candidates=pool)
        rankings = {}
        for q in queries.values():
            pairs = metrics.didemo_agreement_ranking(q.segments, candidates=pool[q.query_id])
            start, end = spans.didemo_segments_to_seconds(pairs[:, 0], pairs[:, 1])
            rankings[q.query_id] = with_rank_scores(np.stack([start, end], axis=-1))
        return result, rankings
    raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")
