"""Tuning on the validation split with KerasTuner, and TensorBoard HParams records.

A search space is a set of config fields (of `ModelConfig`, `TrainConfig` or
`RunConfig`) with the values to try, e.g. ``{"learning_rate": [3e-4, 1e-3],
"margin": [0.2, 0.5]}``. Each trial is one training run (`experiment.run_experiment`)
in `tune_dir/trials/<trial id>`; its objective is the best validation epoch's primary
metric (R1@0.5 on Charades-STA, R1 on DiDeMo), read from the run's best.json. The test
split is never read. KerasTuner's oracle keeps its state in `tune_dir/oracle`, so a
killed search resumes: finished trials are not run again and a trial killed mid-run
resumes its own training from its last epoch.

Every trial also writes a TensorBoard HParams record (`tune_dir/hparams/<trial id>`):
its field values and its validation metrics, so `tensorboard --logdir=tune_dir/hparams`
shows the search in the HParams dashboard. `write_hparams` is the same record for any
grid of runs (the Table 3 grid writes one per variant).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Sequence

import keras
import keras_tuner as kt
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from vlanet_tf import experiment
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared
from vlanet_tf.evaluation.scoring import primary_metric
from vlanet_tf.files import write_bytes, write_json
from vlanet_tf.run_dir import RunDir

# Fields a search may not change: they are fixed by the data or name where a run lives.
FIXED_FIELDS = frozenset(
    {"vocab_size", "word_dim", "feature_dim", "data_dir", "model_dir", "strategy"}
)
TUNERS = ("grid", "random")


def _fields() -> dict[str, tuple[str, Any]]:
    """Tunable field name -> (config it belongs to, default value)."""
    out: dict[str, tuple[str, Any]] = {}
    for kind, cls in (("model", ModelConfig), ("train", TrainConfig), ("run", RunConfig)):
        for field in dataclasses.fields(cls):
            if field.name in FIXED_FIELDS:
                continue
            default = field.default
            if default is dataclasses.MISSING:
                continue
            out[field.name] = (kind, default)
    return out


def _parse_value(name: str, text: str, default: Any) -> Any:
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"search space: {name} takes true or false, got {text!r}")
    try:
        if isinstance(default, int) or (default is None and text.lstrip("-").isdigit()):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ValueError(
            f"search space: {name} takes {type(default).__name__} values, got {text!r}"
        ) from None
    if isinstance(default, tuple):
        return tuple(int(v) for v in text.split("-"))
    return text


def parse_space(entries: Sequence[str]) -> dict[str, list[Any]]:
    """``["learning_rate=3e-4,1e-3", "window_frames=176-240,128-256"]`` -> space.

    Values are parsed by the field's type; a tuple field's elements are joined by
    "-". An unknown or fixed field, a repeated field, or a field with no value is a
    one-line error naming the entry.
    """
    fields = _fields()
    space: dict[str, list[Any]] = {}
    for entry in entries:
        name, sep, values = entry.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise ValueError(f"search space entry {entry!r}: expected NAME=V1,V2,...")
        if name in FIXED_FIELDS:
            raise ValueError(f"search space entry {entry!r}: {name} cannot be tuned")
        if name not in fields:
            raise ValueError(
                f"search space entry {entry!r}: no config field {name!r} "
                f"(one of {sorted(fields)})"
            )
        if name in space:
            raise ValueError(f"search space entry {entry!r}: {name} given twice")
        default = fields[name][1]
        space[name] = [_parse_value(name, v, default) for v in values.split(",")]
    if not space:
        raise ValueError("the search space is empty: give at least one NAME=V1,V2,...")
    return space


def apply_overrides(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    overrides: Mapping[str, Any],
) -> tuple[ModelConfig, TrainConfig, RunConfig]:
    """The three configs with `overrides` (field -> value) applied, each to its own."""
    fields = _fields()
    changes: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "run": {}}
    for name, value in overrides.items():
        kind, default = fields[name]
        if isinstance(default, tuple) and isinstance(value, str):
            value = _parse_value(name, value, default)
        changes[kind][name] = value
    return (
        dataclasses.replace(model_config, **changes["model"]),
        dataclasses.replace(train_config, **changes["train"]),
        dataclasses.replace(run_config, **changes["run"]),
    )


def hparam_value(value: Any) -> Any:
    """A config value as KerasTuner's Choice and TensorBoard's HParams hold it: ints,
    floats, strings and bools as they are; tuples (windows) as "176-240" text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return "-".join(map(str, value))
    return str(value)


def write_hparams(
    logdir: str,
    hparams: Mapping[str, Any],
    metrics: Mapping[str, float],
    trial_id: str | None = None,
) -> None:
    """One TensorBoard HParams record: the run's `hparams` and its `metrics`.

    `logdir` is the run's own folder under the dashboard's root (the HParams plugin
    reads every subfolder as one session). Metric names are used as TensorBoard tags.
    """
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hparams_api.hparams({k: hparam_value(v) for k, v in hparams.items()}, trial_id=trial_id)
        for name, value in metrics.items():
            tf.summary.scalar(name, float(value), step=1)
    writer.flush()
    writer.close()


def write_hparams_config(
    logdir: str, space: Mapping[str, Sequence[Any]], metric_names: Sequence[str]
) -> None:
    """The dashboard's columns: every searched field with its values, and the metrics."""
    hparams = [
        hparams_api.HParam(name, hparams_api.Discrete([hparam_value(v) for v in values]))
        for name, values in space.items()
    ]
    metrics = [hparams_api.Metric(name, display_name=name) for name in metric_names]
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hparams_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.flush()
    writer.close()


class ValidationTuner(kt.engine.base_tuner.BaseTuner):
    """A KerasTuner tuner whose trial is a whole VLANet training run.

    `run_trial` trains with the trial's values (resuming a killed trial's run) and
    reports the validation metrics of its best epoch, `val_<metric>`.
    """

    def __init__(
        self,
        oracle: kt.Oracle,
        base: tuple[ModelConfig, TrainConfig, RunConfig],
        space: Mapping[str, Sequence[Any]],
        tune_dir: str,
        train: Callable[..., dict[str, Any]] = experiment.run_experiment,
        **kwargs: Any,
    ) -> None:
        self.base = base
        self.space = dict(space)
        self.tune_dir = tune_dir
        self._train = train
        super().__init__(oracle, directory=tune_dir, project_name="oracle", **kwargs)

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any) -> dict:
        overrides = {name: trial.hyperparameters.get(name) for name in self.space}
        model_config, train_config, run_config = apply_overrides(*self.base, overrides)
        model_dir = os.path.join(self.tune_dir, "trials", trial.trial_id)
        run_config = dataclasses.replace(run_config, model_dir=model_dir)
        print(f"=== trial {trial.trial_id}: {json.dumps(overrides)}", flush=True)
        RunDir(model_dir).save_options(model_config, train_config, run_config)
        result = self._train(model_config, train_config, run_config)
        best = result["best"]
        keras.backend.clear_session()
        metrics = {f"val_{k}": float(v) for k, v in best["metrics"].items()}
        write_hparams(
            os.path.join(self.tune_dir, "hparams", trial.trial_id),
            overrides,
            metrics,
            trial_id=trial.trial_id,
        )
        return metrics

    # A trial's model is its run directory; KerasTuner's own saving is not used.
    def save_model(self, trial_id: str, model: Any, step: int = 0) -> None:
        return None

    def load_model(self, trial: kt.engine.trial.Trial) -> Any:
        return RunDir(os.path.join(self.tune_dir, "trials", trial.trial_id)).load_model()


def tune(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    space: Mapping[str, Sequence[Any]],
    tune_dir: str,
    max_trials: int | None = None,
    tuner: str = "grid",
    seed: int = 1234,
    train: Callable[..., dict[str, Any]] = experiment.run_experiment,
) -> dict[str, Any]:
    """Searches `space` on the validation split; returns and writes the best trial.

    Args:
      model_config, train_config, run_config: the base run (a flagfile's settings).
      space: field -> values to try (`parse_space`).
      tune_dir: the oracle's state, one run directory per trial, HParams records,
        `best.json` and `best.flags` (the chosen values as flags).
      max_trials: trials to run (None with the grid: all combinations).
      tuner: "grid" (every combination, in order) or "random".
      train: the training function (`experiment.run_experiment`).

    Returns:
      {"objective", "best": {"trial_id", "values", "val": metrics}, "trials": [...]},
      every trial's values and validation metrics in the order they ran.
    """
    if tuner not in TUNERS:
        raise ValueError(f"tuner must be one of {TUNERS}, got {tuner!r}")
    for name, values in space.items():  # Refuse a bad value before any trial runs.
        for value in values:
            apply_overrides(model_config, train_config, run_config, {name: value})
    if tuner == "random" and max_trials is None:
        max_trials = 10
    dataset = prepared.load_manifest(run_config.data_dir)["dataset"]
    objective_name = f"val_{primary_metric(dataset)}"
    hyperparameters = kt.HyperParameters()
    for name, values in space.items():
        hyperparameters.Choice(name, [hparam_value(v) for v in values], ordered=False)
    objective = kt.Objective(objective_name, direction="max")
    oracle_cls = kt.oracles.GridSearchOracle if tuner == "grid" else kt.oracles.RandomSearchOracle
    oracle = oracle_cls(
        objective=objective,
        max_trials=max_trials,
        hyperparameters=hyperparameters,
        seed=seed,
    )
    os.makedirs(tune_dir, exist_ok=True)
    write_hparams_config(
        os.path.join(tune_dir, "hparams"), space, [objective_name]
    )
    search = ValidationTuner(
        oracle, (model_config, train_config, run_config), space, tune_dir, train=train
    )
    search.search()
    trials = []
    for trial in sorted(search.oracle.trials.values(), key=lambda t: t.trial_id):
        if trial.status != "COMPLETED":
            continue
        values = {name: trial.hyperparameters.get(name) for name in space}
        val = {
            name: float(history.get_best_value())
            for name, history in trial.metrics.metrics.items()
        }
        trials.append({"trial_id": trial.trial_id, "values": values, "val": val})
    if not trials:
        raise RuntimeError(f"no trial of the search in {tune_dir} completed")
    best = max(trials, key=lambda t: t["val"][objective_name])
    summary = {"objective": objective_name, "best": best, "trials": trials}
    write_json(os.path.join(tune_dir, "best.json"), summary)
    write_bytes(os.path.join(tune_dir, "best.flags"), best_flags(best).encode("utf-8"))
    return summary


def best_flags(best: Mapping[str, Any]) -> str:
    """The best trial's values as flagfile lines (append them after a flagfile)."""
    fields = _fields()
    lines = [f"# best trial {best['trial_id']} of the validation search: {best['val']}"]
    for name, value in best["values"].items():
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(fields[name][1], tuple):
            lines.append(f"--{name}={str(value).replace('-', ',')}")
        else:
            lines.append(f"--{name}={value}")
    return "\n".join(lines) + "\n"
