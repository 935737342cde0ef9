"""The shared flag definitions: coverage of the configs, flagfiles, overrides."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import parameterized

from vlanet_tf import flags as vflags
from vlanet_tf.config import ModelConfig, TrainConfig
from vlanet_tf.data import prepared

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = {"dataset": "charades_sta", "vocab_size": 61, "word_dim": 50, "feature_dim": 64}


class FlagsTest(tf.test.TestCase, parameterized.TestCase):
    def setUp(self):
        super().setUp()
        vflags.define_all_flags()
        self.flag_values = flags.FLAGS
        self.addCleanup(self.flag_values.unparse_flags)

    def parse(self, *args: str) -> flags.FlagValues:
        self.flag_values.unparse_flags()
        self.flag_values(["prog", *args])
        return self.flag_values

    def test_defining_twice_keeps_the_flags_and_their_values(self):
        before = {name: self.flag_values[name] for name in self.flag_values}
        values = self.parse("--hidden_dim=16")
        vflags.define_all_flags()
        vflags.define_data_flags()
        after = {name: self.flag_values[name] for name in self.flag_values}
        self.assertEqual(set(after), set(before))
        for name, flag in before.items():
            self.assertIs(after[name], flag, name)
        self.assertEqual(values.hidden_dim, 16)

    def test_every_config_field_has_a_flag_that_reaches_it(self):
        # Each flag given a non-default value must change exactly its own field.
        for config_cls, build in (
            (ModelConfig, lambda v: vflags.model_config_from_flags(v, DATA)),
            (TrainConfig, vflags.train_config_from_flags),
        ):
            default = build(self.parse())
            for field in dataclasses.fields(config_cls):
                if field.name in vflags.DATA_DERIVED_FIELDS:
                    continue
                self.assertIn(field.name, self.flag_values, f"{config_cls.__name__}.{field.name}")
                value = getattr(default, field.name)
                if isinstance(value, bool):
                    arg, expected = f"--{'no' if value else ''}{field.name}", not value
                elif field.name == "window_frames":
                    arg, expected = "--window_frames=96,128", (96, 128)
                elif field.name == "ema_momentum":  # In [0, 1).
                    arg, expected = "--ema_momentum=0.9", 0.9
                elif field.name in (
                    "proposal_mode", "optimizer", "vla_reduction", "precision", "cascade_form",
                    "negative_direction", "loss", "lr_schedule", "architecture",
                ):
                    choice = {
                        "cascade_form": "paper",
                        "proposal_mode": "didemo",
                        "optimizer": "sgd",
                        "vla_reduction": "sum",
                        "precision": "mixed_bfloat16",
                        "negative_direction": "both",
                        "loss": "infonce",
                        "lr_schedule": "cosine",
                        "architecture": "tga",
                    }
                    arg, expected = f"--{field.name}={choice[field.name]}", choice[field.name]
                elif isinstance(value, int):
                    arg, expected = f"--{field.name}={value + 3}", value + 3
                else:
                    arg, expected = f"--{field.name}={value * 2 + 1}", value * 2 + 1
                changed = build(self.parse(arg))
                self.assertEqual(getattr(changed, field.name), expected, arg)
                others = {
                    f.name: getattr(changed, f.name)
                    for f in dataclasses.fields(config_cls)
                    if f.name != field.name
                }
                want = {k: getattr(default, k) for k in others}
                self.assertEqual(others, want, arg)

    def test_defaults_reproduce_the_config_defaults(self):
        values = self.parse()
        model = vflags.model_config_from_flags(values, DATA)
        expected = dataclasses.replace(
            ModelConfig(), vocab_size=61, word_dim=50, feature_dim=64
        )
        self.assertEqual(model, expected)
        self.assertEqual(vflags.train_config_from_flags(values), TrainConfig())

    @parameterized.parameters("charades", "didemo", "synthetic")
    def test_flagfiles_parse(self, name):
        path = os.path.join(REPO, "configs", f"{name}.flags")
        values = self.parse(f"--flagfile={path}")
        dataset = "didemo" if name == "didemo" else "charades_sta"
        model = vflags.model_config_from_flags(values, {**DATA, "dataset": dataset})
        self.assertEqual(model.proposal_mode, "didemo" if name == "didemo" else "sliding")
        self.assertTrue(values.gather_negatives)
        vflags.run_config_from_flags(values)

    def test_i3d_flagfile_takes_i3d_data_and_refuses_c3d_data(self):
        path = os.path.join(REPO, "configs", "charades_i3d.flags")
        values = self.parse(f"--flagfile={path}")
        model = vflags.model_config_from_flags(values, {**DATA, "feature_dim": 1024})
        self.assertEqual(model.feature_dim, 1024)
        # The same proposals as configs/charades.flags (C3D): one I3D row per stride.
        c3d = self.parse(f"--flagfile={os.path.join(REPO, 'configs', 'charades.flags')}")
        c3d_model = vflags.model_config_from_flags(c3d, {**DATA, "feature_dim": 4096})
        self.assertEqual(
            (model.fps, model.stride_frames, model.window_frames),
            (c3d_model.fps, c3d_model.stride_frames, c3d_model.window_frames),
        )
        self.assertEqual(model.stride_frames / model.fps, 8 / 24)
        values = self.parse(f"--flagfile={path}", "--data_dir=/data/c3d")
        with self.assertRaisesRegex(ValueError, r"--expect_feature_dim=1024.*/data/c3d.*4096-d"):
            vflags.model_config_from_flags(values, {**DATA, "feature_dim": 4096})
        values = self.parse(f"--flagfile={path}", "--expect_feature_dim=0")
        self.assertEqual(
            vflags.model_config_from_flags(values, {**DATA, "feature_dim": 4096}).feature_dim,
            4096,
        )

    def test_command_line_overrides_the_flagfile(self):
        path = os.path.join(REPO, "configs", "synthetic.flags")
        values = self.parse(
            f"--flagfile={path}",
            "--hidden_dim=16",
            "--window_frames=128,256",
            "--nouse_surrogate_selection",
            "--epochs=1",
        )
        model = vflags.model_config_from_flags(values, DATA)
        self.assertEqual(model.hidden_dim, 16)
        self.assertEqual(model.window_frames, (128, 256))
        self.assertFalse(model.use_surrogate_selection)
        self.assertEqual(vflags.train_config_from_flags(values).epochs, 1)

    def test_proposal_mode_follows_the_dataset_unless_given(self):
        values = self.parse()
        didemo = {**DATA, "dataset": "didemo"}
        self.assertEqual(vflags.model_config_from_flags(values, didemo).proposal_mode, "didemo")
        values = self.parse("--proposal_mode=sliding")
        self.assertEqual(vflags.model_config_from_flags(values, didemo).proposal_mode, "sliding")

    def test_missing_data_dir_is_an_error(self):
        values = self.parse()
        with self.assertRaisesRegex(ValueError, "--data_dir"):
            vflags.model_config_from_flags(values)
        values = self.parse("--data_dir=/nonexistent")
        with self.assertRaisesRegex(ValueError, "manifest.json"):
            vflags.model_config_from_flags(values)

    def test_flag_dict_holds_this_modules_flags_only(self):
        values = self.parse("--hidden_dim=16")
        saved = vflags.flag_dict(values)
        self.assertEqual(saved["hidden_dim"], 16)
        self.assertIn("data_dir", saved)
        self.assertNotIn("flagfile", saved)


if __name__ == "__main__":
    tf.test.main()


MAIN_FLAG_DEFINITIONS = {
    "vlanet_tf.train": "from vlanet_tf import flags as f; f.define_all_flags()",
    "vlanet_tf.evaluate": "from vlanet_tf import evaluate; evaluate.define_flags()",
    "vlanet_tf.demo": "from vlanet_tf import demo, flags as f; f.define_all_flags(); demo.define_demo_flags()",
    "vlanet_tf.ablations": (
        "from vlanet_tf import ablations, flags as f; f.define_all_flags(); "
        "ablations.define_ablation_flags()"
    ),
    "vlanet_tf.tune": (
        "from vlanet_tf import tune, flags as f; f.define_all_flags(); tune.define_tune_flags()"
    ),
    "export.saved_model": "from export import saved_model; saved_model.define_flags()",
}


# The training flagfiles of Charades-STA: the paper's C3D features and the I3D ones.
TRAINING_FLAGFILES = ("charades", "charades_i3d")


@pytest.mark.parametrize("main", sorted(MAIN_FLAG_DEFINITIONS))
def test_every_main_accepts_the_training_flagfile(main, flagfiles=TRAINING_FLAGFILES):
    """Each main on its own (a fresh process) parses the same flagfiles as train (one
    after the other, so TensorFlow is imported once)."""
    script = (
        f"{MAIN_FLAG_DEFINITIONS[main]}\n"
        "from absl import flags\n"
        f"for name in {list(flagfiles)!r}:\n"
        "    flags.FLAGS.unparse_flags()\n"
        f"    flags.FLAGS(['{main}', f'--flagfile=configs/{{name}}.flags'])\n"
        "    print(flags.FLAGS.data_dir)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    data_dirs = {"charades": "data/charades_sta", "charades_i3d": "data/charades_sta_i3d"}
    assert run.stdout.split() == [data_dirs[name] for name in flagfiles]


class FlagfileInEveryModeTest(tf.test.TestCase):
    """Each main runs with `--flagfile=configs/charades.flags` in each of its modes.

    The flagfile names --data_dir and --model_dir of a real run; flags after it point
    them at a tiny prepared directory, as a user with their own paths would.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from tests import training_testing

        cls.tmp = tempfile.TemporaryDirectory()
        root = Path(cls.tmp.name)
        cls.data_dir = str(training_testing.make_data_dir(root))
        cls.model_dir = str(root / "run")
        cls.root = root

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def main(self, module: str, *args: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", module, "--flagfile=configs/charades.flags", *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO},
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(run.returncode, 0, f"{module} {args}: {run.stderr[-3000:]}")
        return run.stdout

    def test_train_evaluate_export_predict(self):
        data = f"--data_dir={self.data_dir}"
        self.main(
            "vlanet_tf.train", data, f"--model_dir={self.model_dir}", "--epochs=1",
            "--steps_per_epoch=1", "--batch_size=8", "--warmup_steps=0", "--hidden_dim=8",
        )
        predictions = str(self.root / "random.jsonl")
        # --baseline and --predictions take precedence over the flagfile's --model_dir.
        self.assertIn("random baseline", self.main(
            "vlanet_tf.evaluate", data, "--baseline=random", "--split=test",
            f"--output_predictions={predictions}",
        ))
        self.assertIn("random.jsonl", self.main(
            "vlanet_tf.evaluate", data, f"--predictions={predictions}", "--split=test"
        ))
        self.assertIn(self.model_dir, self.main(
            "vlanet_tf.evaluate", data, f"--model_dir={self.model_dir}", "--split=test"
        ))
        export_base = str(self.root / "exports")
        exported = self.main(
            "export.saved_model", data, f"--model_dir={self.model_dir}",
            f"--export_base={export_base}",
        ).strip().splitlines()[-1]
        features = str(self.root / "video.npy")
        feature_dim = prepared.data_properties(self.data_dir)["feature_dim"]
        np.save(features, np.ones((30, feature_dim), np.float32))
        self.assertIn("rank", self.main(
            "vlanet_tf.predict", f"--saved_model={exported}", f"--features={features}",
            "--duration=15", "--query=a person opens a door",
        ))


class RecipeFlagfilesTest(tf.test.TestCase, parameterized.TestCase):
    """configs/{charades,didemo}_paper.flags carry the paper's recipe (eq. 14: one
    negative sentence of another video per positive, the margin hinge, no NMS); the
    default flagfiles differ from them only in the options chosen on validation."""

    # The fields each default flagfile changes, and their values (README,
    # "Validation-chosen defaults").
    _BOTH = {
        "train.loss": "infonce", "train.num_negatives": 4, "train.lr_schedule": "cosine",
        "model.share_similarity_head": True, "model.attention_temperature": 0.3,
    }
    CHOSEN = {
        "charades": {**_BOTH, "run.nms_iou": 0.3, "model.min_window_fraction": 0.5},
        "didemo": _BOTH,
    }
    # What charades_i3d.flags changes against the Charades-STA files: its data only.
    I3D_DATA = {"run.data_dir": ("data/charades_sta", "data/charades_sta_i3d")}

    def setUp(self):
        super().setUp()
        vflags.define_all_flags()
        self.addCleanup(flags.FLAGS.unparse_flags)

    def configs(self, name: str, *extra: str, **data: Any) -> dict:
        values = flags.FLAGS
        values.unparse_flags()
        flagfile = os.path.join(REPO, "configs", name + ".flags")
        values(["prog", f"--flagfile={flagfile}", *extra])
        dataset = "didemo" if name.startswith("didemo") else "charades_sta"
        model = vflags.model_config_from_flags(values, {**DATA, "dataset": dataset, **data})
        train = vflags.train_config_from_flags(values)
        run = vflags.run_config_from_flags(values)
        fields = {f"model.{k}": v for k, v in dataclasses.asdict(model).items()}
        fields.update({f"train.{k}": v for k, v in dataclasses.asdict(train).items()})
        fields.update(
            {f"run.{k}": v for k, v in dataclasses.asdict(run).items() if k != "model_dir"}
        )
        return fields

    @parameterized.parameters("charades", "didemo")
    def test_paper_flagfile_is_the_paper_recipe(self, name):
        paper = self.configs(f"{name}_paper")
        self.assertEqual(paper["train.negative_direction"], "sentence")
        self.assertEqual(paper["train.num_negatives"], 1)
        self.assertEqual(paper["train.loss"], "hinge")
        self.assertEqual(paper["train.margin"], 0.5)
        self.assertEqual(paper["run.nms_iou"], 0.0)
        self.assertEqual(paper["train.lr_schedule"], "constant")
        self.assertTrue(paper["model.use_surrogate_selection"])
        self.assertTrue(paper["model.use_cross_attention"])

    def test_i3d_flagfile_differs_from_charades_only_in_its_data(self):
        c3d = self.configs("charades", feature_dim=1024)
        i3d = self.configs("charades_i3d", feature_dim=1024)
        differences = {k: (c3d[k], i3d[k]) for k in c3d if c3d[k] != i3d[k]}
        # (--expect_feature_dim is checked against the data, not kept in a config.)
        self.assertEqual(differences, self.I3D_DATA)

    def test_i3d_flagfile_with_the_documented_flags_is_the_paper_recipe(self):
        # The flags charades_i3d.flags and the README give for the paper's recipe.
        paper_flags = (
            "--loss=hinge", "--num_negatives=1", "--lr_schedule=constant", "--nms_iou=0",
            "--noshare_similarity_head", "--attention_temperature=1",
            "--min_window_fraction=0",
        )
        paper = self.configs("charades_paper", feature_dim=1024)
        i3d = self.configs("charades_i3d", *paper_flags, feature_dim=1024)
        differences = {k: (paper[k], i3d[k]) for k in paper if paper[k] != i3d[k]}
        self.assertEqual(differences, self.I3D_DATA)

    @parameterized.parameters("charades", "didemo")
    def test_default_flagfile_is_the_paper_recipe_with_the_chosen_options(self, name):
        paper, default = self.configs(f"{name}_paper"), self.configs(name)
        differences = {k: default[k] for k in default if default[k] != paper[k]}
        self.assertEqual(differences, self.CHOSEN[name])
