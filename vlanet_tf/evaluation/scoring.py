"""SPEC §8 scoring of rankings in seconds, and how results are printed and saved."""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from vlanet_tf import files, spans
from vlanet_tf.evaluation import metrics
from vlanet_tf.evaluation.ground_truth import CHARADES_STA, DIDEMO, Queries, check_dataset


def primary_metric(dataset: str) -> str:
    """The metric that picks a run's best checkpoint."""
    return "R1" if check_dataset(dataset) == DIDEMO else metrics.recall_key(1, 0.5)


def score(dataset: str, queries: Queries, rankings: Mapping[str, np.ndarray]) -> dict:
    """The dataset's metrics (percent) of rankings in seconds over all queries.

    Charades-STA: R@{1,5}, IoU={0.3,0.5,0.7} against the (clipped) annotated moment.
    DiDeMo: rankings are mapped to inclusive segment pairs and scored with R@1, R@5 and
    mIoU over the annotators. A query without a ranking counts as a miss.
    """
    if not queries:
        raise ValueError("the ground truth holds no queries: nothing to evaluate")
    if check_dataset(dataset) == CHARADES_STA:
        truth = {q.query_id: q.moments[0] for q in queries.values()}
        return metrics.charades_recall(rankings, truth)
    truth = {q.query_id: q.segments for q in queries.values()}
    ranked_segments = {}
    for query_id, moments in rankings.items():
        moments = np.asarray(moments)
        s, e = spans.seconds_to_didemo_segments(moments[:, 0], moments[:, 1])
        ranked_segments[query_id] = list(zip(s.tolist(), e.tolist(), strict=True))
    return metrics.didemo_metrics(ranked_segments, truth)


def format_table(result: Mapping[str, Any], title: str) -> str:
    """An aligned metric table; a std column appears when the result has one."""
    keys = [k for k in result if not k.endswith("_std") and k != "seeds"]
    has_std = any(f"{k}_std" in result for k in keys)
    width = max(len("metric"), *(len(k) for k in keys))
    header = f"{'metric':<{width}}  {'mean' if has_std else 'value':>7}"
    header += f"  {'std':>6}" if has_std else ""
    lines = [title, header]
    for key in keys:
        line = f"{key:<{width}}  {result[key]:7.2f}"
        if has_std:
            line += f"  {result[f'{key}_std']:6.2f}"
        lines.append(line)
    return "\n".join(lines)


def write_metrics(path: str, result: Mapping[str, Any]) -> None:
    """The metrics JSON (docs/ARCHITECTURE.md) in the protocol's order, written atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, dict(result), sort_keys=False)
