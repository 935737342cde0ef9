"""Metrics against hand-worked examples, and the reference rows on the real files."""

from __future__ import annotations

import functools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vlanet_tf.evaluation import metrics

from vlanet_tf.geometry import ProposalGeometry, sliding


def sliding_windows(duration, fps=24.0, stride_frames=8, window_frames=(176, 208, 240)):
    """The sliding-window candidates of `vlanet_tf.geometry` for one video."""
    return sliding(fps, stride_frames, window_frames).sliding_windows(duration)


def didemo_pairs(num_segments=None):
    """DiDeMo's canonical candidate segment pairs."""
    return ProposalGeometry.didemo().didemo_pairs(num_segments)


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the release annotation files are not at {DATA}"
)

# The canonical order gives these 1-based ranks (see didemo_pairs):
# (0,0)=1 (1,1)=2 (2,2)=3 (3,3)=4 (4,4)=5 (5,5)=6 (0,1)=7 (0,2)=8 … (1,4)=14 …
# (2,4)=17 (2,5)=18 … (3,5)=20 (4,5)=21.
CANONICAL = [tuple(p) for p in didemo_pairs().tolist()]


def test_charades_recall_hand_worked():
    ground_truth = {
        "a": (0.0, 10.0),
        "b": (10.0, 20.0),
        "c": (0.0, 10.0),
        "d": (0.0, 10.0),  # no prediction: a miss everywhere
    }
    predictions = {
        "a": np.array([[0.0, 10.0, 0.9]]),  # the score column is ignored
        # IoUs 0, 0.8, 0.5, 0.6: nothing at R@1, everything at R@5.
        "b": np.array([[0.0, 5.0], [12.0, 20.0], [15.0, 20.0], [10.0, 16.0]]),
        "c": np.array([[5.0, 15.0]]),  # IoU 1/3: only m = 0.3
    }
    result = metrics.charades_recall(predictions, ground_truth)
    assert list(result) == ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7"]
    expected = {
        "R1@0.3": 50.0,  # a, c
        "R1@0.5": 25.0,  # a
        "R1@0.7": 25.0,
        "R5@0.3": 75.0,  # a, b, c
        "R5@0.5": 50.0,  # a, b
        "R5@0.7": 50.0,
    }
    assert result == pytest.approx(expected)


def test_charades_recall_clips_to_duration():
    ground_truth = {"a": (0.0, 20.0)}
    predictions = {"a": np.array([[0.0, 10.0]])}
    assert metrics.charades_recall(predictions, ground_truth, ns=(1,), ious=(0.7,)) == {
        "R1@0.7": 0.0
    }
    clipped = metrics.charades_recall(
        predictions, ground_truth, ns=(1,), ious=(0.7,), durations={"a": 10.0}
    )
    assert clipped == {"R1@0.7": 100.0}


def test_charades_recall_only_top_n_counts():
    ground_truth = {"a": (0.0, 10.0)}
    ranked = np.array([[50.0, 60.0]] * 5 + [[0.0, 10.0]])  # the hit is 6th
    result = metrics.charades_recall(
        {"a": ranked}, ground_truth, ns=(1, 5, 6), ious=(0.5,)
    )
    assert result == {"R1@0.5": 0.0, "R5@0.5": 0.0, "R6@0.5": 100.0}


def test_didemo_hand_worked():
    ground_truth = {
        # 3 of 4 agree on the top-1: ranks 1,1,1,2 -> 1. IoUs 1,1,1,0 -> 1.
        "agree": [(0, 0), (0, 0), (1, 1), (0, 0)],
        # Tie 2+2: ranks 1,1,2,2 -> best three 1,1,2 -> 4/3. IoUs 1,1,0,0 -> 2/3.
        "tie": [(0, 0), (1, 1), (0, 0), (1, 1)],
        # 5 annotators: ranks 5,5,7,3,6 -> 3,5,5 -> 13/3. IoUs 0,0,1/2,0,0 -> 1/6.
        "five": [(4, 4), (4, 4), (0, 1), (2, 2), (5, 5)],
        # 7 annotators (the release's annotation 1): ranks 5×4, 1×3 -> 1. IoU -> 1.
        "seven": [(4, 4), (4, 4), (0, 0), (4, 4), (0, 0), (0, 0), (4, 4)],
        # All different: ranks 8,20,14,17 -> 8,14,17 -> 13. IoUs 1/3,0,0,0 -> 1/9.
        "spread": [(0, 2), (3, 5), (1, 4), (2, 4)],
        "missing": [(0, 0), (0, 0), (0, 0), (1, 1)],
    }
    predictions = {k: CANONICAL for k in ground_truth if k != "missing"}
    result = metrics.didemo_metrics(predictions, ground_truth)
    assert result["R1"] == pytest.approx(100 * 2 / 6)  # agree, seven
    assert result["R5"] == pytest.approx(100 * 4 / 6)  # agree, tie, five, seven
    mean_iou = (1 + 2 / 3 + 1 / 6 + 1 + 1 / 9 + 0) / 6
    assert result["mIoU"] == pytest.approx(100 * mean_iou)
    assert list(result) == ["R1", "R5", "mIoU"]


def test_didemo_query_scores_cases():
    assert metrics.didemo_query_scores(CANONICAL, [(0, 0), (1, 1), (0, 0), (1, 1)]) == (
        pytest.approx(4 / 3),
        pytest.approx(2 / 3),
    )
    # Average rank exactly 5 (3, 5, 7) is a hit for R@5; top-1 (0,0) has IoU 1/2
    # with both (0,1): mean of 1/2, 1/2, 0.
    rank, _ = metrics.didemo_query_scores(CANONICAL, [(2, 2), (4, 4), (0, 1), (0, 1)])
    assert rank == pytest.approx(5.0)
    assert metrics.didemo_metrics(
        {"q": CANONICAL}, {"q": [(2, 2), (4, 4), (0, 1), (0, 1)]}
    ) == pytest.approx({"R1": 0.0, "R5": 100.0, "mIoU": 100 / 3})


def test_didemo_truncated_ranking_and_duplicates_in_ranking():
    # Annotator moments left out of a ranking can never be recalled.
    assert metrics.didemo_query_scores([(0, 0)], [(0, 0)] * 3 + [(1, 1)])[0] == 1.0
    assert (
        metrics.didemo_query_scores([(0, 0)], [(0, 0), (1, 1), (1, 1), (2, 2)])[0]
        == np.inf
    )
    # A moment listed twice keeps its first rank.
    ranking = [(1, 1), (1, 1), (0, 0)]
    assert metrics.didemo_query_scores(ranking, [(0, 0)] * 4)[0] == 3.0
    assert metrics.didemo_query_scores([], [(0, 0)]) == (np.inf, 0.0)


def _original_protocol(ranking, annotations):
    """The SPEC §8 protocol written out with Python lists, for a randomized check."""
    ranks = sorted(ranking.index(tuple(t)) + 1 for t in annotations)[:3]

    def iou(p, t):
        inter = max(0, min(p[1], t[1]) - max(p[0], t[0]) + 1)
        return inter / (max(p[1], t[1]) - min(p[0], t[0]) + 1)

    ious = sorted(iou(ranking[0], t) for t in annotations)[-3:]
    return sum(ranks) / len(ranks), sum(ious) / len(ious)


def test_didemo_matches_protocol_on_random_rankings():
    rng = np.random.default_rng(0)
    for _ in range(200):
        ranking = [CANONICAL[i] for i in rng.permutation(21)]
        picks = rng.choice(21, size=rng.choice([4, 5, 7]), p=None)
        annotations = [CANONICAL[i] for i in picks]
        expected = _original_protocol(ranking, annotations)
        assert metrics.didemo_query_scores(ranking, annotations) == pytest.approx(
            expected
        )


def test_didemo_upper_bound_hand_worked():
    ground_truth = {
        # Three agree: R@1 hit; candidate (0,0) has IoUs 1,1,1,0 -> 1.
        "agree": [(0, 0), (0, 0), (0, 0), (1, 1)],
        # 2+2: best ranks 1,1,2 -> 4/3 (R@5 only); best candidate (0,0): 2/3.
        "tie": [(0, 0), (0, 0), (1, 1), (1, 1)],
        # All different: R@5 only. Candidate (0,2), chosen by nobody, has IoUs
        # 2/3, 2/3, 1, 1/3 -> 7/9, more than any annotated moment reaches (≤ 13/18).
        "spread": [(0, 1), (1, 2), (0, 2), (1, 1)],
    }
    result = metrics.didemo_upper_bound(ground_truth)
    assert result == pytest.approx(
        {"R1": 100 / 3, "R5": 100.0, "mIoU": 100 * (1 + 2 / 3 + 7 / 9) / 3}
    )


def test_didemo_agreement_ranking():
    ranking = metrics.didemo_agreement_ranking([(2, 3), (1, 1), (2, 3), (1, 1), (0, 5)])
    # Two votes each: (1,1) before (2,3) in canonical order; then (0,5); then the rest.
    assert [tuple(p) for p in ranking[:4].tolist()] == [(1, 1), (2, 3), (0, 5), (0, 0)]
    assert len(ranking) == 21
    assert len(metrics.didemo_agreement_ranking([(0, 0)], num_segments=5)) == 15


def test_random_baseline_mean_std_and_seeds():
    candidates = {"q": didemo_pairs()}
    truth = {"q": [(3, 3)] * 3 + [(0, 0)]}
    fn = functools.partial(metrics.didemo_metrics, ground_truth=truth)
    result = metrics.random_baseline(candidates, fn, seeds=400)
    assert result["seeds"] == 400
    assert set(result) == {"R1", "R5", "mIoU", "R1_std", "R5_std", "mIoU_std", "seeds"}
    # One agreed moment among 21: R@1 = 1/21, R@5 = 5/21 in expectation.
    assert result["R1"] == pytest.approx(100 / 21, abs=3.0)
    assert result["R5"] == pytest.approx(100 * 5 / 21, abs=6.0)
    # A 0/100 metric over seeds has std sqrt(p (1 - p)).
    p = result["R1"] / 100
    assert result["R1_std"] == pytest.approx(100 * np.sqrt(p * (1 - p)))
    assert metrics.random_baseline(
        candidates, fn, seeds=[3, 4]
    ) == metrics.random_baseline(candidates, fn, seeds=[3, 4])
    with pytest.raises(ValueError, match="at least one seed"):
        metrics.random_baseline(candidates, fn, seeds=0)


def test_empty_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="nothing to evaluate"):
        metrics.charades_recall({}, {})
    with pytest.raises(ValueError, match="nothing to evaluate"):
        metrics.didemo_metrics({}, {})


def _didemo_test_truth():
    records = json.loads((DATA / "didemo" / "test_data.json").read_text())
    truth = {str(r["annotation_id"]): r["times"] for r in records}
    segments = {str(r["annotation_id"]): r["num_segments"] for r in records}
    return truth, segments


@needs_data
def test_didemo_reference_rows_on_the_release():
    truth, num_segments = _didemo_test_truth()
    upper = metrics.didemo_upper_bound(truth)
    print(f"\nDiDeMo test upper bound: {upper}")
    # Published (Hendricks et al. 2017): 74.75 / 100 / 96.05. R@1 is the share of
    # queries on which >= 3 annotators agree, 3006 / 4021 = 74.757…
    assert upper["R1"] == pytest.approx(74.75, abs=0.01)
    assert upper["R5"] == 100.0
    assert upper["mIoU"] == pytest.approx(96.05, abs=0.005)

    candidates = {q: didemo_pairs(n) for q, n in num_segments.items()}
    fn = functools.partial(metrics.didemo_metrics, ground_truth=truth)
    random = metrics.random_baseline(candidates, fn, seeds=5)
    print(f"DiDeMo test random (5 seeds): {random}")
    # R@1 needs >= 3 agreeing annotators on the top-1, so chance is not 1/21 but
    # E[#moments with >= 3 votes / #valid candidates] (published chance: 3.75).
    expected_r1 = 100 * np.mean(
        [
            sum(v >= 3 for v in Counter(map(tuple, truth[q])).values())
            / len(candidates[q])
            for q in truth
        ]
    )
    assert expected_r1 == pytest.approx(3.72, abs=0.01)
    assert random["R1"] == pytest.approx(expected_r1, abs=4 * random["R1_std"] + 0.2)
    assert 18.0 < random["R5"] < 28.0  # published 22.50
    assert 18.0 < random["mIoU"] < 28.0  # published 22.64
