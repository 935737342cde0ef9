"""Devices and the tf.distribute strategy of a run."""

from __future__ import annotations

import tensorflow as tf

from vlanet_tf.config import STRATEGIES


def configure_cpu_devices(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (to exercise MirroredStrategy).

    Must run before TensorFlow initialises its devices (before the first op), which is
    why the mains call it right after parsing flags.
    """
    if num_devices <= 0:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def build_strategy(name: str) -> tf.distribute.Strategy:
    """mirrored: every local GPU, or every logical CPU device when there is no GPU;
    one_device: the first GPU or the CPU; multi_worker: the TF_CONFIG cluster."""
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        # NCCL is GPU-only; between CPU devices reduce through one device.
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
