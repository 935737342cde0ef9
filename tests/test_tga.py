"""The TGA baseline (Mithun et al., CVPR 2019): its scoring against a NumPy reference
written from the paper, its bidirectional ranking loss, and the CLIs training,
evaluating, exporting and querying it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import data_testing, training_testing
from vlanet_tf.config import ModelConfig
from vlanet_tf.files import read_json
from vlanet_tf.geometry import ProposalGeometry
from vlanet_tf.model import VLANet
from vlanet_tf.run_dir import RunDir

CONFIG = ModelConfig(
    vocab_size=20, word_dim=6, hidden_dim=8, feature_dim=5, architecture="tga",
    stride_frames=24, window_frames=(48, 96),
)  # fmt: skip


def _batch(rng, keys=("a", "b", "c", "a")):
    lengths = np.array([14, 9, 12, 14], "int32")
    features = rng.normal(size=(4, 14, 5)).astype("float32")
    for i, n in enumerate(lengths):
        features[i, n:] = 0
    tokens = rng.integers(2, 20, (4, 5)).astype("int32")
    tokens[1, 3:] = 0
    return {
        "query_tokens": tokens,
        "video_features": features,
        "video_length": lengths,
        "duration": lengths / 1.5,
        "video_id": tf.constant(keys),
    }


def _dense(layer, x):
    kernel, bias = (w.numpy() for w in layer.weights)
    return x @ kernel + bias


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def _reference(model, data, i, j):
    """c(V_i, Q_j), the scores of V_i's windows and the windows, from the paper's
    equations with the model's weights."""
    net = model.network
    length, duration = int(data["video_length"][i]), float(data["duration"][i])
    clips = _unit(_dense(net.get_layer("clip_encoder").projection, data["video_features"][i, :length]))
    query = net.get_layer("query_encoder")(data["query_tokens"][j : j + 1])["last"].numpy()[0]
    attention_layer = net.get_layer("text_guided_attention")
    sentence = _unit(_dense(attention_layer.sentence_projection, query))
    logits = clips @ sentence / CONFIG.tga_temperature
    attention = np.exp(logits - logits.max())
    attention /= attention.sum()
    video = _unit(_dense(attention_layer.video_projection, attention @ clips))
    geometry = ProposalGeometry(stride_frames=24, window_frames=(48, 96))
    windows = geometry.candidates(duration)
    # A window's mean attention over its nominal length (2 s or 4 s of clips, at least
    # the clips it covers), also where the video's end cuts it short.
    widths = np.tile(geometry.window_seconds, len(windows) // 2)
    scores = []
    for (start, end), width in zip(windows, widths):
        first = int(np.floor(start / duration * length + 1e-4))
        last = max(int(np.ceil(end / duration * length - 1e-4)), first + 1)
        nominal = max(last - first, width * length / duration)
        scores.append(np.log(attention[first:last].sum() / nominal))
    return float(video @ sentence), np.array(scores), windows


def test_outputs_match_the_reference_and_the_trainers_pairing():
    rng = np.random.default_rng(0)
    tf.keras.utils.set_random_seed(0)
    # TGA's bidirectional ranking loss: both directions, every in-batch negative.
    model = VLANet(CONFIG, margin=0.3, negative_direction="both", num_negatives=0)
    data = _batch(rng)
    out = model(data)
    for i in range(4):
        similarity, scores, windows = _reference(model, data, i, i)
        valid = out["valid"][i].numpy()
        np.testing.assert_allclose(out["moments"][i].numpy()[valid], windows, atol=1e-5)
        np.testing.assert_allclose(out["scores"][i].numpy()[valid], scores, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(out["similarity"][i].numpy(), similarity, atol=1e-5)
        assert out["attention_map"].shape[:2] == out["scores"].shape
    # The training loss: every (video, sentence) pairing, both directions, sentences
    # of the same video ("a" rows 0 and 3) never negatives.
    matrix = np.array([[_reference(model, data, i, j)[0] for j in range(4)] for i in range(4)])
    keys = ["a", "b", "c", "a"]
    terms = [
        max(0.0, 0.3 - matrix[i, i] + s)
        for i in range(4)
        for j in range(4)
        if keys[i] != keys[j]
        for s in (matrix[i, j], matrix[j, i])
    ]
    loss, parts = model.contrastive_step(data, training=False)
    negative, valid = parts["negative"].numpy(), parts["valid"].numpy()
    for i in range(4):
        expected = sorted(
            s for j in range(4) if keys[i] != keys[j] for s in (matrix[i, j], matrix[j, i])
        )
        np.testing.assert_allclose(sorted(negative[i][valid[i]]), expected, atol=1e-5)
    np.testing.assert_allclose(float(loss), np.mean(terms), atol=1e-5)


def _main(module, *args):
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=training_testing.REPO,
        env=data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tga")
    data_dir = training_testing.make_data_dir(root)
    model_dir = root / "model"
    result = training_testing.run_train(
        [
            f"--data_dir={data_dir}",
            f"--model_dir={model_dir}",
            "--architecture=tga",
            "--negative_direction=both",
            "--num_negatives=0",
            "--epochs=4",
            "--stride_frames=16",
            *training_testing.TINY_FLAGS,
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, model_dir


def test_train_cli_learns_the_pairing(trained):
    _, model_dir = trained
    history = RunDir(str(model_dir)).read_history()
    gap = [row["pos_sim"] - row["neg_sim"] for row in history]
    assert history[-1]["pos_beats_neg"] > history[0]["pos_beats_neg"] + 0.05
    assert gap[-1] > gap[0] + 0.05
    assert read_json(os.path.join(model_dir, "config.json"))["model"]["architecture"] == "tga"


@pytest.mark.slow
def test_evaluate_export_and_predict_take_the_tga_run(trained):
    root, model_dir = trained
    output = root / "metrics.json"
    _main("vlanet_tf.evaluate", f"--model_dir={model_dir}", f"--output={output}")
    assert "R1@0.5" in read_json(str(output))
    exported = _main(
        "export.saved_model", f"--model_dir={model_dir}", f"--export_base={root / 'exports'}"
    ).stdout.strip().splitlines()[-1]
    info = read_json(os.path.join(exported, "assets.extra", "vlanet_export.json"))
    assert "encode_video" not in info["signatures"] and "serving_default" in info["signatures"]
    features = root / "video.npy"
    np.save(features, np.random.default_rng(0).normal(size=(40, 8)).astype("float32"))
    answer = _main(
        "vlanet_tf.predict", f"--saved_model={exported}", f"--features={features}",
        "--duration=20", "--query=a person opens the door", "--top_k=3", "--json",
    )  # fmt: skip
    moments = np.asarray(json.loads(answer.stdout.strip().splitlines()[-1])["moments"])
    assert moments.shape == (3, 3)
    assert np.all(np.diff(moments[:, 2]) <= 0)  # best first
