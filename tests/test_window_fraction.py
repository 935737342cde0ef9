"""--min_window_fraction: windows the video's end cuts short stop being candidates.

The reference is the rule as stated (README, "Why validation R1@0.5 fell"): group k
starts at k·stride and exists while its start is before the end; a window of nominal
length w is clipped to the duration and kept when its clipped length is at least
fraction·w, or when it is in group 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.layer_testing import video_batch
from vlanet_tf.config import ModelConfig
from vlanet_tf.geometry import ProposalGeometry
from vlanet_tf.layers import ProposalBuilder
from vlanet_tf.model import build_vlanet

STRIDE_S, WINDOWS_S = 2.0, (4.0, 6.0)  # 48 and 96/144 frames at 24 fps
DURATIONS = [9.1, 6.5, 1.5, 12.0]


def kept_windows(duration: float, fraction: float) -> list[tuple[float, float]]:
    """Sorted; windows that clipping makes identical are separate candidates."""
    kept, k = [], 0
    while k == 0 or k * STRIDE_S < duration:
        start = k * STRIDE_S
        for w in WINDOWS_S:
            end = min(start + w, duration)
            if k == 0 or end - start >= fraction * w:
                kept.append((round(start, 4), round(end, 4)))
        k += 1
    return sorted(kept)


def _batch(durations, clips_per_second=2.0):
    lengths = [max(1, int(round(d * clips_per_second))) for d in durations]
    return video_batch(np.random.default_rng(3), durations, lengths)


def _layer(fraction: float) -> ProposalBuilder:
    return ProposalBuilder(
        hidden_dim=4, stride_frames=48, window_frames=(96, 144), min_window_fraction=fraction
    )


def _valid(out, i):
    windows, mask = out["windows"].numpy()[i], out["mask"].numpy()[i]
    return sorted((round(float(s), 4), round(float(e), 4)) for s, e in windows[mask])


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_valid_windows_follow_the_rule_in_the_graph_and_in_candidates(fraction):
    layer = _layer(fraction)
    out = layer(_batch(DURATIONS))
    for i, duration in enumerate(DURATIONS):
        expected = kept_windows(duration, fraction)
        assert _valid(out, i) == expected, (fraction, duration)
        candidates = layer.geometry.candidates(duration)
        assert sorted((round(s, 4), round(e, 4)) for s, e in candidates.tolist()) == expected


def test_the_fraction_drops_the_short_end_windows_and_keeps_group_zero():
    # 9.1 s: groups at 0, 2, 4, 6, 8; at 8 s both windows are cut to 1.1 s.
    assert kept_windows(9.1, 0.0) == sorted(kept_windows(9.1, 0.5) + [(8.0, 9.1)] * 2)
    # 6.5 s at fraction 1: only full-length windows, and group 0's.
    assert kept_windows(6.5, 1.0) == [(0.0, 4.0), (0.0, 6.0), (2.0, 6.0)]
    # A video shorter than every window keeps group 0 whole.
    out = _layer(1.0)(_batch([1.5]))
    assert out["mask"].numpy()[0, 0].all() and out["mask"].numpy()[0].sum() == 2


def test_kept_proposals_are_unchanged_by_the_fraction():
    batch = _batch(DURATIONS)
    full, cut = _layer(0.0), _layer(0.5)
    full(batch), cut(batch)
    cut.set_weights(full.get_weights())
    a, b = full(batch), cut(batch)
    mask = b["mask"].numpy()
    assert mask.sum() < a["mask"].numpy().sum()
    np.testing.assert_array_equal(a["proposals"].numpy()[mask], b["proposals"].numpy()[mask])
    assert not b["proposals"].numpy()[~mask].any()


def test_the_option_reaches_both_architectures_and_round_trips():
    for architecture, name in (("vlanet", "proposal_builder"), ("tga", "clip_encoder")):
        config = ModelConfig(
            vocab_size=10, word_dim=4, hidden_dim=4, feature_dim=5,
            architecture=architecture, min_window_fraction=0.5,
        )  # fmt: skip
        layer = build_vlanet(config).get_layer(name)
        assert layer.geometry.min_window_fraction == 0.5
        clone = type(layer).from_config(layer.get_config())
        assert clone.geometry == layer.geometry
        assert config.geometry.min_window_fraction == 0.5
        assert ModelConfig.from_dict(config.to_dict()).min_window_fraction == 0.5


def test_a_fraction_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="min_window_fraction must be in"):
        ProposalGeometry(min_window_fraction=1.5)
    with pytest.raises(ValueError, match="min_window_fraction must be in"):
        ModelConfig(min_window_fraction=-0.1)
