"""Converts an exported SavedModel with TF-TRT (`TrtGraphConverterV2`).

    python -m export.tensorrt --saved_model=E/1 --output=E_trt/1 [--precision=FP16]

Needs a TensorFlow built with TensorRT and a GPU. TensorFlow's PyPI wheels from 2.18 on
are built without TensorRT (`tf.sysconfig.get_build_info()["is_tensorrt_build"]` is
False), so run this inside NVIDIA's TensorFlow container (nvcr.io/nvidia/tensorflow).
Where either is missing the command exits with status 2 and one line saying which.
The converted SavedModel keeps the signatures; TF-TRT replaces the supported subgraphs
of each with TensorRT engines, built at first use for each new input-shape profile.
"""

from __future__ import annotations

import sys
from typing import Sequence

import tensorflow as tf
from absl import app, flags

PRECISIONS = ("FP32", "FP16")
EXIT_UNAVAILABLE = 2


def unavailable_reason() -> str | None:
    """Why TF-TRT cannot run here, or None when it can."""
    info = tf.sysconfig.get_build_info()
    if not info.get("is_tensorrt_build", False):
        return (
            f"TensorFlow {tf.__version__} was built without TensorRT "
            "(is_tensorrt_build: False); run inside NVIDIA's TensorFlow container"
        )
    try:
        from tensorflow.python.compiler.tensorrt import trt_convert  # noqa: F401
    except ImportError as error:
        return f"tensorflow.python.compiler.tensorrt cannot be imported: {error}"
    if not tf.config.list_physical_devices("GPU"):
        return "no GPU is visible to TensorFlow; TF-TRT needs one"
    return None


def convert(saved_model_dir: str, output_dir: str, precision: str = "FP16") -> str:
    """Writes the TF-TRT SavedModel; returns `output_dir`."""
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    converter = trt.TrtGraphConverterV2(
        input_saved_model_dir=saved_model_dir,
        precision_mode=getattr(trt.TrtPrecisionMode, precision),
        # T and M change per request, so engines are built per input-shape profile.
        use_dynamic_shape=True,
        dynamic_shape_profile_strategy="Optimal",
    )
    converter.convert()
    converter.save(output_dir)
    return output_dir


def define_flags() -> None:
    flags.DEFINE_string("saved_model", None, "An exported version folder, e.g. E/1.")
    flags.DEFINE_string("output", None, "Folder of the TF-TRT SavedModel.")
    flags.DEFINE_enum("precision", "FP16", list(PRECISIONS), "TensorRT precision.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    reason = unavailable_reason()
    if reason is not None:
        print(f"export.tensorrt: cannot convert: {reason}", file=sys.stderr)
        sys.exit(EXIT_UNAVAILABLE)
    if not flags.FLAGS.saved_model or not flags.FLAGS.output:
        raise app.UsageError("--saved_model and --output are required")
    print(convert(flags.FLAGS.saved_model, flags.FLAGS.output, flags.FLAGS.precision))


if __name__ == "__main__":
    define_flags()
    app.run(main)
