"""run_experiment on a tiny dataset: what a run leaves in model_dir, and how evaluate,
export and predict reload it."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from tests import data_testing, training_testing
from vlanet_tf import experiment, files, training, validation
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared
from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.run_dir import RunDir

EPOCHS = 2
STRIDE_FRAMES = 16
MAX_QUERY_LENGTH = 3


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
        properties = prepared.data_properties(cls.data_dir)
        # A non-default stride and query length: evaluate, export and predict must take
        # them from the run directory without being told again.
        cls.model_config = ModelConfig(
            vocab_size=properties["vocab_size"],
            word_dim=properties["word_dim"],
            feature_dim=properties["feature_dim"],
            hidden_dim=8,
            stride_frames=STRIDE_FRAMES,
        )
        cls.train_config = TrainConfig(batch_size=8, epochs=EPOCHS, learning_rate=0.01)
        cls.run_config = RunConfig(
            data_dir=cls.data_dir,
            model_dir=cls.model_dir,
            verbose=0,
            max_query_length=MAX_QUERY_LENGTH,
        )
        cls.run_dir = RunDir(cls.model_dir)
        cls.run_dir.save_options(cls.model_config, cls.train_config, cls.run_config, {"x": 1})
        cls.result = experiment.run_experiment(
            cls.model_config, cls.train_config, cls.run_config
        )

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_config_json_holds_the_run(self):
        options = self.run_dir.load_options()
        self.assertEqual(options.model, self.model_config)
        self.assertEqual(options.train, self.train_config)
        self.assertEqual(options.run, self.run_config)
        self.assertEqual(options.flags, {"x": 1})
        overridden = self.run_dir.load_options(data_dir="elsewhere", max_query_length=9)
        self.assertEqual((overridden.run.data_dir, overridden.run.max_query_length), ("elsewhere", 9))

    def test_a_checkpoint_per_epoch_and_the_best_one(self):
        names = sorted(os.listdir(os.path.join(self.model_dir, "checkpoints")))
        self.assertEqual(names, [f"epoch-{e:03d}.weights.h5" for e in range(1, EPOCHS + 1)])
        self.assertTrue(os.path.isfile(self.run_dir.best_weights_path))
        best = self.run_dir.read_best()
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
        # The similarity curve is a 5 x 3.5 in figure at 100 dpi; the attention map has a
        # row per valid surrogate. Both must be drawn pictures, not blank canvases.
        curve = tf.image.decode_png(open(self.run_dir.similarity_curve_path, "rb").read())
        self.assertEqual(curve.shape[:2], (350, 500))
        attention = tf.image.decode_png(open(self.run_dir.attention_map_path, "rb").read())
        for name, image in (("curve", curve), ("attention", attention)):
            pixels = image.numpy().reshape(-1, image.shape[-1])
            self.assertGreater(len(np.unique(pixels, axis=0)), 20, name)

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
        restored = self.run_dir.load_model()
        trained = self.result["model"]
        trained.load_weights(self.run_dir.best_weights_path)
        from vlanet_tf.data import pipeline

        batch = next(iter(pipeline.make_dataset(self.data_dir, "test", 4, training=False)))
        inputs = {k: batch[k] for k in INPUT_KEYS}
        self.assertAllClose(
            restored(inputs)["similarity"], trained(inputs)["similarity"], atol=1e-6
        )
        metrics, _, _, _ = validation.evaluate_split(restored, self.data_dir, "test")
        self.assertSetEqual(
            set(metrics), {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7"}
        )

    def test_rerunning_a_finished_run_trains_no_more(self):
        result = experiment.run_experiment(self.model_config, self.train_config, self.run_config)
        self.assertLen(result["history"], EPOCHS)
        self.assertLen(os.listdir(os.path.join(self.model_dir, "checkpoints")), EPOCHS)


    def _main(self, module: str, *args: str) -> subprocess.CompletedProcess:
        run = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=training_testing.REPO,
            env=data_testing.env_with_repo_on_path(),
            capture_output=True,
            text=True,
            timeout=240,
        )
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        return run

    def test_validation_metrics_equal_the_evaluator_on_that_epochs_checkpoint(self):
        history = self.result["history"]
        for epoch in range(1, EPOCHS + 1):
            output = os.path.join(self.model_dir, f"evaluate-epoch-{epoch}.json")
            self._main(
                "vlanet_tf.evaluate",
                f"--model_dir={self.model_dir}",
                "--split=val",
                f"--checkpoint={self.run_dir.checkpoint_path(epoch)}",
                f"--output={output}",
            )
            reported = files.read_json(output)
            # (val_pos_sim, val_neg_sim, val_sim_gap are Fig. 4's points, not the evaluator's.)
            recorded = {
                k[len("val_"):]: v
                for k, v in history[epoch - 1].items()
                if k.startswith("val_") and k not in ("val_pos_sim", "val_neg_sim", "val_sim_gap")
            }
            self.assertEqual(recorded, reported, f"epoch {epoch}")
            # The epoch's predictions file scores to the same numbers too.
            scored = self._main(
                "vlanet_tf.evaluate",
                f"--predictions={self.run_dir.predictions_path('val', epoch)}",
                f"--data_dir={self.data_dir}",
                "--split=val",
                f"--output={output}",
            )
            self.assertEqual(files.read_json(output), reported, scored.stdout)

    def test_evaluate_export_and_predict_reload_the_runs_options(self):
        # Evaluate with nothing but the run: the model must see queries cut to 3 tokens
        # (an in-process ranking without the cut differs on this data) and stride 16.
        output = os.path.join(self.model_dir, "reloaded.json")
        self._main("vlanet_tf.evaluate", f"--model_dir={self.model_dir}", f"--output={output}")
        model = self.run_dir.load_model()
        expected, _, _, _ = validation.evaluate_split(
            model, self.data_dir, "test", max_query_length=MAX_QUERY_LENGTH
        )
        self.assertEqual(files.read_json(output), expected)
        export_base = os.path.join(self.model_dir, "exports")
        exported = self._main(
            "export.saved_model", f"--model_dir={self.model_dir}", f"--export_base={export_base}"
        ).stdout.strip().splitlines()[-1]
        info = json.load(open(os.path.join(exported, "assets.extra", "vlanet_export.json")))
        self.assertEqual(info["max_query_length"], MAX_QUERY_LENGTH)
        features = os.path.join(self.model_dir, "video.npy")
        np.save(features, np.random.default_rng(0).normal(size=(40, self.model_config.feature_dim)).astype("float32"))
        answer = self._main(
            "vlanet_tf.predict",
            f"--saved_model={exported}",
            f"--features={features}",
            "--duration=20",
            "--query=a b c d e f",
            "--top_k=5",
            "--json",
        )
        moments = np.asarray(json.loads(answer.stdout.strip().splitlines()[-1])["moments"])
        # Surrogates start on the run's grid: multiples of 16 frames at 24 fps.
        grid = moments[:, 0] / (STRIDE_FRAMES / 24.0)
        np.testing.assert_allclose(grid, np.round(grid), atol=1e-4)
        self.assertFalse(np.allclose(grid / 2, np.round(grid / 2)), "looks like stride 32")

    def test_evaluate_score_mix_reranks_the_trained_weights(self):
        # --score_mix changes no weight: evaluate applies it to the run's checkpoint.
        output = os.path.join(self.model_dir, "mixed.json")
        predictions_path = os.path.join(self.model_dir, "mixed.jsonl")
        self._main(
            "vlanet_tf.evaluate",
            f"--model_dir={self.model_dir}",
            "--score_mix=5",
            f"--output={output}",
            f"--output_predictions={predictions_path}",
        )
        options = self.run_dir.load_options()
        options = dataclasses.replace(
            options, model=dataclasses.replace(options.model, score_mix=5.0)
        )
        model = self.run_dir.load_model(options=options)
        expected, rankings, _, _ = validation.evaluate_split(
            model, self.data_dir, "test", max_query_length=MAX_QUERY_LENGTH
        )
        self.assertEqual(files.read_json(output), expected)
        written = [json.loads(line) for line in open(predictions_path)]
        plain, plain_rankings, _, _ = validation.evaluate_split(
            self.run_dir.load_model(), self.data_dir, "test", max_query_length=MAX_QUERY_LENGTH
        )
        first = lambda ranked: [tuple(np.ravel(r[0])) for r in ranked.values()]  # noqa: E731
        self.assertEqual(len(written), len(rankings))
        self.assertNotEqual(first(rankings), first(plain_rankings), "λ = 5 re-ranked nothing")


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
            RunConfig(data_dir="d", model_dir="m", strategy="tpu")


if __name__ == "__main__":
    tf.test.main()


def test_history_leaves_out_cells_keras_wrote_as_na(tmp_path):
    # CSVLogger writes "NA" for a key an epoch did not log, e.g. without a val split.
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_R1@0.5\n0,0.9,NA\n1,0.5,12.5\n", encoding="utf-8"
    )
    rows = RunDir(str(tmp_path)).read_history()
    assert rows == [{"epoch": 0.0, "loss": 0.9}, {"epoch": 1.0, "loss": 0.5, "val_R1@0.5": 12.5}]
