"""benchmarks: the analytic FLOP count against a hand count, and a --quick run's JSON.

No timing is asserted: the machines are shared, so only the presence and sanity of
every figure is checked.
"""

import json
import math

import numpy as np
import pytest

from benchmarks import flops, report, run, scaling
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


def _finite_positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_run_writes_every_figure(tmp_path, capsys):
    output, page = tmp_path / "bench.json", tmp_path / "PERFORMANCE.md"
    assert run.main(["--quick", f"--output={output}", f"--markdown={page}"]) == 0
    result = json.loads(output.read_text())
    for key in (
        "train_samples_per_s",
        "train_gflops_per_s",
        "matmul_gflops_per_s",
        "roofline_ratio",
        "pipeline_records_per_s",
        "pipeline_to_train_ratio",
        "data_prep_videos_per_s",
        "infer_ms_p50",
        "infer_ms_p99",
        "infer_queries_per_s_batched",
        "corpus_ms_per_video",
        "corpus_naive_ms_per_video",
    ):
        assert _finite_positive(result[key]), (key, result[key])
    assert result["infer_ms_p99"] >= result["infer_ms_p50"]

    for engine in ("keras", "saved_model", "tflite"):
        entry = result["serving"][engine]
        if isinstance(entry, str):
            assert entry.startswith("not measured: "), entry
        else:
            for key in ("ms_p50", "ms_p99", "queries_per_s_batched"):
                assert _finite_positive(entry[key]), (engine, key, entry)
    assert isinstance(result["serving"]["keras"], dict)

    sc = result["scaling"]
    assert sc["T"] == sorted(sc["T"]) and len(sc["T"]) >= 3
    assert len(sc["ms"]) == len(sc["peak_mb"]) == len(sc["T"])
    assert all(_finite_positive(v) for v in sc["ms"])
    # A small T can fit in memory the process already holds: zero growth is possible.
    assert all(math.isfinite(v) and v >= 0 for v in sc["peak_mb"])
    assert math.isfinite(sc["exponent"])
    assert sc["memory_method"]

    banded = result["scaling_banded"]
    assert banded["window"] == scaling.BANDED_WINDOW and banded["T"] == sc["T"]
    assert all(_finite_positive(v) for v in banded["ms"])
    assert all(math.isfinite(v) and v >= 0 for v in banded["peak_mb"])
    assert math.isfinite(banded["exponent"])
    assert "banded" in result["targets"]["scaling"]

    assert set(result["targets"]) == {"roofline", "pipeline", "scaling"}
    text = page.read_text()
    assert "# Performance" in text and result["machine"]["cpu"] in text
    assert "roofline_ratio" in capsys.readouterr().out
    assert report.table(result).count("\n") > 10
