"""Scoring a model on a prepared split: inference records -> the standalone evaluator.

Training-time validation and `python -m vlanet_tf.evaluate --model_dir` both call
`score_model`, which writes nothing of its own: it turns the model's prediction records
into the predictions-file rankings and scores them with `vlanet_tf.evaluation`.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from vlanet_tf.data import pipeline, prepared
from vlanet_tf.evaluation import ground_truth, predictions, scoring
from vlanet_tf.inference import predict_dataset

# Queries per batch when a model ranks a prepared split; only speed depends on it.
EVAL_BATCH_SIZE = 64


def split_dataset(
    data_dir: str,
    split: str,
    max_query_length: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    vocabulary: Any = None,
) -> tf.data.Dataset:
    """A split's batches in file order, as ranking reads them."""
    return pipeline.make_dataset(
        data_dir,
        split,
        batch_size,
        training=False,
        vocabulary=vocabulary,
        max_query_length=max_query_length,
    )


def score_model(
    model: Any,
    dataset: tf.data.Dataset,
    dataset_name: str,
    queries: ground_truth.Queries,
    top_k: int | None = None,
    nms_threshold: float | None = None,
    source: str = "model",
    jit_compile: bool = False,
) -> tuple[dict, predictions.Rankings]:
    """(metrics, rankings) of `model` over `dataset`, scored against `queries`."""
    records = predict_dataset(
        model, dataset, top_k=top_k or None, nms_threshold=nms_threshold, jit_compile=jit_compile
    )
    rankings = predictions.from_records(records, queries, source)
    return scoring.score(dataset_name, queries, rankings), rankings


def evaluate_split(
    model: Any,
    data_dir: str,
    split: str,
    top_k: int | None = None,
    nms_threshold: float | None = None,
    max_query_length: int | None = None,
    jit_compile: bool = False,
) -> tuple[dict, predictions.Rankings, ground_truth.Queries, str]:
    """Ranks every query of a prepared split and scores it (SPEC §8).

    Returns (metrics, rankings, ground truth, dataset name).
    """
    try:
        dataset_name, queries = ground_truth.from_shards(data_dir, split)
        metrics, rankings = score_model(
            model,
            split_dataset(data_dir, split, max_query_length),
            dataset_name,
            queries,
            top_k,
            nms_threshold,
            source=f"{data_dir}:{split}",
            jit_compile=jit_compile,
        )
    except tf.errors.DataLossError as error:
        raise prepared.corrupted_record_error(data_dir, error) from error
    return metrics, rankings, queries, dataset_name
