"""Training options beyond the paper: each changes the loss or the model exactly as
stated, and its default keeps eq. 14.

The references below are written from the definitions: every (video, sentence) pair's
similarity c(V_i, Q_j) is read off the functional network, one pair per row, and the
losses are computed from that matrix in NumPy.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_model import SMALL, planted_pairs
from vlanet_tf.config import ModelConfig
from vlanet_tf.model import INPUT_KEYS, VLANet, video_keys

MARGIN = 0.4


def batch(num_videos=3, seed=0):
    """Two sentences per video, so every row has a same-video row to skip."""
    data = planted_pairs(num_videos, seed=seed)
    return {k: tf.constant(v) for k, v in data.items()}


def pair_similarity(model, data):
    """S[i, j] = c(V_i, Q_j) from the inference network, one pair per row."""
    b = int(data["query_tokens"].shape[0])
    i, j = np.meshgrid(np.arange(b), np.arange(b), indexing="ij")
    rows = {k: tf.gather(data[k], i.reshape(-1)) for k in INPUT_KEYS if k != "query_tokens"}
    rows["query_tokens"] = tf.gather(data["query_tokens"], j.reshape(-1))
    return model(rows)["similarity"].numpy().reshape(b, b)


def other_video(data):
    ids = data["video_id"].numpy()
    return ids[:, None] != ids[None, :]


def first_negative(data):
    """The first other-video row after each row, cyclically (SPEC §6)."""
    ids = data["video_id"].numpy()
    b = len(ids)
    return np.array(
        [next((i + d) % b for d in range(1, b) if ids[(i + d) % b] != ids[i]) for i in range(b)]
    )


def reference_loss(s, negatives, loss, temperature=0.1):
    """Mean term over positives and directions. `negatives`: list of [B, B] arrays
    holding c(negative pair) where the pair is a negative of row i, NaN elsewhere."""
    pos = np.diag(s)
    terms = []
    for neg in negatives:
        for i in range(len(pos)):
            row = neg[i][~np.isnan(neg[i])]
            hinges = np.maximum(0.0, MARGIN - pos[i] + row)
            if loss == "hinge":
                terms.extend(hinges)
            elif loss == "hinge_hardest":
                terms.append(hinges.max())
            else:
                logits = np.concatenate([[pos[i]], row]) / temperature
                terms.append(np.log(np.exp(logits).sum()) - logits[0])
    return float(np.mean(terms))


def model_with(**options):
    keras.utils.set_random_seed(0)
    model = VLANet(ModelConfig(**SMALL), margin=MARGIN, **options)
    model.set_word_vectors(np.random.default_rng(1).normal(size=(16, 8)).astype("float32"))
    return model


@pytest.mark.parametrize("loss", ["hinge", "hinge_hardest", "infonce"])
@pytest.mark.parametrize("direction", ["sentence", "video", "both"])
def test_every_in_batch_negative_in_each_direction(direction, loss):
    data = batch()
    model = model_with(num_negatives=0, negative_direction=direction, loss=loss, temperature=0.2)
    s = pair_similarity(model, data)
    mask = other_video(data)
    by_sentence = np.where(mask, s, np.nan)  # row i: c(V_i, Q_j)
    by_video = np.where(mask, s.T, np.nan)  # row i: c(V_j, Q_i)
    negatives = {
        "sentence": [by_sentence],
        "video": [by_video],
        "both": [by_sentence, by_video],
    }[direction]
    loss_value, _ = model.contrastive_step(data, training=False)
    np.testing.assert_allclose(
        float(loss_value), reference_loss(s, negatives, loss, 0.2), rtol=1e-5, atol=1e-6
    )


def test_video_negatives_pair_each_sentence_with_the_next_other_video():
    data = batch()
    s = pair_similarity(model_with(), data)
    j = first_negative(data)
    rows = np.arange(len(j))
    loss_value, out = model_with(negative_direction="video").contrastive_step(data, False)
    np.testing.assert_allclose(out["negative"].numpy()[:, 0], s[j, rows], atol=1e-6)
    expected = np.maximum(0.0, MARGIN - np.diag(s) + s[j, rows]).mean()
    np.testing.assert_allclose(float(loss_value), expected, rtol=1e-5, atol=1e-6)
    # The default is eq. 14: the same row's video with the next other-video sentence.
    loss_value, out = model_with().contrastive_step(data, False)
    np.testing.assert_allclose(out["negative"].numpy()[:, 0], s[rows, j], atol=1e-6)
    expected = np.maximum(0.0, MARGIN - np.diag(s) + s[rows, j]).mean()
    np.testing.assert_allclose(float(loss_value), expected, rtol=1e-5, atol=1e-6)


def test_a_batch_of_one_video_has_no_negatives_in_any_loss():
    data = {k: v[:2] for k, v in batch().items()}
    for loss in ("hinge", "hinge_hardest", "infonce"):
        model = model_with(num_negatives=0, negative_direction="both", loss=loss)
        loss_value, out = model.contrastive_step(data, False)
        assert float(loss_value) == 0.0 and not out["valid"].numpy().any()


def test_dropout_changes_training_passes_only():
    data = batch()
    data["video_key"] = video_keys(data.pop("video_id"))
    plain, dropped = model_with(), model_with(dropout=0.5)
    dropped.set_weights(plain.get_weights())
    inputs = {k: data[k] for k in INPUT_KEYS}
    for key in ("similarity", "scores"):
        np.testing.assert_array_equal(dropped(inputs)[key].numpy(), plain(inputs)[key].numpy())
    np.testing.assert_array_equal(
        dropped.contrastive_step(data, training=False)[0].numpy(),
        plain.contrastive_step(data, training=False)[0].numpy(),
    )
    # Without dropout a training pass computes what inference does.
    np.testing.assert_allclose(
        plain.contrastive_step(data, training=True)[1]["positive"].numpy(),
        plain(inputs)["similarity"].numpy(),
        atol=1e-6,
    )
    trained = dropped.contrastive_step(data, training=True)[1]["positive"].numpy()
    assert np.abs(trained - plain(inputs)["similarity"].numpy()).max() > 1e-3
    assert len(dropped.get_weights()) == len(plain.get_weights())


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_train_embeddings_makes_the_word_vectors_learn(train_embeddings):
    keras.utils.set_random_seed(0)
    model = VLANet(ModelConfig(**SMALL, train_embeddings=train_embeddings), margin=MARGIN)
    embedding = model.query_encoder.embedding.embeddings
    trainable = any(v is embedding for v in model.trainable_variables)
    assert trainable == train_embeddings
    data = batch()
    if train_embeddings:
        with tf.GradientTape() as tape:
            loss_value, _ = model.contrastive_step(data, training=True)
        gradient = tf.convert_to_tensor(tape.gradient(loss_value, embedding)).numpy()
        used = np.unique(data["query_tokens"].numpy())
        # The batch's words get a gradient, the other rows none.
        assert np.abs(gradient[used]).max() > 1e-4
        assert np.abs(np.delete(gradient, used, axis=0)).max() == 0
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    before = embedding.numpy()
    model.train_step(data)
    assert (np.abs(embedding.numpy() - before).max() > 0) == train_embeddings


def test_options_survive_the_config_round_trip():
    model = model_with(num_negatives=0, negative_direction="both", loss="infonce",
                       temperature=0.3, dropout=0.2)
    clone = VLANet.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert (clone.negative_direction, clone.loss_name, clone.temperature, clone.dropout) == (
        "both", "infonce", 0.3, 0.2
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(negative_direction="queries"), "negative_direction"),
        (dict(loss="triplet"), "loss must be one of"),
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(dropout=1.0), "dropout must be in"),
        (dict(num_negatives=-1), "num_negatives must be >= 0"),
    ],
)
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        VLANet(ModelConfig(**SMALL), **options)


@pytest.mark.parametrize("warmup", [0, 4])
def test_cosine_schedule_decays_to_zero_after_the_warmup(warmup):
    from vlanet_tf import training
    from vlanet_tf.config import TrainConfig

    total, peak = 24, 0.2
    optimizer = training.build_optimizer(
        TrainConfig(learning_rate=peak, warmup_steps=warmup, lr_schedule="cosine"), total
    )
    schedule = optimizer._learning_rate
    for step in range(total + 3):
        if step < warmup:
            expected = peak * step / warmup
        else:
            t = min(step - warmup, total - warmup) / (total - warmup)
            expected = 0.5 * peak * (1 + np.cos(np.pi * t))
        np.testing.assert_allclose(float(schedule(step)), expected, atol=1e-6, err_msg=step)
    with pytest.raises(ValueError, match="lr_schedule=cosine"):
        training.build_optimizer(TrainConfig(lr_schedule="cosine", warmup_steps=5), 5)
    # The default holds the rate.
    assert float(training.build_optimizer(TrainConfig(learning_rate=peak)).learning_rate) == (
        pytest.approx(peak)
    )


def test_attention_temperature_sharpens_every_cascade_attention_but_not_c():
    keras.utils.set_random_seed(0)
    plain = VLANet(ModelConfig(**SMALL))
    keras.utils.set_random_seed(0)
    sharp = VLANet(ModelConfig(**SMALL, attention_temperature=0.05))
    sharp.network.set_weights(plain.network.get_weights())
    cascade = sharp.network.get_layer("cascaded_cross_modal_attention")
    attentions = [cascade.self_video, cascade.self_query, *cascade.cross]
    assert {a.temperature for a in attentions} == {0.05}
    assert cascade.similarity_head.temperature == 1.0
    data = {k: tf.constant(v) for k, v in planted_pairs(4, seed=2).items() if k in INPUT_KEYS}
    a, b = plain(data), sharp(data)
    valid = a["valid"].numpy()

    def top_share(scores):
        shares = np.where(valid, np.exp(scores - scores.max(-1, keepdims=True)), 0.0)
        return (shares.max(-1) / shares.sum(-1)).mean()

    # Each row's weight in v_comp concentrates on fewer surrogates.
    assert top_share(b["scores"].numpy()) > 2 * top_share(a["scores"].numpy())
    with pytest.raises(ValueError, match="attention_temperature must be > 0"):
        ModelConfig(**SMALL, attention_temperature=0.0)
