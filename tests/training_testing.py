"""A tiny prepared data directory and a train-CLI runner for the training tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from data_prep import build as build_lib
from tests import data_testing

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
