"""`run_experiment`: train a VLANet (or resume), pick the best epoch, score a split.

The entry point of training for the mains and the grids: it builds the strategy and
runs `Model.fit` (`vlanet_tf.training`) or, under MultiWorkerMirroredStrategy, where
`Model.fit` fails in Keras 3 (keras-team/keras #20585, #20329), the `strategy.run`
loop of `vlanet_tf.custom_loop`. Both write the same run directory.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from vlanet_tf import custom_loop, training
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.run_dir import RunDir
from vlanet_tf.strategy import build_strategy
from vlanet_tf.validation import evaluate_split


def run_experiment(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Trains (or resumes) a VLANet and picks the best epoch on the val split.

    Args:
      model_config, train_config, run_config: the run; `model_config`'s vocabulary and
        feature sizes must match `run_config.data_dir`.
      strategy: defaults to `build_strategy(run_config.strategy)`.
      callbacks: more Keras callbacks, run after the run's own on every worker.

    Returns:
      {"history": per-epoch rows, "best": best.json contents or None, "model": the
      trained VLANet (last epoch's weights)}; on the workers of a multi-worker run that
      do not write model_dir, "history" is empty and "best" None.
    """
    # Built first: MultiWorkerMirroredStrategy configures the collective ops, which must
    # happen before TensorFlow initialises.
    strategy = strategy or build_strategy(run_config.strategy)
    if run_config.strategy == "multi_worker":
        return custom_loop.train(model_config, train_config, run_config, strategy, callbacks)
    return training.fit(model_config, train_config, run_config, strategy, callbacks)


def train_and_evaluate(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    split: str = "test",
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """`run_experiment`, then the best checkpoint ranked on `split`.

    Writes `model_dir/{split}_metrics.json` and returns its contents; a run whose
    metrics file exists is not trained again (so a grid of runs can be resumed).
    """
    run_dir = RunDir(run_config.model_dir)
    done = run_dir.read_metrics(split)
    if done is not None:
        return done
    run_dir.save_options(model_config, train_config, run_config)
    result = run_experiment(model_config, train_config, run_config, strategy)
    model = result["model"]
    model.load_weights(run_dir.best_weights_path)
    metrics, _, _, _ = evaluate_split(
        model,
        run_config.data_dir,
        split,
        top_k=run_config.eval_top_k,
        nms_threshold=run_config.nms_iou,
        max_query_length=run_config.max_query_length,
    )
    summary = {"best_epoch": result["best"]["epoch"], "metrics": metrics}
    run_dir.write_metrics(split, summary)
    keras.backend.clear_session()
    return summary
