"""run_experiment on a tiny dataset: what a run leaves in model_dir."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from vlanet_tf import training
from vlanet_tf.config import ModelConfig, TrainConfig, load_json
from vlanet_tf.flags import read_data_properties
from vlanet_tf.model import INPUT_KEYS
from tests import training_testing

EPOCHS = 2


def event_tags(directory: str) -> set[str]:
    tags = set()
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


class RunExperimentTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.data_dir = str(training_testing.make_data_dir(root))
        cls.model_dir = str(root / "model")
        properties = read_data_properties(cls.data_dir)
        cls.model_config = ModelConfig(
            vocab_size=properties["vocab_size"],
            word_dim=properties["word_dim"],
            feature_dim=properties["feature_dim"],
            hidden_dim=8,
        )
        cls.train_config = TrainConfig(batch_size=8, epochs=EPOCHS, learning_rate=0.01)
        cls.run_config = training.RunConfig(
            data_dir=cls.data_dir, model_dir=cls.model_dir, verbose=0
        )
        training.save_run_config(
            cls.model_dir, cls.model_config, cls.train_config, cls.run_config, {"x": 1}
        )
        cls.result = training.run_experiment(
            cls.model_config, cls.train_config, cls.run_config
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_config_json_holds_the_run(self):
        config = load_json(os.path.join(self.model_dir, training.CONFIG_FILE))
        self.assertEqual(ModelConfig.from_dict(config["model"]), self.model_config)
        self.assertEqual(TrainConfig.from_dict(config["train"]), self.train_config)
        self.assertEqual(config["data_dir"], self.data_dir)
        self.assertEqual(config["flags"], {"x": 1})

    def test_a_checkpoint_per_epoch_and_the_best_one(self):
        names = sorted(os.listdir(os.path.join(self.model_dir, "checkpoints")))
        self.assertEqual(names, [f"epoch-{e:03d}.weights.h5" for e in range(1, EPOCHS + 1)])
        self.assertTrue(os.path.isfile(os.path.join(self.model_dir, training.BEST_WEIGHTS)))
        best = load_json(os.path.join(self.model_dir, training.BEST_JSON))
        self.assertEqual(best["metric"], "R1@0.5")
        self.assertBetween(best["epoch"], 1, EPOCHS)
        history = self.result["history"]
        self.assertLen(history, EPOCHS)
        self.assertEqual(
            best["metrics"]["R1@0.5"], max(r["val_R1@0.5"] for r in history)
        )

    def test_history_and_pictures(self):
        history = self.result["history"]
        for row in history:
            for key in ("loss", "pos_sim", "neg_sim", "pos_beats_neg", "val_R1@0.5"):
                self.assertIn(key, row)
                self.assertTrue(np.isfinite(row[key]), key)
        for name in (training.SIMILARITY_CURVE, training.ATTENTION_PNG):
            with open(os.path.join(self.model_dir, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)

    def test_tensorboard_tags(self):
        log_dir = os.path.join(self.model_dir, "tensorboard")
        train_tags = event_tags(os.path.join(log_dir, "train"))
        for name in ("loss", "pos_sim", "neg_sim", "pos_beats_neg", "learning_rate"):
            self.assertIn(f"epoch_{name}", train_tags)
        val_tags = event_tags(os.path.join(log_dir, "validation"))
        for key in ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7"):
            self.assertIn(f"epoch_{key}", val_tags)
        self.assertIn("attention_map", val_tags)

    def test_best_checkpoint_reloads_for_ranking(self):
        restored = training.load_trained_model(self.model_dir)
        trained = self.result["model"]
        trained.load_weights(os.path.join(self.model_dir, training.BEST_WEIGHTS))
        from vlanet_tf.data import pipeline

        batch = next(iter(pipeline.make_dataset(self.data_dir, "test", 4, training=False)))
        inputs = {k: batch[k] for k in INPUT_KEYS}
        self.assertAllClose(
            restored(inputs)["similarity"], trained(inputs)["similarity"], atol=1e-6
        )
        metrics = training.evaluate_split(restored, self.data_dir, "test", "charades_sta")
        self.assertSetEqual(
            set(metrics), {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7"}
        )

    def test_rerunning_a_finished_run_trains_no_more(self):
        result = training.run_experiment(self.model_config, self.train_config, self.run_config)
        self.assertLen(result["history"], EPOCHS)
        self.assertLen(os.listdir(os.path.join(self.model_dir, "checkpoints")), EPOCHS)


class OptimizerTest(tf.test.TestCase):
    def test_warmup_reaches_the_learning_rate_and_stays(self):
        optimizer = training.build_optimizer(
            TrainConfig(learning_rate=0.1, warmup_steps=10, optimizer="adam")
        )
        schedule = optimizer._learning_rate
        self.assertAllClose(float(schedule(0)), 0.0)
        self.assertAllClose(float(schedule(5)), 0.05)
        self.assertAllClose(float(schedule(10)), 0.1)
        self.assertAllClose(float(schedule(1000)), 0.1)

    def test_clipping_is_left_to_the_model(self):
        self.assertIsNone(training.build_optimizer(TrainConfig(clipnorm=2)).clipnorm)

    def test_unknown_strategy_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "got 'tpu'"):
            training.RunConfig(data_dir="d", model_dir="m", strategy="tpu")


if __name__ == "__main__":
    tf.test.main()
