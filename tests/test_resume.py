"""A training run killed mid-epoch resumes from its last finished epoch."""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path

import tensorflow as tf

from tests import training_testing
from vlanet_tf import training
from vlanet_tf.run_dir import RunDir

EPOCHS = 3
STEPS = 2  # Per epoch.


class ResumeTest(tf.test.TestCase):
    def test_kill_then_rerun_continues_from_the_last_checkpoint(self):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = training_testing.make_data_dir(Path(tmp))
            model_dir = os.path.join(tmp, "model")
            args = [
                f"--data_dir={data_dir}",
                f"--model_dir={model_dir}",
                f"--epochs={EPOCHS}",
                f"--steps_per_epoch={STEPS}",
                *training_testing.TINY_FLAGS,
            ]
            # Killed one step into the second epoch.
            killed = training_testing.run_hooked_train(args, kill_after_steps=STEPS + 1)
            self.assertEqual(killed.returncode, -signal.SIGKILL, killed.stderr[-3000:])
            checkpoints = os.path.join(model_dir, "checkpoints")
            self.assertEqual(os.listdir(checkpoints), ["epoch-001.weights.h5"])
            with open(os.path.join(model_dir, "backup", "training_metadata.json")) as f:
                self.assertEqual(json.load(f)["epoch"], 1)

            resumed = training_testing.run_train(args)
            self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
            output = resumed.stdout + resumed.stderr
            self.assertNotIn(f"Epoch 1/{EPOCHS}", output)
            self.assertIn(f"Epoch 2/{EPOCHS}", output)
            self.assertEqual(
                sorted(os.listdir(checkpoints)),
                [f"epoch-{e:03d}.weights.h5" for e in range(1, EPOCHS + 1)],
            )
            run_dir = RunDir(model_dir)
            history = run_dir.read_history()
            self.assertEqual([int(r["epoch"]) for r in history], list(range(EPOCHS)))
            # The optimizer state came back too: the step count went on from 2, not 0.
            model = run_dir.load_model("last")
            model.compile(optimizer=training.build_optimizer(run_dir.load_options().train))
            model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(model_dir, "backup", "latest.weights.h5"))
            self.assertEqual(int(model.optimizer.iterations.numpy()), EPOCHS * STEPS)


if __name__ == "__main__":
    tf.test.main()
