"""Analytic floating-point operation counts of a VLANet step, per (video, query) sample.

Shapes: T clips, F feature size, D hidden size, E word-vector size, M words, K segment
groups, L scales, N video rows in the cascade (K with surrogate selection, K·L
without), P = 1 + num_negatives passes of the query-dependent part per sample.

A matrix product [a, b] x [b, c] costs 2abc (one multiply and one add per MAC).
Elementwise work is counted at one FLOP per element per operation, with the constants
stated next to each term; it is a few percent of the total at Charades-STA shapes.

Forward, per sample:
  projection     2 T F D                        once per video (shared by all passes)
  pooling        T D (prefix sum) + 6 K L D     differences, mean, L2 norm, mask
  query GRU      per layer and token: 2·3D·(E_in + D) + 12 D     (E_in = E, then D)
  selection      2 K L D (cosines) + 2 K L
  attention A(X[n], Y[m]):  2 n D² + 2 m D² (W1, W2) + 2 n m D (pairwise) + 3 n m
                            (tanh, weighted mean) + 3 (n + m) D (row directions)
                            + 5 n (softmax)
                 with `video_self_attention_window` w > 0, A(V, V) pairs each row with
                 the min(min(2w + 1, n) + 2w, n) rows of its block's neighbourhood
                 instead of all m (DenseAttention's blocks), in place of m in the two
                 pairwise terms
  cascade        A(V, V), A(Q, Q), then Q2V, V2Q, ... (`cross_steps` steps), v_comp
                 2 N D, similarity head A(v_comp[1], Q)
  attention map  2 N M D (inference only: the training loss never reads it, and
                 graph pruning removes it from the training step)

Backward: every product whose two operands both carry gradient costs twice its forward
(one product for each operand's gradient). Two products have only one operand that
needs a gradient and so cost once their forward: the projection (the clip features are
data) and the GRU's input product in the first layer when the word embeddings are
frozen. Elementwise work costs twice its forward. So a training step is
3 x forward except those two terms, which are 2 x; the common "3 x forward" rule would
overcount the projection, the largest single product, by half.

Training step, per sample:
  video part once + P x (query GRU + selection + cascade) forward and backward
  + the optimizer: AdamW with gradient clipping at ~15 FLOPs per trainable parameter,
  divided by the batch size.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vlanet_tf.config import ModelConfig

# Elementwise FLOPs per hidden unit and token of a GRU cell beyond its two products:
# 2 sigmoids and a tanh (~3 each counted as 1 + the gate arithmetic) and the blend.
GRU_ELEMENTWISE_PER_UNIT = 12
# AdamW with clipnorm: the moment updates, the bias-corrected step, weight decay and the
# global-norm clip, per trainable parameter and step.
OPTIMIZER_FLOPS_PER_PARAMETER = 15


@dataclasses.dataclass(frozen=True)
class StepShape:
    """The sizes one sample of a step sees (a padded batch has these per row)."""

    clips: int  # T
    words: int  # M
    groups: int  # K

    @classmethod
    def charades(cls, clips: int, words: int, config: ModelConfig, clip_frames: int = 16):
        """A sliding-window video of `clips` clips of `clip_frames` frames each."""
        return cls(clips, words, num_groups(clips * clip_frames / config.fps, config))


def num_groups(duration: float, config: ModelConfig) -> int:
    """K of the model's proposal geometry for one video of `duration` seconds."""
    return config.geometry.num_groups(duration)


@dataclasses.dataclass
class Term:
    """One named piece of work: forward and backward FLOPs, per sample."""

    forward: float
    backward: float

    @property
    def total(self) -> float:
        return self.forward + self.backward


def _both(forward: float) -> Term:
    """Both operands carry gradient: backward = 2 x forward."""
    return Term(forward, 2.0 * forward)


def _weight_only(forward: float) -> Term:
    """Only one operand needs a gradient: backward = 1 x forward."""
    return Term(forward, forward)


def band_columns(rows: int, window: int) -> int:
    """Rows of Y each row of a banded A(X, X) is paired with (DenseAttention's blocks)."""
    if window <= 0:
        return rows
    return min(min(2 * window + 1, rows) + 2 * window, rows)


def attention_flops(n: int, m: int, d: int, columns: int | None = None) -> float:
    """Forward FLOPs of one Dense Attention A(X[n, d], Y[m, d]) (eqs. 7-8).

    `columns`: rows of Y each row of X is paired with (m unless banded).
    """
    c = m if columns is None else columns
    return 2 * n * d * d + 2 * m * d * d + 2 * n * c * d + 3 * n * c + 3 * (n + m) * d + 5 * n


def gru_flops(words: int, input_dim: int, hidden: int) -> tuple[float, float]:
    """(input-product, recurrent-and-elementwise) forward FLOPs of one GRU layer."""
    input_product = 2 * words * input_dim * 3 * hidden
    recurrent = 2 * words * hidden * 3 * hidden + GRU_ELEMENTWISE_PER_UNIT * words * hidden
    return input_product, recurrent


def trainable_parameters(config: ModelConfig) -> int:
    """Trainable parameter count of VLANet (frozen embeddings excluded unless trained)."""
    d, e = config.hidden_dim, config.word_dim
    count = config.feature_dim * d + d  # projection
    for layer in range(config.gru_layers):
        inp = e if layer == 0 else d
        count += 3 * d * inp + 3 * d * d + 2 * 3 * d  # kernel, recurrent, reset_after bias
    if config.train_embeddings:
        count += config.vocab_size * e
    attentions = 1  # similarity head
    if config.use_self_attention:
        attentions += 2
    if config.use_cross_attention:
        attentions += 2 if config.share_cross_weights else config.cross_steps
    return count + attentions * 2 * d * d


def step_terms(
    config: ModelConfig,
    shape: StepShape,
    training: bool = True,
    num_negatives: int = 1,
    batch_size: int = 64,
) -> dict[str, Term]:
    """The named FLOP terms of one sample; backward is 0 when not `training`.

    Training includes `num_negatives` negative passes (each a query encoding, a
    selection and a cascade against the shared video part) and the optimizer.
    """
    t, m, k = shape.clips, shape.words, shape.groups
    f, d, e = config.feature_dim, config.hidden_dim, config.word_dim
    l_ = config.num_scales
    n = k if config.use_surrogate_selection else k * l_
    passes = 1 + num_negatives if training else 1

    terms: dict[str, Term] = {
        "projection": _weight_only(2 * t * f * d),
        "pooling": _both(t * d + 6 * k * l_ * d),
    }
    query = Term(3 * m * d, 6 * m * d)  # the row L2 normalisation
    for layer in range(config.gru_layers):
        inp, rec = gru_flops(m, e if layer == 0 else d, d)
        # Frozen word vectors need no gradient, so the first input product only
        # computes its kernel's gradient.
        input_grad = layer > 0 or config.train_embeddings
        query = Term(
            query.forward + inp + rec,
            query.backward + (2 * inp if input_grad else inp) + 2 * rec,
        )
    terms["query_gru"] = Term(passes * query.forward, passes * query.backward)
    selection = 2 * k * l_ * d + 2 * k * l_
    terms["selection"] = _both(passes * selection)

    window = config.video_self_attention_window
    if not config.use_surrogate_selection:
        window *= l_  # the band is in groups; without selection the rows are proposals
    steps: list[tuple[str, int, int, int]] = []
    if config.use_self_attention:
        steps += [("self_video", n, n, band_columns(n, window)), ("self_query", m, m, m)]
    if config.use_cross_attention:
        for i in range(config.cross_steps):
            steps.append(
                (f"cross_{i}_q2v", n, m, m) if i % 2 == 0 else (f"cross_{i}_v2q", m, n, n)
            )
    for name, rows, cols, paired in steps:
        terms[name] = _both(passes * attention_flops(rows, cols, d, paired))
    similarity = 2 * n * d + 3 * d + attention_flops(1, m, d)
    terms["similarity"] = _both(passes * similarity)
    if training:
        terms["optimizer"] = Term(
            0.0, OPTIMIZER_FLOPS_PER_PARAMETER * trainable_parameters(config) / batch_size
        )
    else:
        terms["attention_map"] = Term(2 * n * m * d + (n + m) * d, 0.0)
        terms = {name: Term(term.forward, 0.0) for name, term in terms.items()}
    return terms


def step_flops(
    config: ModelConfig,
    shape: StepShape,
    training: bool = True,
    num_negatives: int = 1,
    batch_size: int = 64,
) -> float:
    """Total FLOPs per sample of a training step (or of a forward pass)."""
    terms = step_terms(config, shape, training, num_negatives, batch_size)
    return sum(term.total for term in terms.values())


def breakdown(terms: dict[str, Term]) -> dict[str, Any]:
    """JSON-ready {name: {forward, backward, share}} of `step_terms`."""
    total = sum(term.total for term in terms.values())
    return {
        name: {
            "forward": term.forward,
            "backward": term.backward,
            "share": term.total / total if total else 0.0,
        }
        for name, term in terms.items()
    }
