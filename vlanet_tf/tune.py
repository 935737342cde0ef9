"""Tunes a flagfile's open choices on the validation split (KerasTuner).

    python -m vlanet_tf.tune --flagfile=configs/synthetic.flags --tune_dir=runs/tune \
        --space=learning_rate=0.001,0.003 --space=margin=0.2,0.5

Each `--space=FIELD=V1,V2,...` names a config field (any model, training or run flag)
and the values to try; a tuple field's elements are joined by "-"
(`--space=window_frames=176-240,128-256`). Every trial trains one run in
`tune_dir/trials/<id>` and is scored by its best validation epoch; the test split is
never read. Starting the same command again resumes the search. The results:
`tune_dir/best.json`, `tune_dir/best.flags` (append after the flagfile to use them) and
TensorBoard's HParams dashboard (`tensorboard --logdir=tune_dir/hparams`).
"""

from __future__ import annotations

from typing import Sequence

from absl import app, flags

from vlanet_tf import flags as vflags

FLAGS = flags.FLAGS


def define_tune_flags() -> None:
    if "tune_dir" in FLAGS:
        return
    flags.DEFINE_string("tune_dir", None, "The search's state, trial runs and results.")
    flags.DEFINE_multi_string(
        "space", [], "FIELD=V1,V2,...: a config field and the values to try (repeat)."
    )
    flags.DEFINE_enum("tuner", "grid", ["grid", "random"], "KerasTuner oracle.")
    flags.DEFINE_integer(
        "max_trials", None, "Trials to run (default: the whole grid; random: 10)."
    )


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if not FLAGS.data_dir or not FLAGS.tune_dir:
        raise app.UsageError("--data_dir and --tune_dir are required")
    from vlanet_tf import strategy, tuning

    space = tuning.parse_space(FLAGS.space)
    strategy.configure_cpu_devices(FLAGS.num_cpu_devices)
    run_config = vflags.run_config_from_flags(FLAGS)
    if not run_config.model_dir:
        import dataclasses

        run_config = dataclasses.replace(run_config, model_dir=FLAGS.tune_dir)
    summary = tuning.tune(
        vflags.model_config_from_flags(FLAGS),
        vflags.train_config_from_flags(FLAGS),
        run_config,
        space,
        FLAGS.tune_dir,
        max_trials=FLAGS.max_trials,
        tuner=FLAGS.tuner,
        seed=FLAGS.seed,
    )
    objective = summary["objective"]
    for trial in summary["trials"]:
        print(f"trial {trial['trial_id']} {objective}={trial['val'][objective]:.2f} {trial['values']}")
    best = summary["best"]
    print(f"best: trial {best['trial_id']} {objective}={best['val'][objective]:.2f} {best['values']}")
    print(f"(written to {FLAGS.tune_dir}/best.json and {FLAGS.tune_dir}/best.flags)")


if __name__ == "__main__":
    vflags.define_all_flags()
    define_tune_flags()
    app.run(vflags.one_line_errors(main))
