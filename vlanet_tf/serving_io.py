"""The exported signatures' inputs and outputs as NumPy, for the CLIs and clients.

`vlanet_tf.predict` and `export/client.py` build requests and read answers with these,
so a local SavedModel and a TF Serving server are spoken to in one way.
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Sequence

import numpy as np

from vlanet_tf.data.features import FeatureStore


def load_features(path: str, video_id: str | None) -> np.ndarray:
    """float32 [T, F] features of `video_id` from an HDF5 file, .npy folder or .npy file."""
    if os.path.isfile(path) and path.endswith(".npy"):
        return np.asarray(np.load(path), np.float32)
    if not video_id:
        raise ValueError(f"--video_id is required to read {path!r} (not a single .npy file)")
    with FeatureStore(path) as store:
        key = store.resolve(video_id)
        if key is None:
            raise ValueError(f"{path!r} holds no features for video {video_id!r}")
        array = store.load(key)
    if array is None:
        raise ValueError(f"the features of {video_id!r} in {path!r} are not a [T, F] array")
    return array


# Written by export/serving.py beside the SavedModel.
EXPORT_INFO = os.path.join("assets.extra", "vlanet_export.json")


def export_extractor(saved_model_dir: str) -> dict | None:
    """The feature extractor an export's model was trained on (None: not recorded)."""
    import json

    path = os.path.join(saved_model_dir, EXPORT_INFO)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f).get("extractor")


def features_extractor(path: str) -> dict | None:
    """The extractor recorded in a feature file (None: a .npy or unknown origin)."""
    if path.endswith(".npy") or not os.path.isfile(path):
        return None
    with FeatureStore(path) as store:
        return store.extractor()


def batch_inputs(
    queries: Sequence[str],
    features: Sequence[np.ndarray],
    durations: Sequence[float],
) -> dict[str, np.ndarray]:
    """The `serving_default` inputs of several (sentence, video) pairs.

    Args:
      queries: [B] raw sentences.
      features: B arrays [T_i, F]; zero-padded here to the longest T.
      durations: [B] seconds.
    """
    if not (len(queries) == len(features) == len(durations)):
        raise ValueError(
            f"queries, features and durations must have the same length, got "
            f"{len(queries)}, {len(features)}, {len(durations)}"
        )
    arrays = [np.asarray(f, np.float32) for f in features]
    for i, a in enumerate(arrays):
        if a.ndim != 2:
            raise ValueError(f"features[{i}] must be [T, F], got shape {a.shape}")
    dims = {a.shape[1] for a in arrays}
    if len(dims) > 1:
        raise ValueError(f"every video must have the same feature size, got {sorted(dims)}")
    longest = max((a.shape[0] for a in arrays), default=0)
    padded = np.zeros((len(arrays), longest, dims.pop() if dims else 0), np.float32)
    for i, a in enumerate(arrays):
        padded[i, : a.shape[0]] = a
    return {
        "query": np.asarray(list(queries), dtype=object),
        "video_features": padded,
        "video_length": np.asarray([a.shape[0] for a in arrays], np.int32),
        "duration": np.asarray(durations, np.float32),
    }


def ranked_moments(
    outputs: Mapping[str, np.ndarray], row: int, top_k: int | None = None
) -> list[list[float]]:
    """[[start, end, score], ...] of one row of a ranked signature, padding dropped."""
    count = int(outputs["num_moments"][row])
    if top_k is not None:
        count = min(count, top_k)
    moments, scores = outputs["moments"][row], outputs["scores"][row]
    return [
        [float(moments[i][0]), float(moments[i][1]), float(scores[i])] for i in range(count)
    ]


def format_moments(moments: Sequence[Sequence[float]], similarity: float | None = None) -> str:
    """A ranked table in seconds."""
    lines = ["rank   start     end    score"]
    for rank, (start, end, score) in enumerate(moments, 1):
        lines.append(f"{rank:>4}  {start:6.2f}  {end:6.2f}  {score:7.3f}")
    if similarity is not None and not math.isnan(similarity):
        lines.append(f"query-video similarity c = {similarity:.4f}")
    return "\n".join(lines)
