"""MirroredStrategy over two logical CPU devices trains like one device.

Each run is a subprocess: logical devices must be configured before TensorFlow
initialises. Same seed (same initial weights), deterministic data order, negatives
gathered across replicas (so each positive meets the same negative as on one
device), and a clip small enough to be active on every step: VLANet clips the
all-replica gradient, so clipping must not depend on the number of replicas.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf

from vlanet_tf.run_dir import RunDir
from tests import training_testing


def read_weights(path: str) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: arrays.__setitem__(name, obj[()])
            if isinstance(obj, h5py.Dataset)
            else None
        )
    return arrays


class DistributedTest(tf.test.TestCase):
    def test_two_replicas_match_one_device(self):
        self.check_two_replicas_match_one_device([])

    @pytest.mark.slow
    def test_every_negative_and_infonce_match_one_device(self):
        # The global candidates and the loss normalised by the global count of terms.
        self.check_two_replicas_match_one_device(
            ["--num_negatives=0", "--loss=infonce", "--temperature=0.5"]
        )

    def check_two_replicas_match_one_device(self, options):
        with tempfile.TemporaryDirectory() as tmp:
            data_dir = training_testing.make_data_dir(Path(tmp))
            results = {}
            for name, extra in (
                ("one", ["--strategy=one_device"]),
                ("two", ["--strategy=mirrored", "--num_cpu_devices=2"]),
            ):
                model_dir = os.path.join(tmp, name)
                run = training_testing.run_train(
                    [
                        f"--data_dir={data_dir}",
                        f"--model_dir={model_dir}",
                        "--epochs=1",
                        "--steps_per_epoch=4",
                        "--gather_negatives",
                        *training_testing.TINY_FLAGS,
                        "--clipnorm=0.05",
                        *options,
                        *extra,
                    ]
                )
                self.assertEqual(run.returncode, 0, run.stderr[-3000:])
                if name == "two":
                    self.assertIn("CPU:1", run.stdout + run.stderr)
                history = RunDir(model_dir).read_history()
                weights = read_weights(
                    os.path.join(model_dir, "checkpoints", "epoch-001.weights.h5")
                )
                results[name] = (history[0], weights)

        (one_row, one_weights), (two_row, two_weights) = results["one"], results["two"]
        for key in ("loss", "pos_sim", "neg_sim", "pos_beats_neg"):
            self.assertAllClose(one_row[key], two_row[key], atol=1e-5, msg=key)
        self.assertEqual(set(one_weights), set(two_weights))
        for name in one_weights:
            self.assertAllClose(one_weights[name], two_weights[name], atol=1e-5, msg=name)


if __name__ == "__main__":
    tf.test.main()
