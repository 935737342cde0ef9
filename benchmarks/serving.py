"""The `inference` section: serving latency and throughput of one (video, query).

    python -m benchmarks.serving [--quick]

p50/p99 latency of a single (video, query) and queries/s at batch `infer_batch`, for
the Keras model, the exported SavedModel and its TFLite conversion, timed in
alternating rounds so that the engines see the same load. An engine that cannot be
built here is reported under "not_measured" with the reason.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

from benchmarks import common, reference
from benchmarks.common import BenchOptions

ENGINES = ("keras", "saved_model", "tflite")


def _vocabulary_file(root: str) -> str:
    path = os.path.join(root, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        lines = ["<pad>", "<unk>"] + [f"w{i}" for i in range(2, common.VOCAB_SIZE)]
        f.write("\n".join(lines) + "\n")
    return path


def _saved_model_engine(network: Any, root: str) -> tuple[Callable, Callable, str] | str:
    """(single call, batched call, path) of the exported SavedModel, or why not."""
    try:
        from export import serving as export_saved_model
    except ImportError as e:
        return f"not measured: export.saved_model is not importable ({e})"
    import tensorflow as tf

    module = export_saved_model.VLANetServing(network, _vocabulary_file(root))
    path = export_saved_model.save(module, os.path.join(root, "saved_model"))
    loaded = tf.saved_model.load(path)
    single = loaded.signatures[export_saved_model.SINGLE_SIGNATURE]
    batched = loaded.signatures[export_saved_model.TOKENS_SIGNATURE]

    def call(fn: Callable) -> Callable:
        return lambda x: fn(
            query_tokens=x["query_tokens"],
            video_features=x["video_features"],
            video_length=x["video_length"],
            duration=x["duration"],
        )["similarity"].numpy()

    return call(single), call(batched), path


def _tflite_engine(saved_model_path: str | None, root: str) -> tuple[Callable, None, str] | str:
    """(single call, None, path) of the float32 TFLite conversion, or why not."""
    try:
        from export import serving as export_saved_model
        from export import tflite as export_tflite
    except ImportError as e:
        return f"not measured: export.tflite is not importable ({e})"
    if saved_model_path is None:
        return "not measured: TFLite is converted from the SavedModel, which was not exported"
    path = os.path.join(root, export_tflite.model_filename("float32"))
    try:
        flatbuffer = export_tflite.convert(saved_model_path, "float32")
    except Exception as e:  # The converter raises its own error types; report any.
        # The converter's message is pages of MLIR; the line naming the ops says why.
        lines = [l.strip() for l in str(e).splitlines() if l.strip()] or [repr(e)]
        why = next((l for l in lines if l.startswith("TF Select ops")), lines[0])
        return f"not measured: export.tflite.convert failed ({type(e).__name__}: {why[:300]})"
    with open(path, "wb") as f:
        f.write(flatbuffer)
    try:
        ranker = export_tflite.TFLiteRanker(
            path, export_saved_model.vocabulary_path(saved_model_path)
        )
    except ImportError as e:
        return f"not measured: no TFLite interpreter ({e})"

    def single(x: dict[str, Any]) -> Any:
        return ranker(**{k: x[k].numpy() for k in export_tflite.INPUT_ORDER})["similarity"]

    return single, None, path


def _engines(
    network: Any, feature_dim: int, root: str, wanted: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """({name: {single, batched, what}}, {name: why not measured}) of the `wanted` engines."""
    import tensorflow as tf

    signature = [
        {
            "query_tokens": tf.TensorSpec([None, None], tf.int32),
            "video_features": tf.TensorSpec([None, None, feature_dim], tf.float32),
            "video_length": tf.TensorSpec([None], tf.int32),
            "duration": tf.TensorSpec([None], tf.float32),
        }
    ]
    keras_call = tf.function(lambda x: network(x, training=False), input_signature=signature)
    engines: dict[str, dict[str, Any]] = {}
    not_measured: dict[str, str] = {}
    if "keras" in wanted:
        engines["keras"] = {
            "single": lambda x: keras_call(x)["similarity"].numpy(),
            "batched": lambda x: keras_call(x)["similarity"].numpy(),
            "what": "tf.function around the functional model (network forward only)",
        }
    saved_path = None
    if "saved_model" in wanted or "tflite" in wanted:
        saved = _saved_model_engine(network, root)
        if isinstance(saved, str):
            not_measured["saved_model"] = saved
        else:
            saved_path = saved[2]
            if "saved_model" in wanted:
                engines["saved_model"] = {
                    "single": saved[0],
                    "batched": saved[1],
                    "what": "tf.saved_model.load of export.saved_model; serve_tokens_single "
                    "and serve_tokens (forward + in-graph top-k ranking)",
                }
    if "tflite" in wanted:
        lite = _tflite_engine(saved_path, root)
        if isinstance(lite, str):
            not_measured["tflite"] = lite
        else:
            engines["tflite"] = {
                "single": lite[0],
                "batched": None,
                "what": "export.tflite float32 conversion of serve_tokens_single, run by "
                "export.tflite.TFLiteRanker (ai_edge_litert)",
            }
    return engines, {k: v for k, v in not_measured.items() if k in wanted}


def measure(
    feature_dim: int, options: BenchOptions, root: str, engines: Sequence[str] = ENGINES
) -> dict[str, Any]:
    """The `inference` entry: latency of one (video, query) and batched queries/s."""
    network = common.network(common.model_config(feature_dim))
    timed, not_measured = _engines(network, feature_dim, root, engines)
    keys = common.input_keys()

    def inputs(batch: int, seed: int) -> dict[str, Any]:
        x = common.synthetic_batch(batch, options.clips, feature_dim, options.words, seed=seed)
        return {k: x[k] for k in keys}

    single, batched = inputs(1, 0), inputs(options.infer_batch, 1)
    for engine in timed.values():
        for _ in range(3):
            engine["single"](single)
        if engine["batched"] is not None:
            engine["batched"](batched)
        engine["latencies"], engine["batch_times"] = [], []
    per_round = max(1, options.infer_calls // options.infer_rounds)
    batch_per_round = max(1, options.infer_batch_calls // options.infer_rounds)
    references = []
    for _ in range(options.infer_rounds):
        references.append(reference.quick_reference())
        for engine in timed.values():
            engine["latencies"] += reference.time_calls(lambda: engine["single"](single), per_round)
            if engine["batched"] is not None:
                engine["batch_times"] += reference.time_calls(
                    lambda: engine["batched"](batched), batch_per_round
                )
    return {
        "feature_dim": feature_dim,
        "clips": options.clips,
        "words": options.words,
        "batch": options.infer_batch,
        "engines": {
            name: engine_figures(e["what"], e["latencies"], e["batch_times"], options.infer_batch)
            for name, e in timed.items()
        },
        "not_measured": not_measured,
        "reference_matmul_gflops_per_s": references,
    }


def engine_figures(
    what: str, latencies_s: list[float], batch_times_s: list[float], batch: int
) -> dict[str, Any]:
    """One engine's entry from its single-call and batched-call times (seconds)."""
    lat_ms = [1000.0 * s for s in latencies_s]
    entry: dict[str, Any] = {
        "what": what,
        "calls": len(lat_ms),
        "ms_p50": reference.percentile(lat_ms, 50),
        "ms_p99": reference.percentile(lat_ms, 99),
        "single_queries_per_s": 1000.0 / reference.percentile(lat_ms, 50),
        "latencies_ms": lat_ms,
    }
    if batch_times_s:
        entry["batched_queries_per_s"] = batch / reference.median(batch_times_s)
        entry["batch_times_s"] = list(batch_times_s)
    else:
        entry["batched_queries_per_s_not_measured"] = (
            "the TFLite model has a fixed batch of 1; batch throughput equals single"
        )
    return entry


if __name__ == "__main__":
    sys.exit(
        common.section_main(
            lambda options, root: measure(max(options.feature_dims), options, root)
        )
    )
