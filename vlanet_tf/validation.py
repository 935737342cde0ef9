"""Scoring a model on a prepared split: inference records -> the standalone evaluator.

Training-time validation and `python -m vlanet_tf.evaluate --model_dir` both call
`score_model`, which writes nothing of its own: it turns the model's prediction records
into the predictions-file rankings and scores them with `vlanet_tf.evaluation`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
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
    return score_records(records, dataset_name, queries, source)


def score_records(
    records: Iterable[Mapping[str, Any]],
    dataset_name: str,
    queries: ground_truth.Queries,
    source: str = "model",
) -> tuple[dict, predictions.Rankings]:
    """(metrics, rankings) of prediction records (`predict_dataset`'s)."""
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


def fixed_negatives(video_ids: list[str]) -> np.ndarray:
    """The negative sentence of every sentence of a split, fixed once (Fig. 4).

    Sentence i (in file order) is paired with the first sentence after it, going round
    the end, that belongs to another video; -1 where the split has one video only.
    Depends on the split alone, so every epoch and every model is measured on the same
    pairs.
    """
    n = len(video_ids)
    index = np.full(n, -1, np.int64)
    for i in range(n):
        for step in range(1, n):
            j = (i + step) % n
            if video_ids[j] != video_ids[i]:
                index[i] = j
                break
    return index


def similarity_curve_point(
    model: Any, dataset: tf.data.Dataset, positive: Sequence[float] | None = None
) -> dict[str, float]:
    """Mean c (eq. 13) of the positive and of the fixed negative pairs of a split.

    The positive pairs are every (video, its sentence); the negative pairs every
    (video, the sentence `fixed_negatives` gives it). Returns `pos_sim`, `neg_sim`
    (NaN when there is no negative) and `sim_gap` = pos_sim - neg_sim: the points of
    the paper's Fig. 4 for one epoch. `positive`: the positive pairs' c when already
    computed (the records of `predict_dataset` over the same dataset carry them), so
    that only the negative pairs are run.
    """
    keys = ("query_tokens", "video_features", "video_length", "duration")
    tokens: list[np.ndarray] = []
    video_ids: list[str] = []
    for batch in dataset:
        tokens.extend(batch["query_tokens"].numpy())
        video_ids.extend(v.decode("utf-8") for v in batch["video_id"].numpy())
    if not tokens:
        raise ValueError("the split holds no sentence to measure the similarity on")
    width = max(len(t) for t in tokens)
    table = np.zeros((len(tokens), width), np.int32)
    for i, t in enumerate(tokens):
        table[i, : len(t)] = t
    negative = fixed_negatives(video_ids)
    positive_sims, negative_sims = [], []
    start = 0
    for batch in dataset:
        inputs = {k: batch[k] for k in keys}
        size = int(tf.shape(batch["query_tokens"])[0])
        if positive is None:
            positive_sims.append(model(inputs, training=False)["similarity"].numpy())
        rows = negative[start : start + size]
        keep = rows >= 0
        if keep.any():
            paired = {k: tf.boolean_mask(v, keep) for k, v in inputs.items()}
            paired["query_tokens"] = tf.constant(table[rows[keep]])
            negative_sims.append(model(paired, training=False)["similarity"].numpy())
        start += size
    if positive is not None:
        if len(positive) != len(tokens):
            raise ValueError(f"{len(positive)} positive similarities for {len(tokens)} sentences")
        positive_sims = [np.asarray(positive, np.float32)]
    pos = float(np.mean(np.concatenate(positive_sims)))
    neg = float(np.mean(np.concatenate(negative_sims))) if negative_sims else float("nan")
    return {"pos_sim": pos, "neg_sim": neg, "sim_gap": pos - neg}
