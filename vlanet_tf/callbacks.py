"""The Keras callbacks a training run writes its run directory with."""

from __future__ import annotations

import os
from typing import Any

import keras
import tensorflow as tf

from vlanet_tf import plots
from vlanet_tf.evaluation import ground_truth, predictions, scoring
from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.run_dir import RunDir
from vlanet_tf.text import words
from vlanet_tf.validation import score_model


class ValidationRanking(keras.callbacks.Callback):
    """Ranks the val split after every epoch and keeps the best weights.

    The epoch's rankings are written as a predictions file
    (`RunDir.predictions_path("val", epoch)`) and scored by the standalone evaluator
    (`vlanet_tf.evaluation`) — the code `python -m vlanet_tf.evaluate` uses — so the
    recorded metrics equal the evaluator's on that epoch's checkpoint.

    Adds `val_<metric>` to the epoch logs (so the TensorBoard callback placed after it
    writes them under `validation/`, and CSVLogger records them), writes
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
    ) -> None:
        super().__init__()
        self.val_dataset = val_dataset
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
        best = self.run_dir.read_best()
        if best is not None and best.get("metric") == self.metric:
            self.best = best["metrics"][self.metric]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        result, rankings = score_model(
            self.model, self.val_dataset, self.dataset_name, self.queries, self.top_k,
            source="val",
        )
        predictions.write(self.run_dir.predictions_path("val", epoch + 1), self.queries, rankings)
        for key, value in result.items():
            logs[f"val_{key}"] = value
        print(
            f"epoch {epoch + 1} val: " + "  ".join(f"{k} {v:.2f}" for k, v in result.items()),
            flush=True,
        )
        if self.best is None or result[self.metric] > self.best:
            self.best = result[self.metric]
            self.model.save_weights(self.run_dir.best_weights_path)
            self.run_dir.write_best(epoch + 1, self.metric, result)
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
            out["valid"][index].numpy(),
            words(sentence),
            title=f"epoch {epoch + 1}: \"{sentence}\" (truth {truth[0]:.1f}-{truth[1]:.1f}s)",
        )
        with open(self.run_dir.attention_map_path, "wb") as f:
            f.write(png)
        with self._writer.as_default():
            tf.summary.image("attention_map", tf.image.decode_png(png)[None], step=epoch)
        self._writer.flush()


def epoch_callbacks(
    run_dir: RunDir,
    data_dir: str,
    val_dataset: tf.data.Dataset | None,
    top_k: int | None = None,
    attention_example: int = 0,
) -> list[Any]:
    """What every epoch writes to the run directory: val ranking and the best weights,
    history.csv, checkpoints/epoch-NNN.weights.h5 and TensorBoard scalars."""
    callbacks: list[keras.callbacks.Callback] = []
    if val_dataset is not None:
        callbacks.append(
            ValidationRanking(val_dataset, data_dir, run_dir, top_k, attention_example)
        )
    else:
        print(f"warning: {data_dir} has no val split; best = last epoch")
    return callbacks + [
        keras.callbacks.CSVLogger(run_dir.history_path, append=True),
        keras.callbacks.ModelCheckpoint(run_dir.checkpoint_path(), save_weights_only=True),
        keras.callbacks.TensorBoard(run_dir.tensorboard_dir, write_graph=False, profile_batch=0),
    ]
