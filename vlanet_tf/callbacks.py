"""The Keras callbacks a training run writes its run directory with."""

from __future__ import annotations

import math
import os
from typing import Any

import keras
import tensorflow as tf

from vlanet_tf import files, plots
from vlanet_tf.evaluation import ground_truth, predictions, scoring
from vlanet_tf.inference import predict_dataset
from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.run_dir import RunDir
from vlanet_tf.text import words
from vlanet_tf.validation import score_records, similarity_curve_point


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss or weights; nothing of that epoch was
    saved."""


class StopOnNonFiniteLoss(keras.callbacks.TerminateOnNaN):
    """Raises `NonFiniteLoss` at the first NaN or infinite loss (batch or epoch).

    Placed before every writer of the run directory, so the epoch whose loss is not
    finite writes no checkpoint, no best weights and no backup: a rerun resumes from the
    last finite epoch. Keras' TerminateOnNaN only stops the fit, which then ends as if
    it had succeeded.
    """

    def _check(self, where: str, logs: dict | None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(
                f"training loss is {float(loss)} at {where}: stopped before saving it "
                "(lower --learning_rate, set --clipnorm, or check the data)"
            )

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._check(f"step {batch + 1} of the epoch", logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._check(f"the end of epoch {epoch + 1}", logs)
        # A step can turn the weights non-finite while its own loss still was finite.
        bad = [
            w.path
            for w in self.model.trainable_weights
            if not bool(tf.reduce_all(tf.math.is_finite(tf.cast(w.value, tf.float32))))
        ]
        if bad:
            raise NonFiniteLoss(
                f"{len(bad)} weights (e.g. {bad[0]}) hold NaN or infinite values at the end "
                f"of epoch {epoch + 1}: stopped before saving them (lower "
                "--learning_rate, set --clipnorm, or check the data)"
            )


class ValidationRanking(keras.callbacks.Callback):
    """Ranks the val split after every epoch and keeps the best weights.

    The epoch's rankings are written as a predictions file
    (`RunDir.predictions_path("val", epoch)`) and scored by the standalone evaluator
    (`vlanet_tf.evaluation`) — the code `python -m vlanet_tf.evaluate` uses — so the
    recorded metrics equal the evaluator's on that epoch's checkpoint.

    Adds `val_<metric>` to the epoch logs (so the TensorBoard callback placed after it
    writes them under `validation/`, and CSVLogger records them), and the paper's
    Fig. 4 points `val_pos_sim`, `val_neg_sim`, `val_sim_gap`: the mean c of the val
    split's positive pairs and of its fixed negative pairs
    (`validation.similarity_curve_point`) with this epoch's weights; writes
    `best.weights.h5` + `best.json` when the primary metric improves, and draws the
    attention map of one fixed val query to TensorBoard and `attention_map.png`.
    Resuming reads `best.json`, so a resumed run only replaces a better checkpoint.
    """

    def __init__(
        self,
        val_dataset: tf.data.Dataset,
        data_dir: str,
        run_dir: RunDir,
        top_k: int | None = None,
        attention_example: int = 0,
        nms_iou: float = 0.0,
    ) -> None:
        super().__init__()
        self.val_dataset = val_dataset
        self.nms_iou = nms_iou
        self.dataset_name, self.queries = ground_truth.from_shards(data_dir, "val")
        self.run_dir = run_dir
        self.top_k = top_k or None
        self.metric = scoring.primary_metric(self.dataset_name)
        self.best: float | None = None
        self.attention_example = attention_example
        self._writer = tf.summary.create_file_writer(
            os.path.join(run_dir.tensorboard_dir, "validation")
        )

    def on_train_begin(self, logs: dict | None = None) -> None:
        best = self.run_dir.read_best(verify=True)
        if best is not None and best.get("metric") == self.metric:
            self.best = best["metrics"][self.metric]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        records = list(
            predict_dataset(
                self.model, self.val_dataset, top_k=self.top_k or None,
                nms_threshold=self.nms_iou,
            )
        )
        result, rankings = score_records(records, self.dataset_name, self.queries, "val")
        predictions.write(self.run_dir.predictions_path("val", epoch + 1), self.queries, rankings)
        for key, value in result.items():
            logs[f"val_{key}"] = value
        # The ranking pass already gave each positive pair's c: only the negatives run.
        curve = similarity_curve_point(
            self.model, self.val_dataset, positive=[r["similarity"] for r in records]
        )
        for key, value in curve.items():
            logs[f"val_{key}"] = value
        print(
            f"epoch {epoch + 1} val: " + "  ".join(f"{k} {v:.2f}" for k, v in result.items()),
            flush=True,
        )
        if self.best is None or result[self.metric] > self.best:
            self.best = result[self.metric]
            self.run_dir.save_best(self.model, epoch + 1, self.metric, result)
        self._draw_attention(epoch)

    def _draw_attention(self, epoch: int) -> None:
        index = self.attention_example
        for batch in self.val_dataset:
            if index < int(tf.shape(batch["query_tokens"])[0]):
                break
            index -= int(tf.shape(batch["query_tokens"])[0])
        else:
            return
        out = self.model({k: batch[k] for k in INPUT_KEYS}, training=False)
        sentence = batch["sentence"][index].numpy().decode("utf-8")
        truth = batch["moments"][index, 0].numpy()
        png = plots.render_attention_map(
            out["attention_map"][index].numpy(),
            out["moments"][index].numpy(),
            # Only the surrogates received attention (DiDeMo ranks the other windows too).
            out["valid"][index].numpy() & out["surrogate"][index].numpy(),
            words(sentence),
            title=f"epoch {epoch + 1}: \"{sentence}\" (truth {truth[0]:.1f}-{truth[1]:.1f}s)",
        )
        files.write_bytes(self.run_dir.attention_map_path, png)
        with self._writer.as_default():
            tf.summary.image("attention_map", tf.image.decode_png(png)[None], step=epoch)
        self._writer.flush()


class StopWithoutImprovement(keras.callbacks.Callback):
    """Keras' EarlyStopping on the primary val metric that `ValidationRanking` logs
    (`val_<metric>`; "improves" means strictly greater, as for best.json), counting the
    epochs without improvement from the best epoch rather than in memory: it starts
    from best.json, so a resumed run stops where the uninterrupted one would have, and
    `stopped_early` tells a rerun of a stopped run not to train again."""

    def __init__(self, run_dir: RunDir, metric: str, patience: int) -> None:
        super().__init__()
        if patience < 1:
            raise ValueError(f"early stopping patience must be >= 1, got {patience}")
        self.run_dir = run_dir
        self.metric = metric
        self.patience = patience
        self.best: float | None = None
        self.best_epoch = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        best = self.run_dir.read_best()
        if best is not None and best.get("metric") == self.metric:
            self.best, self.best_epoch = best["metrics"][self.metric], int(best["epoch"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(f"val_{self.metric}")
        if value is None:
            return
        if self.best is None or value > self.best:
            self.best, self.best_epoch = value, epoch + 1
        elif epoch + 1 - self.best_epoch >= self.patience:
            print(
                f"early stopping after epoch {epoch + 1}: val {self.metric} has not "
                f"improved on epoch {self.best_epoch}'s {self.best:.2f} for "
                f"{self.patience} epochs",
                flush=True,
            )
            self.model.stop_training = True


def stopped_early(run_dir: RunDir, patience: int, epochs_done: int) -> bool:
    """Whether a run that has done `epochs_done` epochs had stopped early (best.json
    `patience` or more epochs back)."""
    best = run_dir.read_best() if patience > 0 else None
    return best is not None and best.get("metric") is not None and (
        epochs_done - int(best["epoch"]) >= patience
    )


def epoch_callbacks(
    run_dir: RunDir,
    data_dir: str,
    val_dataset: tf.data.Dataset | None,
    top_k: int | None = None,
    attention_example: int = 0,
    early_stopping_patience: int = 0,
    nms_iou: float = 0.0,
    averaged_weights: bool = False,
) -> list[Any]:
    """What every epoch writes to the run directory: val ranking and the best weights,
    history.csv, checkpoints/epoch-NNN.weights.h5 and TensorBoard scalars; with a
    patience, the early stop on the val metric. With `averaged_weights` (an optimizer
    with `use_ema`) all of them see the moving average of the weights
    (`SwapAveragedWeights`), and training goes on from the weights as trained."""
    # First: a non-finite epoch must reach none of the writers below.
    callbacks: list[keras.callbacks.Callback] = [StopOnNonFiniteLoss()]
    if averaged_weights:
        callbacks.append(SwapAveragedWeights())  # In: the writers below see the average.
    if val_dataset is not None:
        ranking = ValidationRanking(
            val_dataset, data_dir, run_dir, top_k, attention_example, nms_iou
        )
        callbacks.append(ranking)
        if early_stopping_patience > 0:
            callbacks.append(
                StopWithoutImprovement(run_dir, ranking.metric, early_stopping_patience)
            )
    else:
        print(f"warning: {data_dir} has no val split; best = last epoch")
        if early_stopping_patience > 0:
            print("warning: no val split to stop early on; training all epochs")
    callbacks += [
        keras.callbacks.CSVLogger(run_dir.history_path, append=True),
        EpochCheckpoint(run_dir),
        keras.callbacks.TensorBoard(run_dir.tensorboard_dir, write_graph=False, profile_batch=0),
    ]
    if averaged_weights:
        callbacks.append(SwapAveragedWeights())  # Out: training goes on as trained.
    return callbacks


class SwapAveragedWeights(keras.callbacks.Callback):
    """At every epoch's end, exchanges the model's weights with the optimizer's moving
    average of them (Polyak averaging, Keras' `use_ema`).

    `epoch_callbacks` places one before the writers and one after them: validation,
    the best and epoch checkpoints, history and TensorBoard see the average, and the
    backup (after the second) holds the weights as trained, with the average in the
    optimizer, so a resumed run goes on from both. An epoch checkpoint therefore holds
    the two exchanged (`ResumableBackup` exchanges them back when it resumes from one).
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        swap_averaged_weights(self.model)


def swap_averaged_weights(model: keras.Model) -> None:
    """Exchanges `model`'s trainable weights with its optimizer's moving average, by
    Keras' own swap (`keras.callbacks.SwapEMAWeights`, which swaps around `evaluate`
    and knows the strategy's replicas and a LossScaleOptimizer's inner optimizer)."""
    swapper = keras.callbacks.SwapEMAWeights()
    swapper.set_model(model)
    swapper._swap_variables()


class EpochCheckpoint(keras.callbacks.Callback):
    """checkpoints/epoch-NNN.weights.h5 after every epoch, written atomically (a kill
    during the write leaves the previous files as they were)."""

    def __init__(self, run_dir: RunDir) -> None:
        super().__init__()
        self.run_dir = run_dir

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.run_dir.save_weights(self.model, self.run_dir.checkpoint_path(epoch + 1))


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose state is written atomically and verified before use.

    backup/latest.weights.h5 is written atomically, then training_metadata.json (also
    atomically) with the epoch and the weights' SHA-256, so the metadata only ever
    names whole weights. `restore()` (called before the input is built) tries, newest
    first, the backup and every checkpoints/epoch-NNN.weights.h5 (they hold the
    optimizer state too); a state that is missing, truncated, unreadable or does not
    match its metadata is reported by path and the next older one is used. Kept after
    the run, so rerunning a finished command trains no more and a larger --epochs
    continues from the last epoch.
    """

    def __init__(self, run_dir: RunDir, averaged_weights: bool = False) -> None:
        super().__init__(run_dir.backup_dir, delete_checkpoint=False)
        self.run_dir = run_dir
        self.initial_epoch: int | None = None
        # Epoch checkpoints then hold the average as the model (`SwapAveragedWeights`).
        self.averaged_weights = averaged_weights

    def _candidates(self) -> list[tuple[int, str, str | None]]:
        """(epoch, weights path, expected sha256) of every saved state, newest first."""
        found: list[tuple[int, str, str | None]] = []
        if os.path.isfile(self._training_metadata_path):
            try:
                metadata = files.read_json(self._training_metadata_path)
                found.append(
                    (int(metadata["epoch"]), self._weights_path, metadata.get("weights_sha256"))
                )
            except (ValueError, KeyError, TypeError) as error:
                print(f"warning: {self._training_metadata_path}: unusable ({error}); ignored")
        for path in self.run_dir.checkpoints():
            name = os.path.basename(path)
            try:
                epoch = int(name.split("-")[1].split(".")[0])
            except (IndexError, ValueError):
                continue
            found.append((epoch, path, None))
        # The backup first among equal epochs: it is what the epoch finished with.
        return sorted(found, key=lambda c: (-c[0], c[1] != self._weights_path))

    def restore(self) -> int:
        """Loads the newest good state into the model; returns its epoch (0: none)."""
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        for epoch, path, sha256 in self._candidates():
            if sha256 is not None and (
                not os.path.isfile(path) or files.sha256(path) != sha256
            ):
                print(f"warning: {path} does not match {self._training_metadata_path}; "
                      "resuming from an older state", flush=True)
                continue
            try:
                self.run_dir.load_weights(self.model, path)
            except ValueError as error:
                print(f"warning: {error}; resuming from an older state", flush=True)
                continue
            if path != self._weights_path and self.averaged_weights:
                swap_averaged_weights(self.model)
            if path != self._weights_path or epoch:
                print(f"resuming after epoch {epoch} from {path}", flush=True)
            self.initial_epoch = epoch
            return epoch
        self.initial_epoch = 0
        return 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.initial_epoch is None:
            self.restore()
        self.model._initial_epoch = self.initial_epoch

    def _save_model(self) -> None:
        self.run_dir.save_weights(self.model, self._weights_path)
        files.write_json(
            self._training_metadata_path,
            {
                "epoch": self._current_epoch,
                "batch": self._last_batch_seen,
                "weights_sha256": files.sha256(self._weights_path),
            },
        )
        # The epoch is whole: the next run resumes after it.
        self.initial_epoch = self._current_epoch
