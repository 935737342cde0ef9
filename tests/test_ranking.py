"""SPEC §7's one ranking rule: `ranking.rank` (NumPy) and `ranking.top_moments` (graph)
give identical rankings, ties included, and both follow the rule written from SPEC §7:
valid surrogates only, by descending score, equal scores in surrogate order."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from vlanet_tf import ranking


def rule(scores, moments, valid, k):
    """The rule as SPEC §7 states it, by plain sorting of (−score, index) pairs."""
    order = sorted((-float(s), i) for i, (s, v) in enumerate(zip(scores, valid)) if v)
    return [[float(moments[i][0]), float(moments[i][1]), -neg] for neg, i in order[:k]]


def graph(scores, moments, valid, k, nms_iou=0.0):
    out = ranking.top_moments(
        tf.constant(scores[None], tf.float32),
        tf.constant(moments[None], tf.float32),
        tf.constant(valid[None]),
        k,
        nms_iou,
    )
    count = int(out["num_moments"][0])
    m, s = out["moments"].numpy()[0], out["scores"].numpy()[0]
    assert (s[count:] == ranking.PADDED_SCORE).all() and not m[count:].any()
    return [[float(m[i, 0]), float(m[i, 1]), float(s[i])] for i in range(count)]


@pytest.mark.parametrize("seed", range(20))
def test_numpy_and_graph_rankings_are_identical_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    # Scores drawn from a few values, so most examples hold ties.
    scores = rng.choice(np.array([-3.0, -1.5, -1.5, 0.0, 0.25], np.float32), n)
    moments = np.stack([np.arange(n), np.arange(n) + 2.0], -1).astype(np.float32)
    valid = rng.random(n) < 0.7
    k = int(rng.integers(1, 12))
    expected = rule(scores, moments, valid, k)
    assert ranking.rank(scores, moments, valid, top_k=k) == expected
    assert graph(scores, moments, valid, k) == expected


def test_all_equal_scores_keep_surrogate_order_and_skip_invalid_rows():
    scores = np.zeros(6, np.float32)
    moments = np.stack([np.arange(6), np.arange(6) + 1.0], -1).astype(np.float32)
    valid = np.array([False, True, True, False, True, True])
    starts = [row[0] for row in ranking.rank(scores, moments, valid, top_k=3)]
    assert starts == [1.0, 2.0, 4.0]
    assert [row[0] for row in graph(scores, moments, valid, 3)] == starts
    # Fewer valid rows than k: the graph pads, NumPy returns what there is.
    assert len(ranking.rank(scores, moments, valid, top_k=10)) == 4
    assert len(graph(scores, moments, valid, 10)) == 4


def nms_rule(scores, moments, valid, k, threshold):
    """Greedy NMS as defined: walk the ranking of `rule`, keep a moment unless its IoU
    (overlap over the span both cover) with a kept one is >= threshold."""
    kept = []
    for start, end, score in rule(scores, moments, valid, len(scores)):
        overlaps = []
        for s, e, _ in kept:
            inter = max(0.0, min(end, e) - max(start, s))
            union = (end - start) + (e - s) - inter
            overlaps.append(inter / union if union > 0 else 0.0)
        if all(o < threshold for o in overlaps):
            kept.append([start, end, score])
    return kept[:k]


@pytest.mark.parametrize("seed", range(12))
def test_nms_is_the_same_in_numpy_and_in_the_graph(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 30))
    scores = rng.choice(np.array([-2.0, -1.0, -1.0, 0.0, 0.5], np.float32), n)
    start = rng.integers(0, 20, n)
    moments = np.stack([start, start + rng.integers(1, 9, n)], -1).astype(np.float32)
    valid = rng.random(n) < 0.8
    k = int(rng.integers(1, 10))
    threshold = float(rng.choice([0.3, 0.5, 0.7]))
    expected = nms_rule(scores, moments, valid, k, threshold)
    assert ranking.rank(scores, moments, valid, top_k=k, nms_threshold=threshold) == expected
    assert graph(scores, moments, valid, k, threshold) == expected


def test_nms_drops_overlaps_at_the_threshold_and_keeps_the_rest():
    scores = np.array([3.0, 2.0, 1.0, 0.0], np.float32)
    # IoU with the best, [0, 4]: 1/3 (kept), 1/2 (dropped at 0.5), 0 (kept).
    moments = np.array([[0, 4], [2, 6], [0, 2], [10, 12]], np.float32)
    valid = np.ones(4, bool)
    spans = [row[:2] for row in graph(scores, moments, valid, 4, 0.5)]
    assert spans == [[0.0, 4.0], [2.0, 6.0], [10.0, 12.0]]
    assert spans == [row[:2] for row in ranking.rank(scores, moments, valid, 4, 0.5)]
    assert len(graph(scores, moments, valid, 4, 0.51)) == 4
    assert len(graph(scores, moments, valid, 4)) == 4
