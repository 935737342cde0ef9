"""Exports a training run as a SavedModel for TF Serving (signatures in export/serving.py).

    python -m export.saved_model --model_dir=runs/charades --export_base=exports/vlanet

The run's options (data directory, query length, geometry) are reloaded from
`--model_dir`; the training flagfile parses here too, and --data_dir or
--max_query_length given explicitly override the run's. So does --precision: the
export computes in the run's precision by default (a mixed_bfloat16 run serves in
bfloat16, float32 in and out); --precision=float32 serves the same float32 weights in
float32, which the TFLite converter needs.
"""

from __future__ import annotations

from typing import Sequence

from absl import app, flags

from export import serving
from vlanet_tf import flags as vflags

def define_flags() -> None:
    """This main's flags, beside the shared ones so a training flagfile parses here too.

    `--model_dir` and `--data_dir` (default: the run's) come from `vlanet_tf.flags`.
    """
    vflags.define_all_flags()
    defined = flags.FLAGS
    if "export_base" not in defined:
        flags.DEFINE_string("export_base", None, "Folder of integer versions TF Serving watches.")
        flags.DEFINE_string(
            "checkpoint", "best", "best (best validation epoch), last, or a .weights.h5 path."
        )
        flags.DEFINE_integer("version", None, "Version number (default: the next integer).")
    if "top_k" not in defined:
        flags.DEFINE_integer("top_k", serving.DEFAULT_TOP_K, "Ranked moments per query (k).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if not flags.FLAGS.model_dir or not flags.FLAGS.export_base:
        raise app.UsageError("--model_dir and --export_base are required")
    path = serving.export_run(
        flags.FLAGS.model_dir,
        flags.FLAGS.export_base,
        checkpoint=flags.FLAGS.checkpoint,
        top_k=flags.FLAGS.top_k or serving.DEFAULT_TOP_K,
        data_dir=vflags.given(flags.FLAGS, "data_dir"),
        version=flags.FLAGS.version,
        max_query_length=vflags.given(flags.FLAGS, "max_query_length"),
        precision=vflags.given(flags.FLAGS, "precision"),
    )
    print(path)


if __name__ == "__main__":
    define_flags()
    app.run(vflags.one_line_errors(main))
