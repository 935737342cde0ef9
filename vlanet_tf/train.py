"""Trains VLANet.

    python -m vlanet_tf.train --flagfile=configs/charades.flags [--flag=value ...]

Flags after the flagfile override it. The run's options are written to
`model_dir/config.json` before training; starting the same command again after a kill
resumes from the last finished epoch (see `vlanet_tf.training`).
"""

from __future__ import annotations

from typing import Any, Sequence

from absl import app, flags

from vlanet_tf import flags as vflags

FLAGS = flags.FLAGS


def run(flag_values: flags.FlagValues, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """The main's work on parsed flags; `callbacks` are extra Keras callbacks."""
    from vlanet_tf import experiment, strategy
    from vlanet_tf.run_dir import RunDir

    if not flag_values.data_dir or not flag_values.model_dir:
        raise app.UsageError("--data_dir and --model_dir are required")
    # Logical devices must exist before TensorFlow initialises, i.e. before any op.
    strategy.configure_cpu_devices(flag_values.num_cpu_devices)
    model_config = vflags.model_config_from_flags(flag_values)
    train_config = vflags.train_config_from_flags(flag_values)
    run_config = vflags.run_config_from_flags(flag_values)
    RunDir(flag_values.model_dir).save_options(
        model_config, train_config, run_config, vflags.flag_dict(flag_values)
    )
    return experiment.run_experiment(model_config, train_config, run_config, callbacks=callbacks)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    best = run(FLAGS)["best"]
    if best is not None:  # None on the workers of a multi-worker run that do not write.
        print(f"best epoch {best['epoch']} ({best['metric']}): {best['metrics']}")


if __name__ == "__main__":
    vflags.define_all_flags()
    app.run(vflags.one_line_errors(main))
