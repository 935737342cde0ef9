"""Ground truth for evaluation: from the raw annotation files or a prepared split.

Either source gives the same `GroundTruth` records, so a predictions file, a baseline
and a trained model are scored against one set of queries.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from vlanet_tf import spans
from vlanet_tf.data import readers
from vlanet_tf.geometry import ProposalGeometry

CHARADES_STA = "charades_sta"
DIDEMO = "didemo"
DATASETS = (CHARADES_STA, DIDEMO)


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One query's annotation.

    Attributes:
      moments: ``[A, 2]`` seconds, ends clipped to the duration; A = 1 for
        Charades-STA, the annotators (usually 4, sometimes 5 or 7) for DiDeMo.
      segments: DiDeMo only: ``[A, 2]`` inclusive segment indices.
    """

    query_id: str
    video_id: str
    duration: float
    moments: np.ndarray
    segments: np.ndarray | None = None

    @property
    def num_segments(self) -> int:
        """DiDeMo segments in the video (the duration is a whole number of them)."""
        return ProposalGeometry.didemo().num_segments(self.duration)


Queries = dict[str, GroundTruth]


def check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    return dataset


def from_annotations(
    dataset: str, annotations: str, durations: str | None = None
) -> tuple[Queries, dict[str, Any]]:
    """Reads a release's annotation file with `vlanet_tf.data.readers`.

    Returns:
      (query id -> ground truth in file order, the readers' skip/adjustment summary),
      so that a sentence the readers drop is reported instead of silently vanishing.
    """
    check_dataset(dataset)
    if dataset == CHARADES_STA:
        if not durations:
            raise ValueError(
                "charades_sta ground truth needs the durations file "
                "(Charades_v1_{split}.csv), got none"
            )
        records, counter = readers.read_charades_sta(annotations, durations)
    else:
        records, counter = readers.read_didemo(annotations)
    queries = {
        r.query_id: GroundTruth(
            query_id=r.query_id,
            video_id=r.video_id,
            duration=float(r.duration),
            moments=np.asarray(r.moments, dtype=np.float64).reshape(-1, 2),
            segments=(
                None
                if r.segments is None
                else np.asarray(r.segments, dtype=np.int64).reshape(-1, 2)
            ),
        )
        for r in records
    }
    return queries, counter.to_dict()


def from_shards(data_dir: str, split: str) -> tuple[str, Queries]:
    """Ground truth of a prepared split, read from its TFRecord shards.

    Returns (dataset name from the manifest, queries in shard order). DiDeMo segment
    indices are recovered from the stored seconds ((s, e) -> (5 s, 5 (e + 1))).
    """
    import tensorflow as tf

    from vlanet_tf.data import prepared, schema

    dataset = prepared.load_manifest(data_dir)["dataset"]
    check_dataset(dataset)
    queries: Queries = {}
    files = prepared.shard_files(data_dir, split)
    records = tf.data.TFRecordDataset(files).map(schema.decode)
    for video in records.as_numpy_iterator():
        video_id = video["video_id"].decode("utf-8")
        duration = float(video["duration"])
        moments = video["moments"]
        for i, query_id in enumerate(video["query_ids"]):
            truth = np.asarray(moments[i], dtype=np.float64).reshape(-1, 2)
            segments = None
            if dataset == DIDEMO:
                segments = np.stack(spans.seconds_to_didemo_segments(*truth.T), -1)
            queries[query_id.decode("utf-8")] = GroundTruth(
                query_id=query_id.decode("utf-8"),
                video_id=video_id,
                duration=duration,
                moments=truth,
                segments=segments,
            )
    return dataset, queries
