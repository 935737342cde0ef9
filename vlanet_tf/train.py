"""Trains VLANet.

    python -m vlanet_tf.train --flagfile=configs/charades.flags [--flag=value ...]

Flags after the flagfile override it. The run's configs are written to
`model_dir/config.json` before training; starting the same command again after a kill
resumes from the last finished epoch (see `vlanet_tf.training`).
"""

from __future__ import annotations

from typing import Sequence

from absl import app, flags

from vlanet_tf import flags as vflags
from vlanet_tf import training

FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if not FLAGS.data_dir or not FLAGS.model_dir:
        raise app.UsageError("--data_dir and --model_dir are required")
    # Logical devices must exist before TensorFlow initialises, i.e. before any op.
    training.configure_cpu_devices(FLAGS.num_cpu_devices)
    model_config = vflags.model_config_from_flags(FLAGS)
    train_config = vflags.train_config_from_flags(FLAGS)
    run_config = vflags.run_config_from_flags(FLAGS)
    training.save_run_config(
        FLAGS.model_dir, model_config, train_config, run_config, vflags.flag_dict(FLAGS)
    )
    result = training.run_experiment(model_config, train_config, run_config)
    best = result["best"]
    if best is not None:  # None on the workers of a multi-worker run that do not write.
        print(f"best epoch {best['epoch']} ({best['metric']}): {best['metrics']}")


if __name__ == "__main__":
    vflags.define_all_flags()
    app.run(main)
