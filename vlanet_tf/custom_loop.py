"""Training with a `strategy.run` loop: multi-worker training on tf.distribute.

`Model.fit` under `MultiWorkerMirroredStrategy` fails in Keras 3 (keras-team/keras
#20585, #20329), so multi-worker runs train with this loop instead. It runs the same
computation as `fit`: each replica calls `VLANet.train_step` (the loss of eq. 14, its
gradients and `optimizer.apply`, which all-reduces the gradients), and the step's
metrics are averaged over replicas as `fit` does.

Every worker runs the same command. The run leaves in model_dir what `training.fit`
leaves (`vlanet_tf.run_dir`), written by the chief only (worker 0 unless the
cluster names a chief): checkpoints/epoch-NNN.weights.h5, best.weights.h5, best.json,
history.csv, the pictures and tensorboard/ (config.json comes from the train main,
the same on every worker). The state to resume from is a `tf.train.Checkpoint`
(weights, optimizer, finished epochs) in `backup/`; TensorFlow wants every worker to
take part in saving (it may run collective ops), so the other workers save to a
temporary directory that is then deleted. A run that is stopped, on any worker,
resumes from the last finished epoch when every worker is started again with the same
command; rerunning a finished run trains no further.

model_dir must be the same directory for every worker (a shared file system), since
every worker restores the chief's checkpoint when it starts.

Input: one pipeline per worker (`distribute_datasets_from_function`); the train files,
or the records when there are fewer files than pipelines, are sharded across pipelines,
so each worker reads its part of the data and its replicas take batches from it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import keras
import tensorflow as tf

from vlanet_tf import training
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.model import VLANet


def task_name(strategy: tf.distribute.Strategy) -> str:
    """This task as "<type>-<index>" from TF_CONFIG ("worker-1"); "worker-0" outside a
    cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "worker-0"
    return f"{resolver.task_type}-{resolver.task_id or 0}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes model_dir (always true on one machine)."""
    return bool(strategy.extended.should_checkpoint)


def distributed_train_dataset(
    strategy: tf.distribute.Strategy,
    vocabulary: Any,
    train_config: TrainConfig,
    run_config: RunConfig,
    per_replica_pipelines: bool = False,
) -> tf.distribute.DistributedDataset:
    """Training batches of `train_config.batch_size` in all, sharded per input pipeline.

    Args:
      per_replica_pipelines: one pipeline per replica instead of one per worker (only
        MirroredStrategy supports it): two replicas on one machine then read exactly
        the batches that two one-replica workers read.
    """

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        batch_size = context.get_per_replica_batch_size(train_config.batch_size)
        return training.training_dataset(
            run_config, train_config, vocabulary, batch_size, input_context=context
        )

    options = None
    if per_replica_pipelines:
        options = tf.distribute.InputOptions(
            experimental_replication_mode=tf.distribute.InputReplicationMode.PER_REPLICA
        )
    return strategy.distribute_datasets_from_function(dataset_fn, options)


def make_train_function(
    strategy: tf.distribute.Strategy, model: VLANet
) -> Callable[[Any], dict[str, tf.Tensor]]:
    """One step on every replica: `model.train_step`, metrics averaged over replicas.

    The average is the reduction `fit` applies to the step's logs. Every worker runs
    it, since reducing is a collective op.
    """

    @tf.function
    def train_function(iterator: Any) -> dict[str, tf.Tensor]:
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {
            name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
            for name, value in logs.items()
        }

    return train_function


class TrainState:
    """The state a run resumes from: weights, optimizer and finished epochs.

    Every worker restores the chief's latest checkpoint in `directory`; the chief saves
    there and the other workers save to a temporary directory that is then deleted.
    """

    def __init__(
        self, model: VLANet, directory: str, strategy: tf.distribute.Strategy
    ) -> None:
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch
        )
        self.directory = directory
        self.chief = is_chief(strategy)
        self.write_directory = (
            directory
            if self.chief
            else os.path.join(directory, f"temp-{task_name(strategy)}")
        )
        self._manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=1)

    def restore(self) -> str | None:
        """Restores the latest checkpoint; its path, or None when starting afresh."""
        return self._manager.restore_or_initialize()

    def save(self, epoch: int) -> None:
        """Records that `epoch` epochs are done; every worker must call it."""
        self.epoch.assign(epoch)
        if self.chief:
            self._manager.save(checkpoint_number=epoch)
            return
        manager = tf.train.CheckpointManager(
            self.checkpoint, self.write_directory, max_to_keep=1
        )
        manager.save(checkpoint_number=epoch)
        tf.io.gfile.rmtree(self.write_directory)


def train(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    per_replica_pipelines: bool = False,
) -> dict[str, Any]:
    """`training.fit` as a `strategy.run` loop (see the module docstring).

    Args:
      model_config, train_config, run_config: the run, as for `training.fit`;
        `train_config.batch_size` is the global batch over every replica of every
        worker.
      strategy: e.g. a MultiWorkerMirroredStrategy reading TF_CONFIG.
      callbacks: more Keras callbacks, run on every worker after the chief's own.
      per_replica_pipelines: see `distributed_train_dataset`.

    Returns:
      `training.fit`'s result on the chief; on the other workers "history" is empty
      and "best" None (they do not write model_dir).
    """
    if train_config.early_stopping_patience > 0:
        # Only the chief ranks the val split; every worker would have to stop with it.
        raise ValueError(
            "--early_stopping_patience is not supported by the multi-worker loop "
            "(--strategy=multi_worker); use mirrored or one_device"
        )
    chief = is_chief(strategy)
    run = training.prepare_run(model_config, train_config, run_config, strategy)
    model = run.model
    with strategy.scope():
        # Slots exist before the first step, so restoring fills them and the traced
        # step creates no variables.
        model.optimizer.build(model.trainable_variables)
    state = TrainState(model, run.run_dir.backup_dir, strategy)
    restored = state.restore()
    initial_epoch = int(state.epoch.numpy())
    if restored and chief:
        print(
            f"resuming from {restored}: {initial_epoch} epochs done, "
            f"step {int(model.optimizer.iterations.numpy())}",
            flush=True,
        )

    steps = training.steps_per_epoch(run.manifest, train_config, run_config)
    iterator = iter(
        distributed_train_dataset(
            strategy, run.vocabulary, train_config, run_config, per_replica_pipelines
        )
    )
    train_function = make_train_function(strategy, model)
    # Only the chief writes model_dir.
    callback_list = list(callbacks)
    if chief:
        callback_list = training.run_callbacks(run, train_config, run_config) + callback_list
    verbose = training.fit_verbosity(run_config.verbose) if chief else 0
    callback_list = keras.callbacks.CallbackList(
        callback_list,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=train_config.epochs,
        steps=steps,
    )

    callback_list.on_train_begin()
    logs: dict[str, float] = {}
    for epoch in range(initial_epoch, train_config.epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            logs = {k: float(v) for k, v in train_function(iterator).items()}
            callback_list.on_train_batch_end(step, logs)
        epoch_logs = dict(logs)
        callback_list.on_epoch_end(epoch, epoch_logs)
        # After the epoch's files, so that a resumed run never skips them.
        state.save(epoch + 1)
    callback_list.on_train_end(logs)
    # As Model.fit ends: the moving average of the weights, when kept, is the model.
    model.optimizer.finalize_variable_values(model.trainable_variables)

    if not chief:
        return {"history": [], "best": None, "model": model}
    return training.finish_run(model, run.run_dir, train_config.epochs)
