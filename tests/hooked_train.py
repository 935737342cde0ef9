"""`python -m vlanet_tf.train` with test callbacks injected (kill, final-weights dump).

    python -m tests.hooked_train [train flags] [--kill_after_steps=N]
        [--final_weights_dir=DIR] [--kill_at_write=NAME]

--kill_at_write=NAME SIGKILLs the process during its first atomic write of a file
whose path ends with NAME (the temporary file written, not yet renamed): a kill in the
middle of writing a checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from absl import app, flags

from tests import training_testing
from vlanet_tf import files
from vlanet_tf import flags as vflags
from vlanet_tf import train

flags.DEFINE_integer("kill_after_steps", None, "SIGKILL after this many steps in total.")
flags.DEFINE_string("final_weights_dir", None, "Dump the final weights here (<task>.npz).")
flags.DEFINE_string("kill_at_write", None, "SIGKILL while writing a file ending so.")
FLAGS = flags.FLAGS


def kill_at_write(name: str) -> None:
    """Replaces files.atomic_path so that writing a file named `name` dies before its
    rename."""
    real = files.atomic_path

    @contextlib.contextmanager
    def atomic_path(path):
        with real(path) as tmp:
            yield tmp
            if str(path).endswith(name):
                print(f"killed while writing {path}", flush=True)
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    files.atomic_path = atomic_path


def main(argv):
    if FLAGS.kill_at_write is not None:
        kill_at_write(FLAGS.kill_at_write)
    callbacks = []
    if FLAGS.kill_after_steps is not None:
        callbacks.append(training_testing.KillAfterSteps(FLAGS.kill_after_steps))
    if FLAGS.final_weights_dir:
        callbacks.append(training_testing.DumpFinalWeights(FLAGS.final_weights_dir))
    train.run(FLAGS, callbacks=callbacks)


if __name__ == "__main__":
    vflags.define_all_flags()
    app.run(main)
