"""The predictions file (JSONL): reading, validating, writing and re-ranking.

Each non-blank line is one query:
``{"query_id": str, "video_id": str, "moments": [[start, end, score], ...]}``, seconds,
best first: the order of a line's moments *is* the ranking (the score travels along but
does not re-rank). A malformed line — invalid JSON, a missing key, an empty or
ill-shaped `moments`, a NaN, a start after its end, a query id that is not in the
ground truth or appears twice, a video id that disagrees with the ground truth — is an
error naming the file and line; nothing is skipped silently. Ground-truth queries
without a line count as misses.

Training-time validation, `python -m vlanet_tf.evaluate` and any other model write
these records, so one scorer serves them all.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Mapping

import numpy as np

from vlanet_tf import files, spans
from vlanet_tf.evaluation.ground_truth import Queries

Rankings = dict[str, np.ndarray]  # query id -> [n, 3] (start, end, score), best first.


def parse_prediction(record: Any, queries: Queries, where: str) -> tuple[str, np.ndarray]:
    """Validates one prediction record; errors name ``where`` (file:line)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = {"query_id", "video_id", "moments"} - set(record)
    if missing:
        raise ValueError(
            f"{where}: missing key(s) {sorted(missing)}; expected query_id, video_id, "
            f"moments, got {sorted(record)}"
        )
    query_id = str(record["query_id"])
    if query_id not in queries:
        raise ValueError(f"{where}: query_id {query_id!r} is not in the ground truth")
    expected_video = queries[query_id].video_id
    if str(record["video_id"]) != expected_video:
        raise ValueError(
            f"{where}: query {query_id!r} has video_id {record['video_id']!r}, "
            f"the ground truth says {expected_video!r}"
        )
    try:
        moments = np.asarray(record["moments"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{where}: moments must be a list of [start, end, score] numbers: {error}"
        ) from error
    if moments.size == 0:
        raise ValueError(f"{where}: query {query_id!r} has no moments")
    if moments.ndim != 2 or moments.shape[1] != 3:
        raise ValueError(
            f"{where}: moments must have shape [n, 3] (start, end, score), "
            f"got {list(moments.shape)}"
        )
    if not np.isfinite(moments).all():
        raise ValueError(f"{where}: moments hold a NaN or infinite value")
    backwards = np.flatnonzero(moments[:, 0] > moments[:, 1])
    if backwards.size:
        raise ValueError(
            f"{where}: moment {int(backwards[0])} starts after it ends: "
            f"{moments[backwards[0], :2].tolist()}"
        )
    # Model moments are clipped to [0, duration]; float32 rounding is tolerated.
    duration = float(queries[query_id].duration)
    slack = 1e-3 + 1e-6 * duration
    outside = np.flatnonzero((moments[:, 0] < -slack) | (moments[:, 1] > duration + slack))
    if outside.size:
        raise ValueError(
            f"{where}: moment {int(outside[0])} {moments[outside[0], :2].tolist()} lies "
            f"outside the video (0 to {duration:g} s)"
        )
    return query_id, moments


def collect(records: Iterable[tuple[str, Any]], queries: Queries) -> Rankings:
    """(where, record) pairs -> rankings, refusing duplicate query ids."""
    rankings: Rankings = {}
    first_seen: dict[str, str] = {}
    for where, record in records:
        query_id, moments = parse_prediction(record, queries, where)
        if query_id in rankings:
            raise ValueError(
                f"{where}: query_id {query_id!r} already predicted at {first_seen[query_id]}"
            )
        rankings[query_id] = moments
        first_seen[query_id] = where
    return rankings


def from_records(records: Iterable[Mapping[str, Any]], queries: Queries, source: str) -> Rankings:
    """Rankings of in-memory prediction records (a model's), validated like a file's."""
    return collect(((f"{source}[{i}]", dict(r)) for i, r in enumerate(records)), queries)


def read(path: str, queries: Queries) -> Rankings:
    """Reads and validates a predictions JSONL file (rules in the module docstring)."""

    def records() -> Iterable[tuple[str, Any]]:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_number}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: invalid JSON: {error}") from error

    return collect(records(), queries)


def write(path: str, queries: Queries, rankings: Mapping[str, np.ndarray]) -> None:
    """One JSONL line per ranked query, in ground-truth order, written atomically."""
    lines = []
    for query_id, query in queries.items():
        if query_id not in rankings:
            continue
        moments = [[round(float(x), 6) for x in row] for row in rankings[query_id]]
        lines.append(
            json.dumps({"query_id": query_id, "video_id": query.video_id, "moments": moments})
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def rerank(rankings: Rankings, nms_threshold: float | None, top_k: int | None) -> Rankings:
    """Optional NMS and truncation, keeping each ranking's own order.

    The rank order given is authoritative, so NMS walks it best first (scores equal to
    minus the position) rather than re-sorting by the score column.
    """
    if (nms_threshold is None or nms_threshold <= 0) and not top_k:
        return rankings
    return {
        query_id: moments[
            spans.temporal_nms(moments[:, :2], -np.arange(len(moments)), nms_threshold, top_k or None)
        ]
        for query_id, moments in rankings.items()
    }
