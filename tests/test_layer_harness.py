"""Every layer in vlanet_tf.layers through the shared harness (tests/layer_testing.py)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import vlanet_tf.layers
from tests import layer_testing as lt
from tests import reference as ref
from vlanet_tf.config import ModelConfig
from vlanet_tf.layers import (
    CascadedCrossModalAttention,
    ClipEncoder,
    DenseAttention,
    ProposalBuilder,
    QueryEncoder,
    SurrogateSelect,
    TextGuidedAttention,
    WindowRanking,
)
from vlanet_tf.model import INPUT_KEYS, VLANet, build_vlanet, match

D = 6


def _rng():
    return np.random.default_rng(3)


def _tokens():
    rng = _rng()
    lengths = np.array([6, 3, 1])
    tokens = rng.integers(2, 20, (3, 6)).astype("int32")
    return tokens * (np.arange(6)[None] < lengths[:, None]).astype("int32")


def _video(lengths=(12, 7), durations=(6.0, 3.5)):
    return lt.video_batch(_rng(), list(durations), list(lengths))


def _didemo_video():
    return _video(lengths=(6, 4), durations=(30.0, 20.0))


def _text_guided():
    rng = _rng()
    clips = rng.normal(size=(2, 6, D)).astype("float32")
    clips /= np.linalg.norm(clips, axis=-1, keepdims=True)
    clip_mask = np.arange(6)[None] < np.array([6, 4])[:, None]
    clips *= clip_mask[..., None]
    start = np.array([[0, 1, 2, 3, 5], [0, 1, 2, 3, 3]], "int32")
    end = np.minimum(start + 2, np.array([6, 4])[:, None]).astype("int32")
    return {
        "clips": clips,
        "clip_mask": clip_mask,
        "query": rng.normal(size=(2, D)).astype("float32"),
        "clip_start": start,
        "clip_end": end,
        "window_clips": np.full((2, 5), 2.0, "float32"),
        "window_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool),
    }


def _selection():
    rng = _rng()
    mask = rng.random((2, 4, 3)) > 0.3
    mask[:, 0, 0] = True
    mask[1, -1] = False  # an empty group
    proposals = ref.l2n(rng.normal(size=(2, 4, 3, D))) * mask[..., None]
    return {
        "proposals": proposals.astype("float32"),
        "windows": np.sort(rng.random((2, 4, 3, 2)) * 10, axis=-1).astype("float32"),
        "mask": mask,
        "query_last": ref.l2n(rng.normal(size=(2, D))).astype("float32"),
    }


def _attention():
    rng = _rng()
    return {
        "x": rng.normal(size=(2, 5, D)).astype("float32"),
        "y": rng.normal(size=(2, 4, D)).astype("float32"),
        "x_mask": np.array([[1, 1, 1, 0, 0], [1] * 5], bool),
        "y_mask": np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool),
        "y_log_scale": np.log(rng.random((2, 4)) + 0.1).astype("float32"),
    }


def _paper_attention():
    """The paper form's inputs: rows with their log scales on both sides."""
    data = _attention()
    data["x_log_scale"] = np.log(_rng().random((2, 5)) + 0.1).astype("float32")
    return data


def _self_attention():
    """X and Y the same sequence, as a banded Dense Attention requires."""
    rng = _rng()
    v = rng.normal(size=(2, 7, D)).astype("float32")
    mask = np.array([[1] * 5 + [0] * 2, [1, 1, 1, 0, 1, 1, 1]], bool)
    log_scale = np.log(rng.random((2, 7)) + 0.1).astype("float32")
    return {"x": v, "y": v, "x_mask": mask, "y_mask": mask, "y_log_scale": log_scale}


def _cascade():
    rng = _rng()
    v_mask = np.array([[1] * 6, [1] * 4 + [0] * 2], bool)
    q_mask = np.array([[1] * 4, [1] * 2 + [0] * 2], bool)
    return {
        "video": (ref.l2n(rng.normal(size=(2, 6, D))) * v_mask[..., None]).astype("float32"),
        "query": (ref.l2n(rng.normal(size=(2, 4, D))) * q_mask[..., None]).astype("float32"),
        "video_mask": v_mask,
        "query_mask": q_mask,
        "fallback_scores": rng.normal(size=(2, 6)).astype("float32"),
    }


def _window_ranking():
    """3 groups of 3 windows; example 1's last group is empty (a short video)."""
    rng = _rng()
    mask = np.ones((2, 3, 3), bool)
    mask[:, 1, 2] = mask[:, 2, 1:] = False  # windows past the end
    mask[1, 2] = False
    index = np.array([[2, 0, 0], [1, 1, 0]], "int32")
    start = np.broadcast_to(np.arange(3.0)[None, :, None], (2, 3, 3))
    windows = np.stack([start, start + 1 + np.arange(3.0)], -1)
    return {
        "windows": windows.astype("float32"),
        "mask": mask,
        "index": index,
        "group_mask": mask.any(-1),
        "cosines": (rng.uniform(-1, 1, (2, 3, 3)) * mask).astype("float32"),
        "scores": np.log(rng.random((2, 3)) + 0.1).astype("float32"),
        "attention_map": rng.random((2, 3, 4)).astype("float32"),
    }


# Mixed-precision tolerances, tol in |mixed - float32| <= tol * (1 + |float32|), same
# weights. bfloat16 keeps 8 significant bits (u = 2^-8 ~ 3.9e-3), float16 11
# (u = 2^-11 ~ 4.9e-4); the projections and pairwise energies run in them and the
# rest in float32. MEAN allows ~8u (bfloat16) and ~10u (float16), about twice the
# worst seen over 8 seeds (1.3e-2, 2.3e-3: two GRUs, or a cascade of mean attentions).
MEAN = {"mixed_bfloat16": 3e-2, "mixed_float16": 5e-3}
# A `sum` energy adds M row errors (M = 4-7 here) and a cascade of them feeds each
# step's log weights to the next; twice the worst seen over 8 seeds (3.5e-2, 9.1e-3).
SUM = {"mixed_bfloat16": 8e-2, "mixed_float16": 2e-2}

QUERY = dict(vocab_size=20, word_dim=4, hidden_dim=3)
SLIDING = dict(hidden_dim=4, stride_frames=24, window_frames=(48, 72))

CASES = [
    lt.LayerCase("query_encoder", QueryEncoder, QUERY, _tokens, 3, 1, ("words", "last"), MEAN),
    lt.LayerCase(
        "query_encoder_2_grus_trained_embeddings",
        QueryEncoder,
        {**QUERY, "gru_layers": 2, "train_embeddings": True},
        _tokens, 7, 0, ("words", "last"), MEAN,
    ),
    lt.LayerCase("proposals_sliding", ProposalBuilder, SLIDING, _video, 2, 0, ("proposals",),
                 MEAN),
    lt.LayerCase(
        "proposals_didemo", ProposalBuilder, dict(hidden_dim=4, proposal_mode="didemo"),
        _didemo_video, 2, 0, ("proposals",), MEAN,
    ),
    lt.LayerCase("clip_encoder_sliding", ClipEncoder, SLIDING, _video, 2, 0, ("clips",), MEAN),
    lt.LayerCase(
        "clip_encoder_didemo", ClipEncoder, dict(hidden_dim=4, proposal_mode="didemo"),
        _didemo_video, 2, 0, ("clips",), MEAN,
    ),
    # Sentence and video projections, a kernel and a bias each.
    lt.LayerCase("text_guided_attention", TextGuidedAttention, dict(hidden_dim=D),
                 _text_guided, 4, 0, ("similarity", "scores"), MEAN),
    lt.LayerCase("surrogate_gather", SurrogateSelect, {}, _selection, 0, 0,
                 ("surrogates", "cosine"), MEAN),
    lt.LayerCase("surrogate_mask", SurrogateSelect, dict(method="mask"), _selection, 0, 0,
                 ("surrogates", "cosine"), MEAN),
    lt.LayerCase("surrogate_off", SurrogateSelect, dict(enabled=False), _selection, 0, 0,
                 ("surrogates", "cosine"), MEAN),
    lt.LayerCase("window_ranking", WindowRanking, {}, _window_ranking, 0, 0,
                 ("scores", "attention_map"), MEAN),
    lt.LayerCase("dense_attention_mean", DenseAttention, dict(hidden_dim=D, init_scale=3.0),
                 _attention, 2, 0, ("outputs", "energy"), MEAN),
    lt.LayerCase("dense_attention_sum", DenseAttention,
                 dict(hidden_dim=D, reduction="sum", init_scale=3.0),
                 _attention, 2, 0, ("outputs", "energy"), SUM),
    lt.LayerCase("dense_attention_banded", DenseAttention,
                 dict(hidden_dim=D, init_scale=3.0, window=1),
                 _self_attention, 2, 0, ("outputs", "energy"), MEAN),
    lt.LayerCase("dense_attention_banded_sum", DenseAttention,
                 dict(hidden_dim=D, reduction="sum", init_scale=3.0, window=2),
                 _self_attention, 2, 0, ("outputs", "energy"), SUM),
    lt.LayerCase("dense_attention_paper", DenseAttention,
                 dict(hidden_dim=D, init_scale=3.0, form="paper"),
                 _paper_attention, 2, 0, ("outputs", "energy"), SUM),
    # self (2) + 3 cross steps + similarity head, two kernels each.
    lt.LayerCase("cascade", CascadedCrossModalAttention, dict(hidden_dim=D, init_scale=3.0),
                 _cascade, 12, 0, ("similarity", "attention_map"), MEAN),
    # 4 steps over 2 shared attentions: self (2) + 2 + head.
    lt.LayerCase(
        "cascade_shared_sum", CascadedCrossModalAttention,
        dict(hidden_dim=D, cross_steps=4, share_cross_weights=True, reduction="sum",
             init_scale=3.0),
        _cascade, 10, 0, ("similarity", "attention_map"), SUM,
    ),
    lt.LayerCase(
        "cascade_banded_video", CascadedCrossModalAttention,
        dict(hidden_dim=D, init_scale=3.0, video_self_attention_window=1),
        _cascade, 12, 0, ("similarity", "attention_map"), MEAN,
    ),
    # The equations as printed, with the banded video self-attention: every paper-form
    # path of DenseAttention (full and banded) and of the cascade.
    lt.LayerCase(
        "cascade_paper_banded_video", CascadedCrossModalAttention,
        dict(hidden_dim=D, init_scale=3.0, video_self_attention_window=1, form="paper"),
        _cascade, 12, 0, ("similarity", "attention_map"), SUM,
    ),
    lt.LayerCase(
        "cascade_cross_only", CascadedCrossModalAttention,
        dict(hidden_dim=D, use_self_attention=False, cross_steps=2, init_scale=3.0),
        _cascade, 6, 0, ("similarity", "attention_map"), MEAN,
    ),
    # No step updates V: the scores are the fallback; only the head has weights.
    lt.LayerCase(
        "cascade_no_attention", CascadedCrossModalAttention,
        dict(hidden_dim=D, use_self_attention=False, use_cross_attention=False),
        _cascade, 2, 0, ("similarity", "attention_map"), MEAN,
    ),
]
IDS = [case.id for case in CASES]


def test_every_layer_class_has_a_case():
    classes = set()
    for info in pkgutil.iter_modules(vlanet_tf.layers.__path__):
        module = importlib.import_module(f"vlanet_tf.layers.{info.name}")
        classes |= {
            v
            for v in vars(module).values()
            if isinstance(v, type)
            and issubclass(v, keras.layers.Layer)
            and v.__module__ == module.__name__
        }
    assert classes == {case.cls for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_symbolic_and_eager_calls_agree(case):
    lt.check_symbolic_and_eager(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_weight_counts(case):
    lt.check_weight_counts(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_fit_step_moves_trainable_weights_only(case):
    lt.check_fit_step(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip_gives_equal_outputs(case):
    lt.check_config_round_trip(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_keras_file_round_trip_gives_equal_outputs(case, tmp_path):
    lt.check_keras_file(case, tmp_path)


@pytest.mark.parametrize("policy", lt.POLICIES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dtype_policy(case, policy):
    lt.check_dtype_policy(case, policy)


@pytest.mark.parametrize("policy", lt.POLICIES)
def test_90_group_12_word_cascade_stays_finite_under_policy(policy):
    """The full path of test_layers' 90 x 12 cascade, every layer given `dtype=policy`."""
    rng = np.random.default_rng(5)
    query_encoder = QueryEncoder(40, 8, 16, dtype=policy)
    proposal_builder = ProposalBuilder(16, dtype=policy)
    select = SurrogateSelect(dtype=policy)
    cascade = CascadedCrossModalAttention(16, dtype=policy)
    tokens = rng.integers(2, 40, (1, 12)).astype("int32")
    video = {
        "video_features": tf.constant(rng.normal(size=(1, 45, 10)).astype("float32")),
        "video_length": np.array([45], "int32"),
        "duration": np.array([30.0], "float32"),
    }
    with tf.GradientTape() as tape:
        tape.watch(video["video_features"])
        out = match(select, cascade, proposal_builder(video), query_encoder(tokens))
        loss = out["similarity"][0] + tf.reduce_sum(out["scores"] * 1e-3)
    scores, similarity = out["scores"].numpy(), out["similarity"].numpy()
    assert scores.shape == (1, 90) and out["valid"].numpy().all()
    assert scores.dtype == similarity.dtype == np.float32  # log scales stay float32
    assert np.isfinite(scores).all() and np.isfinite(similarity).all()
    assert np.isfinite(out["attention_map"].numpy()).all()
    # As in float32: exp(score) underflows float32 (let alone float16) after three
    # steps over 90 rows, the log does not, and the rows stay told apart.
    assert scores.min() < np.log(np.finfo(np.float32).tiny) / 10
    assert np.ptp(scores[0]) > 1e-4
    sources = [video["video_features"], *query_encoder.trainable_weights,
               *proposal_builder.trainable_weights, *cascade.trainable_weights]
    grads = tape.gradient(loss, sources)
    assert all(g is not None for g in grads)
    grads = [tf.convert_to_tensor(g).numpy().astype("float32") for g in grads]
    assert all(np.isfinite(g).all() for g in grads)
    assert any(np.any(g != 0) for g in grads)


LOAD_SCRIPT = """
import sys
import keras, numpy as np
import vlanet_tf
expected = np.load(sys.argv[1] + "/expected.npz")
inputs = {k[3:]: expected[k] for k in expected.files if k.startswith("in_")}
for name in ("network", "vlanet"):
    loaded = keras.saving.load_model(sys.argv[1] + "/" + name + ".keras")
    print(name, type(loaded).__name__, sorted({type(l).__module__ for l in loaded.layers}))
    out = loaded(inputs)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["scores"]), expected[name + "_scores"], atol=1e-6
    )
"""


def test_keras_files_load_after_only_importing_vlanet_tf(tmp_path):
    """A fresh interpreter that imports nothing of vlanet_tf but the package itself."""
    config = ModelConfig(vocab_size=20, word_dim=4, hidden_dim=8, feature_dim=5,
                         stride_frames=24, window_frames=(48, 72))
    video = _video()
    inputs = {"query_tokens": _tokens()[:2], **video}
    assert set(inputs) == set(INPUT_KEYS)
    network, vlanet = build_vlanet(config), VLANet(config)
    network.save(tmp_path / "network.keras")
    vlanet.save(tmp_path / "vlanet.keras")
    np.savez(
        tmp_path / "expected.npz",
        network_scores=network(inputs)["scores"].numpy(),
        vlanet_scores=vlanet(inputs)["scores"].numpy(),
        **{f"in_{k}": v for k, v in inputs.items()},
    )
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path)],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("network Functional") and "vlanet_tf.layers." in lines[0]
    assert lines[1].startswith("vlanet VLANet")
