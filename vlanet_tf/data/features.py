"""Clip-feature stores: one HDF5 file or a folder of per-video .npy files.

Public releases key features by video id (Charades C3D/I3D dumps) or by video file name
(DiDeMo's average_fc7.h5). Some DiDeMo names end in a bare "." in the annotations, so a
lookup tries the exact name, then the name without the trailing dot, then common video
extensions.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

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

# How a store's arrays are laid out. "auto": any [T, F] array per video (or a group
# holding one), as the C3D and DiDeMo releases ship them. "i3d_lgi": the Charades-STA
# I3D features of the LGI release (JonghwanMun/LGI4temporalgrounding), which CPL, CNM,
# PPS and QMN train on: 1024-d, from piergiaj/pytorch-i3d's extract_features.py with
# rgb_charades.pt run over Charades' 24 fps RGB frames, which pools the time axis by 8
# (conv1a, pool4a and pool5a strides) and then with a 2-wide stride-1 window, so about
# one row per 8 frames (1/3 s). LGI ships `i3d_finetuned/{video id}.npy` of shape
# [T, 1, 1, 1024]; CPL's data/convert_npy_to_hdf5.py squeezes them into
# `i3d_features.hdf5`, one gzip dataset [T, 1024] per video id at the top level. Both
# are read as [T, 1024]. No loader of these works uses the clip rate: a time t maps to
# row t / duration * T (LGI's timestamp_to_featstamp; CPL and PPS resample the rows to
# 200 and predict fractions of the duration), as SPEC §2 spreads features over the
# duration here.
AUTO_LAYOUT = "auto"
I3D_LGI_LAYOUT = "i3d_lgi"
FEATURE_LAYOUTS = (AUTO_LAYOUT, I3D_LGI_LAYOUT)
I3D_LGI_DIM = 1024


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
      layout: one of FEATURE_LAYOUTS; "i3d_lgi" reads top-level datasets or .npy files
        only and drops the singleton spatial axes of LGI's [T, 1, 1, F] arrays.
    """

    def __init__(self, path: str | os.PathLike, layout: str = AUTO_LAYOUT):
        if layout not in FEATURE_LAYOUTS:
            raise ValueError(
                f"--feature_layout must be one of {FEATURE_LAYOUTS}, got {layout!r}"
            )
        self.layout = layout
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

    def _squeezed(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the layout reads an array of `shape` as."""
        if self.layout == I3D_LGI_LAYOUT and len(shape) > 2 and all(
            d == 1 for d in shape[1:-1]
        ):
            return (shape[0], shape[-1])
        return tuple(shape)

    def _dataset(self, key: str):
        node = self._h5[key]
        if isinstance(node, h5py.Group):
            if self.layout == I3D_LGI_LAYOUT:
                return None  # The I3D release has no groups.
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
            return self._squeezed(array.shape)
        node = self._dataset(key)
        return None if node is None else self._squeezed(node.shape)

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
        array = np.asarray(array, dtype=np.float32)
        return array.reshape(self._squeezed(array.shape))

    def check_layout(self, keys: Iterable[str]) -> None:
        """Raises a one-line ValueError if the arrays of `keys` are not the layout's."""
        if self.layout != I3D_LGI_LAYOUT:
            return
        for key in sorted(keys):
            shape = self.shape(key)
            if shape is None or len(shape) != 2 or shape[1] != I3D_LGI_DIM:
                found = "not a single array" if shape is None else f"of shape {list(shape)}"
                raise ValueError(
                    f"--features={self.path!r} is not the I3D/LGI layout that "
                    f"--feature_layout={I3D_LGI_LAYOUT} reads (one [T, {I3D_LGI_DIM}] "
                    f"array per video id: LGI's [T, 1, 1, {I3D_LGI_DIM}] .npy files or "
                    f"CPL's i3d_features.hdf5): {key!r} is {found}"
                )


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
