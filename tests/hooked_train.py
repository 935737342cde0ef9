"""`python -m vlanet_tf.train` with test callbacks injected (kill, final-weights dump).

    python -m tests.hooked_train [train flags] [--kill_after_steps=N]
        [--final_weights_dir=DIR]
"""

from __future__ import annotations

from absl import app, flags

from tests import training_testing
from vlanet_tf import flags as vflags
from vlanet_tf import train

flags.DEFINE_integer("kill_after_steps", None, "SIGKILL after this many steps in total.")
flags.DEFINE_string("final_weights_dir", None, "Dump the final weights here (<task>.npz).")
FLAGS = flags.FLAGS


def main(argv):
    callbacks = []
    if FLAGS.kill_after_steps is not None:
        callbacks.append(training_testing.KillAfterSteps(FLAGS.kill_after_steps))
    if FLAGS.final_weights_dir:
        callbacks.append(training_testing.DumpFinalWeights(FLAGS.final_weights_dir))
    train.run(FLAGS, callbacks=callbacks)


if __name__ == "__main__":
    vflags.define_all_flags()
    app.run(main)
