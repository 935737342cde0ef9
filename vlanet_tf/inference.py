"""Running a model over a prepared split: one prediction record per query (SPEC §7).

The records are those of the predictions file (`vlanet_tf.evaluation.predictions`), so
training-time validation and `python -m vlanet_tf.evaluate` score them with one scorer.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf

from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.ranking import rank


# One traced forward function per model, so that ranking the validation split every
# epoch reuses the trace instead of tracing a fresh tf.function each time.
# Keyed by model, then by jit_compile.
_FORWARD: "weakref.WeakKeyDictionary[Any, dict[bool, Callable]]" = weakref.WeakKeyDictionary()


def _forward(model: Any, jit_compile: bool = False) -> Callable:
    cache = _FORWARD.setdefault(model, {})
    if bool(jit_compile) not in cache:
        cache[bool(jit_compile)] = tf.function(
            lambda batch: model({k: batch[k] for k in INPUT_KEYS}, training=False),
            reduce_retracing=True,
            jit_compile=bool(jit_compile),
        )
    return cache[bool(jit_compile)]


def _text(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def predict_dataset(
    model: Any,
    dataset: Iterable[dict[str, tf.Tensor]],
    top_k: int | None = 5,
    nms_threshold: float | None = None,
    jit_compile: bool = False,
) -> Iterator[dict[str, Any]]:
    """Runs `model` over batches and yields one prediction dict per query.

    Each dict has `query_id`, `video_id`, `moments` (ranked [start, end, score]),
    `similarity` (the pair's c, eq. 13) and,
    when the batch carries ground truth, `ground_truth` (the annotators' [start, end]
    in seconds) and `duration`. `jit_compile` XLA-compiles the forward pass.
    """
    forward = _forward(model, jit_compile)
    for batch in dataset:
        inputs = {k: batch[k] for k in INPUT_KEYS}
        out = {k: v.numpy() for k, v in forward(inputs).items()}
        query_ids = _text(batch["query_id"].numpy())
        video_ids = _text(batch["video_id"].numpy())
        gt = batch["moments"].numpy() if "moments" in batch else None
        counts = batch["num_annotations"].numpy() if "num_annotations" in batch else None
        for i, qid in enumerate(query_ids):
            pred = {
                "query_id": qid,
                "video_id": video_ids[i],
                "moments": rank(
                    out["scores"][i], out["moments"][i], out["valid"][i], top_k, nms_threshold
                ),
                "similarity": float(out["similarity"][i]),
            }
            if gt is not None:
                n = int(counts[i]) if counts is not None else gt.shape[1]
                pred["ground_truth"] = gt[i, :n].tolist()
                pred["duration"] = float(batch["duration"].numpy()[i])
            yield pred
