"""Training library: optimizer, model, input, the epoch callbacks and `Model.fit`.

Library code: everything arrives as typed configs (`ModelConfig`, `TrainConfig`,
`RunConfig`); the `vlanet_tf.train` main turns flags into them, and
`vlanet_tf.experiment.run_experiment` picks `fit` (here) or the multi-worker loop
(`vlanet_tf.custom_loop`). What a run leaves in model_dir is listed in
`vlanet_tf.run_dir`. A run that is killed resumes from `backup/` at the start of the
epoch it was in when it is started again with the same command (an unusable backup is
reported and the newest good epoch checkpoint used instead; with `--deterministic` the
input is skipped to where it stopped, so the weights end as an uninterrupted run's);
rerunning a finished run trains no further. A NaN or infinite loss or weight stops the
run (`callbacks.NonFiniteLoss`) before that epoch writes anything.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from vlanet_tf import plots
from vlanet_tf.callbacks import ResumableBackup, epoch_callbacks, stopped_early
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import pipeline, prepared
from vlanet_tf.model import INPUT_KEYS, VLANet, video_keys
from vlanet_tf.run_dir import RunDir
from vlanet_tf.validation import split_dataset


def build_optimizer(
    config: TrainConfig, total_steps: int | None = None
) -> keras.optimizers.Optimizer:
    """The optimizer of TrainConfig: a linear warmup to `learning_rate`, then the rate
    held (`lr_schedule="constant"`) or decayed to 0 along a half cosine that ends at
    `total_steps` (`"cosine"`, which needs them: epochs × steps per epoch)."""
    if config.lr_schedule == "cosine":
        if not total_steps or total_steps <= config.warmup_steps:
            raise ValueError(
                f"--lr_schedule=cosine decays over the steps after the warmup: needs "
                f"more than --warmup_steps={config.warmup_steps} steps in all, got "
                f"{total_steps}"
            )
        learning_rate: Any = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if config.warmup_steps else config.learning_rate,
            decay_steps=total_steps - config.warmup_steps,
            alpha=0.0,
            warmup_target=config.learning_rate if config.warmup_steps else None,
            warmup_steps=config.warmup_steps,
        )
    elif config.lr_schedule != "constant":
        raise ValueError(
            f"lr_schedule must be 'constant' or 'cosine', got {config.lr_schedule!r}"
        )
    elif config.warmup_steps > 0:
        # alpha=1 keeps the rate constant after the warmup: CosineDecay is only used
        # for its warmup, which core Keras offers nowhere else.
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=1,
            alpha=1.0,
            warmup_target=config.learning_rate,
            warmup_steps=config.warmup_steps,
        )
    else:
        learning_rate = config.learning_rate
    # Gradient clipping is done by VLANet.train_step on the all-replica gradient.
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1), got {config.ema_momentum}")
    # The moving average of the weights, updated by every `apply`; the epoch's writers
    # see it (`callbacks.SwapAveragedWeights`).
    ema: dict[str, Any] = (
        {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay, **ema)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate, **ema)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, **ema)
    raise ValueError(f"optimizer must be 'adamw', 'adam' or 'sgd', got {config.optimizer!r}")


def build_model(
    model_config: ModelConfig,
    train_config: TrainConfig,
    word_vectors: np.ndarray | None = None,
    compile_model: bool = True,
    jit_compile: bool = False,
    total_steps: int | None = None,
) -> VLANet:
    """A VLANet with the data's word vectors, compiled when `compile_model` (its
    train step XLA-compiled when `jit_compile`; `total_steps` for `build_optimizer`).

    Call under the strategy's scope so that variables are mirrored.
    """
    model = VLANet.from_configs(model_config, train_config)
    if word_vectors is not None:
        model.set_word_vectors(word_vectors)
    if compile_model:
        model.compile(
            optimizer=build_optimizer(train_config, total_steps), jit_compile=jit_compile
        )
    return model


def training_features(batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """What a training step reads: the model inputs and an int64 key per video.

    Strings are dropped because Keras, before the first distributed step, averages the
    first batch across replicas to build the model symbolically, and strings cannot be
    averaged.
    """
    features = {k: batch[k] for k in INPUT_KEYS}
    features["video_key"] = video_keys(batch["video_id"])
    return features


def training_dataset(
    run_config: RunConfig,
    train_config: TrainConfig,
    vocabulary: Any,
    batch_size: int,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """The repeated, shuffled train split as training steps read it.

    `batch_size` is per input pipeline: the global batch under `Model.fit`, a
    replica's or worker's share under `distribute_datasets_from_function`.
    """
    return pipeline.make_dataset(
        run_config.data_dir,
        "train",
        batch_size,
        training=True,
        vocabulary=vocabulary,
        deterministic=run_config.deterministic,
        seed=train_config.seed,
        repeat=True,
        max_query_length=run_config.max_query_length,
        input_context=input_context,
    ).map(training_features, num_parallel_calls=tf.data.AUTOTUNE)


def fit_verbosity(verbose: int | str) -> int:
    """Keras verbosity of `RunConfig.verbose`: "auto" shows a bar on a tty only."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


@dataclasses.dataclass
class PreparedRun:
    """What `prepare_run` reads and builds: the data's manifest and vocabulary, and
    the compiled model holding the data's word vectors."""

    manifest: dict[str, Any]
    vocabulary: Any
    model: VLANet
    run_dir: RunDir


def prepare_run(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy,
) -> PreparedRun:
    """Seeds the run, reads the data directory and builds the model under `strategy`."""
    run_dir = RunDir(run_config.model_dir)
    os.makedirs(run_dir.checkpoints_dir, exist_ok=True)
    keras.utils.set_random_seed(train_config.seed)
    if run_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    manifest = prepared.load_manifest(run_config.data_dir)
    vocabulary, word_vectors = prepared.load_vocabulary(run_config.data_dir)
    if word_vectors.shape != (model_config.vocab_size, model_config.word_dim):
        raise ValueError(
            f"the model expects word vectors {(model_config.vocab_size, model_config.word_dim)}, "
            f"{run_config.data_dir!r} holds {word_vectors.shape}"
        )
    total_steps = train_config.epochs * steps_per_epoch(manifest, train_config, run_config)
    with strategy.scope():
        model = build_model(
            model_config,
            train_config,
            word_vectors,
            jit_compile=run_config.jit_compile,
            total_steps=total_steps,
        )
    return PreparedRun(manifest, vocabulary, model, run_dir)


def steps_per_epoch(
    manifest: Mapping[str, Any], train_config: TrainConfig, run_config: RunConfig
) -> int:
    """`run_config.steps_per_epoch`, or one pass: train sentences // global batch.

    The pipeline's length is unknown to tf.data (videos expand into sentences), so an
    epoch is counted in steps from the manifest over a repeated stream: the progress
    bar then shows the epoch's length and training never runs into the end of the data.
    """
    return run_config.steps_per_epoch or max(
        1, prepared.split_size(manifest, "train") // train_config.batch_size
    )


def run_callbacks(
    run: PreparedRun, train_config: TrainConfig, run_config: RunConfig
) -> list[keras.callbacks.Callback]:
    """`callbacks.epoch_callbacks` for this run: the val split ranked when it exists."""
    val_dataset = None
    if prepared.split_size(run.manifest, "val") > 0:
        val_dataset = split_dataset(
            run_config.data_dir,
            "val",
            run_config.max_query_length,
            batch_size=train_config.batch_size,
            vocabulary=run.vocabulary,
        )
    return epoch_callbacks(
        run.run_dir,
        run_config.data_dir,
        val_dataset,
        top_k=run_config.eval_top_k,
        attention_example=run_config.attention_example,
        early_stopping_patience=train_config.early_stopping_patience,
        nms_iou=run_config.nms_iou,
        averaged_weights=train_config.ema_momentum > 0,
    )


def finish_run(model: VLANet, run_dir: RunDir, epochs: int) -> dict[str, Any]:
    """Draws the similarity curve and, without a val split, makes the last epoch best.

    Returns `run_experiment`'s result.
    """
    history = run_dir.read_history()
    if history:
        plots.plot_similarity_curve(history, run_dir.similarity_curve_path)
    if run_dir.read_best() is None:
        run_dir.save_best(model, epochs, None, {})
    return {"history": history, "best": run_dir.read_best(), "model": model}


def fit(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> dict[str, Any]:
    """Trains (or resumes) with `Model.fit`; `callbacks` run after the run's own."""
    run = prepare_run(model_config, train_config, run_config, strategy)
    # Last of the run's own, so that everything an epoch writes exists before it counts
    # as done.
    backup = ResumableBackup(run.run_dir, averaged_weights=train_config.ema_momentum > 0)
    backup.set_model(run.model)
    with strategy.scope():
        initial_epoch = backup.restore()
    steps = steps_per_epoch(run.manifest, train_config, run_config)
    train_dataset = training_dataset(run_config, train_config, run.vocabulary, train_config.batch_size)
    if run_config.deterministic and initial_epoch:
        # The resumed run reads the batches the uninterrupted one would have read, so
        # it ends with the same weights. Costs a read (not a training) of the epochs
        # done; without --deterministic the stream simply starts afresh.
        train_dataset = train_dataset.skip(initial_epoch * steps)
    own = run_callbacks(run, train_config, run_config) + [backup]
    if stopped_early(run.run_dir, train_config.early_stopping_patience, initial_epoch):
        print(f"{run_config.model_dir} stopped early after epoch {initial_epoch}; "
              "not training again", flush=True)
        return finish_run(run.model, run.run_dir, initial_epoch)
    try:
        run.model.fit(
            train_dataset,
            epochs=train_config.epochs,
            steps_per_epoch=steps,
            callbacks=own + list(callbacks),
            verbose=fit_verbosity(run_config.verbose),
        )
    except tf.errors.DataLossError as error:
        raise prepared.corrupted_record_error(run_config.data_dir, error) from error
    return finish_run(run.model, run.run_dir, train_config.epochs)
