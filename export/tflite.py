"""Converts an exported SavedModel to TFLite and measures the quantised variants.

    python -m export.tflite --saved_model=E/1 --output_dir=O
        [--variants=float32,float16,dynamic_range] [--data_dir=D --split=test]

Writes `O/vlanet[_<variant>].tflite` and `O/vocab.txt`. The source is the SavedModel's
`serve_tokens_single` signature: batch 1, dynamic T (clips) and M (words), builtin ops
only. TFLite has no builtin string ops, so the model takes token ids: split the
sentence with `vlanet_tf.text.words` (lower-case ASCII, runs of [a-z0-9'] are words)
and map each word to its line number in vocab.txt, 1 (`<unk>`) when absent.

Inputs: `query_tokens` int32 [1, M], `video_features` float32 [1, T, F],
`video_length` int32 [1], `duration` float32 [1]. Outputs as the SavedModel's
`serving_default`: `moments` [1, k, 2], `scores` [1, k], `similarity` [1],
`num_moments` [1]. The model does not check its inputs (assertions are not TFLite
ops): give at least one word, T >= 1, 1 <= video_length <= T and finite values.

With --data_dir every variant ranks the split and the table gives its size and R1@0.5
next to the SavedModel's. Run with `ai_edge_litert.interpreter.Interpreter`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import app, flags

from export import serving as saved_model_lib
from vlanet_tf import text

VARIANTS = ("float32", "float16", "dynamic_range")
INPUT_ORDER = ("query_tokens", "video_features", "video_length", "duration")


def model_filename(variant: str) -> str:
    return "vlanet.tflite" if variant == "float32" else f"vlanet_{variant}.tflite"


def frozen_single_signature(saved_model_dir: str) -> tuple[Any, Any]:
    """(tf.function, loaded SavedModel): the batch-1 token signature, frozen.

    `TFLiteConverter.from_saved_model` keeps the GRU loop's variable reads as
    READ_VARIABLE ops that the interpreter cannot resolve inside the WHILE body (it
    fails with "variable != nullptr"); freezing first removes them.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures[saved_model_lib.SINGLE_SIGNATURE]
    frozen = convert_variables_to_constants_v2(signature)
    specs = signature.structured_input_signature[1]

    @tf.function(input_signature=[specs[name] for name in INPUT_ORDER])
    def serve(query_tokens, video_features, video_length, duration):
        flat = frozen(
            query_tokens=query_tokens,
            video_features=video_features,
            video_length=video_length,
            duration=duration,
        )
        # The frozen function returns a flat list; named outputs need the dict back.
        return tf.nest.pack_sequence_as(signature.structured_outputs, tf.nest.flatten(flat))

    return serve, loaded


def convert(saved_model_dir: str, variant: str = "float32") -> bytes:
    """TFLite flatbuffer of the SavedModel, builtin ops only.

    Args:
      variant: "float32"; "float16" (weights stored as float16, about half the size);
        "dynamic_range" (weights int8, activations quantised on the fly).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    function, loaded = frozen_single_signature(saved_model_dir)
    # Passing the loaded object gives the flatbuffer a signature with named tensors.
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()], loaded
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


class TFLiteRanker:
    """Runs a converted model; tokenises like the SavedModel does.

    Args:
      model: path of a .tflite file or its bytes.
      vocabulary_path: vocab.txt shipped beside it.
      max_query_length: tokens kept per query (the export's setting; None: all).
    """

    def __init__(
        self,
        model: str | bytes,
        vocabulary_path: str,
        max_query_length: int | None = None,
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, bytes):
            self.interpreter = Interpreter(model_content=model)
        else:
            self.interpreter = Interpreter(model_path=model)
        self.runner = self.interpreter.get_signature_runner()
        with open(vocabulary_path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f if line.rstrip("\n")]
        self.ids = {token: i for i, token in enumerate(tokens)}
        self.max_query_length = max_query_length

    def tokens(self, sentence: str) -> np.ndarray:
        """int32 [1, M] ids of one sentence (the graph's tokenise + lookup, in Python)."""
        words = text.words(sentence)
        if self.max_query_length:
            words = words[: self.max_query_length]
        if not words:
            raise ValueError(f"the query {sentence!r} has no word left after tokenisation")
        return np.asarray([[self.ids.get(w, text.UNK_ID) for w in words]], np.int32)

    def __call__(
        self,
        query_tokens: np.ndarray,
        video_features: np.ndarray,
        video_length: np.ndarray,
        duration: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """One forward pass on batch-1 arrays; returns the named outputs."""
        return self.runner(
            query_tokens=np.asarray(query_tokens, np.int32),
            video_features=np.asarray(video_features, np.float32),
            video_length=np.asarray(video_length, np.int32),
            duration=np.asarray(duration, np.float32),
        )

    def rank(self, sentence: str, features: np.ndarray, duration: float) -> dict[str, np.ndarray]:
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[0] < 1:
            raise ValueError(f"features must be [T >= 1, F], got shape {features.shape}")
        return self(
            self.tokens(sentence),
            features[None],
            np.asarray([features.shape[0]]),
            np.asarray([duration]),
        )


# ---------------------------------------------------------------- split evaluation


def split_examples(data_dir: str, split: str) -> Iterable[dict[str, np.ndarray]]:
    """Batch-1 model inputs and ground truth of a prepared split, in file order."""
    from vlanet_tf.data import pipeline

    for batch in pipeline.make_dataset(data_dir, split, 1, training=False):
        yield {k: v.numpy() for k, v in batch.items()}


def rank_split(
    forward: Any, examples: Iterable[Mapping[str, np.ndarray]]
) -> list[dict[str, Any]]:
    """Prediction records (as `vlanet_tf.inference.predict_dataset` yields) of `forward`."""
    from vlanet_tf.serving_io import ranked_moments

    records = []
    for ex in examples:
        out = forward(**{k: ex[k] for k in INPUT_ORDER})
        out = {k: np.asarray(v) for k, v in out.items()}
        records.append(
            {
                "query_id": ex["query_id"][0].decode("utf-8"),
                "video_id": ex["video_id"][0].decode("utf-8"),
                "moments": ranked_moments(out, 0),
            }
        )
    return records


def compare_variants(
    saved_model_dir: str,
    models: Mapping[str, str],
    data_dir: str,
    split: str = "test",
) -> dict[str, dict[str, float]]:
    """Size, the primary metric and the largest score difference of each variant vs the
    SavedModel, scored by the standalone evaluator on the split's ground truth."""
    from vlanet_tf.evaluation import ground_truth, predictions, scoring

    dataset_name, queries = ground_truth.from_shards(data_dir, split)
    metric = scoring.primary_metric(dataset_name)

    def score(records: list[dict[str, Any]]) -> float:
        rankings = predictions.from_records(records, queries, saved_model_dir)
        return scoring.score(dataset_name, queries, rankings)[metric]

    examples = list(split_examples(data_dir, split))
    loaded = tf.saved_model.load(saved_model_dir)
    signature = loaded.signatures[saved_model_lib.SINGLE_SIGNATURE]

    def reference(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        tensors = {k: tf.constant(v) for k, v in inputs.items()}
        return {k: v.numpy() for k, v in signature(**tensors).items()}

    baseline = rank_split(reference, examples)
    report = {
        "saved_model": {
            "bytes": float(_folder_size(saved_model_dir)),
            metric: score(baseline),
        }
    }
    vocab = saved_model_lib.vocabulary_path(saved_model_dir)
    for variant, path in models.items():
        ranker = TFLiteRanker(path, vocab)
        records = rank_split(ranker, examples)
        value = score(records)
        score_diff = max(
            (
                abs(a[2] - b[2])
                for r, s in zip(records, baseline)
                for a, b in zip(r["moments"], s["moments"])
            ),
            default=0.0,
        )
        report[variant] = {
            "bytes": float(os.path.getsize(path)),
            metric: value,
            f"{metric}_change": value - report["saved_model"][metric],
            "max_score_diff": float(score_diff),
        }
    return report


def _folder_size(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def format_report(report: Mapping[str, Mapping[str, float]]) -> str:
    metric = next(k for k in report["saved_model"] if k != "bytes")
    lines = [f"{'model':<14} {'size (KiB)':>11} {metric:>8} {'change':>8} {'max |score diff|':>17}"]
    for name, row in report.items():
        change = row.get(f"{metric}_change")
        diff = row.get("max_score_diff")
        lines.append(
            f"{name:<14} {row['bytes'] / 1024:11.1f} {row[metric]:8.2f} "
            f"{'' if change is None else f'{change:+8.2f}':>8} "
            f"{'' if diff is None else f'{diff:17.2e}':>17}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main


def write_models(saved_model_dir: str, output_dir: str, variants: Sequence[str]) -> dict[str, str]:
    """Converts each variant into `output_dir` (+ vocab.txt); returns {variant: path}."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {}
    for variant in variants:
        path = os.path.join(output_dir, model_filename(variant))
        with open(path + ".tmp", "wb") as f:
            f.write(convert(saved_model_dir, variant))
        os.replace(path + ".tmp", path)
        paths[variant] = path
    tf.io.gfile.copy(
        saved_model_lib.vocabulary_path(saved_model_dir),
        os.path.join(output_dir, saved_model_lib.VOCAB_ASSET),
        overwrite=True,
    )
    return paths


def define_flags() -> None:
    flags.DEFINE_string("saved_model", None, "An exported version folder, e.g. E/1.")
    flags.DEFINE_string("output_dir", None, "Where the .tflite files and vocab.txt go.")
    flags.DEFINE_list("variants", list(VARIANTS), f"Any of {', '.join(VARIANTS)}.")
    flags.DEFINE_string("data_dir", None, "Prepared data: rank --split with each variant.")
    flags.DEFINE_string("split", "test", "Split ranked with --data_dir.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    f = flags.FLAGS
    if not f.saved_model or not f.output_dir:
        raise app.UsageError("--saved_model and --output_dir are required")
    unknown = sorted(set(f.variants) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"unknown --variants {unknown}; expected some of {list(VARIANTS)}")
    paths = write_models(f.saved_model, f.output_dir, f.variants)
    for variant, path in paths.items():
        print(f"{variant}: {path} ({os.path.getsize(path)} bytes)")
    if f.data_dir:
        report = compare_variants(f.saved_model, paths, f.data_dir, f.split)
        print(format_report(report))
        with open(os.path.join(f.output_dir, "tflite_report.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
            out.write("\n")


if __name__ == "__main__":
    define_flags()
    app.run(main)
