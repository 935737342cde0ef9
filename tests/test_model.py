"""The assembled VLANet: outputs, serialisation, training and masking."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from vlanet_tf.config import ModelConfig
from vlanet_tf.ranking import rank
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT
from vlanet_tf.losses import margin_hinge, select_negatives
from vlanet_tf.model import INPUT_KEYS, VLANet, build_vlanet

SMALL = dict(vocab_size=16, word_dim=8, hidden_dim=16, feature_dim=12, stride_frames=24,
             window_frames=(48, 72))


def planted_pairs(num_videos=12, seed=0, feature_dim=12, concepts=6):
    """Videos with one concept planted per sentence at its moment; token 2+c names c."""
    directions = np.random.default_rng(123).normal(size=(concepts, feature_dim))
    rng = np.random.default_rng(seed)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rows = {k: [] for k in ("query_tokens", "video_features", "video_length", "duration",
                            "video_id")}
    for v in range(num_videos):
        t = 20
        feats = 0.3 * rng.normal(size=(t, feature_dim))
        picked = rng.choice(concepts, 2, replace=False)
        for i, c in enumerate(picked):
            feats[i * 10 + 2 : i * 10 + 7] += 2.0 * directions[c]
        for c in picked:
            rows["query_tokens"].append([8 + rng.integers(0, 8), 2 + c, 8 + rng.integers(0, 8)])
            rows["video_features"].append(feats.astype("float32"))
            rows["video_length"].append(t)
            rows["duration"].append(10.0)
            rows["video_id"].append(f"v{v}")
    return {k: np.array(v) for k, v in rows.items()}


def test_outputs_have_the_documented_keys_and_shapes():
    model = build_vlanet(ModelConfig(**SMALL))
    data = planted_pairs(2)
    out = model({k: data[k] for k in INPUT_KEYS})
    assert set(out) == {"similarity", "scores", "moments", "valid", "surrogate", "attention_map"}
    np.testing.assert_array_equal(out["surrogate"], out["valid"])  # one row per surrogate
    assert out["similarity"].shape == (4,)
    assert out["scores"].shape == out["valid"].shape == (4, 10)
    assert out["moments"].shape == (4, 10, 2)
    assert out["attention_map"].shape == (4, 10, 3)


def test_no_surrogate_ablation_ranks_all_proposals():
    model = build_vlanet(ModelConfig(**SMALL, use_surrogate_selection=False))
    data = planted_pairs(1)
    out = model({k: data[k] for k in INPUT_KEYS})
    assert out["scores"].shape == (2, 20)  # K * L


def test_didemo_ranks_every_valid_window_once_surrogates_first():
    """SPEC §8 ranks all 21 candidates (15 for a 5-segment video), not one per start
    segment; the surrogates come first by their SPEC §7 score, then the other windows
    by their selection cosine with w_M (eq. 3)."""
    config = ModelConfig(**{**SMALL, "proposal_mode": "didemo"})
    model = build_vlanet(config)
    rng = np.random.default_rng(3)
    durations = np.array([30.0, 25.0], "float32")
    inputs = {
        "query_tokens": np.array([[3, 4, 5], [6, 7, 0]], "int32"),
        "video_features": rng.normal(size=(2, 6, 12)).astype("float32"),
        "video_length": np.array([6, 6], "int32"),  # average_fc7.h5 always has 6 rows
        "duration": durations,
    }
    out = {k: v.numpy() for k, v in model(inputs).items()}
    assert out["scores"].shape == (2, 36)  # every window (k, l), group-major
    proposals = model.get_layer("proposal_builder")(
        {k: inputs[k] for k in ("video_features", "video_length", "duration")}
    )
    last = model.get_layer("query_encoder")(inputs["query_tokens"])["last"].numpy()
    cosines = np.einsum("bkld,bd->bkl", proposals["proposals"].numpy(), last).reshape(2, 36)
    for i, duration in enumerate(durations):
        ranked = rank(out["scores"][i], out["moments"][i], out["valid"][i], top_k=None)
        moments = [tuple(m[:2]) for m in ranked]
        expected = {tuple(c) for c in config.geometry.candidates(float(duration))}
        assert len(moments) == len(expected) == (21 if duration == 30 else 15)
        assert set(moments) == expected
        surrogate = out["surrogate"][i]
        assert surrogate.sum() == (6 if duration == 30 else 5)  # one per start segment
        order = [
            int(np.flatnonzero(out["valid"][i] & (np.abs(out["moments"][i] - m[:2]).sum(1) == 0))[0])
            for m in ranked
        ]
        num_surrogates = int(surrogate.sum())
        assert surrogate[order[:num_surrogates]].all()
        rest = order[num_surrogates:]
        assert np.all(np.diff(cosines[i, rest]) <= 1e-6)  # by selection cosine
        # Attention lies on the surrogates' rows only.
        assert not out["attention_map"][i][~surrogate].any()
        assert out["attention_map"][i][surrogate].any()


def test_config_round_trip_and_keras_file_give_equal_outputs(tmp_path):
    model = VLANet(ModelConfig(**SMALL), margin=0.3, num_negatives=2)
    data = planted_pairs(2)
    inputs = {k: data[k] for k in INPUT_KEYS}
    expected = model(inputs)
    clone = VLANet.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    path = tmp_path / "vlanet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, VLANet) and loaded.num_negatives == 2
    for other in (clone, loaded):
        got = other(inputs)
        for key in ("similarity", "scores", "moments"):
            np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-6)
    functional = build_vlanet(ModelConfig(**SMALL))
    functional_clone = keras.Model.from_config(functional.get_config())
    functional_clone.set_weights(functional.get_weights())
    np.testing.assert_allclose(
        functional_clone(inputs)["scores"].numpy(), functional(inputs)["scores"].numpy()
    )


def test_negatives_come_from_other_videos_only():
    keys = tf.constant([1, 1, 2, 3, 3, 3], tf.int64)
    index, valid = select_negatives(keys, keys, 0, num_negatives=2)
    index, valid = index.numpy(), valid.numpy()
    assert valid.all()
    for i in range(6):
        for j in index[i]:
            assert keys.numpy()[j] != keys.numpy()[i]
    np.testing.assert_array_equal(index[0], [2, 3])
    one_video = tf.constant([5, 5, 5], tf.int64)
    _, valid = select_negatives(one_video, one_video, 0, 1)
    assert not valid.numpy().any()
    hinge = margin_hinge(tf.constant([0.9, 0.1]), tf.constant([[0.1], [0.5]]),
                         tf.constant([[True], [False]]), 0.5)
    np.testing.assert_allclose(hinge.numpy(), [[0.0], [0.0]])
    hinge = margin_hinge(tf.constant([0.2]), tf.constant([[0.1]]), tf.constant([[True]]), 0.5)
    np.testing.assert_allclose(hinge.numpy(), [[0.4]], atol=1e-6)


@pytest.mark.parametrize("use_selection", [True, False], ids=["full", "no_surrogate"])
def test_fit_lowers_loss_and_separates_similarities(use_selection):
    keras.utils.set_random_seed(0)
    model = VLANet(ModelConfig(**SMALL, use_surrogate_selection=use_selection), margin=0.5)
    model.set_word_vectors(np.random.default_rng(1).normal(size=(16, 8)).astype("float32"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    data = planted_pairs(16)
    ds = tf.data.Dataset.from_tensor_slices(data).shuffle(64, seed=0).batch(8)
    history = model.fit(ds, epochs=10, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["pos_sim"][-1] > history["neg_sim"][-1] + 0.1
    assert history["pos_beats_neg"][-1] > 0.7
    test = planted_pairs(8, seed=5)
    result = model.evaluate(tf.data.Dataset.from_tensor_slices(test).batch(8), verbose=0,
                            return_dict=True)
    assert result["pos_sim"] > result["neg_sim"]


def test_masked_windows_are_never_ranked():
    model = build_vlanet(ModelConfig(**SMALL))
    data = {
        "query_tokens": np.array([[3, 4, 0], [5, 6, 7]], "int32"),
        "video_features": np.random.default_rng(0).normal(size=(2, 20, 12)).astype("float32"),
        "video_length": np.array([20, 1], "int32"),
        "duration": np.array([10.0, 0.5], "float32"),  # 0.5 s < the 2 s smallest window
    }
    out = {k: v.numpy() for k, v in model(data).items()}
    assert out["valid"][1].sum() == 1 and out["valid"][1, 0]
    assert np.all(out["scores"][1, 1:] == MASKED_LOG_WEIGHT)
    ranked = rank(out["scores"][1], out["moments"][1], out["valid"][1], top_k=5)
    assert len(ranked) == 1 and ranked[0][:2] == pytest.approx([0.0, 0.5])
    ranked = rank(out["scores"][0], out["moments"][0], out["valid"][0], top_k=None)
    assert len(ranked) == out["valid"][0].sum() == 10
    assert [r[2] for r in ranked] == sorted((r[2] for r in ranked), reverse=True)
    assert all(r[1] <= 10.0 + 1e-6 for r in ranked)


def test_clipnorm_bounds_the_global_gradient_norm():
    keras.utils.set_random_seed(0)
    data = planted_pairs(4)
    batch = {k: tf.constant(v) for k, v in data.items()}
    steps = {}
    for clip in (0.0, 1e-3):
        keras.utils.set_random_seed(0)
        model = VLANet(ModelConfig(**SMALL), clipnorm=clip)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
        before = [v.numpy() for v in model.trainable_variables]
        model.train_step(batch)
        after = [v.numpy() for v in model.trainable_variables]
        steps[clip] = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(after, before)))
    assert steps[1e-3] == pytest.approx(1e-3, rel=1e-3)
    assert steps[0.0] > 10 * steps[1e-3]
