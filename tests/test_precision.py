"""--precision end to end: training under each dtype policy, loss scaling, the run
directory's reload and a bfloat16 SavedModel served in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import data_testing, training_testing
from vlanet_tf import training
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.run_dir import RunDir

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# A bfloat16 SavedModel runs the same ops in the same formats as the Keras model it
# was exported from, but not in the same graph: the eager Keras call rounds every op's
# result to bfloat16, while the serving function's optimised graph fuses some of them
# (matmul + bias + activation), so the two round at different places. bfloat16 keeps
# 8 significant bits (relative step 2^-8 ≈ 0.004); over the projections, the energies'
# mean over words and three cascade steps a few such steps accumulate (0.004 was
# measured on the similarity). 0.02 + 2% is five of them: a model served in a
# different format, with other weights or without the run's precision, is off by more.
SAVED_MODEL_ATOL = 0.02
SAVED_MODEL_RTOL = 0.02


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(training_testing.make_data_dir(tmp_path_factory.mktemp("precision")))


def _configs(data_dir: str, precision: str, model_dir: str, **train: float):
    model = training_testing.tiny_model_config(data_dir, precision=precision)
    train_config = TrainConfig(batch_size=8, learning_rate=0.01, **train)
    run = RunConfig(data_dir=data_dir, model_dir=model_dir, strategy="one_device", verbose=0)
    return model, train_config, run


def _prepared(data_dir, precision, model_dir, **train):
    model_config, train_config, run_config = _configs(data_dir, precision, model_dir, **train)
    run = training.prepare_run(model_config, train_config, run_config, tf.distribute.get_strategy())
    dataset = training.training_dataset(run_config, train_config, run.vocabulary, 8)
    return run.model, dataset


def _weights(model) -> list[np.ndarray]:
    return [np.array(w.numpy()) for w in model.trainable_weights]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_each_precision_trains_a_few_steps(data_dir, tmp_path, precision):
    model, dataset = _prepared(data_dir, precision, str(tmp_path), clipnorm=1.0)
    compute = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
    for name in ("query_encoder", "proposal_builder", "cascaded_cross_modal_attention"):
        layer = model.network.get_layer(name)
        assert layer.compute_dtype == compute[precision], name
        assert layer.variable_dtype == "float32", name
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
        precision == "mixed_float16"
    )
    before = _weights(model)
    history = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"][0])
    after = _weights(model)
    assert all(np.isfinite(w).all() for w in after)
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    outputs = model(next(iter(dataset)))
    for key in ("similarity", "scores", "moments"):
        assert outputs[key].dtype == tf.float32, key


def test_float16_overflow_is_skipped_then_recovers(data_dir, tmp_path):
    """A loss scale of 2^24 overflows float16 (max 65504) in the backward pass: the
    step is skipped (weights unchanged, scale halved) until the scale is small enough,
    then updates are finite. The clip (clipnorm > 0) runs on the scaled gradients."""
    model, dataset = _prepared(data_dir, "mixed_float16", str(tmp_path), clipnorm=1.0)
    initial = 2.0**24
    model.compile(
        optimizer=keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(0.01), initial_scale=initial
        )
    )
    before = _weights(model)
    model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    assert float(model.optimizer.dynamic_scale.numpy()) == initial / 2
    assert int(model.optimizer.iterations.numpy()) == 0  # the step was skipped
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))

    model.fit(dataset, epochs=1, steps_per_epoch=11, verbose=0)
    scale = float(model.optimizer.dynamic_scale.numpy())
    applied = int(model.optimizer.iterations.numpy())
    assert scale <= initial / 2**2
    assert 0 < applied < 12  # some steps overflowed and were skipped, later ones applied
    after = _weights(model)
    assert all(np.isfinite(w).all() for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_run_dir_reloads_the_model_in_its_precision(data_dir, tmp_path):
    model_config, train_config, run_config = _configs(data_dir, "mixed_bfloat16", str(tmp_path))
    run_dir = RunDir(str(tmp_path))
    run_dir.save_options(model_config, train_config, run_config)
    assert json.loads(open(run_dir.config_path).read())["model"]["precision"] == "mixed_bfloat16"
    options = run_dir.load_options()
    assert options.model.precision == "mixed_bfloat16"
    built = training.build_model(options.model, options.train, compile_model=False)
    built.save_weights(run_dir.best_weights_path)
    loaded = run_dir.load_model("best")
    layer = loaded.network.get_layer("cascaded_cross_modal_attention")
    assert layer.dtype_policy.name == "mixed_bfloat16"


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        ModelConfig(precision="bfloat16")


_SERVE = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf
    path, inputs, out = sys.argv[1:4]
    x = dict(np.load(inputs))
    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serve_tokens"]
    specs = {k: v.dtype.name for k, v in fn.structured_input_signature[1].items()}
    outs = fn(**{k: tf.constant(v) for k, v in x.items()})
    np.savez(out, **{k: v.numpy() for k, v in outs.items()})
    print(json.dumps({"inputs": specs, "outputs": {k: v.dtype.name for k, v in outs.items()}}))
    """
)


@pytest.mark.slow
def test_bfloat16_saved_model_matches_keras_in_a_fresh_process(data_dir, tmp_path):
    from export import serving
    from vlanet_tf.experiment import run_experiment

    model_config, train_config, run_config = _configs(
        data_dir, "mixed_bfloat16", str(tmp_path / "model")
    )
    train_config = TrainConfig(batch_size=8, epochs=1, learning_rate=0.01)
    run_config = RunConfig(
        data_dir=data_dir,
        model_dir=str(tmp_path / "model"),
        strategy="one_device",
        steps_per_epoch=2,
        verbose=0,
    )
    RunDir(run_config.model_dir).save_options(model_config, train_config, run_config)
    run_experiment(model_config, train_config, run_config)
    path = serving.export_run(run_config.model_dir, str(tmp_path / "serve"))

    rng = np.random.default_rng(0)
    b, t = 3, 20
    inputs = {
        "query_tokens": rng.integers(2, model_config.vocab_size, (b, 6)).astype(np.int32),
        "video_features": rng.standard_normal((b, t, model_config.feature_dim)).astype(
            np.float32
        ),
        "video_length": np.array([20, 15, 9], np.int32),
        "duration": np.array([26.7, 20.0, 12.0], np.float32),
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    done = subprocess.run(
        [sys.executable, "-c", _SERVE, path, str(tmp_path / "inputs.npz"), str(tmp_path / "o.npz")],
        capture_output=True,
        text=True,
        timeout=240,
        env=data_testing.env_with_repo_on_path(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    dtypes = json.loads(done.stdout.strip().splitlines()[-1])
    assert dtypes["inputs"]["video_features"] == "float32"
    assert dtypes["inputs"]["duration"] == "float32"
    assert dtypes["outputs"]["similarity"] == "float32"
    assert dtypes["outputs"]["scores"] == "float32"
    served = dict(np.load(tmp_path / "o.npz"))

    model = RunDir(run_config.model_dir).load_model("best")
    assert model.network.get_layer("query_encoder").compute_dtype == "bfloat16"
    keras_out = model(inputs)
    similarity = tf.cast(keras_out["similarity"], tf.float32).numpy()
    np.testing.assert_allclose(
        served["similarity"], similarity, atol=SAVED_MODEL_ATOL, rtol=SAVED_MODEL_RTOL
    )
    # The served scores are the best k valid scores of the Keras model, best first.
    scores = np.where(keras_out["valid"].numpy(), keras_out["scores"].numpy(), -np.inf)
    k = served["scores"].shape[1]
    best = -np.sort(-scores, axis=1)[:, :k]
    shown = np.isfinite(best)
    np.testing.assert_allclose(
        served["scores"][shown], best[shown], atol=SAVED_MODEL_ATOL, rtol=SAVED_MODEL_RTOL
    )
