"""`score_mix` λ: a surrogate's score is its log weight in v_comp plus λ times its
eq. 3 selection cosine cos(s_k, w_M), and nothing else changes.

The reference cosine is computed here from the definitions (eqs. 3-5): the proposals
and w_M read off the network's own encoders, each normalised, the best window of each
group taken as its surrogate.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.test_model import SMALL, planted_pairs
from vlanet_tf.config import ModelConfig
from vlanet_tf.model import INPUT_KEYS, VLANet


def models(mix: float, **config):
    """The same weights with score_mix 0 and `mix`."""
    outs = []
    for value in (0.0, mix):
        keras.utils.set_random_seed(0)
        model = VLANet(ModelConfig(**SMALL, **config, score_mix=value))
        model.set_word_vectors(np.random.default_rng(1).normal(size=(16, 8)).astype("float32"))
        outs.append(model)
    outs[1].network.set_weights(outs[0].network.get_weights())
    return outs


def inputs(seed=0):
    data = planted_pairs(4, seed=seed)
    return {k: tf.constant(data[k]) for k in INPUT_KEYS}


def selection_cosines(model, data):
    """max over each group's valid windows of cos(p_kl, w_M): [B, K]; -inf if empty."""
    net = model.network
    built = net.get_layer("proposal_builder")(
        {k: data[k] for k in ("video_features", "video_length", "duration")}
    )
    query = net.get_layer("query_encoder")(data["query_tokens"])
    out = {
        k: np.asarray(v, dtype=np.float64)
        for k, v in (("proposals", built["proposals"]), ("mask", built["mask"]),
                     ("last", query["last"]))
    }
    p = out["proposals"] / np.linalg.norm(out["proposals"], axis=-1, keepdims=True)
    w = out["last"] / np.linalg.norm(out["last"], axis=-1, keepdims=True)
    cos = np.einsum("bkld,bd->bkl", p, w)
    cos = np.where(out["mask"].astype(bool), cos, -np.inf)
    return cos.max(axis=-1)


@pytest.mark.parametrize("mix", [0.5, 3.0])
def test_scores_gain_mix_times_the_selection_cosine_and_c_is_unchanged(mix):
    plain, mixed = models(mix)
    data = inputs()
    a, b = plain(data), mixed(data)
    valid = a["valid"].numpy()
    cos = selection_cosines(plain, data)
    np.testing.assert_array_equal(b["similarity"].numpy(), a["similarity"].numpy())
    np.testing.assert_array_equal(b["valid"].numpy(), valid)
    np.testing.assert_allclose(
        b["scores"].numpy()[valid],
        a["scores"].numpy()[valid] + mix * cos[valid],
        rtol=1e-5,
        atol=1e-5,
    )
    # Masked rows keep the masked score.
    np.testing.assert_array_equal(b["scores"].numpy()[~valid], a["scores"].numpy()[~valid])


def test_a_large_mix_ranks_by_the_selection_cosine():
    plain, mixed = models(1e4)
    data = inputs(seed=3)
    out = mixed(data)
    valid = out["valid"].numpy()
    cos = selection_cosines(plain, data)
    for row in range(valid.shape[0]):
        got = np.argsort(-out["scores"].numpy()[row][valid[row]], kind="stable")
        want = np.argsort(-cos[row][valid[row]], kind="stable")
        np.testing.assert_array_equal(got[:5], want[:5])
    # ... while λ = 0 ranks by the log weights, which here disagree with the cosine.
    base = plain(data)
    assert any(
        np.argmax(np.where(valid[r], base["scores"].numpy()[r], -np.inf))
        != np.argmax(np.where(valid[r], cos[r], -np.inf))
        for r in range(valid.shape[0])
    )


def test_the_loss_does_not_read_the_mix():
    plain, mixed = models(2.0)
    data = dict(planted_pairs(4, seed=1))
    data = {k: tf.constant(v) for k, v in data.items()}
    for model in (plain, mixed):
        model.compile(optimizer=keras.optimizers.SGD(0.0))
    np.testing.assert_allclose(
        float(mixed.train_step(data)["loss"]), float(plain.train_step(data)["loss"]), rtol=1e-6
    )


def test_mix_round_trips_and_negative_is_refused():
    config = ModelConfig(**SMALL, score_mix=0.25)
    layer = VLANet(config).network.get_layer("cascaded_cross_modal_attention")
    assert layer.get_config()["score_mix"] == 0.25
    assert dataclasses.asdict(config)["score_mix"] == 0.25
    with pytest.raises(ValueError, match="score_mix must be >= 0"):
        ModelConfig(**SMALL, score_mix=-1.0)


def test_the_benchmark_pools_val_hits_over_every_runs_queries():
    from benchmarks import score_mix

    def row(run, mix, val, queries, test):
        return {"run": run, "score_mix": mix,
                "val": {"queries": queries, "R1@0.5": val, "R5@0.5": 0.0},
                "test": {"queries": 5, "R1@0.5": test, "R5@0.5": 2 * test}}

    rows = [row("a", 0.0, 50.0, 10, 20.0), row("b", 0.0, 0.0, 30, 40.0),
            row("a", 1.0, 10.0, 10, 30.0), row("b", 1.0, 20.0, 30, 10.0)]
    table = {t["score_mix"]: t for t in score_mix.summarise(rows)}
    # 5 of 40 queries, not the mean of 50 % and 0 %.
    assert table[0.0]["val_R1@0.5"] == pytest.approx(12.5)
    assert table[1.0]["val_R1@0.5"] == pytest.approx(17.5)
    assert table[0.0]["test_R1@0.5"] == pytest.approx(30.0)
    assert table[1.0]["test_R5@0.5"] == pytest.approx(40.0)
    assert "| 1 | 17.50 | 20.00 | 40.00 |" in score_mix.markdown(score_mix.summarise(rows))


def test_the_benchmark_refuses_a_directory_without_a_run(tmp_path, capsys):
    from benchmarks import score_mix

    with pytest.raises(SystemExit) as exit_info:
        score_mix.main([f"--runs={tmp_path}"])
    assert exit_info.value.code == 2
    assert "no trained run" in capsys.readouterr().err
