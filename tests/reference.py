"""Pure NumPy versions of VLANet's equations, written from SPEC.md for the tests."""

from __future__ import annotations

import math

import numpy as np

MASKED = -1e9


def l2n(x: np.ndarray) -> np.ndarray:
    n = np.sqrt(np.maximum((x**2).sum(-1, keepdims=True), 1e-12))
    return x / n


def softmax_valid(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    z = z - z.max(-1, keepdims=True)
    e = np.where(mask, np.exp(z), 0.0)
    return e / e.sum(-1, keepdims=True)


def sliding_windows(duration: float, fps=24.0, stride=8, windows=(176, 208, 240)):
    """[(k, l, start, end)] of one video (SPEC §2)."""
    out = []
    k = 0
    while True:
        start = k * stride / fps
        if k > 0 and start >= duration:
            break
        for l, w in enumerate(windows):
            out.append((k, l, start, min(start + w / fps, duration)))
        k += 1
    return out


def pooled_window(features: np.ndarray, duration: float, start: float, end: float):
    """Mean of the clips a window covers; clips spread evenly over the duration."""
    t = features.shape[0]
    a = int(math.floor(start * t / duration + 1e-4))
    b = int(math.ceil(end * t / duration - 1e-4))
    a = min(max(a, 0), t - 1)
    b = min(max(b, a + 1), t)
    return features[a:b].mean(0)


def vla(x, y, w1, w2, y_mask, y_weight=None, reduction="mean", band=None):
    """E(x_n, Y) for each row n of x (SPEC §4, on directions; [decided] mean).

    band: None, or w for the banded self-attention, where row n averages only over the
    valid rows m with |n - m| <= w (weights renormalised over them).
    """
    a = l2n(x) @ w1
    b = l2n(y) @ w2
    pair = np.tanh(a @ b.T)  # [N, M]
    if y_weight is None:
        y_weight = np.ones(len(y))
    valid = np.broadcast_to(y_mask, pair.shape)
    if band is not None:
        n, m = np.indices(pair.shape)
        valid = valid & (np.abs(n - m) <= band)
    mix = np.where(valid, y_weight, 0.0)
    count = valid.sum(-1)
    mix = mix / np.maximum(mix.sum(-1, keepdims=True), 1e-30)
    e = (pair * mix).sum(-1)
    if reduction == "sum":
        e = e * count
    return e


def dense_attention(x, y, w1, w2, x_mask, y_mask, y_weight=None, band=None):
    """A(X, Y) = diag(softmax_n E) X; returns (outputs, weights, energy)."""
    e = vla(x, y, w1, w2, y_mask, y_weight, band=band)
    w = softmax_valid(e, x_mask)
    return x * w[:, None], w, e


def cascade(v, q, v_mask, q_mask, self_w, cross_w, sim_w, video_band=None):
    """Eqs. 9-13 on one example with explicit (unnormalised) weight products.

    self_w: None or ((w1, w2) for V, (w1, w2) for Q); cross_w: list of (w1, w2);
    sim_w: (w1, w2); video_band: None or the band w of the video self-attention.
    Returns (c, product of V weights per row).
    """
    vw = np.where(v_mask, 1.0, 0.0)
    qw = np.where(q_mask, 1.0, 0.0)
    if self_w is not None:
        _, a_v, _ = dense_attention(v, v, *self_w[0], v_mask, v_mask, vw, band=video_band)
        _, a_q, _ = dense_attention(q, q, *self_w[1], q_mask, q_mask, qw)
        vw, qw = vw * a_v, qw * a_q
    for i, (w1, w2) in enumerate(cross_w):
        if i % 2 == 0:
            _, a, _ = dense_attention(v, q, w1, w2, v_mask, q_mask, qw)
            vw = vw * a
        else:
            _, a, _ = dense_attention(q, v, w1, w2, q_mask, v_mask, vw)
            qw = qw * a
    v_comp = (v * vw[:, None]).sum(0)
    c = vla(v_comp[None], q, *sim_w, q_mask, qw)[0]
    return c, vw
