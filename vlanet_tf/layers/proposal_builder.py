"""Segment-group proposals and their features, eq. 2 of VLANet."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from vlanet_tf.geometry import (
    DIDEMO_NUM_SEGMENTS,
    DIDEMO_SEGMENT_SECONDS,
    LENGTH_TOLERANCE,
    SEGMENT_TOLERANCE,
    ProposalGeometry,
)
from vlanet_tf.layers.ops import l2_normalize, output_spec

# Tolerance, in clips, when turning window seconds into clip indices: a window that ends
# a hair after a clip boundary because of float rounding must not take the next clip.
_CLIP_EPS = 1e-4


def proposal_windows(
    duration: tf.Tensor,
    video_length: tf.Tensor,
    geometry: ProposalGeometry,
) -> dict[str, tf.Tensor]:
    """The K x L windows of every video in a batch (SPEC §2), laid out by `geometry`.

    Args:
        duration: float32 [B], seconds.
        video_length: int32 [B], number of valid clips.
        geometry: the layout (`vlanet_tf.geometry`); its NumPy `candidates` are the
            valid windows computed here.

    Returns:
        dict with `windows` float32 [B, K, L, 2] (start, end) seconds, `mask` bool
        [B, K, L], and `clip_start`, `clip_end` int32 [B, K, L]: the half-open range of
        clips each window covers. K is the largest number of groups in the batch.

    Sliding mode: group k starts at k * stride / fps seconds and exists while its start
    is before the video's end; group 0 always exists. Windows are clipped at the end;
    with `geometry.min_window_fraction` > 0, one clipped to less than that fraction of
    its nominal length is masked (outside group 0).
    Clip features are spread evenly over the duration. DiDeMo mode: K = L = the number
    of segments; window (k, l) covers segments k .. k + l and is valid only when it
    stays inside the video's own segments, `geometry.num_segments(duration)` (the
    annotation's num_segments: 25 s is 5 segments), which gives the 21 canonical
    moments for 6 segments and 15 for 5: exactly `geometry.candidates(duration)`, the
    set the Random and Upper-Bound rows rank. A segment past the features' last row
    (`video_length`) pools the last row.
    """
    duration = tf.cast(duration, tf.float32)
    video_length = tf.cast(video_length, tf.int32)
    has_clips = (video_length > 0) & (duration > 0.0)
    if geometry.mode == "didemo":
        n = geometry.didemo_segments
        k = tf.range(n)[:, None]
        l = tf.range(n)[None, :]
        start_seg = tf.broadcast_to(k, (n, n))
        end_seg = k + l + 1
        # The rule of ProposalGeometry.num_segments, in the graph.
        segments = tf.math.ceil(duration / geometry.segment_seconds - SEGMENT_TOLERANCE)
        segments = tf.clip_by_value(tf.cast(segments, tf.int32), 1, n)
        geometry_valid = end_seg[None] <= segments[:, None, None]
        windows = tf.stack(
            [tf.cast(start_seg, tf.float32), tf.cast(end_seg, tf.float32)], axis=-1
        ) * geometry.segment_seconds
        batch = tf.shape(duration)[0]
        windows = tf.broadcast_to(windows[None], (batch, n, n, 2))
        t = video_length[:, None, None]
        clip_start = tf.minimum(start_seg[None], t - 1)
        clip_end = tf.minimum(end_seg[None], t)
        mask = geometry_valid & has_clips[:, None, None]
    else:
        stride_s = geometry.stride_seconds
        widths = tf.constant(geometry.window_seconds, tf.float32)
        num_groups = tf.maximum(
            tf.cast(tf.math.ceil(tf.reduce_max(duration) / stride_s), tf.int32), 1
        )
        starts = tf.cast(tf.range(num_groups), tf.float32) * stride_s  # [K]
        group_exists = (starts[None, :] < duration[:, None]) | (
            tf.range(num_groups)[None, :] == 0
        )  # [B, K]
        start = tf.broadcast_to(
            starts[None, :, None], (tf.shape(duration)[0], num_groups, geometry.num_scales)
        )
        end = tf.minimum(start + widths[None, None, :], duration[:, None, None])
        windows = tf.stack([start, end], axis=-1)
        clips_per_second = tf.math.divide_no_nan(
            tf.cast(video_length, tf.float32), duration
        )[:, None, None]
        t = video_length[:, None, None]
        clip_start = tf.cast(tf.floor(start * clips_per_second + _CLIP_EPS), tf.int32)
        clip_start = tf.clip_by_value(clip_start, 0, tf.maximum(t - 1, 0))
        clip_end = tf.cast(tf.math.ceil(end * clips_per_second - _CLIP_EPS), tf.int32)
        clip_end = tf.clip_by_value(clip_end, clip_start + 1, tf.maximum(t, 1))
        mask = group_exists[:, :, None] & has_clips[:, None, None]
        mask = tf.broadcast_to(mask, tf.shape(clip_start))
        if geometry.min_window_fraction > 0.0:
            long_enough = (end - start) >= (
                geometry.min_window_fraction * widths[None, None, :] - LENGTH_TOLERANCE
            )
            first_group = tf.equal(tf.range(num_groups), 0)[None, :, None]
            mask = mask & (long_enough | first_group)
    return {
        "windows": windows,
        "mask": mask,
        "clip_start": clip_start,
        "clip_end": clip_end,
    }


@keras.saving.register_keras_serializable(package="vlanet_tf")
class ProposalBuilder(keras.layers.Layer):
    """Proposal features p_lk: mean of the covered clips -> Dense -> L2 (eq. 2).

    Shapes: B batch, T clips, F feature size, K segment groups, L scales, D hidden_dim.

    Call:
        inputs: dict with `video_features` [B, T, F] (zero-padded), `video_length`
        int32 [B] (valid clips) and `duration` float32 [B] (seconds).
    Returns:
        dict with `proposals` [B, K, L, D] (unit rows, zero where masked; the compute
        dtype), `windows` float32 [B, K, L, 2] seconds, `mask` bool [B, K, L].

    The fully-connected layer is affine, so the mean of projected clips equals the
    projection of the mean. Projecting first and pooling with prefix sums makes the cost
    O(T F D + K L D) instead of O(K L F).

    Dtypes: the projection runs in the compute dtype of the `dtype` policy (its
    variables stay float32). Durations, windows and the clip arithmetic are float32
    whatever the policy (float16 holds 9.1 s as 9.1016 s), and so are the prefix sums
    and the norm: a difference of two long float16 running sums loses the window's
    mean. Only `proposals` is cast back to the compute dtype.
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
            hidden_dim, dtype=self.dtype_policy, name="proposal_projection"
        )
        # Validates the layout; the arguments stay attributes for get_config.
        self.geometry = ProposalGeometry(
            proposal_mode,
            self.fps,
            self.stride_frames,
            self.window_frames,
            self.didemo_segments,
            self.segment_seconds,
            self.min_window_fraction,
        )

    def _geometry(self) -> dict[str, Any]:
        return dict(
            proposal_mode=self.proposal_mode,
            fps=self.fps,
            stride_frames=self.stride_frames,
            window_frames=self.window_frames,
            didemo_segments=self.didemo_segments,
            segment_seconds=self.segment_seconds,
            min_window_fraction=self.min_window_fraction,
        )

    @property
    def input_dtype(self) -> str:
        # `duration` is seconds and must stay float32; the features are cast to the
        # compute dtype in `call`.
        return "float32"

    @property
    def num_scales(self) -> int:
        return self.geometry.num_scales

    def build(self, input_shape: dict[str, tuple]) -> None:
        self.projection.build(input_shape["video_features"])

    def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = tf.cast(inputs["video_features"], self.compute_dtype)
        geometry = proposal_windows(inputs["duration"], inputs["video_length"], self.geometry)
        projected = tf.cast(self.projection(features), tf.float32)  # [B, T, D]
        prefix = tf.pad(tf.cumsum(projected, axis=1), [[0, 0], [1, 0], [0, 0]])
        shape = tf.shape(geometry["clip_start"])
        flat_start = tf.reshape(geometry["clip_start"], [shape[0], -1])
        flat_end = tf.reshape(geometry["clip_end"], [shape[0], -1])
        total = tf.gather(prefix, flat_end, batch_dims=1) - tf.gather(
            prefix, flat_start, batch_dims=1
        )
        count = tf.cast(tf.maximum(flat_end - flat_start, 1), total.dtype)[..., None]
        pooled = tf.reshape(
            total / count, tf.concat([shape, [self.hidden_dim]], axis=0)
        )
        mask = geometry["mask"]
        proposals = l2_normalize(pooled) * tf.cast(mask, pooled.dtype)[..., None]
        return {
            "proposals": tf.cast(proposals, self.compute_dtype),
            "windows": geometry["windows"],
            "mask": mask,
        }

    def compute_output_shape(self, input_shape: dict[str, tuple]) -> dict[str, tuple]:
        b = input_shape["video_features"][0]
        k = self.didemo_segments if self.proposal_mode == "didemo" else None
        return {
            "proposals": (b, k, self.num_scales, self.hidden_dim),
            "windows": (b, k, self.num_scales, 2),
            "mask": (b, k, self.num_scales),
        }

    def compute_output_spec(self, inputs: dict[str, Any]) -> dict[str, keras.KerasTensor]:
        shapes = self.compute_output_shape({k: v.shape for k, v in inputs.items()})
        dtypes = {"proposals": self.compute_dtype, "windows": "float32", "mask": "bool"}
        return output_spec(shapes, dtypes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, **self._geometry())
        config["window_frames"] = list(self.window_frames)
        return config
