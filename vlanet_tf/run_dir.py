"""The run directory: the one module that reads and writes a training run's files.

```
config.json                      {model, train, run, data_dir, flags}: the run's options
checkpoints/epoch-NNN.weights.h5 every epoch
best.weights.h5, best.json       the epoch with the best validation metric
history.csv                      one row per epoch: loss, similarities, val metrics, lr
predictions/{split}-epoch-NNN.jsonl  validation rankings of each epoch (predictions file)
{split}_metrics.json             a finished run's score on a split (grids)
similarity_curve.png             mean positive vs negative similarity per epoch
attention_map.png                latest attention map of the fixed val query
tensorboard/{train,validation}   scalars per epoch and the attention-map image
backup/                          resume state (BackupAndRestore, or a tf.train.Checkpoint
                                 under the multi-worker loop)
```
Train, evaluate, export and predict all go through `RunDir`, and a run's options (data
directory, query length, proposal geometry, the model) are reloaded from it; a value
given explicitly by the caller overrides the saved one. JSON is written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import os
from typing import Any, Mapping

from vlanet_tf import files
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig

CONFIG_FILE = "config.json"
BEST_WEIGHTS = "best.weights.h5"
BEST_JSON = "best.json"
HISTORY_CSV = "history.csv"
SIMILARITY_CURVE = "similarity_curve.png"
ATTENTION_PNG = "attention_map.png"
BACKUP_DIR = "backup"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
PREDICTIONS_DIR = "predictions"
CHECKPOINT_PATTERN = "epoch-{epoch:03d}.weights.h5"


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """A run's saved options, as typed configs."""

    model: ModelConfig
    train: TrainConfig
    run: RunConfig
    flags: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _data_extractor(data_dir: str | None) -> dict[str, Any] | None:
    from vlanet_tf.data import prepared

    if not data_dir or not os.path.isfile(os.path.join(data_dir, prepared.MANIFEST_FILE)):
        return None
    return prepared.load_manifest(data_dir).get("extractor")


class RunDir:
    """A training run's directory (layout in the module docstring)."""

    def __init__(self, path: str) -> None:
        if not path:
            raise ValueError("a run directory needs a path, got none")
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"RunDir({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config_path(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def best_weights_path(self) -> str:
        return self.file(BEST_WEIGHTS)

    @property
    def best_json_path(self) -> str:
        return self.file(BEST_JSON)

    @property
    def history_path(self) -> str:
        return self.file(HISTORY_CSV)

    @property
    def similarity_curve_path(self) -> str:
        return self.file(SIMILARITY_CURVE)

    @property
    def attention_map_path(self) -> str:
        return self.file(ATTENTION_PNG)

    @property
    def backup_dir(self) -> str:
        return self.file(BACKUP_DIR)

    @property
    def checkpoints_dir(self) -> str:
        return self.file(CHECKPOINTS_DIR)

    @property
    def tensorboard_dir(self) -> str:
        return self.file(TENSORBOARD_DIR)

    def checkpoint_path(self, epoch: int | None = None) -> str:
        """checkpoints/epoch-NNN.weights.h5 of a 1-based epoch; the Keras pattern if None."""
        if epoch is None:
            return os.path.join(self.checkpoints_dir, CHECKPOINT_PATTERN)
        return os.path.join(self.checkpoints_dir, CHECKPOINT_PATTERN.format(epoch=epoch))

    def predictions_path(self, split: str, epoch: int) -> str:
        """predictions/{split}-epoch-NNN.jsonl: a 1-based epoch's rankings of `split`."""
        return os.path.join(self.path, PREDICTIONS_DIR, f"{split}-epoch-{epoch:03d}.jsonl")

    def metrics_path(self, split: str) -> str:
        return self.file(f"{split}_metrics.json")

    # ---------------------------------------------------------------------- options

    def has_options(self) -> bool:
        return os.path.isfile(self.config_path)

    def save_options(
        self,
        model: ModelConfig,
        train: TrainConfig,
        run: RunConfig,
        flag_values: Mapping[str, Any] | None = None,
    ) -> str:
        """Writes config.json; returns its path."""
        os.makedirs(self.path, exist_ok=True)
        files.write_json(
            self.config_path,
            {
                "model": model.to_dict(),
                "train": train.to_dict(),
                "run": run.to_dict(),
                "data_dir": run.data_dir,
                "flags": dict(flag_values or {}),
                # How the training features were extracted (vlanet_tf.video; None if
                # the data directory does not say), so that predict can extract alike.
                "extractor": _data_extractor(run.data_dir),
            },
        )
        return self.config_path

    def load_options(
        self, data_dir: str | None = None, max_query_length: int | None = None
    ) -> RunOptions:
        """The run's options; `data_dir` and `max_query_length` override when given."""
        if not self.has_options():
            raise ValueError(
                f"{self.path!r} is not a training run: expected {CONFIG_FILE} there "
                "(written by python -m vlanet_tf.train)"
            )
        saved = files.read_json(self.config_path)
        try:
            run = dict(saved["run"])
            model = ModelConfig.from_dict(saved["model"])
            train = TrainConfig.from_dict(saved["train"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{self.config_path}: not a run configuration ({error})") from error
        run["model_dir"] = self.path
        if data_dir is not None:
            run["data_dir"] = data_dir
        if max_query_length is not None:
            run["max_query_length"] = max_query_length
        return RunOptions(model, train, RunConfig.from_dict(run), saved.get("flags", {}))

    def extractor(self) -> dict[str, Any] | None:
        """The feature extractor recorded at training time (None: unknown)."""
        if not self.has_options():
            return None
        return files.read_json(self.config_path).get("extractor")

    # ---------------------------------------------------------------------- weights

    def checkpoints(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.checkpoints_dir, "*.weights.h5")))

    def weights_path(self, which: str = "best") -> str:
        """The weights file of "best" (falling back to the last epoch), "last", or a path."""
        if which not in ("best", "last"):
            return which
        if which == "best" and os.path.isfile(self.best_weights_path):
            return self.best_weights_path
        checkpoints = self.checkpoints()
        if not checkpoints:
            raise ValueError(
                f"no weights in {self.path!r}: expected {BEST_WEIGHTS} or {CHECKPOINTS_DIR}/"
            )
        return checkpoints[-1]

    def load_model(self, which: str = "best", options: RunOptions | None = None) -> Any:
        """The run's VLANet with the weights of `which` (see `weights_path`), uncompiled."""
        from vlanet_tf.model import VLANet

        options = options or self.load_options()
        model = VLANet(
            options.model,
            margin=options.train.margin,
            num_negatives=options.train.num_negatives,
            gather_negatives=options.train.gather_negatives,
            clipnorm=options.train.clipnorm,
        )
        model.load_weights(self.weights_path(which))
        return model

    # ------------------------------------------------------------------ best, history

    def read_best(self) -> dict[str, Any] | None:
        if not os.path.isfile(self.best_json_path):
            return None
        return files.read_json(self.best_json_path)

    def write_best(self, epoch: int, metric: str | None, metrics: Mapping[str, float]) -> None:
        files.write_json(
            self.best_json_path, {"epoch": epoch, "metric": metric, "metrics": dict(metrics)}
        )

    def read_history(self) -> list[dict[str, float]]:
        """history.csv rows by epoch; a row rewritten after a resume replaces the old one."""
        if not os.path.isfile(self.history_path):
            return []
        rows: dict[int, dict[str, float]] = {}
        with open(self.history_path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                values = {k: float(v) for k, v in row.items() if v not in ("", None)}
                rows[int(values["epoch"])] = values
        return [rows[e] for e in sorted(rows)]

    def read_metrics(self, split: str) -> dict[str, Any] | None:
        path = self.metrics_path(split)
        return files.read_json(path) if os.path.isfile(path) else None

    def write_metrics(self, split: str, summary: Mapping[str, Any]) -> None:
        files.write_json(self.metrics_path(split), dict(summary))
