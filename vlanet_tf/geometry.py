"""Proposal geometry: where the segment groups and their windows lie (SPEC §2).

One frozen, serialisable object says how a video of a given duration is cut into
candidate moments. The proposal layer builds its windows from it, the baselines rank
its candidates, the span utilities and the FLOP counts read its group count, so the
model and everything that scores or sizes it agree on one candidate set.

Two layouts:
- ``sliding`` (Charades-STA): segment group k starts at k·stride/fps seconds and exists
  while its start is before the video's end (group 0 always exists, so a video shorter
  than the smallest window still has proposals); each group holds one window per scale,
  in the order of ``window_frames``, all starting at the group's start, ends clipped to
  the duration.
- ``didemo``: K = L = the number of segments; window (k, l) covers segments k … k + l
  and is a candidate while it stays inside the segments, which gives DiDeMo's 21
  canonical moments for 6 segments of 5 s.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

# DiDeMo: videos are cut into (at most) six 5-second segments (SPEC §2). The one place
# these numbers live.
DIDEMO_SEGMENT_SECONDS = 5.0
DIDEMO_NUM_SEGMENTS = 6
# A duration within this many segments above a whole number of them is that number
# (float rounding); `num_segments` and the proposal layer's graph share it.
SEGMENT_TOLERANCE = 1e-6

PROPOSAL_MODES = ("sliding", "didemo")
# Seconds of slack in `min_window_fraction`'s length test, so that the NumPy candidates
# and the float32 graph agree on windows at the threshold.
LENGTH_TOLERANCE = 1e-4


@dataclasses.dataclass(frozen=True)
class ProposalGeometry:
    """The layout of a model's candidate moments.

    Attributes:
      mode: "sliding" or "didemo".
      fps: frames per second that turn frame counts into seconds (sliding).
      stride_frames: start-to-start distance of two segment groups, in frames.
      window_frames: the L window lengths of a segment group, in frames.
      didemo_segments: segments per DiDeMo video.
      segment_seconds: seconds per DiDeMo segment.
      min_window_fraction: sliding only. A window that the video's end clips to less
        than this fraction of its nominal length is not a candidate, except in group 0
        (so every video keeps one). 0 keeps every clipped window (SPEC §2).
    """

    mode: str = "sliding"
    fps: float = 24.0
    stride_frames: int = 8
    window_frames: tuple[int, ...] = (176, 208, 240)
    didemo_segments: int = DIDEMO_NUM_SEGMENTS
    segment_seconds: float = DIDEMO_SEGMENT_SECONDS
    min_window_fraction: float = 0.0

    def __post_init__(self) -> None:
        # Normalised so that equal geometries compare and serialise equal.
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "stride_frames", int(self.stride_frames))
        object.__setattr__(self, "window_frames", tuple(int(w) for w in self.window_frames))
        object.__setattr__(self, "didemo_segments", int(self.didemo_segments))
        object.__setattr__(self, "segment_seconds", float(self.segment_seconds))
        object.__setattr__(self, "min_window_fraction", float(self.min_window_fraction))
        if not 0.0 <= self.min_window_fraction <= 1.0:
            raise ValueError(
                f"min_window_fraction must be in [0, 1], got {self.min_window_fraction}"
            )
        if self.mode not in PROPOSAL_MODES:
            raise ValueError(f"proposal_mode must be 'sliding' or 'didemo', got {self.mode!r}")
        if self.mode == "sliding":
            if self.fps <= 0 or self.stride_frames <= 0:
                raise ValueError(
                    "sliding proposals need fps > 0 and stride_frames > 0, got "
                    f"fps={self.fps}, stride_frames={self.stride_frames}"
                )
            if not self.window_frames or min(self.window_frames) <= 0:
                raise ValueError(
                    "sliding proposals need at least one window, all > 0 frames, got "
                    f"window_frames={self.window_frames}"
                )
        elif self.didemo_segments < 1 or self.segment_seconds <= 0:
            raise ValueError(
                "didemo proposals need didemo_segments >= 1 and segment_seconds > 0, got "
                f"{self.didemo_segments}, {self.segment_seconds}"
            )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def didemo(cls) -> "ProposalGeometry":
        """DiDeMo's 6 segments of 5 s (21 candidate moments)."""
        return cls(mode="didemo")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProposalGeometry":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ProposalGeometry keys {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window_frames"] = list(self.window_frames)
        return d

    # ----------------------------------------------------------------------- sizes

    @property
    def num_scales(self) -> int:
        """L: windows per segment group."""
        return self.didemo_segments if self.mode == "didemo" else len(self.window_frames)

    @property
    def stride_seconds(self) -> float:
        return self.stride_frames / self.fps

    @property
    def window_seconds(self) -> tuple[float, ...]:
        return tuple(w / self.fps for w in self.window_frames)

    def num_groups(self, duration: float) -> int:
        """K: segment groups of a video of ``duration`` seconds."""
        if self.mode == "didemo":
            return self.didemo_segments
        if duration <= 0:
            return 1
        groups = max(1, math.ceil(duration / self.stride_seconds))
        # ceil() can overshoot by one group when duration/stride is an integer up to
        # float error; the start < duration rule decides.
        if groups > 1 and (groups - 1) * self.stride_seconds >= duration:
            groups -= 1
        return groups

    def num_segments(self, duration: float) -> int:
        """DiDeMo segments a video of ``duration`` seconds has (at most didemo_segments).

        The one rule of a DiDeMo video's extent: the model's valid windows
        (`layers.proposal_builder.proposal_windows`), `candidates` (the Random row) and
        the Upper Bound's candidate pairs all follow it. The readers set a DiDeMo
        duration to num_segments · segment_seconds, so this is the annotation's
        num_segments.
        """
        whole = math.ceil(duration / self.segment_seconds - SEGMENT_TOLERANCE)
        return int(min(max(whole, 1), self.didemo_segments))

    # ------------------------------------------------------------------ candidates

    def sliding_windows(self, duration: float) -> np.ndarray:
        """The sliding-window proposals of a video, ``[K * L, 2]`` seconds, group-major.

        Late groups may hold identical clipped windows; they stay, since the model
        ranks them as separate proposals.
        """
        if duration <= 0:
            raise ValueError(f"duration must be > 0 seconds, got {duration}")
        starts = np.arange(self.num_groups(duration), dtype=np.float64) * self.stride_seconds
        lengths = np.asarray(self.window_seconds, dtype=np.float64)
        ends = np.minimum(starts[:, None] + lengths[None, :], duration)
        starts = np.broadcast_to(starts[:, None], ends.shape)
        return np.stack([starts, ends], axis=-1).reshape(-1, 2)

    def didemo_pairs(self, num_segments: int | None = None) -> np.ndarray:
        """DiDeMo's candidate segment pairs ``[n (n + 1) / 2, 2]``, inclusive ends.

        Canonical order of the original release: the single segments (0, 0) … (n-1, n-1)
        first, then every (s, e) with s < e in lexicographic order; with fewer segments
        than ``didemo_segments``, the pairs inside the video in the same relative order.
        """
        n = self.didemo_segments if num_segments is None else int(num_segments)
        if n < 1:
            raise ValueError(f"num_segments must be >= 1, got {n}")
        singles = [(i, i) for i in range(n)]
        pairs = list(itertools.combinations(range(n), 2))
        return np.asarray(singles + pairs, dtype=np.int64)

    def candidates(self, duration: float) -> np.ndarray:
        """The candidate moments of a video that a ranking may return, ``[C, 2]`` seconds.

        Sliding: the windows of `sliding_windows` that `min_window_fraction` keeps.
        DiDeMo: the canonical pairs of the video's own segments, in seconds (s·5,
        (e + 1)·5).
        """
        if self.mode == "sliding":
            windows = self.sliding_windows(duration)
            if self.min_window_fraction == 0.0:
                return windows
            nominal = np.tile(np.asarray(self.window_seconds), len(windows) // self.num_scales)
            long_enough = (
                windows[:, 1] - windows[:, 0]
                >= self.min_window_fraction * nominal - LENGTH_TOLERANCE
            )
            long_enough[: self.num_scales] = True  # group 0
            return windows[long_enough]
        pairs = self.didemo_pairs(self.num_segments(duration)).astype(np.float64)
        return np.stack(
            [pairs[:, 0] * self.segment_seconds, (pairs[:, 1] + 1.0) * self.segment_seconds],
            axis=-1,
        )


def geometry_of(config: Any) -> ProposalGeometry:
    """The ProposalGeometry of an object with ModelConfig's proposal fields."""
    return ProposalGeometry(
        mode=config.proposal_mode,
        fps=config.fps,
        stride_frames=config.stride_frames,
        window_frames=tuple(config.window_frames),
        didemo_segments=config.didemo_segments,
        segment_seconds=config.segment_seconds,
        min_window_fraction=config.min_window_fraction,
    )


def sliding(
    fps: float = 24.0, stride_frames: int = 8, window_frames: Sequence[int] = (176, 208, 240)
) -> ProposalGeometry:
    """A sliding-window geometry (Charades-STA's by default)."""
    return ProposalGeometry("sliding", fps, stride_frames, tuple(window_frames))
