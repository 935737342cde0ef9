"""Stage 1's `similarity` probe: the first-order query vector of c's head (eq. 13)."""

from __future__ import annotations

import numpy as np

from vlanet_tf.layers import CascadedCrossModalAttention

RNG = np.random.default_rng(7)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def head_energy(x: np.ndarray, q: np.ndarray, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
    """Eq. 7 with the mean over the words, on directions (SPEC §4), for rows x [N, D]
    against one query q [M, D]: mean_m tanh((W1 x_n) . (W2 q_m))."""
    a, b = unit(x) @ k1, unit(q) @ k2
    return np.tanh(a @ b.T).mean(axis=1)


def built_layer(d: int, scale: float) -> CascadedCrossModalAttention:
    layer = CascadedCrossModalAttention(d)
    layer.build({"video": (1, 5, d), "query": (1, 4, d)})
    head = layer.similarity_head
    head.w1.kernel.assign(scale * RNG.normal(size=(d, d)).astype("float32"))
    head.w2.kernel.assign(scale * RNG.normal(size=(d, d)).astype("float32"))
    return layer


def test_the_probe_is_the_heads_first_order_query_vector():
    d, m = 16, 5
    layer = built_layer(d, 0.05)  # small energies: tanh(z) ~ z
    k1 = layer.similarity_head.w1.kernel.numpy()
    k2 = layer.similarity_head.w2.kernel.numpy()
    q = RNG.normal(size=(2, m, d)).astype("float32")
    mask = np.array([[True] * m, [True] * 3 + [False] * 2])
    probe = layer.similarity_probe(q, mask).numpy()
    assert probe.shape == (2, d)
    np.testing.assert_allclose(np.linalg.norm(probe, axis=1), 1.0, atol=1e-5)
    x = unit(RNG.normal(size=(200, d)))
    for b in range(2):
        words = q[b][mask[b]]
        exact = head_energy(x, words, k1, k2)
        # The padded words change nothing; the video rows ranked by <x, u> are ranked
        # as the head's energy ranks them (Spearman's rho from the ranks).
        by_probe = x @ probe[b]
        rho = np.corrcoef(np.argsort(np.argsort(exact)), np.argsort(np.argsort(by_probe)))
        assert rho[0, 1] > 0.999, rho
        np.testing.assert_allclose(
            by_probe * np.linalg.norm(k1 @ (unit(words) @ k2).mean(0)), exact, atol=1e-3
        )


def test_the_probe_ranks_far_from_linear_energies_only_approximately():
    """With large energies tanh saturates: the probe is a first-order vector, not c."""
    d, m = 16, 5
    layer = built_layer(d, 2.0)
    k1 = layer.similarity_head.w1.kernel.numpy()
    k2 = layer.similarity_head.w2.kernel.numpy()
    q = RNG.normal(size=(1, m, d)).astype("float32")
    probe = layer.similarity_probe(q, np.ones((1, m), bool)).numpy()[0]
    x = unit(RNG.normal(size=(200, d)))
    exact = head_energy(x, q[0], k1, k2)
    rho = np.corrcoef(np.argsort(np.argsort(exact)), np.argsort(np.argsort(x @ probe)))[0, 1]
    assert 0.3 < rho < 0.999, rho
