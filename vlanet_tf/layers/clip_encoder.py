"""Clip features in the joint space and the candidate windows over them (TGA baseline)."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from vlanet_tf.geometry import DIDEMO_NUM_SEGMENTS, DIDEMO_SEGMENT_SECONDS, ProposalGeometry
from vlanet_tf.layers.ops import l2_normalize, output_spec
from vlanet_tf.layers.proposal_builder import proposal_windows


@keras.saving.register_keras_serializable(package="vlanet_tf")
class ClipEncoder(keras.layers.Layer):
    """Every clip projected (Dense) and L2-normalised, and the K·L candidate windows.

    The query-independent half of the text-guided-attention baseline (Mithun et al.,
    CVPR 2019): unlike `ProposalBuilder` it keeps one feature per clip, since TGA
    attends over clips, and gives each window the half-open clip range it covers.

    Shapes: B batch, T clips, F feature size, D hidden_dim, N = K·L windows (group-major,
    the order of `ProposalBuilder`'s windows flattened).

    Call:
        inputs: dict with `video_features` [B, T, F] (zero-padded), `video_length`
        int32 [B] and `duration` float32 [B] seconds.
    Returns:
        dict with `clips` [B, T, D] (unit rows, zero past the video's length; the
        compute dtype), `clip_mask` bool [B, T], `windows` float32 [B, N, 2] seconds,
        `window_mask` bool [B, N], `clip_start`, `clip_end` int32 [B, N], and
        `window_clips` float32 [B, N]: the window's nominal length in clips, before
        it is clipped at the video's end (at least the clips it covers).
    """

    def __init__(
        self,
        hidden_dim: int = 256,
        proposal_mode: str = "sliding",
        fps: float = 24.0,
        stride_frames: int = 8,
        window_frames: Sequence[int] = (176, 208, 240),
        didemo_segments: int = DIDEMO_NUM_SEGMENTS,
        segment_seconds: float = DIDEMO_SEGMENT_SECONDS,
        min_window_fraction: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.proposal_mode = proposal_mode
        self.fps = float(fps)
        self.stride_frames = int(stride_frames)
        self.window_frames = tuple(int(w) for w in window_frames)
        self.didemo_segments = int(didemo_segments)
        self.segment_seconds = float(segment_seconds)
        self.min_window_fraction = float(min_window_fraction)
        self.projection = keras.layers.Dense(
            hidden_dim, dtype=self.dtype_policy, name="clip_projection"
        )
        self.geometry = ProposalGeometry(
            proposal_mode,
            self.fps,
            self.stride_frames,
            self.window_frames,
            self.didemo_segments,
            self.segment_seconds,
            self.min_window_fraction,
        )

    @property
    def input_dtype(self) -> str:
        return "float32"  # `duration` stays float32; features are cast in `call`.

    def build(self, input_shape: dict[str, tuple]) -> None:
        self.projection.build(input_shape["video_features"])

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = tf.cast(inputs["video_features"], self.compute_dtype)
        length = tf.cast(inputs["video_length"], tf.int32)
        clip_mask = tf.sequence_mask(length, tf.shape(features)[1])
        clips = l2_normalize(self.projection(features))
        clips = clips * tf.cast(clip_mask, clips.dtype)[..., None]
        geometry = proposal_windows(inputs["duration"], length, self.geometry)
        batch = tf.shape(features)[0]
        covered = tf.cast(geometry["clip_end"] - geometry["clip_start"], tf.float32)
        if self.geometry.mode == "sliding":
            clips_per_second = tf.math.divide_no_nan(
                tf.cast(length, tf.float32), tf.cast(inputs["duration"], tf.float32)
            )
            widths = tf.constant(self.geometry.window_seconds, tf.float32)
            covered = tf.maximum(covered, widths[None, None, :] * clips_per_second[:, None, None])
        return {
            "clips": clips,
            "clip_mask": clip_mask,
            "windows": tf.reshape(geometry["windows"], [batch, -1, 2]),
            "window_mask": tf.reshape(geometry["mask"], [batch, -1]),
            "clip_start": tf.reshape(geometry["clip_start"], [batch, -1]),
            "clip_end": tf.reshape(geometry["clip_end"], [batch, -1]),
            "window_clips": tf.reshape(covered, [batch, -1]),
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        b, t = inputs["video_features"].shape[:2]
        n = None
        if self.proposal_mode == "didemo":
            n = self.didemo_segments * self.geometry.num_scales
        shapes = {
            "clips": (b, t, self.hidden_dim),
            "clip_mask": (b, t),
            "windows": (b, n, 2),
            "window_mask": (b, n),
            "clip_start": (b, n),
            "clip_end": (b, n),
            "window_clips": (b, n),
        }
        dtypes = {
            "clips": self.compute_dtype,
            "clip_mask": "bool",
            "windows": "float32",
            "window_mask": "bool",
            "clip_start": "int32",
            "clip_end": "int32",
            "window_clips": "float32",
        }
        return output_spec(shapes, dtypes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            proposal_mode=self.proposal_mode,
            fps=self.fps,
            stride_frames=self.stride_frames,
            window_frames=list(self.window_frames),
            didemo_segments=self.didemo_segments,
            segment_seconds=self.segment_seconds,
            min_window_fraction=self.min_window_fraction,
        )
        return config
