"""One tiny trained run and its SavedModel, shared by the export and serving tests.

Training and exporting take most of these tests' time, so the first test that asks for
the run builds it and every later one (in any module) reuses it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests import data_testing

REPO = Path(__file__).resolve().parents[1]
_RUNS: dict[str, "ExportedRun"] = {}


@dataclasses.dataclass
class ExportedRun:
    release: Path  # synthetic release: features.h5, Charades_v1_test.csv, ...
    data_dir: Path
    model_dir: Path
    export_base: Path
    saved_model: Path  # export_base / "1"


def exported_run(tmp_path_factory, cascade_form: str = "project") -> ExportedRun:
    """Synthetic data -> 2 training steps -> export_base/1 (built once per session and
    `cascade_form`; the paper form's data holds a larger val split, for Fig. 4)."""
    key = "run" if cascade_form == "project" else f"run_{cascade_form}"
    if key in _RUNS:
        return _RUNS[key]
    from data_prep import build as build_lib
    from export import serving
    from vlanet_tf.config import ModelConfig, TrainConfig
    from vlanet_tf.config import RunConfig
    from vlanet_tf.data.prepared import data_properties
    from vlanet_tf.experiment import run_experiment
    from vlanet_tf.run_dir import RunDir

    root = tmp_path_factory.mktemp(f"exported_{key}")
    release, data_dir = root / "release", root / "data"
    data_testing.make_charades_release(release, num_videos=24, num_test=8)
    split = {} if cascade_form == "project" else {"val_fraction": 0.25}
    build_lib.build(data_testing.charades_options(release, data_dir, num_shards=1, **split))
    props = data_properties(str(data_dir))
    # The project form exports the configs' model options (a shared head, τ 0.3).
    configs_options = (
        {"share_similarity_head": True, "attention_temperature": 0.3}
        if cascade_form == "project"
        else {}
    )
    model_config = ModelConfig(
        vocab_size=props["vocab_size"],
        word_dim=props["word_dim"],
        feature_dim=props["feature_dim"],
        hidden_dim=16,
        cascade_form=cascade_form,
        **configs_options,
    )
    train_config = TrainConfig(batch_size=8, epochs=1)
    run_config = RunConfig(
        data_dir=str(data_dir),
        model_dir=str(root / "model"),
        strategy="one_device",
        steps_per_epoch=2,
        verbose=0,
    )
    RunDir(run_config.model_dir).save_options(model_config, train_config, run_config)
    run_experiment(model_config, train_config, run_config)
    export_base = root / "serve"
    path = serving.export_run(run_config.model_dir, str(export_base))
    _RUNS[key] = ExportedRun(
        release, data_dir, Path(run_config.model_dir), export_base, Path(path)
    )
    return _RUNS[key]


def durations(release: Path) -> dict[str, float]:
    """Video id -> seconds, from the synthetic release's test CSV."""
    with open(release / "Charades_v1_test.csv", encoding="utf-8") as f:
        return {row["id"]: float(row["length"]) for row in csv.DictReader(f)}


def random_video(num_clips: int, feature_dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(num_clips, feature_dim)).astype(np.float32)


def isolated_env() -> dict[str, str]:
    """The environment of a process that must not see this repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_module(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m ...` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_same_ranking(got: dict, want: dict, atol: float, where: str) -> None:
    """Two engines' ranked outputs agree: scores, counts and similarity within `atol`,
    and the moments rank by rank, except that moments whose reference scores tie
    (within `atol`) may come in either order: a converted graph rounds differently,
    and the tie rule then sees two different near-equal numbers."""
    want = {k: np.asarray(v) for k, v in want.items()}
    got = {k: np.asarray(v) for k, v in got.items()}
    np.testing.assert_array_equal(got["num_moments"], want["num_moments"], err_msg=where)
    for key in ("scores", "similarity"):
        np.testing.assert_allclose(got[key], want[key], atol=atol, err_msg=f"{where} {key}")
    for row in range(want["scores"].shape[0]):
        scores = want["scores"][row]
        start = 0
        while start < len(scores):
            end = start + 1
            while end < len(scores) and abs(scores[end] - scores[start]) <= atol:
                end += 1
            key = lambda m: (round(float(m[0]), 3), round(float(m[1]), 3))  # noqa: E731
            np.testing.assert_allclose(
                sorted(got["moments"][row, start:end].tolist(), key=key),
                sorted(want["moments"][row, start:end].tolist(), key=key),
                atol=atol,
                err_msg=f"{where} moments of ranks {start}..{end - 1}",
            )
            start = end
