"""A tiny prepared data directory and a train-CLI runner for the training tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from data_prep import build as build_lib
from tests import data_testing
from vlanet_tf.config import ModelConfig
from vlanet_tf.data import prepared

REPO = Path(__file__).resolve().parents[1]
# Small enough that a CLI run (TF start-up included) takes seconds on two cores.
TINY_FLAGS = (
    "--hidden_dim=8",
    "--batch_size=8",
    "--learning_rate=0.01",
    "--clipnorm=0",
    "--deterministic",
)


def make_data_dir(directory: Path, num_videos: int = 24, num_test: int = 8) -> Path:
    """synthesize -> build with a val split large enough to hold a few videos."""
    release = directory / "release"
    data_testing.make_charades_release(release, num_videos=num_videos, num_test=num_test)
    output = directory / "data"
    build_lib.build(data_testing.charades_options(release, output, val_fraction=0.25))
    return output


def tiny_model_config(data_dir: str | Path, **options: Any) -> ModelConfig:
    """A hidden-8 ModelConfig sized to `data_dir`'s vocabulary and features."""
    properties = prepared.data_properties(str(data_dir))
    return ModelConfig(
        vocab_size=properties["vocab_size"],
        word_dim=properties["word_dim"],
        feature_dim=properties["feature_dim"],
        hidden_dim=8,
        **options,
    )


def run_train(args: Sequence[str], env: dict[str, str] | None = None, timeout: int = 240):
    """`python -m vlanet_tf.train ARGS` from the repo root; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "vlanet_tf.train", *args],
        cwd=REPO,
        env=env or data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_hooked_train(
    args: Sequence[str],
    kill_after_steps: int | None = None,
    final_weights_dir: str | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 240,
    **popen: Any,
):
    """`python -m tests.hooked_train`: the train main with the test callbacks injected.

    With `popen` (e.g. stdout=...), returns the running Popen instead of waiting.
    """
    command = [sys.executable, "-m", "tests.hooked_train", *args]
    if kill_after_steps is not None:
        command.append(f"--kill_after_steps={kill_after_steps}")
    if final_weights_dir is not None:
        command.append(f"--final_weights_dir={final_weights_dir}")
    env = env or data_testing.env_with_repo_on_path()
    if popen:
        return subprocess.Popen(command, cwd=REPO, env=env, **popen)
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


class KillAfterSteps(keras.callbacks.Callback):
    """SIGKILLs the process once `steps` training steps have run in total (over every
    run sharing the model_dir, since the optimizer's step count is restored)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)


def task_name() -> str:
    """This process's task in TF_CONFIG as "worker-1"; "worker-0" outside a cluster."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return f"{task.get('type', 'worker')}-{task.get('index', 0)}"


class DumpFinalWeights(keras.callbacks.Callback):
    """Writes every weight, the optimizer step and the last finished epoch to
    `directory/<task>.npz` when training ends, so replicas can be compared."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory
        self.epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch + 1

    def on_train_end(self, logs: dict | None = None) -> None:
        os.makedirs(self.directory, exist_ok=True)
        arrays = {f"weights/{w.path}": np.asarray(w.numpy()) for w in self.model.weights}
        arrays["iterations"] = np.asarray(int(self.model.optimizer.iterations.numpy()))
        arrays["epoch"] = np.asarray(self.epoch)
        np.savez(os.path.join(self.directory, f"{task_name()}.npz"), **arrays)
