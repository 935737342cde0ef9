"""`python -m data_prep.extract_features` with a hook that SIGKILLs the process after a
given number of clip runs reach the disk (the resume test's crash)."""

from __future__ import annotations

import os
import signal

from absl import app, flags

from data_prep import extract_features

flags.DEFINE_integer("kill_after_rows", 0, "SIGKILL after this many on_rows calls.")


def main(argv):
    calls = [0]

    def on_rows(video_id: str, rows: int) -> None:
        calls[0] += 1
        if calls[0] == flags.FLAGS.kill_after_rows:
            os.kill(os.getpid(), signal.SIGKILL)

    extract_features.main(argv, on_rows=on_rows)


if __name__ == "__main__":
    extract_features.define_flags()
    app.run(main)
