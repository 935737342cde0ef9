"""Each VLANet equation against the NumPy reference in tests/reference.py."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import reference as ref
from tests.layer_testing import video_batch
from vlanet_tf.layers import (
    CascadedCrossModalAttention,
    DenseAttention,
    ProposalBuilder,
    QueryEncoder,
    SurrogateSelect,
)
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT

RNG = np.random.default_rng(7)


def _tokens(lengths, max_len, vocab=30):
    t = RNG.integers(2, vocab, (len(lengths), max_len)).astype("int32")
    return t * (np.arange(max_len)[None] < np.array(lengths)[:, None])


# ---- eq. 1 -------------------------------------------------------------------------


def test_query_encoder_normalises_states_and_takes_last_real_token():
    enc = QueryEncoder(vocab_size=30, word_dim=8, hidden_dim=6)
    tokens = _tokens([5, 2, 7], 7)
    out = enc(tokens)
    raw = tokens
    x = enc.embedding(raw)
    for gru in enc.grus:
        x = gru(x)
    states = x.numpy()
    mask = tokens != 0
    expected = ref.l2n(states) * mask[..., None]
    np.testing.assert_allclose(out["words"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(out["mask"].numpy(), mask)
    for b, n in enumerate([5, 2, 7]):
        np.testing.assert_allclose(out["last"].numpy()[b], expected[b, n - 1], atol=1e-6)
        assert abs(np.linalg.norm(out["last"].numpy()[b]) - 1) < 1e-5


def test_query_padding_does_not_leak():
    enc = QueryEncoder(vocab_size=30, word_dim=8, hidden_dim=6, gru_layers=2)
    tokens = _tokens([4], 4)
    padded = np.pad(tokens, [[0, 0], [0, 9]])
    a, b = enc(tokens), enc(padded)
    np.testing.assert_allclose(a["last"].numpy(), b["last"].numpy(), atol=1e-6)
    np.testing.assert_allclose(a["words"].numpy(), b["words"].numpy()[:, :4], atol=1e-6)
    assert not b["words"].numpy()[:, 4:].any()


def test_query_encoder_word_vectors_shape_checked():
    enc = QueryEncoder(vocab_size=10, word_dim=4, hidden_dim=3)
    with pytest.raises(ValueError, match=r"\(10, 4\)"):
        enc.set_word_vectors(np.zeros((9, 4)))
    enc.set_word_vectors(np.ones((10, 4)))
    assert np.all(enc.embedding.embeddings.numpy() == 1)


# ---- eq. 2 -------------------------------------------------------------------------


def _video_batch(durations, lengths, feature_dim=5):
    return video_batch(RNG, durations, lengths, feature_dim)


def test_sliding_proposals_windows_seconds_and_pooled_features():
    layer = ProposalBuilder(hidden_dim=4, stride_frames=48, window_frames=(96, 144))
    batch = _video_batch([9.1, 4.0, 1.5], [17, 8, 3])
    out = {k: v.numpy() for k, v in layer(batch).items()}
    kernel, bias = (w.numpy() for w in layer.projection.weights)
    for b, dur in enumerate(batch["duration"]):
        feats = batch["video_features"][b, : batch["video_length"][b]]
        expected = ref.sliding_windows(float(dur), stride=48, windows=(96, 144))
        n_groups = max(k for k, *_ in expected) + 1
        assert out["mask"][b].sum() == len(expected)
        assert not out["mask"][b, n_groups:].any()
        for k, l, start, end in expected:
            assert out["mask"][b, k, l]
            np.testing.assert_allclose(out["windows"][b, k, l], [start, end], atol=1e-5)
            pooled = ref.pooled_window(feats, float(dur), start, end) @ kernel + bias
            np.testing.assert_allclose(
                out["proposals"][b, k, l], ref.l2n(pooled), atol=1e-5
            )
        assert not out["proposals"][b][~out["mask"][b]].any()
    # 9.1 s at 2 s stride: groups at 0, 2, 4, 6, 8; the 4 s window at 8 s is clipped.
    np.testing.assert_allclose(out["windows"][0, 4, 0], [8.0, 9.1], atol=1e-5)


def test_video_shorter_than_smallest_window_gets_one_group():
    layer = ProposalBuilder(hidden_dim=4)  # stride 1/3 s, windows >= 7.33 s
    out = layer(_video_batch([30.0, 0.2], [45, 1]))
    mask = out["mask"].numpy()
    assert mask[1, 0].all() and not mask[1, 1:].any()
    np.testing.assert_allclose(out["windows"].numpy()[1, 0], [[0, 0.2]] * 3, atol=1e-6)
    assert mask.shape[1] == 90  # 30 s / (8 / 24 s)


def test_didemo_proposals_are_the_21_moments():
    layer = ProposalBuilder(hidden_dim=4, proposal_mode="didemo")
    batch = _video_batch([30.0, 30.0], [6, 6])
    out = {k: v.numpy() for k, v in layer(batch).items()}
    kernel, bias = (w.numpy() for w in layer.projection.weights)
    assert out["mask"].shape == (2, 6, 6)
    assert out["mask"][0].sum() == 21
    seen = set()
    for k in range(6):
        for l in range(6):
            if k + l + 1 > 6:
                assert not out["mask"][0, k, l]
                continue
            seen.add((k, k + l))
            np.testing.assert_allclose(out["windows"][0, k, l], [5 * k, 5 * (k + l + 1)])
            pooled = batch["video_features"][0, k : k + l + 1].mean(0) @ kernel + bias
            np.testing.assert_allclose(out["proposals"][0, k, l], ref.l2n(pooled), atol=1e-5)
    assert len(seen) == 21


def test_didemo_windows_past_a_short_video_are_invalid_as_in_the_baselines():
    """One candidate set: the valid windows of a 25 s (5-segment) video are the 15
    pairs `ProposalGeometry.candidates` gives the Random and Upper-Bound rows, even
    when the features hold 6 rows (the release's average_fc7.h5)."""
    layer = ProposalBuilder(hidden_dim=4, proposal_mode="didemo")
    durations = [30.0, 25.0, 25.0, 20.0, 5.0]
    out = layer(_video_batch(durations, [6, 6, 5, 6, 6]))
    mask, windows = out["mask"].numpy(), out["windows"].numpy()
    for i, duration in enumerate(durations):
        got = {tuple(w) for w in windows[i][mask[i]].tolist()}
        expected = {tuple(c) for c in layer.geometry.candidates(duration).tolist()}
        assert got == expected, duration
        segments = round(duration / 5)
        assert mask[i].sum() == segments * (segments + 1) // 2


# ---- eqs. 3-6 ----------------------------------------------------------------------


def _selection_inputs(b=2, k=5, l=3, d=4):
    proposals = ref.l2n(RNG.normal(size=(b, k, l, d))).astype("float32")
    mask = RNG.random((b, k, l)) > 0.3
    mask[:, 0, 0] = True
    mask[1, -1] = False  # an empty group
    proposals = proposals * mask[..., None]
    windows = RNG.random((b, k, l, 2)).astype("float32")
    query = ref.l2n(RNG.normal(size=(b, d))).astype("float32")
    return {"proposals": proposals, "windows": windows, "mask": mask, "query_last": query}


@pytest.mark.parametrize("method", ["gather", "mask"])
def test_surrogate_selection_matches_reference(method):
    inputs = _selection_inputs()
    out = {k: v.numpy() for k, v in SurrogateSelect(method)(inputs).items()}
    for b in range(2):
        for k in range(5):
            valid = inputs["mask"][b, k]
            assert out["mask"][b, k] == valid.any()
            if not valid.any():
                continue
            cos = inputs["proposals"][b, k] @ inputs["query_last"][b]
            best = int(np.argmax(np.where(valid, cos, -np.inf)))
            assert valid[out["index"][b, k]]
            assert out["index"][b, k] == best
            np.testing.assert_allclose(out["surrogates"][b, k], inputs["proposals"][b, k, best])
            np.testing.assert_allclose(out["windows"][b, k], inputs["windows"][b, k, best])
            np.testing.assert_allclose(out["cosine"][b, k], cos[best], atol=1e-6)


@pytest.mark.parametrize("method", ["gather", "mask"])
def test_only_selected_proposals_receive_gradient(method):
    inputs = _selection_inputs()
    proposals = tf.Variable(inputs["proposals"])
    layer = SurrogateSelect(method)
    with tf.GradientTape() as tape:
        out = layer({**inputs, "proposals": proposals})
        loss = tf.reduce_sum(out["surrogates"] * RNG.normal(size=(2, 5, 4)).astype("float32"))
    grad = tape.gradient(loss, proposals)
    grad = tf.convert_to_tensor(grad).numpy()
    index = out["index"].numpy()
    group_mask = out["mask"].numpy()
    for b in range(2):
        for k in range(5):
            for l in range(3):
                g = np.abs(grad[b, k, l]).sum()
                if group_mask[b, k] and l == index[b, k]:
                    assert g > 0
                else:
                    assert g == 0.0


def test_selection_disabled_keeps_every_proposal():
    inputs = _selection_inputs()
    out = SurrogateSelect(enabled=False)(inputs)
    assert out["surrogates"].shape == (2, 15, 4)
    np.testing.assert_array_equal(out["mask"].numpy(), inputs["mask"].reshape(2, 15))


# ---- eqs. 7-8 ----------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dense_attention_matches_reference(reduction):
    d = 6
    layer = DenseAttention(d, reduction=reduction, init_scale=3.0)
    x = RNG.normal(size=(2, 5, d)).astype("float32")
    y = RNG.normal(size=(2, 4, d)).astype("float32")
    x_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    y_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    y_weight = RNG.random((2, 4)).astype("float32") + 0.1
    out = layer(
        {"x": x, "y": y, "x_mask": x_mask, "y_mask": y_mask, "y_log_scale": np.log(y_weight)}
    )
    w1, w2 = layer.w1.kernel.numpy(), layer.w2.kernel.numpy()
    for b in range(2):
        e = ref.project_vla(x[b], y[b], w1, w2, y_mask[b], y_weight[b], reduction)
        w = ref.softmax_valid(e, x_mask[b])
        np.testing.assert_allclose(out["energy"].numpy()[b], e, atol=1e-5)
        np.testing.assert_allclose(out["weights"].numpy()[b], w, atol=1e-6)
        np.testing.assert_allclose(out["outputs"].numpy()[b], x[b] * w[:, None], atol=1e-6)
    weights = out["weights"].numpy()
    assert np.all(weights[0, 3:] == 0)  # masked rows get zero weight
    assert np.all(out["log_weights"].numpy()[0, 3:] == MASKED_LOG_WEIGHT)
    if reduction == "mean":
        assert np.all(np.abs(out["energy"].numpy()) < 1)


def test_a_temperature_divides_the_energy_before_the_softmax():
    d = 6
    x = RNG.normal(size=(2, 7, d)).astype("float32")
    y = RNG.normal(size=(2, 3, d)).astype("float32")
    inputs = {"x": x, "y": y, "y_log_scale": np.zeros((2, 3), "float32")}
    plain = DenseAttention(d, init_scale=3.0)
    plain(inputs)
    sharp = DenseAttention(d, init_scale=3.0, temperature=0.2)
    sharp(inputs)
    sharp.set_weights(plain.get_weights())
    a, b = plain(inputs), sharp(inputs)
    w1, w2 = plain.w1.kernel.numpy(), plain.w2.kernel.numpy()
    for row in range(2):
        e = ref.project_vla(x[row], y[row], w1, w2, np.ones(3, bool))
        np.testing.assert_allclose(b["energy"].numpy()[row], e, atol=1e-5)  # E unchanged
        np.testing.assert_allclose(
            b["weights"].numpy()[row], ref.softmax_valid(e / 0.2, np.ones(7, bool)), atol=1e-6
        )
    # A lower temperature concentrates the weights: a larger top share.
    assert np.all(b["weights"].numpy().max(-1) > a["weights"].numpy().max(-1))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DenseAttention(d, temperature=0.0)


def test_dense_attention_padded_y_rows_are_left_out():
    layer = DenseAttention(4)
    x = RNG.normal(size=(1, 3, 4)).astype("float32")
    y = RNG.normal(size=(1, 2, 4)).astype("float32")
    y_pad = np.concatenate([y, RNG.normal(size=(1, 5, 4)).astype("float32")], 1)
    a = layer({"x": x, "y": y})
    b = layer({"x": x, "y": y_pad, "y_mask": np.arange(7)[None] < 2})
    np.testing.assert_allclose(a["energy"].numpy(), b["energy"].numpy(), atol=1e-6)


# ---- eqs. 9-13 ---------------------------------------------------------------------


def _cascade_inputs(d):
    """Two padded examples (6 video rows, 4 words; the second one shorter in both) of
    unit rows: (v, q, v_mask, q_mask, the layer's inputs)."""
    v = ref.l2n(RNG.normal(size=(2, 6, d))).astype("float32")
    q = ref.l2n(RNG.normal(size=(2, 4, d))).astype("float32")
    v_mask = np.array([[1] * 6, [1] * 4 + [0] * 2], bool)
    q_mask = np.array([[1] * 4, [1] * 2 + [0] * 2], bool)
    inputs = {
        "video": v * v_mask[..., None],
        "query": q * q_mask[..., None],
        "video_mask": v_mask,
        "query_mask": q_mask,
        "fallback_scores": np.zeros((2, 6), "float32"),
    }
    return v, q, v_mask, q_mask, inputs


def _kernels(att):
    return att.w1.kernel.numpy(), att.w2.kernel.numpy()


@pytest.mark.parametrize(
    "self_attention,cross_attention,steps,share,temperature",
    [
        (True, True, 3, False, 1.0),
        (True, True, 4, True, 1.0),
        (False, True, 2, False, 1.0),
        (True, False, 1, False, 1.0),
        (True, True, 3, False, 0.1),
        (True, True, 4, True, 0.25),
    ],
)
def test_cascade_similarity_matches_reference(
    self_attention, cross_attention, steps, share, temperature
):
    d = 5
    layer = CascadedCrossModalAttention(
        d, self_attention, cross_attention, steps, share, init_scale=4.0,
        attention_temperature=temperature,
    )
    v, q, v_mask, q_mask, inputs = _cascade_inputs(d)
    out = layer(inputs)
    self_w = (_kernels(layer.self_video), _kernels(layer.self_query)) if self_attention else None
    cross_w = [_kernels(a) for a in layer.cross]
    for b in range(2):
        c, vw = ref.project_cascade(
            v[b], q[b], v_mask[b], q_mask[b], self_w, cross_w, _kernels(layer.similarity_head),
            temperature=temperature,
        )
        np.testing.assert_allclose(out["similarity"].numpy()[b], c, atol=1e-5)
        valid = v_mask[b]
        np.testing.assert_allclose(
            out["scores"].numpy()[b][valid], np.log(vw[valid]), rtol=1e-4, atol=1e-4
        )
        assert np.all(out["scores"].numpy()[b][~valid] == MASKED_LOG_WEIGHT)
    if not cross_attention:
        assert layer.cross == []
    elif share:
        assert layer.cross[0] is layer.cross[2] and layer.cross[1] is layer.cross[3]
    else:
        assert len({id(a) for a in layer.cross}) == steps


def test_full_cascade_on_90_groups_and_12_words_is_finite_and_discriminative():
    from vlanet_tf.config import ModelConfig
    from vlanet_tf.model import build_vlanet

    model = build_vlanet(ModelConfig(vocab_size=40, word_dim=8, hidden_dim=16, feature_dim=10))
    inputs = {
        "query_tokens": _tokens([12], 12, 40),
        "video_features": RNG.normal(size=(1, 45, 10)).astype("float32"),
        "video_length": np.array([45], "int32"),
        "duration": np.array([30.0], "float32"),
    }
    out = {k: v.numpy() for k, v in model(inputs).items()}
    assert out["scores"].shape == (1, 90)
    assert out["valid"].all()
    assert np.isfinite(out["scores"]).all() and np.isfinite(out["similarity"]).all()
    # exp(score) underflows float32 after three steps over 90 rows; the log does not.
    assert out["scores"].min() < np.log(np.finfo(np.float32).tiny) / 10
    assert np.ptp(out["scores"][0]) > 1e-4


# ---- serialisation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        QueryEncoder(vocab_size=12, word_dim=4, hidden_dim=3, gru_layers=2, train_embeddings=True),
        ProposalBuilder(hidden_dim=3, stride_frames=4, window_frames=(128, 256)),
        ProposalBuilder(hidden_dim=3, proposal_mode="didemo"),
        SurrogateSelect(method="mask", enabled=False),
        DenseAttention(3, reduction="sum", init_scale=0.5, temperature=0.3),
        CascadedCrossModalAttention(3, False, True, 5, True, "sum", 2.0),
        CascadedCrossModalAttention(3, attention_temperature=0.2),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="'gather' or 'mask'"):
        SurrogateSelect(method="argmax")
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        DenseAttention(4, reduction="max")
    with pytest.raises(ValueError, match="'sliding' or 'didemo'"):
        ProposalBuilder(proposal_mode="tall")
    with pytest.raises(ValueError, match="cross_steps"):
        CascadedCrossModalAttention(4, cross_steps=0)


@pytest.mark.parametrize("steps", [1, 3, 4])
def test_shared_similarity_head_is_the_last_q2v_step(steps):
    d = 5
    plain = CascadedCrossModalAttention(d, True, True, steps, init_scale=4.0)
    shared = CascadedCrossModalAttention(
        d, True, True, steps, init_scale=4.0, share_similarity_head=True
    )
    v, q, v_mask, q_mask, inputs = _cascade_inputs(d)
    out = shared(inputs)
    plain(inputs)
    # The head's own W1, W2 are gone: one pair fewer than the plain cascade.
    assert len(shared.trainable_weights) == len(plain.trainable_weights) - 2

    last = (steps - 1) // 2 * 2  # steps 0, 2, ... update V
    self_w = (_kernels(shared.self_video), _kernels(shared.self_query))
    cross_w = [_kernels(a) for a in shared.cross]
    for b in range(2):
        c, _ = ref.project_cascade(
            v[b], q[b], v_mask[b], q_mask[b], self_w, cross_w, cross_w[last]
        )
        np.testing.assert_allclose(out["similarity"].numpy()[b], c, atol=1e-5)
    # Training c moves the weights that rank the surrogates.
    with tf.GradientTape() as tape:
        c = tf.reduce_sum(shared(inputs)["similarity"])
    head = shared.cross[last]
    grads = tape.gradient(c, [head.w1.kernel, head.w2.kernel])
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)
    clone = CascadedCrossModalAttention.from_config(shared.get_config())
    assert clone.share_similarity_head
    assert clone.similarity_head is clone.cross[last]


def test_shared_similarity_head_without_cross_attention_keeps_its_own():
    layer = CascadedCrossModalAttention(5, True, False, 1, share_similarity_head=True)
    assert layer.cross == [] and layer.similarity_head.name == "similarity"
