"""Pure NumPy versions of VLANet's equations, written from SPEC.md for the tests.

Two readings of eqs. 7-13 (README, "Deviations from the paper"):
- `paper_vla`, `paper_dense_attention`, `paper_cascade`: the equations as printed,
  on the rows themselves, every re-weighted row formed explicitly (float64);
- `project_vla`, `project_dense_attention`, `project_cascade`: the project's default
  form (E on the rows' directions, Y mixed by its rows' weights, mean over m by
  default, unit v_comp), written from SPEC §4-5 and the README.
"""

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


def project_vla(x, y, w1, w2, y_mask, y_weight=None, reduction="mean", band=None):
    """The project's E(x_n, Y) for each row n of x (on directions; [decided] mean).

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


def project_dense_attention(
    x, y, w1, w2, x_mask, y_mask, y_weight=None, band=None, temperature=1.0
):
    """The project's A(X, Y) = diag(softmax_n E / τ) X; returns (outputs, weights, energy)."""
    e = project_vla(x, y, w1, w2, y_mask, y_weight, band=band)
    w = softmax_valid(e / temperature, x_mask)
    return x * w[:, None], w, e


def project_cascade(
    v, q, v_mask, q_mask, self_w, cross_w, sim_w, video_band=None, temperature=1.0
):
    """The project's eqs. 9-13 on one example with explicit weight products.

    self_w: None or ((w1, w2) for V, (w1, w2) for Q); cross_w: list of (w1, w2);
    sim_w: (w1, w2); video_band: None or the band w of the video self-attention;
    temperature: τ of every self- and cross-attention's softmax (not of c).
    Returns (c, product of V weights per row).
    """
    t = temperature
    vw = np.where(v_mask, 1.0, 0.0)
    qw = np.where(q_mask, 1.0, 0.0)
    if self_w is not None:
        _, a_v, _ = project_dense_attention(
            v, v, *self_w[0], v_mask, v_mask, vw, band=video_band, temperature=t
        )
        _, a_q, _ = project_dense_attention(q, q, *self_w[1], q_mask, q_mask, qw, temperature=t)
        vw, qw = vw * a_v, qw * a_q
    for i, (w1, w2) in enumerate(cross_w):
        if i % 2 == 0:
            _, a, _ = project_dense_attention(v, q, w1, w2, v_mask, q_mask, qw, temperature=t)
            vw = vw * a
        else:
            _, a, _ = project_dense_attention(q, v, w1, w2, q_mask, v_mask, vw, temperature=t)
            qw = qw * a
    v_comp = (v * vw[:, None]).sum(0)
    c = project_vla(v_comp[None], q, *sim_w, q_mask, qw)[0]
    return c, vw


# ------------------------------------------------------- eqs. 7-13 as the paper prints


def paper_vla(x, y, w1, w2, y_mask, band=None):
    """Eq. 7: E(x_n, Y) = sum over the valid m of tanh((W1 x_n) . (W2 y_m)).

    x [N, D], y [M, D] are the rows as they are (no normalisation); band: None, or w
    for the banded video self-attention (only |n - m| <= w is summed).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    pair = np.tanh((x @ w1) @ (y @ w2).T)  # [N, M]
    valid = np.broadcast_to(np.asarray(y_mask, bool), pair.shape)
    if band is not None:
        n, m = np.indices(pair.shape)
        valid = valid & (np.abs(n - m) <= band)
    return np.where(valid, pair, 0.0).sum(-1)


def paper_dense_attention(x, y, w1, w2, x_mask, y_mask, band=None):
    """Eq. 8: A(X, Y) = diag(softmax over the valid n of E(x_n, Y)) X.

    Returns (A(X, Y) [N, D], weights [N], E [N]); padded rows of X get weight 0.
    """
    e = paper_vla(x, y, w1, w2, y_mask, band)
    w = softmax_valid(e, np.asarray(x_mask, bool))
    return np.asarray(x, np.float64) * w[:, None], w, e


def paper_cascade(v, q, v_mask, q_mask, self_w, cross_w, sim_w, video_band=None):
    """Eqs. 9-13 on one example, every intermediate V and Q formed as a matrix.

    Eqs. 9-10: V <- A(V, V), Q <- A(Q, Q); eqs. 11-12: V <- A(V, Q), Q <- A(Q, V), ...
    in series; eq. 13: v_comp = sum_k V_k, c = E(v_comp, Q). Arguments as
    `project_cascade`. Returns (c, the final V [N, D], the final Q [M, D]).
    """
    big_v = np.where(np.asarray(v_mask, bool)[:, None], np.asarray(v, np.float64), 0.0)
    big_q = np.where(np.asarray(q_mask, bool)[:, None], np.asarray(q, np.float64), 0.0)
    if self_w is not None:
        new_v, _, _ = paper_dense_attention(
            big_v, big_v, *self_w[0], v_mask, v_mask, band=video_band
        )
        big_q, _, _ = paper_dense_attention(big_q, big_q, *self_w[1], q_mask, q_mask)
        big_v = new_v
    for i, (w1, w2) in enumerate(cross_w):
        if i % 2 == 0:
            big_v, _, _ = paper_dense_attention(big_v, big_q, w1, w2, v_mask, q_mask)
        else:
            big_q, _, _ = paper_dense_attention(big_q, big_v, w1, w2, q_mask, v_mask)
    v_comp = big_v.sum(0)
    c = paper_vla(v_comp[None], big_q, *sim_w, q_mask)[0]
    return c, big_v, big_q
