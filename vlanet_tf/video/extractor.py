"""ExtractorSpec: everything that decides a video's features, and the loaded extractor.

Sampling (SPEC §2): frames are resampled to `fps`; consecutive runs of `clip_frames`
frames are clips, one feature each; `frames_per_clip` frames evenly spaced inside each
clip go through the backbone and their features are averaged.
- charades: 24 fps, 16-frame clips (C3D's clip), 4 frames per clip.
- didemo: 24 fps, 120-frame clips (5-s segments), 5 frames per segment (1 a second),
  averaged like DiDeMo's average_fc7.
A trailing partial clip is kept when it holds at least half a clip.

The spec travels with the features (an attribute of the HDF5 file), the prepared data
directory (manifest), the training run (config.json) and the export
(assets.extra/vlanet_export.json); features are only fed to a model trained on the same
extractor.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import numpy as np

from vlanet_tf.video import backbones

STYLES = {
    "charades": {"fps": 24.0, "clip_frames": 16, "frames_per_clip": 4},
    "didemo": {"fps": 24.0, "clip_frames": 120, "frames_per_clip": 5},
}
# Fields that do not change the features (labels for messages).
_LABELS = ("weights",)


@dataclasses.dataclass(frozen=True)
class ExtractorSpec:
    backbone: str
    weights: str  # "imagenet" or the weights file's name (a label; the hash decides)
    weights_sha256: str
    image_size: int
    fps: float
    clip_frames: int
    frames_per_clip: int
    feature_dim: int

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.clip_frames < 1:
            raise ValueError(f"fps and clip_frames must be positive, got {self}")
        if not 1 <= self.frames_per_clip <= self.clip_frames:
            raise ValueError(
                f"frames_per_clip must be in [1, clip_frames={self.clip_frames}], "
                f"got {self.frames_per_clip}"
            )

    @property
    def clip_seconds(self) -> float:
        return self.clip_frames / self.fps

    def sample_positions(self) -> tuple[int, ...]:
        """Frame positions inside a clip that go through the backbone (centred)."""
        n, c = self.frames_per_clip, self.clip_frames
        return tuple((2 * j + 1) * c // (2 * n) for j in range(n))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExtractorSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(d)
        if missing:
            raise ValueError(f"an extractor record needs {sorted(missing)}, got {dict(d)}")
        return cls(**{k: d[k] for k in names})

    def describe(self) -> str:
        return (
            f"{self.backbone} ({self.weights}, sha256 {self.weights_sha256[:12]}, "
            f"{self.image_size}px) -> {self.feature_dim}-d, {self.clip_frames} frames per "
            f"clip at {self.fps:g} fps, {self.frames_per_clip} sampled"
        )


def same_features(a: ExtractorSpec, b: ExtractorSpec) -> bool:
    """Whether two specs yield the same features (the weights' label aside)."""
    da, db = a.to_dict(), b.to_dict()
    return all(da[k] == db[k] for k in da if k not in _LABELS)


def check_same(expected: Mapping[str, Any] | ExtractorSpec | None,
               actual: Mapping[str, Any] | ExtractorSpec | None, what: str) -> None:
    """Raises ValueError naming both extractors unless they yield the same features.

    A missing record on either side (features of unknown origin) is not refused.
    """
    if expected is None or actual is None:
        return
    e = expected if isinstance(expected, ExtractorSpec) else ExtractorSpec.from_dict(expected)
    a = actual if isinstance(actual, ExtractorSpec) else ExtractorSpec.from_dict(actual)
    if not same_features(e, a):
        raise ValueError(
            f"{what} come from a different extractor than the model was trained on:\n"
            f"  model:    {e.describe()}\n  {what}: {a.describe()}\n"
            "extract them again with the model's extractor (or train on these)"
        )


class Extractor:
    """A loaded backbone and its spec: images uint8 [B, S, S, 3] -> float32 [B, F]."""

    def __init__(self, backbone: str, weights: str, style: str = "charades",
                 image_size: int | None = None, fps: float | None = None,
                 clip_frames: int | None = None, frames_per_clip: int | None = None):
        import os

        import tensorflow as tf

        if style not in STYLES:
            raise ValueError(f"style must be one of {sorted(STYLES)}, got {style!r}")
        preset = STYLES[style]
        self.model, preprocess = backbones.build(backbone, weights, image_size)
        size = int(self.model.input_shape[1])
        feature_dim = int(self.model.output_shape[-1])
        self.spec = ExtractorSpec(
            backbone=backbone,
            weights=weights if weights == backbones.IMAGENET else os.path.basename(weights),
            weights_sha256=backbones.weights_sha256(self.model),
            image_size=size,
            fps=float(fps or preset["fps"]),
            clip_frames=int(clip_frames or preset["clip_frames"]),
            frames_per_clip=int(frames_per_clip or preset["frames_per_clip"]),
            feature_dim=feature_dim,
        )
        model = self.model

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)])
        def embed(images):
            x = preprocess(tf.cast(images, tf.float32))
            return tf.cast(model(x, training=False), tf.float32)

        self._embed = embed

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | ExtractorSpec, weights: str | None = None
                  ) -> "Extractor":
        """The extractor a spec names; `weights` overrides where the weights come from
        (needed for weights=PATH specs). Refuses weights whose hash differs."""
        spec = spec if isinstance(spec, ExtractorSpec) else ExtractorSpec.from_dict(spec)
        source = weights or spec.weights
        if source != backbones.IMAGENET and weights is None:
            raise ValueError(
                f"the model's extractor was loaded from the file {spec.weights!r}; pass "
                "its path (predict: --extractor_weights=PATH)"
            )
        extractor = cls(spec.backbone, source, image_size=spec.image_size, fps=spec.fps,
                        clip_frames=spec.clip_frames, frames_per_clip=spec.frames_per_clip)
        check_same(spec, extractor.spec, "the extractor weights")
        return extractor

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self._embed(images).numpy()
