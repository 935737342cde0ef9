"""Converts an exported SavedModel to ONNX (tf2onnx) and runs it with onnxruntime.

    python -m export.onnx --saved_model=E/1 --output=vlanet.onnx [--opset=17]

The source is the SavedModel's `serve_tokens` signature (dynamic batch, T and M;
`--signature=serve_tokens_single` gives the batch-1 graph TFLite is made from). ONNX has
no string ops, so the model takes token ids, like the TFLite one: `query_tokens` int32
[B, M] (0-padded), `video_features` float32 [B, T, F], `video_length` int32 [B],
`duration` float32 [B] -> `moments` [B, k, 2], `scores` [B, k], `similarity` [B],
`num_moments` int32 [B]. The SavedModel's request assertions are not carried over
(tf2onnx drops Assert ops): check inputs as export.saved_model lists before running.
vocab.txt is copied beside the model.

`session()` prefers onnxruntime's TensorRT, then CUDA execution provider when the
installed onnxruntime has them (the `onnxruntime-gpu` wheel on a GPU machine) and falls
back to the CPU.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import app, flags

from export import serving as saved_model_lib

DEFAULT_OPSET = 17
PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
INPUT_ORDER = ("query_tokens", "video_features", "video_length", "duration")


def convert(
    saved_model_dir: str,
    output: str,
    opset: int = DEFAULT_OPSET,
    signature_name: str = saved_model_lib.TOKENS_SIGNATURE,
) -> str:
    """Writes the ONNX model of a token-id signature; returns `output`."""
    import tf2onnx

    loaded = tf.saved_model.load(saved_model_dir)
    tokens_signatures = (saved_model_lib.TOKENS_SIGNATURE, saved_model_lib.SINGLE_SIGNATURE)
    if signature_name not in tokens_signatures:
        raise ValueError(f"signature must be one of {tokens_signatures}, got {signature_name!r}")
    signature = loaded.signatures[signature_name]
    specs = [signature.structured_input_signature[1][name] for name in INPUT_ORDER]

    # tf2onnx inlines and freezes a tf.function; the signature itself is a
    # ConcreteFunction, so it is wrapped in one.
    @tf.function(input_signature=specs)
    def serve(query_tokens, video_features, video_length, duration):
        return signature(
            query_tokens=query_tokens,
            video_features=video_features,
            video_length=video_length,
            duration=duration,
        )

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tf2onnx.convert.from_function(
        serve, input_signature=specs, opset=opset, output_path=output + ".tmp"
    )
    os.replace(output + ".tmp", output)
    tf.io.gfile.copy(
        saved_model_lib.vocabulary_path(saved_model_dir),
        os.path.join(os.path.dirname(os.path.abspath(output)), saved_model_lib.VOCAB_ASSET),
        overwrite=True,
    )
    return output


def available_providers(preferred: Sequence[str] = PREFERRED_PROVIDERS) -> list[str]:
    """The preferred execution providers this onnxruntime build offers, in order."""
    import onnxruntime as ort

    offered = set(ort.get_available_providers())
    return [p for p in preferred if p in offered]


def session(path: str, providers: Sequence[str] | None = None) -> Any:
    """An onnxruntime InferenceSession on the best available providers."""
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=list(providers or available_providers()))


def run(sess: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One forward pass; returns the named outputs."""
    feed = {
        "query_tokens": np.asarray(inputs["query_tokens"], np.int32),
        "video_features": np.asarray(inputs["video_features"], np.float32),
        "video_length": np.asarray(inputs["video_length"], np.int32),
        "duration": np.asarray(inputs["duration"], np.float32),
    }
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def define_flags() -> None:
    flags.DEFINE_string("saved_model", None, "An exported version folder, e.g. E/1.")
    flags.DEFINE_string("output", None, "Path of the .onnx file to write.")
    flags.DEFINE_integer("opset", DEFAULT_OPSET, "ONNX opset.")
    flags.DEFINE_enum(
        "signature",
        saved_model_lib.TOKENS_SIGNATURE,
        [saved_model_lib.TOKENS_SIGNATURE, saved_model_lib.SINGLE_SIGNATURE],
        "Token-id signature to convert (dynamic batch or batch 1).",
    )


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if not flags.FLAGS.saved_model or not flags.FLAGS.output:
        raise app.UsageError("--saved_model and --output are required")
    path = convert(
        flags.FLAGS.saved_model, flags.FLAGS.output, flags.FLAGS.opset, flags.FLAGS.signature
    )
    sess = session(path)
    print(f"{path} ({os.path.getsize(path)} bytes); onnxruntime providers: {sess.get_providers()}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
