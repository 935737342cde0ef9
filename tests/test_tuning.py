"""Tuning on validation (KerasTuner) and the HParams records of the tuner and the Table 3
grid: a real search on the tiny data, read back from the run directories and the event
files."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from tests import data_testing, training_testing
from vlanet_tf import tuning
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]


def hparams_sessions(root: Path) -> dict[str, dict]:
    """Every HParams session under `root`: folder name -> {"hparams", "metrics"}, read
    from the event files with TensorFlow's own summary reader."""
    sessions = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        hparams, metrics = {}, {}
        for events in folder.glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(events)):
                for value in event.summary.value:
                    plugin = value.metadata.plugin_data
                    if plugin.plugin_name == "hparams":
                        data = plugin_data_pb2.HParamsPluginData.FromString(plugin.content)
                        for name, v in data.session_start_info.hparams.items():
                            kind = v.WhichOneof("kind")
                            hparams[name] = getattr(v, kind)
                    else:
                        metrics[value.tag] = float(tf.make_ndarray(value.tensor))
        sessions[folder.name] = {"hparams": hparams, "metrics": metrics}
    return sessions


def run_main(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=300,
    )


class SearchSpaceTest(tf.test.TestCase):
    def test_values_parse_by_the_field_type(self):
        space = tuning.parse_space(
            [
                "learning_rate=3e-4,0.001",
                "cross_steps=1,3",
                "use_cross_attention=true,false",
                "window_frames=176-240,128-256",
                "optimizer=adam,sgd",
            ]
        )
        self.assertEqual(space["learning_rate"], [3e-4, 1e-3])
        self.assertEqual(space["cross_steps"], [1, 3])
        self.assertEqual(space["use_cross_attention"], [True, False])
        self.assertEqual(space["window_frames"], [(176, 240), (128, 256)])
        self.assertEqual(space["optimizer"], ["adam", "sgd"])

    def test_bad_entries_are_one_line_errors_naming_the_entry(self):
        for entry, fragment in [
            ("no_such_field=1,2", "no config field 'no_such_field'"),
            ("data_dir=a,b", "cannot be tuned"),
            ("learning_rate", "expected NAME=V1,V2"),
            ("cross_steps=one", "takes int values"),
            ("use_cross_attention=maybe", "takes true or false"),
        ]:
            with self.assertRaisesRegex(ValueError, fragment):
                tuning.parse_space([entry])
        with self.assertRaisesRegex(ValueError, "given twice"):
            tuning.parse_space(["margin=0.1", "margin=0.2"])
        with self.assertRaisesRegex(ValueError, "empty"):
            tuning.parse_space([])

    def test_overrides_reach_their_own_config(self):
        model, train, run = tuning.apply_overrides(
            ModelConfig(),
            TrainConfig(),
            RunConfig(data_dir="d", model_dir="m"),
            {"cross_steps": 1, "margin": 0.2, "eval_top_k": 3, "window_frames": "128-256"},
        )
        self.assertEqual(model.cross_steps, 1)
        self.assertEqual(model.window_frames, (128, 256))
        self.assertEqual(train.margin, 0.2)
        self.assertEqual(run.eval_top_k, 3)

    def test_best_flags_are_flagfile_lines(self):
        text = tuning.best_flags(
            {
                "trial_id": "1",
                "val": {"val_R1@0.5": 40.0},
                "values": {"use_cross_attention": False, "window_frames": "128-256", "margin": 0.2},
            }
        )
        self.assertEqual(
            text.splitlines()[1:],
            ["--nouse_cross_attention", "--window_frames=128,256", "--margin=0.2"],
        )


class TuneCliTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls._tmp.name)
        cls.data_dir = str(training_testing.make_data_dir(cls.root))

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def test_grid_search_on_val_picks_the_best_trial_and_resumes(self):
        tune_dir = self.root / "tune"
        args = [
            f"--data_dir={self.data_dir}",
            f"--tune_dir={tune_dir}",
            "--space=margin=0.1,0.5",
            "--epochs=2",
            "--steps_per_epoch=2",
            *training_testing.TINY_FLAGS,
        ]
        done = run_main("vlanet_tf.tune", *args)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertEqual(done.stdout.count("=== trial"), 2, done.stdout)

        # Each trial is its own run, trained with its value and scored on val.
        summary = json.loads((tune_dir / "best.json").read_text())
        self.assertEqual(summary["objective"], "val_R1@0.5")
        by_margin = {}
        for trial in summary["trials"]:
            run = tune_dir / "trials" / trial["trial_id"]
            config = json.loads((run / "config.json").read_text())
            self.assertEqual(config["train"]["margin"], trial["values"]["margin"])
            best = json.loads((run / "best.json").read_text())
            self.assertAlmostEqual(trial["val"]["val_R1@0.5"], best["metrics"]["R1@0.5"], 4)
            self.assertFalse((run / "test_metrics.json").exists())
            by_margin[trial["values"]["margin"]] = trial
        self.assertEqual(set(by_margin), {0.1, 0.5})
        winner = max(summary["trials"], key=lambda t: t["val"]["val_R1@0.5"])
        self.assertEqual(summary["best"]["trial_id"], winner["trial_id"])
        self.assertIn(f"--margin={winner['values']['margin']}", (tune_dir / "best.flags").read_text())

        # One HParams session per trial, holding its value and its validation metric.
        sessions = hparams_sessions(tune_dir / "hparams")
        self.assertLen(sessions, 2)
        for trial in summary["trials"]:
            session = sessions[trial["trial_id"]]
            self.assertAlmostEqual(session["hparams"]["margin"], trial["values"]["margin"], 6)
            self.assertAlmostEqual(
                session["metrics"]["val_R1@0.5"], trial["val"]["val_R1@0.5"], 4
            )

        # The same command again trains nothing and reports the same best trial.
        again = run_main("vlanet_tf.tune", *args)
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertNotIn("=== trial", again.stdout)
        self.assertEqual(json.loads((tune_dir / "best.json").read_text())["best"], summary["best"])

    def test_a_bad_space_is_one_line_before_any_training(self):
        done = run_main(
            "vlanet_tf.tune",
            f"--data_dir={self.data_dir}",
            f"--tune_dir={self.root / 'bad'}",
            "--space=cross_steps=0,1",
        )
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stderr.strip().splitlines()[-1], "error: cross_steps must be >= 1, got 0")
        self.assertFalse((self.root / "bad" / "trials").exists())

    @pytest.mark.slow
    def test_the_ablation_grid_writes_one_hparams_session_per_variant_and_table3s_order(self):
        grid_dir = self.root / "grid"
        done = run_main(
            "vlanet_tf.ablations",
            f"--data_dir={self.data_dir}",
            f"--model_dir={self.root / 'unused'}",
            f"--ablation_dir={grid_dir}",
            "--variants=stride8_w176-208-240,no_cross_attention,no_surrogate_selection",
            "--epochs=1",
            "--steps_per_epoch=2",
            *training_testing.TINY_FLAGS,
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        session = hparams_sessions(grid_dir / "hparams")["no_cross_attention"]
        self.assertIs(session["hparams"]["use_cross_attention"], False)
        self.assertIs(session["hparams"]["use_surrogate_selection"], True)
        test = json.loads((grid_dir / "no_cross_attention" / "test_metrics.json").read_text())
        self.assertAlmostEqual(
            session["metrics"]["test_R1@0.5"], test["metrics"]["R1@0.5"], 4
        )
        self.assertIn("val_R1@0.5", session["metrics"])
        # With the full model and both ablations in the grid, Table 3's order is printed
        # and written under the table, from the same test metrics.
        r1 = {
            name: json.loads((grid_dir / name / "test_metrics.json").read_text())["metrics"]["R1@0.5"]
            for name in ("stride8_w176-208-240", "no_cross_attention", "no_surrogate_selection")
        }
        order = next(x for x in done.stdout.splitlines() if x.startswith("Table 3's order"))
        self.assertIn(f"full model {r1['stride8_w176-208-240']:.2f} above w/o cross-attention "
                      f"{r1['no_cross_attention']:.2f}", order)
        self.assertIn(f"w/o surrogate selection {r1['no_surrogate_selection']:.2f} the lowest", order)
        self.assertIn(order, (grid_dir / "table3.md").read_text())


if __name__ == "__main__":
    tf.test.main()
