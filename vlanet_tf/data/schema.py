"""The one TFRecord schema: one `tf.train.Example` per video.

`encode` (used by data_prep) and `decode` (used by tf.data and serving) live together so
the two sides cannot drift. See docs/ARCHITECTURE.md for the table of keys.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
SHARD_SUFFIX = ".tfrecord"


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`{split}-{index:05d}-of-{num_shards:05d}.tfrecord`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index must be in [0, {num_shards}), got {index}")
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_glob(split: str) -> str:
    return f"{split}-*-of-*{SHARD_SUFFIX}"


@dataclasses.dataclass
class VideoExample:
    """One video and all its sentences, in the form written to a shard.

    Attributes:
      video_id: the dataset's video id.
      features: float32 [T, F] clip features.
      duration: video length in seconds.
      query_ids: [S] one id per sentence.
      sentences: [S] raw sentence text.
      moments: [S] lists of (start, end) seconds, one pair per annotator.
    """

    video_id: str
    features: np.ndarray
    duration: float
    query_ids: Sequence[str]
    sentences: Sequence[str]
    moments: Sequence[Sequence[tuple[float, float]]]

    def __post_init__(self) -> None:
        if self.features.ndim != 2:
            raise ValueError(
                f"features of {self.video_id!r} must be [T, F], got shape "
                f"{self.features.shape}"
            )
        n = len(self.query_ids)
        if not (len(self.sentences) == len(self.moments) == n):
            raise ValueError(
                f"{self.video_id!r}: query_ids, sentences and moments must have the same "
                f"length, got {n}, {len(self.sentences)}, {len(self.moments)}"
            )
        if any(len(m) == 0 for m in self.moments):
            raise ValueError(f"{self.video_id!r}: every sentence needs >= 1 moment")


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _floats(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def encode(example: VideoExample) -> bytes:
    """VideoExample -> serialized `tf.train.Example` bytes."""
    features = np.ascontiguousarray(example.features, dtype="<f4")
    num_clips, feature_dim = features.shape
    flat_moments = [t for sentence in example.moments for pair in sentence for t in pair]
    proto = tf.train.Example(
        features=tf.train.Features(
            feature={
                "video_id": _bytes([example.video_id.encode("utf-8")]),
                "features": _bytes([features.tobytes()]),
                "num_clips": _ints([num_clips]),
                "feature_dim": _ints([feature_dim]),
                "duration": _floats([float(example.duration)]),
                "query_ids": _bytes([q.encode("utf-8") for q in example.query_ids]),
                "sentences": _bytes([s.encode("utf-8") for s in example.sentences]),
                "moments": _floats(flat_moments),
                "num_annotations": _ints([len(m) for m in example.moments]),
            }
        )
    )
    # Features is a proto map; without `deterministic` its entry order may differ
    # between processes, and a restarted build must reproduce shards byte for byte.
    return proto.SerializeToString(deterministic=True)


FEATURE_SPEC = {
    "video_id": tf.io.FixedLenFeature([], tf.string),
    "features": tf.io.FixedLenFeature([], tf.string),
    "num_clips": tf.io.FixedLenFeature([], tf.int64),
    "feature_dim": tf.io.FixedLenFeature([], tf.int64),
    "duration": tf.io.FixedLenFeature([], tf.float32),
    "query_ids": tf.io.RaggedFeature(tf.string),
    "sentences": tf.io.RaggedFeature(tf.string),
    "moments": tf.io.RaggedFeature(tf.float32),
    "num_annotations": tf.io.RaggedFeature(tf.int64),
}


def decode(serialized: tf.Tensor) -> dict[str, tf.Tensor | tf.RaggedTensor]:
    """Serialized Example (scalar string) -> one video's tensors.

    Returns:
      video_id string [], features float32 [T, F], num_clips int32 [],
      duration float32 [], query_ids string [S], sentences string [S],
      moments float32 RaggedTensor [S, (A), 2], num_annotations int32 [S].
    """
    parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
    num_clips = tf.cast(parsed["num_clips"], tf.int32)
    feature_dim = tf.cast(parsed["feature_dim"], tf.int32)
    features = tf.io.decode_raw(parsed["features"], tf.float32, little_endian=True)
    features = tf.reshape(features, tf.stack([num_clips, feature_dim]))
    num_annotations = tf.cast(parsed["num_annotations"], tf.int32)
    moments = tf.RaggedTensor.from_row_lengths(
        tf.reshape(parsed["moments"], [-1, 2]), num_annotations, validate=False
    )
    return {
        "video_id": parsed["video_id"],
        "features": features,
        "num_clips": num_clips,
        "duration": parsed["duration"],
        "query_ids": parsed["query_ids"],
        "sentences": parsed["sentences"],
        "moments": moments,
        "num_annotations": num_annotations,
    }


def decode_to_example(serialized: bytes) -> VideoExample:
    """Eager inverse of `encode`, through `decode` (used to check shards)."""
    d = decode(tf.constant(serialized))
    return VideoExample(
        video_id=d["video_id"].numpy().decode("utf-8"),
        features=d["features"].numpy(),
        duration=float(d["duration"].numpy()),
        query_ids=[q.decode("utf-8") for q in d["query_ids"].numpy()],
        sentences=[s.decode("utf-8") for s in d["sentences"].numpy()],
        moments=[[tuple(map(float, p)) for p in m] for m in d["moments"].to_list()],
    )
