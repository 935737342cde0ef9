"""Clip-feature stores: one HDF5 file or a folder of per-video .npy files.

Public releases key features by video id (Charades C3D/I3D dumps) or by video file name
(DiDeMo's average_fc7.h5). Some DiDeMo names end in a bare "." in the annotations, so a
lookup tries the exact name, then the name without the trailing dot, then common video
extensions.
"""

from __future__ import annotations

import os
from typing import Iterator

import h5py
import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".m4v", ".3gp", ".mpg", ".wmv", ".flv")

# Reasons a video's features are rejected (every sentence of the video is skipped).
MISSING_FEATURES = "missing_features"
NONFINITE_FEATURES = "nonfinite_features"
EMPTY_FEATURES = "zero_length_features"
BAD_FEATURE_SHAPE = "bad_feature_shape"
FEATURE_DIM_MISMATCH = "feature_dim_mismatch"
# File attribute of an HDF5 store written by vlanet_tf.video: the ExtractorSpec as JSON.
EXTRACTOR_ATTR = "vlanet_extractor"


def candidate_keys(video_id: str) -> Iterator[str]:
    """The names a video's features may be stored under, most exact first."""
    yield video_id
    stem = video_id.rstrip(".")
    if stem != video_id:
        yield stem
    root, ext = os.path.splitext(stem)
    base = root if ext.lower() in VIDEO_EXTENSIONS else stem
    if base != video_id and base != stem:
        yield base
    for extension in VIDEO_EXTENSIONS:
        yield base + extension


class FeatureStore:
    """Read-only mapping video id -> float32 [T, F] features.

    Args:
      path: an HDF5 file (one [T, F] dataset per video, or a group holding exactly one
        such dataset) or a folder of `{video_id}.npy` files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            self._h5 = None
            self._keys = {
                name[: -len(".npy")]
                for name in os.listdir(self.path)
                if name.endswith(".npy")
            }
        elif os.path.isfile(self.path):
            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as e:
                raise ValueError(
                    f"--features={self.path!r}: expected an HDF5 file or a folder of "
                    f".npy files, could not open it as HDF5 ({e})"
                ) from e
            self._keys = set(self._h5.keys())
        else:
            raise ValueError(
                f"--features={self.path!r} does not exist; expected an HDF5 file or a "
                "folder of per-video .npy files"
            )

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> list[str]:
        """Every stored key, sorted."""
        return sorted(self._keys)

    def resolve(self, video_id: str) -> str | None:
        """The stored key for `video_id`, or None if there is none."""
        for key in candidate_keys(video_id):
            if key in self._keys:
                return key
        return None

    def extractor(self) -> dict | None:
        """The extractor the features were written with (None: unknown origin)."""
        if self._h5 is None or EXTRACTOR_ATTR not in self._h5.attrs:
            return None
        import json

        return json.loads(self._h5.attrs[EXTRACTOR_ATTR])

    def _dataset(self, key: str):
        node = self._h5[key]
        if isinstance(node, h5py.Group):
            # Some releases store {video: {"c3d_features": [T, F]}}.
            children = [c for c in node.values() if isinstance(c, h5py.Dataset)]
            if len(children) != 1:
                return None
            node = children[0]
        return node

    def shape(self, key: str) -> tuple[int, ...] | None:
        """Shape of the stored array without reading it (None if unreadable)."""
        if self._h5 is None:
            try:
                array = np.load(os.path.join(self.path, key + ".npy"), mmap_mode="r")
            except (OSError, ValueError):
                return None
            return tuple(array.shape)
        node = self._dataset(key)
        return None if node is None else tuple(node.shape)

    def load(self, key: str) -> np.ndarray | None:
        """The array stored under `key` as float32 (None if unreadable)."""
        if self._h5 is None:
            try:
                array = np.load(os.path.join(self.path, key + ".npy"))
            except (OSError, ValueError):
                return None
        else:
            node = self._dataset(key)
            if node is None:
                return None
            try:
                array = node[()]
            except (OSError, RuntimeError) as error:
                raise ValueError(
                    f"{self.path}: dataset {key!r} is unreadable, the HDF5 file is "
                    f"corrupted ({error})"
                ) from error
        return np.asarray(array, dtype=np.float32)


def check_features(array: np.ndarray | None, feature_dim: int | None) -> str | None:
    """The reason `array` cannot be used, or None if it is a usable [T>0, F] array."""
    if array is None or array.ndim != 2:
        return BAD_FEATURE_SHAPE
    if array.shape[0] == 0 or array.shape[1] == 0:
        return EMPTY_FEATURES
    if feature_dim is not None and array.shape[1] != feature_dim:
        return FEATURE_DIM_MISMATCH
    if not np.isfinite(array).all():
        return NONFINITE_FEATURES
    return None
