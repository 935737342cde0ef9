"""Span arithmetic against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from tests import reference
from vlanet_tf import spans

from vlanet_tf.geometry import ProposalGeometry, sliding


def sliding_windows(duration, fps=24.0, stride_frames=8, window_frames=(176, 208, 240)):
    """The sliding-window candidates of `vlanet_tf.geometry` for one video."""
    return sliding(fps, stride_frames, window_frames).sliding_windows(duration)


def didemo_pairs(num_segments=None):
    """DiDeMo's canonical candidate segment pairs."""
    return ProposalGeometry.didemo().didemo_pairs(num_segments)



@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0.0, 10.0), (5.0, 15.0), 5.0 / 15.0),  # partial overlap
        ((0.0, 10.0), (2.0, 4.0), 0.2),  # containment
        ((0.0, 10.0), (10.0, 20.0), 0.0),  # touching ends share nothing
        ((0.0, 10.0), (12.0, 20.0), 0.0),  # disjoint
        ((24.3, 30.4), (24.3, 30.4), 1.0),
        ((3.0, 3.0), (3.0, 3.0), 0.0),  # empty moments: 0, not NaN
    ],
)
def test_temporal_iou_hand_values(a, b, expected):
    assert spans.temporal_iou(np.array(a), np.array(b)) == pytest.approx(expected)
    assert spans.temporal_iou(np.array(b), np.array(a)) == pytest.approx(expected)


def test_temporal_iou_broadcasts():
    a = np.array([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0]])
    b = np.array([[0.0, 10.0], [0.0, 20.0]])
    iou = spans.temporal_iou(a[:, None], b[None])
    np.testing.assert_allclose(
        iou, [[1.0, 0.5], [1.0 / 3.0, 0.5], [0.0, 0.0]], rtol=1e-12
    )


def test_temporal_iou_rejects_wrong_last_axis():
    with pytest.raises(ValueError, match=r"last axis of size 2.*\(3,\)"):
        spans.temporal_iou(np.zeros(3), np.zeros(2))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0), (0, 0), 1.0),
        ((0, 0), (0, 1), 1.0 / 2.0),
        ((0, 2), (1, 4), 2.0 / 5.0),  # inter 1..2 = 2, union 0..4 = 5
        ((0, 0), (1, 1), 0.0),  # adjacent segments share nothing
        ((0, 5), (2, 2), 1.0 / 6.0),
    ],
)
def test_inclusive_index_iou_hand_values(a, b, expected):
    assert spans.inclusive_index_iou(np.array(a), np.array(b)) == pytest.approx(
        expected
    )


def test_temporal_nms():
    moments = np.array([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [0.0, 9.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # Sorted: 3, 0, 1, 2. IoU(3, 0) = 0.9 and IoU(3, 1) = 8/11 are suppressed at 0.5.
    np.testing.assert_array_equal(spans.temporal_nms(moments, scores, 0.5), [3, 2])
    np.testing.assert_array_equal(
        spans.temporal_nms(moments, scores, 0.95), [3, 0, 1, 2]
    )
    np.testing.assert_array_equal(spans.temporal_nms(moments, scores, 0.75), [3, 1, 2])
    np.testing.assert_array_equal(
        spans.temporal_nms(moments, scores, 0.5, top_k=1), [3]
    )


@pytest.mark.parametrize("threshold", [None, 0.0, -1.0])
def test_temporal_nms_off_only_sorts(threshold):
    moments = np.array([[0.0, 10.0], [1.0, 11.0], [20.0, 30.0], [0.0, 9.0]])
    scores = np.array([0.9, 0.8, 0.9, 0.95])  # a tie keeps input order
    np.testing.assert_array_equal(
        spans.temporal_nms(moments, scores, threshold), [3, 0, 2, 1]
    )
    np.testing.assert_array_equal(
        spans.temporal_nms(moments, scores, threshold, top_k=2), [3, 0]
    )


def test_temporal_nms_validates():
    with pytest.raises(ValueError, match="3 moments and 2 scores"):
        spans.temporal_nms(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="top_k must be >= 1 or None, got 0"):
        spans.temporal_nms(np.zeros((3, 2)), np.zeros(3), top_k=0)


@pytest.mark.parametrize(
    "seconds, segments",
    [
        ((0.0, 5.0), (0, 0)),
        ((5.0, 30.0), (1, 5)),
        ((20.0, 27.0), (4, 5)),  # an end clipped to a 27 s video is still segment 5
        ((10.0, 15.000001), (2, 2)),  # float noise does not add a segment
    ],
)
def test_seconds_to_didemo_segments(seconds, segments):
    s, e = spans.seconds_to_didemo_segments(*seconds)
    assert (int(s), int(e)) == segments


def test_didemo_segments_round_trip():
    pairs = didemo_pairs()
    start, end = spans.didemo_segments_to_seconds(pairs[:, 0], pairs[:, 1])
    assert (start[0], end[0]) == (0.0, 5.0)
    assert (start[-1], end[-1]) == (20.0, 30.0)
    s, e = spans.seconds_to_didemo_segments(start, end)
    np.testing.assert_array_equal(np.stack([s, e], -1), pairs)


def test_didemo_candidate_moments_canonical_order():
    pairs = didemo_pairs()
    assert pairs.shape == (21, 2)
    assert [tuple(p) for p in pairs[:8].tolist()] == [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 5),
        (0, 1),
        (0, 2),
    ]
    assert [tuple(p) for p in pairs[-2:].tolist()] == [(3, 5), (4, 5)]
    five = didemo_pairs(5)
    assert five.shape == (15, 2)
    # The five-segment candidates are the in-video ones, in the same relative order.
    inside = [tuple(p) for p in pairs.tolist() if p[1] < 5]
    assert [tuple(p) for p in five.tolist()] == inside


def test_clip_moment():
    np.testing.assert_allclose(
        spans.clip_moment(np.array([[-1.0, 5.0], [28.0, 31.5]]), 30.0),
        [[0.0, 5.0], [28.0, 30.0]],
    )
    with pytest.raises(ValueError, match="got 0"):
        spans.clip_moment(np.array([0.0, 1.0]), 0)


def test_sliding_windows_layout():
    windows = sliding_windows(10.0)
    # stride 8/24 = 1/3 s: starts 0, 1/3, …, 29/3 (start 10.0 is not < 10).
    assert windows.shape == (30 * 3, 2)
    np.testing.assert_allclose(windows[:3], [[0, 176 / 24], [0, 208 / 24], [0, 10.0]])
    np.testing.assert_allclose(windows[-3:], [[29 / 3, 10.0]] * 3)
    assert (windows[:, 1] <= 10.0).all()


def test_sliding_windows_shorter_than_smallest_window():
    # 5 s < 176/24 = 7.33 s: every window is clipped, still 15 groups.
    windows = sliding_windows(5.0)
    assert windows.shape == (15 * 3, 2)
    np.testing.assert_allclose(windows[:3], [[0.0, 5.0]] * 3)
    # Shorter than one stride: group 0 alone.
    np.testing.assert_allclose(sliding_windows(0.2), [[0.0, 0.2]] * 3)


def test_sliding_windows_other_layout_and_reference():
    windows = sliding_windows(1.0, fps=24, stride_frames=8, window_frames=(4, 48))
    np.testing.assert_allclose(
        windows,
        [
            [0, 1 / 6],
            [0, 1],
            [1 / 3, 1 / 3 + 1 / 6],
            [1 / 3, 1],
            [2 / 3, 5 / 6],
            [2 / 3, 1],
        ],
    )
    for duration in (0.3, 7.0, 30.96, 31.0):
        expected = [(s, e) for _, _, s, e in reference.sliding_windows(duration)]
        np.testing.assert_allclose(sliding_windows(duration), expected)


def test_sliding_windows_validates():
    with pytest.raises(ValueError, match="duration must be > 0 seconds, got 0"):
        sliding_windows(0.0)
    with pytest.raises(ValueError, match=r"window_frames=\(\)"):
        sliding_windows(5.0, window_frames=())
