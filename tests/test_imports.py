"""Importing the library must not initialise TensorFlow.

Logical CPU devices and MultiWorkerMirroredStrategy's collectives can only be set up
before TensorFlow initialises, and the mains import the library first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import data_prep.build, export.saved_model, vlanet_tf.custom_loop, vlanet_tf.data.pipeline
import vlanet_tf.evaluate, vlanet_tf.model, vlanet_tf.training
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
print(len(tf.config.list_logical_devices("CPU")))
"""


def test_library_imports_leave_tensorflow_unconfigured():
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "2"
