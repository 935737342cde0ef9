"""A briefly trained run on a synthetic release, shared by the search tests.

The release's test split is the collection: every sentence has its one annotated video
(the "planted" answer) and moment. Training takes most of these tests' time, so the
first test that asks builds it and the later ones reuse it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from data_prep import build as build_lib
from data_prep import synthesize

_RUNS: dict[str, "TrainedRun"] = {}
FEATURE_DIM = 32
WORD_DIM = 16


@dataclasses.dataclass
class TrainedRun:
    release: Path
    data_dir: Path
    model_dir: Path

    @property
    def features(self) -> Path:
        return self.release / "features.h5"

    @property
    def test_durations(self) -> Path:
        return self.release / "Charades_v1_test.csv"

    @property
    def test_annotations(self) -> Path:
        return self.release / "charades_sta_test.txt"


def trained_run(
    root: Path, num_videos: int = 160, num_test: int = 40, epochs: int = 4
) -> TrainedRun:
    """Synthetic release -> shards -> a short training run (built once per session)."""
    if "run" in _RUNS:
        return _RUNS["run"]
    from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
    from vlanet_tf.data.prepared import data_properties
    from vlanet_tf.experiment import run_experiment
    from vlanet_tf.run_dir import RunDir

    release, data_dir = root / "release", root / "data"
    synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=str(release),
            num_videos=num_videos,
            num_test_videos=num_test,
            feature_dim=FEATURE_DIM,
            word_dim=WORD_DIM,
            seed=0,
        )
    )
    build_lib.build(
        build_lib.BuildOptions(
            dataset="charades_sta",
            annotations_dir=str(release),
            features=str(release / "features.h5"),
            word_vectors=str(release / f"glove.synthetic.{WORD_DIM}d.txt"),
            output_dir=str(data_dir),
            num_shards=1,
        )
    )
    props = data_properties(str(data_dir))
    model_config = ModelConfig(
        vocab_size=props["vocab_size"],
        word_dim=props["word_dim"],
        feature_dim=props["feature_dim"],
        hidden_dim=32,
    )
    train_config = TrainConfig(batch_size=32, epochs=epochs, learning_rate=0.003)
    run_config = RunConfig(
        data_dir=str(data_dir),
        model_dir=str(root / "model"),
        strategy="one_device",
        deterministic=True,
        verbose=0,
    )
    RunDir(run_config.model_dir).save_options(model_config, train_config, run_config)
    run_experiment(model_config, train_config, run_config)
    _RUNS["run"] = TrainedRun(release, data_dir, Path(run_config.model_dir))
    return _RUNS["run"]
