"""A shared test harness for Keras layers, after KerasHub's `run_layer_test`.

A `LayerCase` names a layer class, its constructor arguments, a batch of inputs and
the weight counts it should have; `run_layer_test` puts it through every check:

- symbolic call (keras.Input) and eager call agree on output keys, shapes and dtypes;
- trainable / non-trainable weight counts;
- one `fit` step on a model wrapping the layer changes every trainable weight and no
  other;
- `get_config` -> `from_config` clone, given the same weights, gives the same outputs
  (so an argument left out of `get_config` fails);
- `.keras` save and load, without custom_objects, gives the same outputs;
- under each mixed-precision policy (passed as `dtype=`): float32 variables, outputs
  finite and close to float32 with the same weights, gradients finite.

Each check is also a function of its own so that a test file can report them apart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

# Exact up to the order of float32 operations: the clone or the loaded model runs
# the same graph with the same weights.
SAME_WEIGHTS_ATOL = 1e-6

POLICIES = ("mixed_bfloat16", "mixed_float16")
SEED = 0


@dataclasses.dataclass
class LayerCase:
    """One layer configuration and the inputs to call it on.

    `inputs` makes a fresh dict of NumPy arrays (or one array). `fit_outputs` names
    the float outputs the `fit` step and the gradient check use; every trainable
    weight must influence them. `policy_tolerance` is, per policy, the tol in
    |mixed - float32| <= tol * (1 + |float32|) on every float output, with the same
    weights: log scales and `sum` energies grow past 1, and their error with them.
    """

    id: str
    cls: type
    init_kwargs: dict[str, Any]
    inputs: Callable[[], Any]
    trainable_weights: int
    non_trainable_weights: int
    fit_outputs: tuple[str, ...]
    policy_tolerance: dict[str, float]

    def layer(self, **overrides: Any) -> keras.layers.Layer:
        # Seeded so that a failure reproduces with the same initial weights.
        keras.utils.set_random_seed(SEED)
        return self.cls(**{**self.init_kwargs, **overrides})


def video_batch(
    rng: np.random.Generator, durations: list[float], lengths: list[int], feature_dim: int = 5
) -> dict[str, np.ndarray]:
    """Proposal-layer inputs: random clip features, zero past each video's length."""
    feats = rng.normal(size=(len(lengths), max(lengths), feature_dim)).astype("float32")
    for i, n in enumerate(lengths):
        feats[i, n:] = 0
    return {
        "video_features": feats,
        "video_length": np.array(lengths, "int32"),
        "duration": np.array(durations, "float32"),
    }


def _map(fn: Callable, tree: Any) -> Any:
    return tf.nest.map_structure(fn, tree)


def _numpy(tree: Any) -> Any:
    return _map(lambda t: keras.ops.convert_to_numpy(t), tree)


def symbolic_inputs(data: Any) -> Any:
    """keras.Input with each array's per-example shape and dtype (dict keys as names)."""
    if isinstance(data, dict):
        return {
            k: keras.Input(v.shape[1:], dtype=str(v.dtype), name=k) for k, v in data.items()
        }
    return keras.Input(data.shape[1:], dtype=str(data.dtype))


def wrap_in_model(
    layer: keras.layers.Layer, data: Any, outputs: tuple[str, ...] = ()
) -> keras.Model:
    """A functional model inputs -> layer -> (the named outputs, or all of them)."""
    inputs = symbolic_inputs(data)
    out = layer(inputs)
    if outputs:
        out = {k: out[k] for k in outputs}
    return keras.Model(inputs, out)


def assert_outputs_close(
    actual: dict, expected: dict, atol: float, what: str, rtol: float = 0.0
) -> None:
    """Same keys and shapes; floats within atol + rtol * |expected|, others equal."""
    assert set(actual) == set(expected), f"{what}: keys {set(actual)} != {set(expected)}"
    for key in expected:
        a, e = np.asarray(actual[key]), np.asarray(expected[key])
        assert a.shape == e.shape, f"{what}: {key} shape {a.shape} != {e.shape}"
        if np.issubdtype(e.dtype, np.floating):
            np.testing.assert_allclose(
                a.astype("float64"), e.astype("float64"), atol=atol, rtol=rtol,
                err_msg=f"{what}: {key}",
            )
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"{what}: {key}")


def check_symbolic_and_eager(case: LayerCase, graph: bool = True, **overrides: Any) -> None:
    """Symbolic and eager calls agree on keys, shapes (None matches any) and dtypes.

    With `graph`, a tf.function call (graph mode, as in `fit` and export) gives the
    eager outputs.
    """
    layer = case.layer(**overrides)
    data = case.inputs()
    symbolic = layer(symbolic_inputs(data))
    eager = layer(data)
    if graph:
        traced = tf.function(layer)(data)
        assert_outputs_close(_numpy(traced), _numpy(eager), SAME_WEIGHTS_ATOL, f"{case.id} graph")
    assert set(symbolic) == set(eager), f"{case.id}: {set(symbolic)} != {set(eager)}"
    for key, spec in symbolic.items():
        real = eager[key]
        shapes = f"{case.id}: {key} symbolic {spec.shape}, eager {real.shape}"
        assert len(spec.shape) == len(real.shape), shapes
        assert all(s is None or s == r for s, r in zip(spec.shape, real.shape)), shapes
        assert keras.backend.standardize_dtype(spec.dtype) == keras.backend.standardize_dtype(
            real.dtype
        ), f"{case.id}: {key} symbolic {spec.dtype}, eager {real.dtype}"


def check_weight_counts(case: LayerCase) -> None:
    layer = case.layer()
    layer(case.inputs())
    assert len(layer.trainable_weights) == case.trainable_weights, (
        f"{case.id}: {len(layer.trainable_weights)} trainable weights, "
        f"expected {case.trainable_weights}"
    )
    assert len(layer.non_trainable_weights) == case.non_trainable_weights, (
        f"{case.id}: {len(layer.non_trainable_weights)} non-trainable weights, "
        f"expected {case.non_trainable_weights}"
    )


def check_fit_step(case: LayerCase) -> None:
    """One SGD step moves every trainable weight and leaves the others alone."""
    if not case.trainable_weights:
        return
    layer = case.layer()
    data = case.inputs()
    model = wrap_in_model(layer, data, case.fit_outputs)
    rng = np.random.default_rng(0)
    targets = {k: rng.normal(size=v.shape).astype("float32") for k, v in model(data).items()}
    # Eager: one step does not repay tracing a train function; graph mode is checked
    # by check_symbolic_and_eager.
    model.compile(
        optimizer=keras.optimizers.SGD(0.1), loss={k: "mse" for k in targets}, run_eagerly=True
    )
    before = [w.numpy().copy() for w in layer.weights]
    trainable = [id(w) for w in layer.trainable_weights]
    batch = len(next(iter(tf.nest.flatten(data))))
    model.fit(data, targets, batch_size=batch, epochs=1, verbose=0)
    for w, old in zip(layer.weights, before):
        changed = not np.array_equal(w.numpy(), old)
        if id(w) in trainable:
            assert changed, f"{case.id}: trainable {w.path} did not change in a fit step"
        else:
            assert not changed, f"{case.id}: non-trainable {w.path} changed in a fit step"


def check_config_round_trip(case: LayerCase) -> None:
    """from_config(get_config()) with the same weights gives the same outputs."""
    layer = case.layer()
    data = case.inputs()
    expected = _numpy(layer(data))
    config = layer.get_config()
    clone = case.cls.from_config(config)
    assert clone.get_config() == config
    clone(data)
    assert len(clone.trainable_weights) == len(layer.trainable_weights)
    clone.set_weights(layer.get_weights())
    assert_outputs_close(_numpy(clone(data)), expected, SAME_WEIGHTS_ATOL, f"{case.id} clone")


def check_keras_file(case: LayerCase, tmp_path: Path) -> None:
    """A model wrapping the layer, saved as .keras, loads without custom_objects."""
    data = case.inputs()
    model = wrap_in_model(case.layer(), data)
    expected = _numpy(model(data))
    path = Path(tmp_path) / f"{case.cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert any(type(l) is case.cls for l in loaded.layers), f"{case.id}: layer not revived"
    assert_outputs_close(_numpy(loaded(data)), expected, SAME_WEIGHTS_ATOL, f"{case.id} .keras")


def _gradient_loss(out: dict, keys: tuple[str, ...]) -> tf.Tensor:
    # Fixed random coefficients: a plain sum of unit rows or softmax weights is
    # constant and would have zero gradient.
    rng = np.random.default_rng(1)
    return tf.add_n(
        [
            tf.reduce_sum(
                tf.cast(out[k], tf.float32) * rng.normal(size=out[k].shape).astype("float32")
            )
            for k in keys
        ]
    )


def check_dtype_policy(case: LayerCase, policy: str) -> None:
    """Under `policy`: float32 variables, finite outputs near float32, finite gradients."""
    data = case.inputs()
    reference = case.layer()
    expected = _numpy(reference(data))
    mixed = case.layer(dtype=policy)
    # Graph mode runs the same casts; checked once, in float32.
    check_symbolic_and_eager(case, graph=False, dtype=policy)
    mixed(data)
    mixed.set_weights(reference.get_weights())
    bad = [w.path for w in mixed.weights if w.dtype != "float32"]
    assert not bad, f"{case.id} {policy}: variables not float32: {bad}"
    watched = _map(
        lambda v: tf.constant(v) if np.issubdtype(v.dtype, np.floating) else v, data
    )
    float_inputs = [t for t in tf.nest.flatten(watched) if isinstance(t, tf.Tensor)]
    with tf.GradientTape() as tape:
        tape.watch(float_inputs)
        out = mixed(watched)
        loss = _gradient_loss(out, case.fit_outputs)
    got = _numpy(out)
    for key, value in got.items():
        if np.issubdtype(value.dtype, np.floating):
            assert np.isfinite(value.astype("float32")).all(), f"{case.id} {policy}: {key}"
    tol = case.policy_tolerance[policy]
    assert_outputs_close(got, expected, tol, f"{case.id} {policy}", rtol=tol)
    sources = list(mixed.trainable_weights) + float_inputs
    grads = [g for g in tape.gradient(loss, sources) if g is not None]
    assert grads, f"{case.id} {policy}: no gradient reaches weights or inputs"
    grads = [tf.convert_to_tensor(g).numpy().astype("float32") for g in grads]
    assert all(np.isfinite(g).all() for g in grads), f"{case.id} {policy}: non-finite gradient"
    assert any(np.any(g != 0) for g in grads), f"{case.id} {policy}: all gradients are zero"


def run_layer_test(case: LayerCase, tmp_path: Path, policies: tuple[str, ...] = POLICIES) -> None:
    """Every check above, in order."""
    check_symbolic_and_eager(case)
    check_weight_counts(case)
    check_fit_step(case)
    check_config_round_trip(case)
    check_keras_file(case, tmp_path)
    for policy in policies:
        check_dtype_policy(case, policy)
