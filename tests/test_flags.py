"""The shared flag definitions: coverage of the configs, flagfiles, overrides."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags
from absl.testing import parameterized

from vlanet_tf import flags as vflags
from vlanet_tf.config import ModelConfig, TrainConfig

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

    def test_defining_twice_is_harmless(self):
        vflags.define_all_flags()
        vflags.define_data_flags()

    def test_every_config_field_has_a_flag(self):
        for field in dataclasses.fields(ModelConfig):
            if field.name not in vflags.DATA_DERIVED_FIELDS:
                self.assertIn(field.name, self.flag_values, f"ModelConfig.{field.name}")
        for field in dataclasses.fields(TrainConfig):
            self.assertIn(field.name, self.flag_values, f"TrainConfig.{field.name}")

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
    "vlanet_tf.evaluate": "import vlanet_tf.evaluate",
    "export.saved_model": "from export import saved_model; saved_model.define_flags()",
}


@pytest.mark.parametrize("main", sorted(MAIN_FLAG_DEFINITIONS))
def test_every_main_accepts_the_training_flagfile(main, flagfile="charades"):
    """Each main on its own (a fresh process) parses the same flagfile as train."""
    script = (
        f"{MAIN_FLAG_DEFINITIONS[main]}\n"
        "from absl import flags\n"
        f"flags.FLAGS(['{main}', '--flagfile=configs/{flagfile}.flags'])\n"
        "print(flags.FLAGS.data_dir)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
