"""Training library: strategy, model, optimizer, callbacks and `run_experiment`.

Library code: everything arrives as typed configs (`ModelConfig`, `TrainConfig`,
`RunConfig`); the `vlanet_tf.train` main turns flags into them.

What a run leaves in `model_dir`:
```
config.json                 written by the main: {model, train, run, data_dir, flags}
checkpoints/epoch-NNN.weights.h5   every epoch
best.weights.h5, best.json  the epoch with the best validation metric (R1@0.5 / R1)
history.csv                 one row per epoch: loss, pos_sim, neg_sim, val metrics, lr
similarity_curve.png        mean positive vs negative similarity per epoch (SPEC §10)
attention_map.png           latest attention map of the fixed val query (SPEC §10)
tensorboard/{train,validation}   scalars per epoch and the attention-map image
backup/                     resume state: BackupAndRestore files under Model.fit, a
                            tf.train.Checkpoint under the multi-worker loop
```
A run that is killed resumes from `backup/` at the start of the epoch it was in when it
is started again with the same command; rerunning a finished run trains no further.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import signal
import sys
from typing import Any, Iterable, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf

from vlanet_tf import metrics as metrics_lib
from vlanet_tf import spans
from vlanet_tf.config import ModelConfig, TrainConfig, load_json, save_json
from vlanet_tf.data import pipeline
from vlanet_tf.model import INPUT_KEYS, VLANet, video_keys

CONFIG_FILE = "config.json"
BEST_WEIGHTS = "best.weights.h5"
BEST_JSON = "best.json"
HISTORY_CSV = "history.csv"
SIMILARITY_CURVE = "similarity_curve.png"
ATTENTION_PNG = "attention_map.png"
BACKUP_DIR = "backup"
STRATEGIES = ("mirrored", "one_device", "multi_worker")

# Test hook: the process SIGKILLs itself after this many training steps in total (over
# every run sharing the model_dir), so the resume test sees a real kill mid-epoch.
KILL_AFTER_STEPS_ENV = "VLANET_TRAIN_KILL_AFTER_STEPS"


@dataclasses.dataclass
class RunConfig:
    """Where and how a run executes (not part of the method)."""

    data_dir: str
    model_dir: str
    strategy: str = "mirrored"
    steps_per_epoch: int | None = None
    deterministic: bool = False
    eval_top_k: int = 0  # 0: rank every valid proposal (DiDeMo's protocol needs all).
    max_query_length: int | None = None
    attention_example: int = 0
    verbose: int | str = "auto"  # Keras fit verbosity; "auto": bar on a tty.

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------- devices


def configure_cpu_devices(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices.

    Must run before TensorFlow initialises its devices (before the first op), which is
    why the mains call it right after parsing flags.
    """
    if num_devices <= 0:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def build_strategy(name: str) -> tf.distribute.Strategy:
    """mirrored: every local GPU, or every logical CPU device when there is no GPU."""
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only; between CPU devices reduce through one device.
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


# ---------------------------------------------------------------------- model, optimizer


def build_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    """The optimizer of TrainConfig with a linear warmup to `learning_rate`."""
    if config.warmup_steps > 0:
        # alpha=1 keeps the rate constant after the warmup: CosineDecay is only used
        # for its warmup, which core Keras offers nowhere else.
        learning_rate: Any = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0,
            decay_steps=1,
            alpha=1.0,
            warmup_target=config.learning_rate,
            warmup_steps=config.warmup_steps,
        )
    else:
        learning_rate = config.learning_rate
    # Gradient clipping is done by VLANet.train_step on the all-replica gradient.
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    raise ValueError(
        f"optimizer must be 'adamw', 'adam' or 'sgd', got {config.optimizer!r}"
    )


def build_model(
    model_config: ModelConfig,
    train_config: TrainConfig,
    word_vectors: np.ndarray | None = None,
    compile_model: bool = True,
) -> VLANet:
    """A VLANet with the data's word vectors, compiled when `compile_model`.

    Call under the strategy's scope so that variables are mirrored.
    """
    model = VLANet(
        model_config,
        margin=train_config.margin,
        num_negatives=train_config.num_negatives,
        gather_negatives=train_config.gather_negatives,
        clipnorm=train_config.clipnorm,
    )
    if word_vectors is not None:
        model.set_word_vectors(word_vectors)
    if compile_model:
        model.compile(optimizer=build_optimizer(train_config))
    return model


def load_trained_model(model_dir: str, weights: str = "best") -> VLANet:
    """The VLANet of a finished (or running) training run, for ranking.

    Args:
      model_dir: a run's directory (its config.json names the model).
      weights: "best" (best.weights.h5, falling back to the last epoch), "last", or a
        path to a .weights.h5 file.
    """
    config = load_json(os.path.join(model_dir, CONFIG_FILE))
    model = build_model(
        ModelConfig.from_dict(config["model"]),
        TrainConfig.from_dict(config["train"]),
        compile_model=False,
    )
    model.load_weights(weights_path(model_dir, weights))
    return model


def weights_path(model_dir: str, weights: str = "best") -> str:
    """The weights file `load_trained_model` reads (see there)."""
    if weights not in ("best", "last"):
        return weights
    best = os.path.join(model_dir, BEST_WEIGHTS)
    if weights == "best" and os.path.isfile(best):
        return best
    checkpoints = sorted(tf.io.gfile.glob(os.path.join(model_dir, "checkpoints", "*.h5")))
    if not checkpoints:
        raise ValueError(f"no weights in {model_dir!r}: expected {BEST_WEIGHTS} or checkpoints/")
    return checkpoints[-1]


# ---------------------------------------------------------------------------- ranking


def primary_metric(dataset_name: str) -> str:
    """The metric that picks the best checkpoint."""
    return "R1" if dataset_name == "didemo" else metrics_lib.recall_key(1, 0.5)


def score_predictions(dataset_name: str, predictions: Iterable[Mapping[str, Any]]) -> dict:
    """Metrics (percent) of `inference.predict_dataset` records carrying ground truth."""
    predictions = list(predictions)
    if not predictions:
        raise ValueError("no predictions to score: the split is empty")
    if dataset_name == "didemo":
        ranked, truth = {}, {}
        for p in predictions:
            moments = np.asarray(p["moments"], dtype=np.float64).reshape(-1, 3)
            s, e = spans.seconds_to_didemo_segments(moments[:, 0], moments[:, 1])
            ranked[p["query_id"]] = list(zip(s.tolist(), e.tolist()))
            gt = np.asarray(p["ground_truth"], dtype=np.float64).reshape(-1, 2)
            gs, ge = spans.seconds_to_didemo_segments(gt[:, 0], gt[:, 1])
            truth[p["query_id"]] = np.stack([gs, ge], axis=-1)
        return metrics_lib.didemo_metrics(ranked, truth)
    return metrics_lib.charades_recall(
        {p["query_id"]: np.asarray(p["moments"]).reshape(-1, 3) for p in predictions},
        {p["query_id"]: p["ground_truth"][0] for p in predictions},
        durations={p["query_id"]: p["duration"] for p in predictions},
    )


def evaluate_split(
    model: keras.Model,
    data_dir: str,
    split: str,
    dataset_name: str,
    batch_size: int = 64,
    top_k: int | None = None,
    max_query_length: int | None = None,
) -> dict:
    """Ranks every query of a prepared split and scores it (SPEC §8)."""
    from vlanet_tf.inference import predict_dataset

    dataset = pipeline.make_dataset(
        data_dir,
        split,
        batch_size,
        training=False,
        max_query_length=max_query_length,
    )
    return score_predictions(
        dataset_name, predict_dataset(model, dataset, top_k=top_k or None)
    )


def random_baseline(
    data_dir: str,
    split: str,
    model_config: ModelConfig,
    seeds: int = 5,
    dataset_name: str | None = None,
) -> dict:
    """The Random row on a prepared split with the model's proposal layout (SPEC §8)."""
    from vlanet_tf import evaluate

    name, queries = evaluate.ground_truth_from_data_dir(data_dir, split)
    kwargs: dict[str, Any] = {}
    if model_config.proposal_mode == "sliding":
        kwargs = {
            "fps": model_config.fps,
            "stride_frames": model_config.stride_frames,
            "window_frames": model_config.window_frames,
        }
    result, _ = evaluate.evaluate_baseline(
        "random", dataset_name or name, queries, seeds, **kwargs
    )
    return result


# --------------------------------------------------------------------------- pictures


def _figure_png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def render_attention_map(
    attention: np.ndarray,
    moments: np.ndarray,
    valid: np.ndarray,
    words: Sequence[str],
    title: str = "",
) -> bytes:
    """PNG of one query's attention map (SPEC §10): surrogates by time × words.

    Args:
      attention: [N, M] model output `attention_map` of one example.
      moments: [N, 2] each surrogate's (start, end) in seconds.
      valid: bool [N]; invalid surrogates are left out.
      words: the sentence's tokens (the first M are shown).
    """
    from matplotlib.figure import Figure

    rows = np.flatnonzero(np.asarray(valid, bool))
    rows = rows[np.argsort(moments[rows, 0], kind="stable")]
    m = min(len(words), attention.shape[1])
    image = attention[rows][:, :m]
    fig = Figure(figsize=(max(4.0, 0.6 * m + 2.0), max(3.0, 0.18 * len(rows) + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(image, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(m))
    ax.set_xticklabels(words[:m], rotation=45, ha="right")
    step = max(1, len(rows) // 20)
    ax.set_yticks(range(0, len(rows), step))
    ax.set_yticklabels(
        [f"{moments[r, 0]:.1f}-{moments[r, 1]:.1f}s" for r in rows[::step]], fontsize=7
    )
    ax.set_ylabel("surrogate (time)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax)
    fig.tight_layout()
    return _figure_png(fig)


def read_history(path: str) -> list[dict[str, float]]:
    """history.csv rows by epoch; a row rewritten after a resume replaces the old one."""
    if not os.path.isfile(path):
        return []
    rows: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v not in ("", None)}
            rows[int(values["epoch"])] = values
    return [rows[e] for e in sorted(rows)]


def plot_similarity_curve(history: Sequence[Mapping[str, float]], path: str) -> None:
    """The paper's figure: mean positive vs negative similarity per epoch."""
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) + 1 for r in history]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, [r["pos_sim"] for r in history], "o-", label="positive pairs")
    ax.plot(epochs, [r["neg_sim"] for r in history], "s-", label="negative pairs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean similarity c (eq. 13)")
    ax.set_ylim(-1.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with open(path, "wb") as f:
        f.write(_figure_png(fig))


# -------------------------------------------------------------------------- callbacks


class ValidationRanking(keras.callbacks.Callback):
    """Ranks the val split after every epoch and keeps the best weights.

    Adds `val_<metric>` to the epoch logs (so the TensorBoard callback placed after it
    writes them under `validation/`, and CSVLogger records them), writes
    `best.weights.h5` + `best.json` when the primary metric improves, and draws the
    attention map of one fixed val query to TensorBoard and `attention_map.png`.
    Resuming reads `best.json`, so a resumed run only replaces a better checkpoint.
    """

    def __init__(
        self,
        val_dataset: tf.data.Dataset,
        dataset_name: str,
        model_dir: str,
        top_k: int | None = None,
        attention_example: int = 0,
        log_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.val_dataset = val_dataset
        self.dataset_name = dataset_name
        self.model_dir = model_dir
        self.top_k = top_k or None
        self.metric = primary_metric(dataset_name)
        self.best: float | None = None
        self.attention_example = attention_example
        self._writer = tf.summary.create_file_writer(log_dir) if log_dir else None

    def on_train_begin(self, logs: dict | None = None) -> None:
        path = os.path.join(self.model_dir, BEST_JSON)
        if os.path.isfile(path):
            self.best = load_json(path)["metrics"][self.metric]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from vlanet_tf.inference import predict_dataset

        logs = logs if logs is not None else {}
        result = score_predictions(
            self.dataset_name,
            predict_dataset(self.model, self.val_dataset, top_k=self.top_k),
        )
        for key, value in result.items():
            logs[f"val_{key}"] = value
        print(
            f"epoch {epoch + 1} val: "
            + "  ".join(f"{k} {v:.2f}" for k, v in result.items()),
            flush=True,
        )
        if self.best is None or result[self.metric] > self.best:
            self.best = result[self.metric]
            self.model.save_weights(os.path.join(self.model_dir, BEST_WEIGHTS))
            save_json(
                os.path.join(self.model_dir, BEST_JSON),
                {"epoch": epoch + 1, "metric": self.metric, "metrics": result},
            )
        self._draw_attention(epoch)

    def _draw_attention(self, epoch: int) -> None:
        from vlanet_tf.text import words

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
        png = render_attention_map(
            out["attention_map"][index].numpy(),
            out["moments"][index].numpy(),
            out["valid"][index].numpy(),
            words(sentence),
            title=f"epoch {epoch + 1}: \"{sentence}\" (truth {truth[0]:.1f}-{truth[1]:.1f}s)",
        )
        with open(os.path.join(self.model_dir, ATTENTION_PNG), "wb") as f:
            f.write(png)
        if self._writer is not None:
            with self._writer.as_default():
                tf.summary.image(
                    "attention_map", tf.image.decode_png(png)[None], step=epoch
                )
            self._writer.flush()


class KillAfterSteps(keras.callbacks.Callback):
    """Test hook: SIGKILLs the process once `steps` training steps have run in total."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            os.kill(os.getpid(), signal.SIGKILL)


# -------------------------------------------------------------------------- experiment


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


def _split_size(manifest: Mapping[str, Any], split: str) -> int:
    return int(manifest.get("splits", {}).get(split, {}).get("sentences", 0))


def prepare_run(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy,
) -> tuple[dict[str, Any], Any, VLANet]:
    """Seeds the run, reads the data directory and builds the model under `strategy`.

    Returns:
      (manifest, vocabulary, model): the data's manifest.json and `Vocabulary`, and a
      compiled VLANet holding the data's word vectors.
    """
    os.makedirs(os.path.join(run_config.model_dir, "checkpoints"), exist_ok=True)
    keras.utils.set_random_seed(train_config.seed)
    if run_config.deterministic:
        tf.config.experimental.enable_op_determinism()
    manifest = pipeline.load_manifest(run_config.data_dir)
    vocabulary, word_vectors = pipeline.load_vocabulary(run_config.data_dir)
    if word_vectors.shape != (model_config.vocab_size, model_config.word_dim):
        raise ValueError(
            f"the model expects word vectors {(model_config.vocab_size, model_config.word_dim)}, "
            f"{run_config.data_dir!r} holds {word_vectors.shape}"
        )
    with strategy.scope():
        model = build_model(model_config, train_config, word_vectors)
    return manifest, vocabulary, model


def steps_per_epoch(
    manifest: Mapping[str, Any], train_config: TrainConfig, run_config: RunConfig
) -> int:
    """`run_config.steps_per_epoch`, or one pass: train sentences // global batch.

    The pipeline's length is unknown to tf.data (videos expand into sentences), so an
    epoch is counted in steps from the manifest over a repeated stream: the progress
    bar then shows the epoch's length and training never runs into the end of the data.
    """
    return run_config.steps_per_epoch or max(
        1, _split_size(manifest, "train") // train_config.batch_size
    )


def epoch_callbacks(
    manifest: Mapping[str, Any],
    vocabulary: Any,
    train_config: TrainConfig,
    run_config: RunConfig,
) -> list[keras.callbacks.Callback]:
    """What every epoch writes to model_dir: val ranking and the best weights,
    history.csv, checkpoints/epoch-NNN.weights.h5 and TensorBoard scalars."""
    model_dir = run_config.model_dir
    log_dir = os.path.join(model_dir, "tensorboard")
    callbacks: list[keras.callbacks.Callback] = []
    if _split_size(manifest, "val") > 0:
        val_dataset = pipeline.make_dataset(
            run_config.data_dir,
            "val",
            train_config.batch_size,
            training=False,
            vocabulary=vocabulary,
            max_query_length=run_config.max_query_length,
        )
        callbacks.append(
            ValidationRanking(
                val_dataset,
                manifest["dataset"],
                model_dir,
                top_k=run_config.eval_top_k,
                attention_example=run_config.attention_example,
                log_dir=os.path.join(log_dir, "validation"),
            )
        )
    else:
        print(f"warning: {run_config.data_dir} has no val split; best = last epoch")
    return callbacks + [
        keras.callbacks.CSVLogger(os.path.join(model_dir, HISTORY_CSV), append=True),
        keras.callbacks.ModelCheckpoint(
            os.path.join(model_dir, "checkpoints", "epoch-{epoch:03d}.weights.h5"),
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(log_dir, write_graph=False, profile_batch=0),
    ]


def kill_hooks() -> list[keras.callbacks.Callback]:
    """`KillAfterSteps` when the test hook's environment variable is set."""
    if os.environ.get(KILL_AFTER_STEPS_ENV):
        return [KillAfterSteps(int(os.environ[KILL_AFTER_STEPS_ENV]))]
    return []


def finish_run(model: VLANet, model_dir: str, epochs: int) -> dict[str, Any]:
    """Draws the similarity curve and, without a val split, makes the last epoch best.

    Returns `run_experiment`'s result.
    """
    history = read_history(os.path.join(model_dir, HISTORY_CSV))
    if history:
        plot_similarity_curve(history, os.path.join(model_dir, SIMILARITY_CURVE))
    best_path = os.path.join(model_dir, BEST_JSON)
    if not os.path.isfile(best_path):
        model.save_weights(os.path.join(model_dir, BEST_WEIGHTS))
        save_json(best_path, {"epoch": epochs, "metric": None, "metrics": {}})
    return {"history": history, "best": load_json(best_path), "model": model}


def run_experiment(
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Trains (or resumes) a VLANet and picks the best epoch on the val split.

    Args:
      model_config, train_config, run_config: the run; `model_config`'s vocabulary and
        feature sizes must match `run_config.data_dir`.
      strategy: defaults to `build_strategy(run_config.strategy)`.

    Returns:
      {"history": per-epoch rows, "best": best.json contents or None, "model": the
      trained VLANet (last epoch's weights)}.
    """
    if run_config.strategy == "multi_worker":
        # Model.fit fails under MultiWorkerMirroredStrategy in Keras 3.
        from vlanet_tf import custom_loop

        return custom_loop.run_experiment(model_config, train_config, run_config, strategy)
    strategy = strategy or build_strategy(run_config.strategy)
    manifest, vocabulary, model = prepare_run(
        model_config, train_config, run_config, strategy
    )
    train_dataset = training_dataset(
        run_config, train_config, vocabulary, train_config.batch_size
    )
    callbacks = epoch_callbacks(manifest, vocabulary, train_config, run_config) + [
        # Last, so that everything an epoch writes exists before it counts as done.
        # Kept after the run, so rerunning a finished command trains no more and a
        # larger --epochs continues from the last epoch.
        keras.callbacks.BackupAndRestore(
            os.path.join(run_config.model_dir, BACKUP_DIR), delete_checkpoint=False
        ),
    ]
    model.fit(
        train_dataset,
        epochs=train_config.epochs,
        steps_per_epoch=steps_per_epoch(manifest, train_config, run_config),
        callbacks=callbacks + kill_hooks(),
        verbose=fit_verbosity(run_config.verbose),
    )
    return finish_run(model, run_config.model_dir, train_config.epochs)


def save_run_config(
    model_dir: str,
    model_config: ModelConfig,
    train_config: TrainConfig,
    run_config: RunConfig,
    flag_values: Mapping[str, Any] | None = None,
) -> str:
    """Writes model_dir/config.json: what `load_trained_model` and evaluate reload."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_FILE)
    save_json(
        path,
        {
            "model": model_config.to_dict(),
            "train": train_config.to_dict(),
            "run": run_config.to_dict(),
            "data_dir": run_config.data_dir,
            "flags": dict(flag_values or {}),
        },
    )
    return path


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
    path = os.path.join(run_config.model_dir, f"{split}_metrics.json")
    if os.path.isfile(path):
        return load_json(path)
    save_run_config(run_config.model_dir, model_config, train_config, run_config)
    result = run_experiment(model_config, train_config, run_config, strategy)
    model = result["model"]
    model.load_weights(os.path.join(run_config.model_dir, BEST_WEIGHTS))
    dataset_name = pipeline.load_manifest(run_config.data_dir)["dataset"]
    metrics = evaluate_split(
        model,
        run_config.data_dir,
        split,
        dataset_name,
        batch_size=train_config.batch_size,
        top_k=run_config.eval_top_k,
        max_query_length=run_config.max_query_length,
    )
    summary = {"best_epoch": result["best"]["epoch"], "metrics": metrics}
    save_json(path, summary)
    keras.backend.clear_session()
    return summary
