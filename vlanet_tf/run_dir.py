"""The run directory: the one module that reads and writes a training run's files.

```
config.json                      {model, train, run, data_dir, flags, fingerprint}: the
                                 run's options; the fingerprint (the model, the data's
                                 vocabulary hash, feature size and manifest hash) is
                                 checked on every rerun, evaluate and export
checkpoints/epoch-NNN.weights.h5 every epoch
best.weights.h5, best.json       the epoch with the best validation metric
history.csv                      one row per epoch: loss, similarities, val metrics, lr
predictions/{split}-epoch-NNN.jsonl  validation rankings of each epoch (predictions file)
{split}_metrics.json             a finished run's score on a split (grids)
similarity_curve.png             Fig. 4: mean c, val positive vs fixed negative pairs, by epoch
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
import hashlib
import json
import os
from typing import Any, Mapping

from vlanet_tf import files
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared

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

    def with_model(self, **changes: Any) -> "RunOptions":
        """These options with `changes` to the model config (fields that no weight
        depends on, such as `precision` or `score_mix`)."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))


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
        """Writes config.json; returns its path.

        A directory that already holds a run is first checked against `model` and
        `run.data_dir` (`check_rerun`): a mismatch raises before anything is written.
        """
        fingerprint = {"model": model.to_dict(), "data": data_fingerprint(run.data_dir)}
        self.check_rerun(fingerprint)
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
                "fingerprint": fingerprint,
            },
        )
        return self.config_path

    def saved_fingerprint(self) -> dict[str, Any] | None:
        if not self.has_options():
            return None
        saved = files.read_json(self.config_path)
        return saved.get("fingerprint") or {"model": saved.get("model", {}), "data": {}}

    def check_rerun(self, fingerprint: Mapping[str, Any]) -> None:
        """Raises one line naming every differing field when the directory holds a run
        of another model or another data directory (the epochs may differ)."""
        saved = self.saved_fingerprint()
        if saved is None:
            return
        differ = _differences(saved.get("model", {}), fingerprint["model"], "model.")
        differ += _differences(saved.get("data", {}), fingerprint["data"], "data.")
        if differ:
            raise ValueError(
                f"{self.path} holds a run of another experiment ({'; '.join(differ)}): "
                "refusing to resume or overwrite it; use another --model_dir"
            )

    def check_data(self, data_dir: str) -> None:
        """Raises one line when `data_dir`'s vocabulary or feature size is not the one
        the run was trained on (its rankings would silently change)."""
        saved = (self.saved_fingerprint() or {}).get("data", {})
        current = data_fingerprint(data_dir)
        differ = _differences(
            {k: saved[k] for k in DATA_MODEL_FIELDS if k in saved},
            {k: current[k] for k in DATA_MODEL_FIELDS},
            "data.",
        )
        if differ:
            raise ValueError(
                f"{data_dir} is not the data {self.path} was trained on "
                f"({'; '.join(differ)})"
            )

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
        if run.get("data_dir") and os.path.isdir(run["data_dir"]):
            self.check_data(run["data_dir"])
        if max_query_length is not None:
            run["max_query_length"] = max_query_length
        return RunOptions(model, train, RunConfig.from_dict(run), saved.get("flags", {}))

    def extractor(self) -> dict[str, Any] | None:
        """The feature extractor recorded at training time (None: unknown)."""
        if not self.has_options():
            return None
        return files.read_json(self.config_path).get("extractor")

    # ---------------------------------------------------------------------- weights

    @staticmethod
    def save_weights(model: Any, path: str) -> str:
        """`model.save_weights(path)` atomically: a kill leaves the old file or none."""
        with files.atomic_path(path) as tmp:
            model.save_weights(tmp, overwrite=True)
        return path

    @staticmethod
    def load_weights(model: Any, path: str) -> None:
        """`model.load_weights(path)`; an unreadable file is a ValueError naming it."""
        if not os.path.isfile(path):
            raise ValueError(f"{path}: no such weights file")
        try:
            model.load_weights(path)
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(
                f"{path}: unreadable weights ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})"
            ) from error

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

    def serving_parts(
        self, checkpoint: str = "best", options: RunOptions | None = None
    ) -> tuple[Any, str, int | None, str]:
        """What serving a run needs: (its VLANet, the vocab.txt of its data directory,
        the query length it was trained with, the weights file of `checkpoint`).

        The query length is the run's, else the data manifest's (as the pipeline does).
        """
        options = options or self.load_options()
        data_dir = options.run.data_dir
        vocab_path = os.path.join(data_dir, prepared.VOCAB_FILE)
        if not os.path.isfile(vocab_path):
            raise ValueError(
                f"expected the training vocabulary at {vocab_path!r}, found none; pass the "
                "prepared --data_dir the run was trained on"
            )
        max_query_length = options.run.max_query_length
        if max_query_length is None:
            max_query_length = prepared.load_manifest(data_dir).get("max_query_length")
        weights = self.weights_path(checkpoint)
        if not os.path.isfile(weights):
            raise ValueError(f"checkpoint {checkpoint!r} resolves to {weights!r}, which does not exist")
        return self.load_model(weights, options), vocab_path, max_query_length, weights

    def load_model(self, which: str = "best", options: RunOptions | None = None) -> Any:
        """The run's VLANet with the weights of `which` (see `weights_path`), uncompiled."""
        from vlanet_tf.model import VLANet

        options = options or self.load_options()
        model = VLANet.from_configs(options.model, options.train)
        self.load_weights(model, self.weights_path(which))
        return model

    # ------------------------------------------------------------------ best, history

    def read_best(self, verify: bool = False) -> dict[str, Any] | None:
        """best.json; with `verify`, None (and a warning naming the files) when it does
        not describe best.weights.h5 (a run killed between writing the two)."""
        if not os.path.isfile(self.best_json_path):
            return None
        best = files.read_json(self.best_json_path)
        if verify and best.get("weights_sha256") is not None:
            actual = (
                files.sha256(self.best_weights_path)
                if os.path.isfile(self.best_weights_path)
                else None
            )
            if actual != best["weights_sha256"]:
                print(
                    f"warning: {self.best_json_path} does not describe "
                    f"{self.best_weights_path} (interrupted write); the next epoch "
                    "replaces both"
                )
                return None
        return best

    def write_best(self, epoch: int, metric: str | None, metrics: Mapping[str, float]) -> None:
        best = {"epoch": epoch, "metric": metric, "metrics": dict(metrics)}
        if os.path.isfile(self.best_weights_path):
            best["weights_sha256"] = files.sha256(self.best_weights_path)
        files.write_json(self.best_json_path, best)

    def save_best(
        self, model: Any, epoch: int, metric: str | None, metrics: Mapping[str, float]
    ) -> None:
        """best.weights.h5, then best.json naming its hash (each written atomically)."""
        self.save_weights(model, self.best_weights_path)
        self.write_best(epoch, metric, metrics)

    def read_history(self) -> list[dict[str, float]]:
        """history.csv rows by epoch; a row rewritten after a resume replaces the old one.

        Keras' CSVLogger writes "NA" for a metric an epoch did not log (no val split);
        such cells are left out of the row.
        """
        if not os.path.isfile(self.history_path):
            return []
        rows: dict[int, dict[str, float]] = {}
        with open(self.history_path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                values = {k: float(v) for k, v in row.items() if v not in ("", "NA", None)}
                rows[int(values["epoch"])] = values
        return [rows[e] for e in sorted(rows)]

    def read_metrics(self, split: str) -> dict[str, Any] | None:
        path = self.metrics_path(split)
        return files.read_json(path) if os.path.isfile(path) else None

    def write_metrics(self, split: str, summary: Mapping[str, Any]) -> None:
        files.write_json(self.metrics_path(split), dict(summary))


# What of a data directory a trained model depends on; the manifest hash too on reruns.
DATA_MODEL_FIELDS = ("vocabulary_sha256", "vocab_size", "feature_dim", "dataset")


def data_fingerprint(data_dir: str) -> dict[str, Any]:
    """{vocabulary_sha256, vocab_size, feature_dim, dataset, manifest_sha256} of a
    prepared data directory (the manifest hash ignores where the directory lies)."""
    manifest = prepared.load_manifest(data_dir)
    placed = {k: v for k, v in manifest.items() if k != "flags"}
    placed["flags"] = {
        k: v for k, v in manifest.get("flags", {}).items() if k != "output_dir"
    }
    return {
        "vocabulary_sha256": files.sha256(os.path.join(data_dir, prepared.VOCAB_FILE)),
        "vocab_size": manifest.get("vocab_size"),
        "feature_dim": manifest.get("feature_dim"),
        "dataset": manifest.get("dataset"),
        "manifest_sha256": hashlib.sha256(
            json.dumps(placed, sort_keys=True).encode("utf-8")
        ).hexdigest(),
    }


def _differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str) -> list[str]:
    """"field (saved X, now Y)" for each key present in `saved` that differs."""
    out = []
    for key in sorted(saved):
        a, b = saved[key], current.get(key)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if a != b:
            if isinstance(a, str) and len(a) == 64:
                out.append(f"{prefix}{key} (saved {a[:12]}.., now {str(b)[:12]}..)")
            else:
                out.append(f"{prefix}{key} (saved {a!r}, now {b!r})")
    return out
