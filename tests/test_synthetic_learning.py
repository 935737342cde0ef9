"""The full cascade learns on synthetic data: R1@0.5 at least twice the Random row.

SPEC §5 warns that a badly scaled cascade stays at the random baseline while the
ablations learn, so this checks the full model, and reports the model without
surrogate selection beside it.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf

from data_prep import build as build_lib
from data_prep import synthesize
from vlanet_tf import experiment
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared
from vlanet_tf.evaluation import baselines, ground_truth

NUM_VIDEOS = 300
NUM_TEST_VIDEOS = 60


def make_synthetic(root: Path) -> str:
    release = root / "release"
    synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=str(release),
            num_videos=NUM_VIDEOS,
            num_test_videos=NUM_TEST_VIDEOS,
            feature_dim=64,
            word_dim=50,
            seed=0,
        )
    )
    output = root / "data"
    build_lib.build(
        build_lib.BuildOptions(
            dataset="charades_sta",
            annotations_dir=str(release),
            features=str(release / "features.h5"),
            word_vectors=str(release / "glove.synthetic.50d.txt"),
            output_dir=str(output),
        )
    )
    return str(output)


class SyntheticLearningTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls.tmp.name)
        cls.data_dir = make_synthetic(cls.root)
        properties = prepared.data_properties(cls.data_dir)
        cls.model_config = ModelConfig(
            vocab_size=properties["vocab_size"],
            word_dim=properties["word_dim"],
            feature_dim=properties["feature_dim"],
            hidden_dim=64,
        )
        cls.train_config = TrainConfig(batch_size=32, epochs=5, learning_rate=0.003)
        dataset, queries = ground_truth.from_shards(cls.data_dir, "test")
        cls.random, _ = baselines.evaluate_baseline(
            "random", dataset, queries, cls.model_config.geometry
        )
        cls.full_metrics = None

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def train(self, name: str, model_config: ModelConfig) -> dict:
        run_config = RunConfig(
            data_dir=self.data_dir,
            model_dir=str(self.root / name),
            deterministic=True,
            verbose=0,
        )
        return experiment.train_and_evaluate(model_config, self.train_config, run_config)

    def report(self, rows: dict[str, dict]) -> None:
        print("\nsynthetic test split, R1@0.5 / R1@0.7 / R5@0.5:")
        for name, m in rows.items():
            print(f"  {name:<32} {m['R1@0.5']:6.2f} {m['R1@0.7']:6.2f} {m['R5@0.5']:6.2f}")

    def full(self) -> dict:
        """The full model's test metrics, trained once for the class."""
        if type(self).full_metrics is None:
            type(self).full_metrics = self.train("full", self.model_config)["metrics"]
        return type(self).full_metrics

    def test_full_cascade_beats_random_twice(self):
        full = self.full()
        self.report({"Random": self.random, "VLANet": full})
        self.assertGreaterEqual(full["R1@0.5"], 2 * self.random["R1@0.5"])

    # About 50 s: a second model trained for the ablation row.
    @pytest.mark.slow
    def test_without_surrogate_selection_reported_beside_it(self):
        full = self.full()
        ablated = self.train(
            "no_surrogate",
            dataclasses.replace(self.model_config, use_surrogate_selection=False),
        )["metrics"]
        self.report(
            {"Random": self.random, "VLANet": full, "w/o surrogate selection": ablated}
        )
        self.assertGreater(ablated["R1@0.5"], self.random["R1@0.5"])


if __name__ == "__main__":
    tf.test.main()
