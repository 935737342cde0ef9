"""The banded video self-attention (`video_self_attention_window`) against NumPy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tests import reference as ref
from vlanet_tf import flags as vlanet_flags
from vlanet_tf.config import ModelConfig
from vlanet_tf.layers import CascadedCrossModalAttention, DenseAttention
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT
from vlanet_tf.model import build_vlanet

RNG = np.random.default_rng(11)
D = 6
N = 11


def _sequence(n=N, b=2):
    """Rows, a mask with padding and a hole, and uneven π weights (log scales)."""
    v = RNG.normal(size=(b, n, D)).astype("float32")
    mask = np.ones((b, n), bool)
    mask[0, n - 3 :] = False
    mask[1, 4] = False
    log_scale = np.log(RNG.random((b, n)) + 0.1).astype("float32")
    return v * mask[..., None], mask, log_scale


def _call(layer, v, mask, log_scale):
    return layer({"x": v, "y": v, "x_mask": mask, "y_mask": mask, "y_log_scale": log_scale})


# Blocks of 2w+1 rows that do and do not divide N, and a column window clipped at N.
@pytest.mark.parametrize("window", [1, 2, 3, 5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_banded_energy_matches_reference(window, reduction):
    layer = DenseAttention(D, reduction=reduction, init_scale=3.0, window=window)
    v, mask, log_scale = _sequence()
    out = _call(layer, v, mask, log_scale)
    w1, w2 = layer.w1.kernel.numpy(), layer.w2.kernel.numpy()
    for b in range(2):
        e = ref.project_vla(
            v[b], v[b], w1, w2, mask[b], np.exp(log_scale[b]), reduction, band=window
        )
        valid = mask[b]
        np.testing.assert_allclose(out["energy"].numpy()[b][valid], e[valid], atol=1e-5)
        # The softmax over n still spans every valid row, not a band.
        np.testing.assert_allclose(
            out["weights"].numpy()[b], ref.softmax_valid(e, valid), atol=1e-6
        )
        assert np.all(out["log_weights"].numpy()[b][~valid] == MASKED_LOG_WEIGHT)


def test_band_differs_from_full_when_narrower_than_the_sequence():
    layer = DenseAttention(D, init_scale=3.0, window=1)
    v, mask, log_scale = _sequence()
    banded = _call(layer, v, mask, log_scale)["energy"].numpy()[1]
    w1, w2 = layer.w1.kernel.numpy(), layer.w2.kernel.numpy()
    full = ref.project_vla(v[1], v[1], w1, w2, mask[1], np.exp(log_scale[1]))
    assert np.abs(banded - full).max() > 1e-3


@pytest.mark.parametrize("window", [N - 1, N, 1000])
def test_band_as_wide_as_the_sequence_equals_the_full_layer(window):
    full = DenseAttention(D, init_scale=3.0)
    banded = DenseAttention(D, init_scale=3.0, window=window)
    v, mask, log_scale = _sequence()
    want = _call(full, v, mask, log_scale)
    _call(banded, v, mask, log_scale)
    banded.set_weights(full.get_weights())
    got = _call(banded, v, mask, log_scale)
    for key in ("energy", "weights", "log_weights", "outputs"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-6, err_msg=key)


def _cascade_inputs(n=9, m=4):
    v = ref.l2n(RNG.normal(size=(2, n, D))).astype("float32")
    q = ref.l2n(RNG.normal(size=(2, m, D))).astype("float32")
    v_mask = np.array([[1] * n, [1] * (n - 3) + [0] * 3], bool)
    q_mask = np.array([[1] * m, [1] * 2 + [0] * (m - 2)], bool)
    return {
        "video": v * v_mask[..., None],
        "query": q * q_mask[..., None],
        "video_mask": v_mask,
        "query_mask": q_mask,
        "fallback_scores": np.zeros((2, n), "float32"),
    }


def test_cascade_bands_only_the_video_self_attention():
    layer = CascadedCrossModalAttention(D, init_scale=4.0, video_self_attention_window=2)
    inputs = _cascade_inputs()
    out = layer(inputs)
    assert layer.self_video.window == 2
    assert all(a.window == 0 for a in [layer.self_query, *layer.cross, layer.similarity_head])

    def kernels(att):
        return att.w1.kernel.numpy(), att.w2.kernel.numpy()

    self_w = (kernels(layer.self_video), kernels(layer.self_query))
    cross_w = [kernels(a) for a in layer.cross]
    for b in range(2):
        v, q = inputs["video"][b], inputs["query"][b]
        v_mask, q_mask = inputs["video_mask"][b], inputs["query_mask"][b]
        c, vw = ref.project_cascade(
            v, q, v_mask, q_mask, self_w, cross_w, kernels(layer.similarity_head), video_band=2
        )
        np.testing.assert_allclose(out["similarity"].numpy()[b], c, atol=1e-5)
        np.testing.assert_allclose(
            out["scores"].numpy()[b][v_mask], np.log(vw[v_mask]), rtol=1e-4, atol=1e-4
        )


def test_banded_gradient_is_finite_and_reaches_both_kernels():
    layer = DenseAttention(D, window=2)
    v, mask, log_scale = _sequence()
    with tf.GradientTape() as tape:
        out = _call(layer, v, mask, log_scale)
        loss = tf.reduce_sum(out["energy"] * RNG.normal(size=(2, N)).astype("float32"))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 2
    for g in grads:
        g = tf.convert_to_tensor(g).numpy()
        assert np.isfinite(g).all() and np.abs(g).sum() > 0


@pytest.mark.parametrize("selection", [True, False])
def test_full_model_with_a_band_on_a_90_group_video_is_finite(selection):
    config = ModelConfig(
        vocab_size=40,
        word_dim=8,
        hidden_dim=16,
        feature_dim=10,
        use_surrogate_selection=selection,
        video_self_attention_window=5,
    )
    model = build_vlanet(config)
    cascade = model.get_layer("cascaded_cross_modal_attention")
    assert cascade.self_video.window == (5 if selection else 15)
    tokens = RNG.integers(2, 40, (1, 12)).astype("int32")
    out = model(
        {
            "query_tokens": tokens,
            "video_features": RNG.normal(size=(1, 45, 10)).astype("float32"),
            "video_length": np.array([45], "int32"),
            "duration": np.array([30.0], "float32"),
        }
    )
    scores = out["scores"].numpy()
    assert scores.shape == (1, 90 if selection else 270)
    assert np.isfinite(scores).all() and np.isfinite(out["similarity"].numpy()).all()
    assert np.ptp(scores[0][out["valid"].numpy()[0]]) > 1e-4


def test_window_round_trips_through_configs_and_flags():
    layer = DenseAttention(3, window=7)
    assert layer.get_config()["window"] == 7
    assert DenseAttention.from_config(layer.get_config()).window == 7
    cascade = CascadedCrossModalAttention(3, video_self_attention_window=4)
    config = cascade.get_config()
    assert config["video_self_attention_window"] == 4
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cascade))
    assert revived.self_video.window == 4
    model_config = ModelConfig(video_self_attention_window=45)
    assert ModelConfig.from_dict(model_config.to_dict()) == model_config
    assert ModelConfig().video_self_attention_window == 0

    vlanet_flags.define_all_flags()
    data = {"dataset": "charades_sta", "vocab_size": 5, "word_dim": 4, "feature_dim": 8}
    try:
        flags.FLAGS(["prog", "--video_self_attention_window=45"])
        parsed = vlanet_flags.model_config_from_flags(flags.FLAGS, data)
    finally:
        flags.FLAGS.unparse_flags()
    assert parsed.video_self_attention_window == 45


@pytest.mark.parametrize("window", [-1, 1.5, True, "3"])
def test_bad_windows_raise_clear_errors(window):
    with pytest.raises(ValueError, match=f"window must be an int >= 0.*{window!r}"):
        DenseAttention(4, window=window)
    with pytest.raises(ValueError, match="video_self_attention_window"):
        ModelConfig(video_self_attention_window=window)
