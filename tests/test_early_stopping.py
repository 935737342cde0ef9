"""--early_stopping_patience on a tiny run: training stops after `patience` epochs
without a better val metric, and a resumed or rerun run counts from best.json."""

from __future__ import annotations

import dataclasses

import keras
import pytest

from tests import training_testing
from vlanet_tf import experiment
from vlanet_tf.callbacks import StopWithoutImprovement, stopped_early
from vlanet_tf.config import RunConfig, TrainConfig
from vlanet_tf.run_dir import RunDir


@pytest.mark.slow
def test_stops_after_patience_epochs_without_improvement_and_across_a_resume(tmp_path, capsys):
    data_dir = str(training_testing.make_data_dir(tmp_path))
    model_config = training_testing.tiny_model_config(data_dir)
    # A zero learning rate keeps the weights, so the val metric never improves on the
    # first epoch's.
    train_config = TrainConfig(
        batch_size=8, epochs=2, learning_rate=0.0, early_stopping_patience=2
    )
    run_config = RunConfig(
        data_dir=data_dir, model_dir=str(tmp_path / "run"), verbose=0, steps_per_epoch=1
    )
    run_dir = RunDir(run_config.model_dir)
    experiment.run_experiment(model_config, train_config, run_config)
    assert len(run_dir.read_history()) == 2  # One epoch without improvement: goes on.
    assert run_dir.read_best()["epoch"] == 1
    # Resumed with more epochs: one more epoch makes two without improvement.
    longer = dataclasses.replace(train_config, epochs=6)
    experiment.run_experiment(model_config, longer, run_config)
    history = run_dir.read_history()
    assert [int(row["epoch"]) for row in history] == [0, 1, 2]
    assert "early stopping after epoch 3" in capsys.readouterr().out
    # Rerun: trains no more.
    experiment.run_experiment(model_config, longer, run_config)
    assert len(run_dir.read_history()) == 3
    assert "stopped early after epoch 3" in capsys.readouterr().out


def test_stops_on_the_patience_th_epoch_without_a_strictly_better_metric(tmp_path):
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    run_dir = RunDir(str(tmp_path))
    stop = StopWithoutImprovement(run_dir, "R1@0.5", patience=2)
    stop.set_model(model)
    model.stop_training = False
    stop.on_train_begin()
    stopped_after = None
    for epoch, value in enumerate([10.0, 12.0, 12.0, 13.0, 13.0, 11.0, 20.0]):
        stop.on_epoch_end(epoch, {"val_R1@0.5": value, "loss": 1.0})
        if model.stop_training:
            stopped_after = epoch + 1
            break
    # Best at epoch 4 (13.0); epochs 5 and 6 do not beat it (equal is no better).
    assert stopped_after == 6 and stop.best_epoch == 4
    # A rerun counts from best.json.
    run_dir.write_best(4, "R1@0.5", {"R1@0.5": 13.0})
    assert not stopped_early(run_dir, 2, 5) and stopped_early(run_dir, 2, 6)
    assert not stopped_early(run_dir, 0, 6)
    resumed = StopWithoutImprovement(run_dir, "R1@0.5", patience=2)
    resumed.on_train_begin()
    assert (resumed.best, resumed.best_epoch) == (13.0, 4)


def test_patience_must_be_positive():
    with pytest.raises(ValueError, match="patience must be >= 1"):
        StopWithoutImprovement(RunDir("x"), "R1@0.5", 0)
