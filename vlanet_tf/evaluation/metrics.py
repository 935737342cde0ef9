"""Evaluation protocols (SPEC §8) and the reference rows Random and Upper Bound.

All functions take plain dicts keyed by query id and return percentages, so the same
code scores a model, a predictions file or a baseline. A query of the ground truth
without a prediction (absent, or an empty ranking) counts as a miss: a metric is
always a share of *all* ground-truth queries, never of the predicted ones.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from vlanet_tf import spans
from vlanet_tf.geometry import DIDEMO_NUM_SEGMENTS, ProposalGeometry

Metrics = dict[str, float]


def recall_key(n: int, iou: float) -> str:
    """The Charades-STA metric name, "R1@0.5" for n=1, IoU=0.5."""
    return f"R{n}@{iou:g}"


def charades_recall(
    predictions: Mapping[str, np.ndarray],
    ground_truth: Mapping[str, Sequence[float]],
    ns: Sequence[int] = (1, 5),
    ious: Sequence[float] = (0.3, 0.5, 0.7),
    durations: Mapping[str, float] | None = None,
) -> Metrics:
    """Charades-STA "R@n, IoU=m" in percent.

    Args:
      predictions: query id -> ranked moments ``[n, 2]`` (or ``[n, >=2]``: columns
        after the second, such as a score, are ignored) in seconds, best first.
      ground_truth: query id -> the annotated (start, end) in seconds.
      ns: the n of R@n.
      ious: the IoU thresholds m.
      durations: query id -> video duration. When given, the annotated moment is
        clipped to it (the release has ends past the video's length); otherwise the
        caller has clipped already.

    Returns:
      ``{"R1@0.3": pct, ...}``, n-major: the percentage of ground-truth queries for
      which at least one of the top-n moments has IoU >= m.
    """
    if not ground_truth:
        raise ValueError("ground_truth is empty: there is nothing to evaluate")
    max_n = max(ns)
    thresholds = np.asarray(ious, dtype=np.float64)
    # hits[i, j]: queries whose top-ns[i] contains an IoU >= ious[j].
    hits = np.zeros((len(ns), len(thresholds)), dtype=np.int64)
    for query_id, truth in ground_truth.items():
        ranked = np.asarray(predictions.get(query_id, ()), dtype=np.float64)
        if ranked.size == 0:
            continue
        truth = np.asarray(truth, dtype=np.float64)
        if durations is not None:
            truth = spans.clip_moment(truth, durations[query_id])
        overlaps = spans.temporal_iou(
            ranked.reshape(len(ranked), -1)[:max_n, :2], truth
        )
        for i, n in enumerate(ns):
            hits[i] += overlaps[:n].max() >= thresholds
    shares = 100.0 * hits / len(ground_truth)
    return {
        recall_key(n, m): float(shares[i, j])
        for i, n in enumerate(ns)
        for j, m in enumerate(ious)
    }


def _annotator_ranks(
    ranking: Sequence[tuple[int, int]], annotations: Iterable[Sequence[int]]
) -> np.ndarray:
    """1-based rank of each annotator moment in the ranking; inf when absent.

    Duplicate annotator moments each get the rank of the moment, so a moment chosen
    by three annotators fills all three best ranks (the original protocol's ties).
    A moment the ranking leaves out (a truncated ranking) can never be recalled.
    """
    position = {}
    for index, moment in enumerate(ranking):
        position.setdefault(moment, index + 1)
    return np.asarray(
        [position.get(tuple(int(x) for x in moment), np.inf) for moment in annotations],
        dtype=np.float64,
    )


def didemo_query_scores(
    ranking: Sequence[Sequence[int]], annotations: Sequence[Sequence[int]]
) -> tuple[float, float]:
    """One query of the DiDeMo protocol: (average rank, IoU of the top-1 moment).

    The average rank is the mean of the 3 best (smallest) annotator ranks; the IoU
    is the mean of the 3 largest inclusive-index IoUs between the top-1 moment and
    the annotator moments. With more than 4 annotators (5 or 7) the best three still
    decide, so extra annotators can only help. An empty ranking scores (inf, 0).
    """
    annotations = np.asarray(annotations, dtype=np.int64).reshape(-1, 2)
    if len(annotations) == 0:
        raise ValueError("a DiDeMo query needs at least one annotator moment, got none")
    ranking = [tuple(int(x) for x in moment[:2]) for moment in ranking]
    if not ranking:
        return np.inf, 0.0
    ranks = np.sort(_annotator_ranks(ranking, annotations))[:3]
    overlaps = np.sort(spans.inclusive_index_iou(np.asarray(ranking[0]), annotations))
    return float(ranks.mean()), float(overlaps[-3:].mean())


def didemo_metrics(
    predictions: Mapping[str, Sequence[Sequence[int]]],
    ground_truth: Mapping[str, Sequence[Sequence[int]]],
) -> Metrics:
    """DiDeMo R@1, R@5 and mIoU in percent, the original protocol (SPEC §8).

    Args:
      predictions: query id -> ranked inclusive segment pairs (s, e), best first;
        normally all 21 candidates (see `ProposalGeometry.didemo_pairs`).
      ground_truth: query id -> the annotator moments (s, e), duplicates included.

    Returns:
      ``{"R1", "R5", "mIoU"}``: shares of queries whose average of the 3 best
      annotator ranks is <= 1 and <= 5, and the mean top-1 IoU.
    """
    if not ground_truth:
        raise ValueError("ground_truth is empty: there is nothing to evaluate")
    average_ranks, top1_ious = [], []
    for query_id, annotators in ground_truth.items():
        average_rank, iou = didemo_query_scores(
            predictions.get(query_id, ()), annotators
        )
        average_ranks.append(average_rank)
        top1_ious.append(iou)
    average_ranks = np.asarray(average_ranks)
    return {
        "R1": float(100.0 * np.mean(average_ranks <= 1)),
        "R5": float(100.0 * np.mean(average_ranks <= 5)),
        "mIoU": float(100.0 * np.mean(top1_ious)),
    }


def didemo_agreement_ranking(
    annotations: Sequence[Sequence[int]],
    num_segments: int = DIDEMO_NUM_SEGMENTS,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """All candidates ranked by how many annotators chose them, ``[C, 2]``.

    Most-agreed first, ties in canonical candidate order. Any ranking sorted by
    agreement puts the same ranks on the annotator moments, and no other ranking
    gives smaller best-3 ranks, so this is the ranking the R@1/R@5 upper bound uses.
    `candidates` ([C, 2] segment pairs, e.g. a model's valid windows) replaces the
    canonical pairs of `num_segments`; an annotator moment outside them is unranked.
    """
    votes = Counter(tuple(int(x) for x in moment) for moment in annotations)
    if candidates is None:
        candidates = ProposalGeometry.didemo().didemo_pairs(num_segments)
    candidates = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)
    counts = np.asarray([votes.get(tuple(c), 0) for c in candidates.tolist()])
    return candidates[np.argsort(-counts, kind="stable")]


def didemo_upper_bound(
    ground_truth: Mapping[str, Sequence[Sequence[int]]],
    num_segments: int = DIDEMO_NUM_SEGMENTS,
    candidates: Mapping[str, np.ndarray] | None = None,
) -> Metrics:
    """DiDeMo Upper Bound: the best each metric can be given annotator disagreement.

    Each metric gets its own oracle, as in the original definition: R@1 and R@5 use
    the agreement ranking (R@1 is then the share of queries on which at least three
    annotators agree); mIoU takes, per query, the candidate whose mean of the 3
    largest IoUs with the annotator moments is largest. That candidate need not be
    the most-agreed one, so no single ranking reaches all three numbers.

    `candidates` (query id -> [C, 2] segment pairs) restricts each query to its own
    candidate set, e.g. the valid windows of its video; without it every query has
    the canonical pairs of `num_segments`.
    """
    if not ground_truth:
        raise ValueError("ground_truth is empty: there is nothing to evaluate")
    canonical = ProposalGeometry.didemo().didemo_pairs(num_segments)

    def pool(query_id: str) -> np.ndarray:
        if candidates is None:
            return canonical
        return np.asarray(candidates[query_id], dtype=np.int64).reshape(-1, 2)

    agreement = {
        query_id: didemo_agreement_ranking(annotators, candidates=pool(query_id))
        for query_id, annotators in ground_truth.items()
    }
    metrics = didemo_metrics(agreement, ground_truth)
    best_ious = []
    for query_id, annotators in ground_truth.items():
        annotators = np.asarray(annotators, dtype=np.int64).reshape(-1, 2)
        overlaps = spans.inclusive_index_iou(pool(query_id)[:, None, :], annotators[None])
        best_ious.append(np.sort(overlaps, axis=1)[:, -3:].mean(axis=1).max())
    metrics["mIoU"] = float(100.0 * np.mean(best_ious))
    return metrics


def random_ranking(
    candidates: Mapping[str, np.ndarray], seed: int
) -> dict[str, np.ndarray]:
    """Each query's candidates ``[C, ...]`` in a uniformly random order."""
    rng = np.random.default_rng(seed)
    return {
        query_id: np.asarray(moments)[rng.permutation(len(moments))]
        for query_id, moments in candidates.items()
    }


def random_baseline(
    candidates: Mapping[str, np.ndarray],
    metric_fn: Callable[[Mapping[str, np.ndarray]], Metrics],
    seeds: int | Sequence[int] = 5,
) -> dict[str, float | int]:
    """The Random row: uniformly random rankings of the valid candidates.

    Args:
      candidates: query id -> the valid proposals of that query's video: the
        candidates of the model's `ProposalGeometry` (sliding windows for
        Charades-STA, the in-video segment pairs for DiDeMo).
      metric_fn: scores a ``{query id: ranking}`` dict, e.g.
        ``functools.partial(charades_recall, ground_truth=...)``.
      seeds: a count n (seeds 0 … n-1) or the seeds themselves.

    Returns:
      the mean of every metric over the seeds, ``"<key>_std"`` (population standard
      deviation, ddof=0) beside it, and ``"seeds"``: how many seeds were averaged.
    """
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError(f"seeds must name at least one seed, got {seeds!r}")
    runs = [metric_fn(random_ranking(candidates, seed)) for seed in seed_list]
    values = {key: np.asarray([run[key] for run in runs]) for key in runs[0]}
    summary: dict[str, float | int] = {k: float(v.mean()) for k, v in values.items()}
    summary.update({f"{k}_std": float(v.std()) for k, v in values.items()})
    summary["seeds"] = len(seed_list)
    return summary
