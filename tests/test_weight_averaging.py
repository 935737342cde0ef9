"""--ema_momentum: every epoch's writers (validation, best and epoch checkpoints) see
the moving average of the weights, training goes on from the weights as trained, and
a resumed run (from the backup, or from an epoch checkpoint when the backup is gone)
ends with the uninterrupted run's average.

The reference is the definition of Polyak averaging with momentum m, from the weights
w_t after each step t as a callback records them: a_1 = w_1, a_t = m a_(t-1) + (1 - m) w_t.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest

from tests import training_testing
from vlanet_tf import custom_loop, experiment, training
from vlanet_tf.config import RunConfig, TrainConfig
from vlanet_tf.model import VLANet
from vlanet_tf.run_dir import RunDir
from vlanet_tf.strategy import build_strategy

MOMENTUM = 0.5  # Far from 1, so that the average and the last weights differ clearly.
STEPS = 3  # Per epoch.


class RecordSteps(keras.callbacks.Callback):
    """The trainable weights after every step and at the start of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[np.ndarray]] = []
        self.epoch_starts: list[list[np.ndarray]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append([np.array(w.numpy()) for w in self.model.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(w.numpy()) for w in self.model.trainable_weights])


def polyak(steps: list[list[np.ndarray]], momentum: float) -> list[list[np.ndarray]]:
    """a_t after every step t, from the definition."""
    averages, average = [], None
    for weights in steps:
        average = (
            [w.copy() for w in weights]
            if average is None
            else [momentum * a + (1 - momentum) * w for a, w in zip(average, weights)]
        )
        averages.append(average)
    return averages


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(training_testing.make_data_dir(tmp_path_factory.mktemp("ema")))


def configs(data_dir, model_dir, epochs=2, momentum=MOMENTUM):
    model = training_testing.tiny_model_config(data_dir)
    train = TrainConfig(
        batch_size=8, epochs=epochs, learning_rate=0.05, clipnorm=0.0, ema_momentum=momentum
    )
    run = RunConfig(
        data_dir=data_dir,
        model_dir=str(model_dir),
        verbose=0,
        steps_per_epoch=STEPS,
        deterministic=True,
    )
    return model, train, run


def trainable(model_config, train_config, path):
    """The trainable weights of a weights file, in the model's order."""
    model = VLANet.from_configs(model_config, train_config)
    RunDir.load_weights(model, path)
    return [np.array(w.numpy()) for w in model.trainable_weights]


def backup_state(model_config, train_config, model_dir):
    """(weights, optimizer's moving average) held by backup/latest.weights.h5."""
    model = VLANet.from_configs(model_config, train_config)
    model.compile(optimizer=training.build_optimizer(train_config))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(model_dir, "backup", "latest.weights.h5"))
    averages = [np.array(a.numpy()) for a in model.optimizer._model_variables_moving_average]
    return [np.array(w.numpy()) for w in model.trainable_weights], averages


def assert_same(actual, expected, what):
    assert len(actual) == len(expected), what
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6, err_msg=what)


def differs(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b)) > 1e-4


def train_custom_loop(model_config, train_config, run_config, callbacks):
    return custom_loop.train(
        model_config, train_config, run_config, build_strategy("mirrored"), callbacks
    )


@pytest.fixture(scope="module")
def whole_run(data_dir, tmp_path_factory):
    """A 2-epoch Model.fit run with every step's weights recorded."""
    model_config, train_config, run_config = configs(
        data_dir, tmp_path_factory.mktemp("whole") / "run"
    )
    record = RecordSteps()
    result = experiment.run_experiment(model_config, train_config, run_config, callbacks=[record])
    return (model_config, train_config, run_config), record, result


@pytest.mark.parametrize("loop", ["fit", "custom_loop"])
def test_checkpoints_and_validation_hold_the_average_and_training_goes_on_from_the_weights(
    data_dir, tmp_path, whole_run, loop
):
    if loop == "fit":
        (model_config, train_config, run_config), record, result = whole_run
    else:
        model_config, train_config, run_config = configs(data_dir, tmp_path / "run")
        record = RecordSteps()
        result = train_custom_loop(model_config, train_config, run_config, [record])
    assert len(record.steps) == 2 * STEPS
    averages = polyak(record.steps, MOMENTUM)
    run_dir = RunDir(run_config.model_dir)
    for epoch in (1, 2):
        checkpoint = trainable(model_config, train_config, run_dir.checkpoint_path(epoch))
        assert_same(checkpoint, averages[epoch * STEPS - 1], f"epoch {epoch} checkpoint")
        assert differs(checkpoint, record.steps[epoch * STEPS - 1])
    best = run_dir.read_best()
    assert_same(
        trainable(model_config, train_config, run_dir.best_weights_path),
        averages[best["epoch"] * STEPS - 1],
        "best weights",
    )
    # The second epoch started from the weights as trained, not from the average.
    assert_same(record.epoch_starts[1], record.steps[STEPS - 1], "epoch 2's start")
    if loop == "fit":
        weights, kept = backup_state(model_config, train_config, run_dir.path)
        assert_same(weights, record.steps[-1], "backup weights")
        assert_same(kept, averages[-1], "backup's moving average")
    # As Model.fit ends, the model in memory is the average.
    assert_same(
        [np.array(w.numpy()) for w in result["model"].trainable_weights],
        averages[-1],
        "the returned model",
    )


def test_the_optimizer_keeps_an_average_only_when_asked():
    assert not training.build_optimizer(TrainConfig()).use_ema
    optimizer = training.build_optimizer(TrainConfig(ema_momentum=0.9))
    assert optimizer.use_ema and optimizer.ema_momentum == pytest.approx(0.9)


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_uninterrupted_runs_average(whole_run, tmp_path):
    (model_config, train_config, run_config), _, _ = whole_run
    expected = trainable(model_config, train_config, RunDir(run_config.model_dir).checkpoint_path(2))

    one_epoch = dataclasses.replace(run_config, model_dir=str(tmp_path / "backup"))
    experiment.run_experiment(model_config, dataclasses.replace(train_config, epochs=1), one_epoch)
    # The same state with its backup lost: the epoch checkpoint, which holds the average
    # as the model and the weights as trained in the optimizer, is swapped back.
    shutil.copytree(one_epoch.model_dir, tmp_path / "checkpoint")
    shutil.rmtree(tmp_path / "checkpoint" / "backup")
    for resumed in ("backup", "checkpoint"):
        resumed_config = dataclasses.replace(run_config, model_dir=str(tmp_path / resumed))
        experiment.run_experiment(model_config, train_config, resumed_config)
        assert_same(
            trainable(model_config, train_config, RunDir(resumed_config.model_dir).checkpoint_path(2)),
            expected,
            f"epoch 2 after resuming from the {resumed}",
        )


def test_bad_momentum_is_rejected():
    with pytest.raises(ValueError, match="ema_momentum must be in"):
        training.build_optimizer(TrainConfig(ema_momentum=1.0))
