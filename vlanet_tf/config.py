"""Typed configuration: the model, its training and where a run executes.

Library code takes these dataclasses; only the `python -m` mains read absl flags and
turn them into configs (`vlanet_tf.flags`). Every [open] choice of the method has a
field here, and every field changes what is built or run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from vlanet_tf.geometry import (
    DIDEMO_NUM_SEGMENTS,
    DIDEMO_SEGMENT_SECONDS,
    ProposalGeometry,
    geometry_of,
)

STRATEGIES = ("mirrored", "one_device", "multi_worker")
# The scoring networks the trainer can train (ModelConfig.architecture): VLANet, or the
# text-guided-attention baseline of Mithun et al. (CVPR 2019), VLANet's Table 1 row.
ARCHITECTURES = ("vlanet", "tga")
# Keras dtype policies a model is built under (ModelConfig.precision).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass
class ModelConfig:
    """Everything that fixes the network's structure (SPEC §1-7, §9)."""

    # Query side (eq. 1).
    vocab_size: int = 2
    word_dim: int = 300
    hidden_dim: int = 256  # D, shared by query and proposal features.
    gru_layers: int = 1
    train_embeddings: bool = False

    # Video side (eq. 2).
    feature_dim: int = 4096
    proposal_mode: str = "sliding"  # "sliding" (Charades-STA) or "didemo" (21 moments).
    fps: float = 24.0
    stride_frames: int = 8
    window_frames: Sequence[int] = (176, 208, 240)
    didemo_segments: int = DIDEMO_NUM_SEGMENTS
    segment_seconds: float = DIDEMO_SEGMENT_SECONDS
    # Sliding windows that the video's end clips to less than this fraction of their
    # nominal length are not candidates (outside group 0); 0 keeps them all (SPEC §2).
    # A window of a few clips averages little of their noise away; such windows took the
    # top rank more and more as training went on (README, "Why validation R1@0.5 fell").
    min_window_fraction: float = 0.0

    # Cross-modal part (eqs. 3-13) and the ablations of SPEC §9.
    use_surrogate_selection: bool = True
    use_self_attention: bool = True
    use_cross_attention: bool = True
    cross_steps: int = 3
    share_cross_weights: bool = False
    vla_reduction: str = "mean"  # "mean" [decided] or "sum".
    attention_init_scale: float = 1.0  # stddev of W1, W2 init, in units of 1/sqrt(D).
    # Band of the video self-attention A(V, V) (eq. 9), in segment groups: E(v_n, V)
    # averages only over the groups within ±w of n. 0 is the paper's full
    # self-attention, whose K x K energies make a query's cost quadratic in the video's
    # length; w > 0 makes it O(K·w), for long videos. Charades-STA videos have K ≈ 90.
    video_self_attention_window: int = 0
    # Which reading of eqs. 7-13 the cascade computes (README, "Deviations from the
    # paper"): "project" takes every E on the rows' directions, mixes Y by its rows'
    # weights, reduces by `vla_reduction` and normalises v_comp; "paper" is the
    # equations as printed (E on the re-weighted rows, a sum over m, v_comp = sum_k V_k;
    # `vla_reduction` is then not read).
    cascade_form: str = "project"
    # A surrogate's localisation score (SPEC §7) is its log weight in v_comp; λ > 0
    # adds λ·cos(s_k, w_M), its eq. 3 selection cosine (README, "Validation-chosen
    # defaults"). Rankings only: c, and so the loss, are unchanged.
    score_mix: float = 0.0
    # τ of every cascade attention's softmax over rows, softmax_n(E / τ) (eqs. 8-12; not
    # c): E is bounded, so at the paper's τ = 1 the weights stay near uniform over a
    # video's rows. <1 lets them peak on a moment.
    attention_temperature: float = 1.0
    # c = E(v_comp, Q) with the last Q2V step's W1, W2 instead of its own (eq. 13): the
    # function that weights the surrogates is the one the loss scores the pair by.
    share_similarity_head: bool = False

    # The Keras dtype policy every layer is built with: the compute dtype of the
    # projections, GRU and attention energies (variables, the log-scale bookkeeping,
    # the similarity and the scores stay float32; docs in each layer). A model field,
    # not a training one: it fixes what the built network computes, so evaluate and
    # export rebuild a run's model under the precision it was trained in.
    precision: str = "float32"

    # Which network scores a (video, sentence) pair (ARCHITECTURES). "tga" uses the
    # query encoder's last state, hidden_dim and the proposal fields above; the
    # cross-modal fields are VLANet's only. TGA's bidirectional ranking loss is the
    # trainer's negative_direction="both" with num_negatives=0 and the hinge.
    architecture: str = "vlanet"
    # TGA: temperature of the softmax over clips of cos(clip, sentence).
    tga_temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if not self.tga_temperature > 0:
            raise ValueError(f"tga_temperature must be > 0, got {self.tga_temperature}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        self.window_frames = tuple(int(w) for w in self.window_frames)
        if self.vla_reduction not in ("mean", "sum"):
            raise ValueError(
                f"vla_reduction must be 'mean' or 'sum', got {self.vla_reduction!r}"
            )
        if not self.score_mix >= 0:
            raise ValueError(f"score_mix must be >= 0, got {self.score_mix}")
        if not self.attention_temperature > 0:
            raise ValueError(
                f"attention_temperature must be > 0, got {self.attention_temperature}"
            )
        if self.cross_steps < 1:
            raise ValueError(f"cross_steps must be >= 1, got {self.cross_steps}")
        if self.cascade_form not in ("project", "paper"):
            raise ValueError(
                f"cascade_form must be 'project' or 'paper', got {self.cascade_form!r}"
            )
        window = self.video_self_attention_window
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise ValueError(
                f"video_self_attention_window must be an int >= 0, got {window!r}"
            )
        # Validates the proposal fields (mode, stride, windows) in one place.
        self.geometry  # noqa: B018

    @property
    def geometry(self) -> ProposalGeometry:
        """Where the candidate moments lie (`vlanet_tf.geometry`)."""
        return geometry_of(self)

    @property
    def num_scales(self) -> int:
        """L: windows per segment group."""
        return self.geometry.num_scales

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window_frames"] = list(self.window_frames)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {sorted(unknown)}")
        return cls(**d)


@dataclasses.dataclass
class TrainConfig:
    """How the model is optimised (eq. 14 and the [open] choices of SPEC §6)."""

    margin: float = 0.5  # Δ of eq. 14.
    num_negatives: int = 1
    gather_negatives: bool = False  # Draw negatives from the global batch.
    optimizer: str = "adamw"  # "adamw" | "adam" | "sgd".
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    clipnorm: float = 5.0  # Global norm of the all-replica gradient; <= 0: off.
    batch_size: int = 64  # Global batch size.
    epochs: int = 20
    seed: int = 1234
    # Beyond the paper; the defaults are eq. 14 as above (VLANet's docstring, README).
    negative_direction: str = "sentence"  # "sentence" | "video" | "both".
    loss: str = "hinge"  # "hinge" | "hinge_hardest" | "infonce" (losses.LOSSES).
    temperature: float = 0.1  # τ of "infonce".
    dropout: float = 0.0  # On query words and proposal features, training passes only.
    # Learning rate after the warmup: "constant" or "cosine" (to 0 at the last step).
    lr_schedule: str = "constant"
    # Stop after this many epochs without a better validation metric; 0: never.
    early_stopping_patience: int = 0
    # Validate, checkpoint and keep the exponential moving average of the weights
    # (Polyak averaging; Keras' `use_ema`) with this momentum per step; 0: off.
    ema_momentum: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclasses.dataclass
class RunConfig:
    """Where and how a run executes (not part of the method).

    `data_dir` and `max_query_length` are saved with the run, so evaluate, export and
    predict reload them from the run directory (`vlanet_tf.run_dir`).
    """

    data_dir: str
    model_dir: str
    strategy: str = "mirrored"
    steps_per_epoch: int | None = None
    deterministic: bool = False
    eval_top_k: int = 0  # 0: rank every valid proposal (DiDeMo's protocol needs all).
    # Temporal NMS IoU threshold on the ranked moments (val, evaluate, the exported
    # graph); 0: off, as in the compared methods.
    nms_iou: float = 0.0
    max_query_length: int | None = None
    attention_example: int = 0
    verbose: int | str = "auto"  # Keras fit verbosity; "auto": bar on a tty.
    # XLA for the training step (Model.compile) and the inference forward pass
    # (vlanet_tf.inference). Off by default: docs/PERFORMANCE.md measures it.
    jit_compile: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {self.steps_per_epoch}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
