"""benchmarks: the analytic FLOP count against a hand count, and the scaling fits.

The sections' measurements are checked in test_benchmark_sections.py and the page's
tables in test_benchmark_report.py.
"""

import numpy as np
import pytest

from benchmarks import flops, scaling
from vlanet_tf.config import ModelConfig

# D = 4, F = 8, E = 3, L = 2; a sample of T = 4 clips, M = 2 words, K = 3 groups.
TINY = dict(vocab_size=10, word_dim=3, hidden_dim=4, feature_dim=8, window_frames=(16, 32))
TINY_SHAPE = flops.StepShape(clips=4, words=2, groups=3)


def _attention(n, m):
    # 2nD² + 2mD² + 2nmD + 3nm + 3(n+m)D + 5n at D = 4.
    return 32 * n + 32 * m + 8 * n * m + 3 * n * m + 12 * (n + m) + 5 * n


def test_training_flops_match_a_hand_count():
    config = ModelConfig(**TINY)
    terms = flops.step_terms(config, TINY_SHAPE, training=True, num_negatives=1, batch_size=2)
    # Projection 2·T·F·D = 256; only its kernel needs a gradient, so backward = forward.
    assert (terms["projection"].forward, terms["projection"].backward) == (256, 256)
    # Prefix sum T·D = 16 plus 6·K·L·D = 144; backward 2x.
    assert (terms["pooling"].forward, terms["pooling"].backward) == (160, 320)
    # Per query: L2 norm 3·M·D = 24; input product 2·M·E·3D = 144 (frozen embeddings:
    # backward 1x); recurrent 2·M·D·3D + 12·M·D = 288 (backward 2x). Two passes.
    assert terms["query_gru"].forward == 2 * (24 + 144 + 288)
    assert terms["query_gru"].backward == 2 * (48 + 144 + 576)
    # Cosines 2·K·L·D + 2·K·L = 60 per pass.
    assert terms["selection"].forward == 2 * 60
    expected_attention = {
        "self_video": _attention(3, 3),  # 378
        "self_query": _attention(2, 2),  # 230
        "cross_0_q2v": _attention(3, 2),  # 301
        "cross_1_v2q": _attention(2, 3),  # 296
        "cross_2_q2v": _attention(3, 2),
        # v_comp 2·N·D = 24, 3D = 12, then A(v_comp, Q).
        "similarity": 24 + 12 + _attention(1, 2),  # 195
    }
    for name, forward in expected_attention.items():
        assert terms[name].forward == 2 * forward, name
        assert terms[name].backward == 4 * forward, name
    # 336 trainable parameters (projection 36, GRU 108, six attentions 192) x 15 / B.
    assert flops.trainable_parameters(config) == 336
    assert terms["optimizer"].backward == 15 * 336 / 2
    total = 512 + 480 + 2 * (456 + 768) + 3 * 120 + 3 * 2 * 1701 + 2520
    assert flops.step_flops(config, TINY_SHAPE, True, 1, 2) == total == 16526


def test_inference_flops_are_the_forward_of_one_pass():
    config = ModelConfig(**TINY)
    terms = flops.step_terms(config, TINY_SHAPE, training=False)
    assert all(term.backward == 0 for term in terms.values())
    assert "optimizer" not in terms
    assert terms["query_gru"].forward == 456
    assert terms["attention_map"].forward == 2 * 3 * 2 * 4 + (3 + 2) * 4


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"gru_layers": 2, "use_self_attention": False},
        {"share_cross_weights": True, "train_embeddings": True, "cross_steps": 5},
        {"use_cross_attention": False},
    ],
)
def test_parameter_count_matches_the_model(overrides):
    from vlanet_tf.model import VLANet

    config = ModelConfig(**{**TINY, **overrides})
    model = VLANet(config)
    actual = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert flops.trainable_parameters(config) == actual


def test_groups_follow_the_proposal_geometry():
    config = ModelConfig()
    # 45 clips of 16 frames at 24 fps = 30 s; stride 8 frames = 1/3 s -> 90 groups.
    assert flops.StepShape.charades(45, 9, config).groups == 90
    assert flops.num_groups(0.1, config) == 1
    assert flops.num_groups(30.0, ModelConfig(proposal_mode="didemo")) == 6


def test_banded_self_attention_flops_are_linear_in_groups():
    assert flops.band_columns(10, 0) == 10
    assert flops.band_columns(90, 45) == 90  # the band covers a Charades-STA video
    assert flops.band_columns(8192, 45) == 181  # blocks of 91 rows against 181 rows

    def self_video(config, clips):
        shape = flops.StepShape(clips, 9, 2 * clips)
        return flops.step_terms(config, shape, training=False)["self_video"].forward

    banded, full = ModelConfig(video_self_attention_window=45), ModelConfig()
    assert self_video(banded, 4096) / self_video(banded, 1024) == pytest.approx(4.0)
    assert self_video(full, 4096) / self_video(full, 1024) > 10
    assert self_video(ModelConfig(video_self_attention_window=10**6), 64) == self_video(full, 64)


def test_power_law_fit():
    clips = [16, 64, 256]
    assert scaling.fit_exponent(clips, [2.0 * c**1.5 for c in clips]) == pytest.approx(1.5)
    assert scaling.local_exponents(clips, [c for c in clips]) == pytest.approx([1.0, 1.0])


def test_training_flops_per_sample_share_the_optimizer_over_the_batch():
    # Everything but the optimizer is per sample; the optimizer's ~15 FLOPs per
    # parameter are paid once per step, so a step's total is B x rest + 15 x P.
    config = ModelConfig(**TINY)
    optimizer = flops.OPTIMIZER_FLOPS_PER_PARAMETER * flops.trainable_parameters(config)
    per_sample = {b: flops.step_flops(config, TINY_SHAPE, True, 1, b) for b in (1, 2, 8, 64)}
    rest = per_sample[1] - optimizer
    for b, value in per_sample.items():
        assert b * value == pytest.approx(b * rest + optimizer)
    # One more negative pass adds one more query-dependent pass per sample, batch aside.
    one, two = (flops.step_terms(config, TINY_SHAPE, True, n, 2) for n in (1, 2))
    for name in ("query_gru", "selection", "self_video", "cross_0_q2v", "similarity"):
        assert two[name].total == pytest.approx(one[name].total * 3 / 2), name
    assert two["projection"].total == one["projection"].total


def _points(clips, ms, ablated, banded, busy=100.0):
    return [
        {
            "T": t,
            "K": 2 * t,
            "ms": m,
            "peak_mb": 0.5 * t,
            "peak_mb_banded": 0.25 * t,
            "memory_method": "VmHWM reset by clear_refs",
            "input_mb": 4.0 * t * 16 / 2**20,
            "mflops": 3.0 * t,
            "self_video_flop_share": 0.1,
            "mflops_banded": 2.0 * t,
            "self_video_flop_share_banded": 0.05,
            "ms_without_self_attention": a,
            "reference_matmul_gflops_per_s": busy,
            "matmul_equivalent_mflop": m * busy,
            "matmul_equivalent_mflop_without_self_attention": a * busy,
            "ms_banded": b,
            "matmul_equivalent_mflop_banded": b * busy,
        }
        for t, m, a, b in zip(clips, ms, ablated, banded)
    ]


def test_scaling_summary_recovers_known_exponents():
    # Exponent 0.5 below LARGE_T (per-call overhead) and 2 from it on: the fit over
    # large T must see only the 2, the fit over every T something in between.
    clips = [16, 64, 256, 1024, 4096]
    assert scaling.LARGE_T == 256
    ms = [t**0.5 if t <= 256 else 16.0 * (t / 256) ** 2 for t in clips]
    ablated = [0.1 * t**1.0 for t in clips]
    banded = [0.2 * t**0.8 for t in clips]
    out = scaling.summarise(_points(clips, ms, ablated, banded), 16, "in_process")
    assert out["exponent_large_T"] == pytest.approx(2.0)
    assert out["exponent_large_T_load_normalised"] == pytest.approx(2.0)
    assert 0.5 < out["exponent"] < 2.0
    assert out["local_exponents"] == pytest.approx([0.5, 0.5, 2.0, 2.0])
    assert out["exponent_without_self_attention"] == pytest.approx(1.0)
    assert out["exponent_large_T_load_normalised_without_self_attention"] == pytest.approx(1.0)
    b = out["banded"]
    assert b["exponent"] == pytest.approx(0.8) and b["exponent_large_T"] == pytest.approx(0.8)
    assert b["local_exponents"] == pytest.approx([0.8] * 4)
    assert b["peak_mb"] == [0.25 * t for t in clips] and b["window"] == scaling.BANDED_WINDOW
    assert out["T"] == clips and out["K"] == [2 * t for t in clips]
    assert out["memory_method"].endswith("one process, T increasing")


def test_scaling_load_normalisation_removes_a_load_change():
    # The machine gets twice as busy from T = 256 on: raw times jump, but time x the
    # matmul rate beside it (halved) keeps the true exponent of 1.
    clips = [16, 64, 256, 1024, 4096]
    busy = [200.0, 200.0, 100.0, 100.0, 100.0]
    ms = [t * (200.0 / g) for t, g in zip(clips, busy)]
    points = _points(clips, ms, ms, ms)
    for p, g in zip(points, busy):
        p["matmul_equivalent_mflop"] = p["ms"] * g
        p["reference_matmul_gflops_per_s"] = g
    out = scaling.summarise(points, 16, "per_point")
    assert out["exponent"] > 1.1
    assert out["exponent_load_normalised"] == pytest.approx(1.0)
    assert out["exponent_large_T_load_normalised"] == pytest.approx(1.0)


