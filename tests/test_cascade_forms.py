"""The two readings of eqs. 7-13: the paper's as printed and the project's default.

The paper form is checked against `reference.paper_*`, which forms every re-weighted
row and sums the tanh over the words as eq. 7 prints it; the project form against
`reference.project_*`. The two agree on one Dense Attention over unit rows with
reduction=sum and part from the first step that reads re-weighted rows.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests import reference as ref
from vlanet_tf.config import ModelConfig
from vlanet_tf.layers import CascadedCrossModalAttention, DenseAttention
from vlanet_tf.layers.ops import MASKED_LOG_WEIGHT

RNG = np.random.default_rng(11)


def kernels(att):
    return att.w1.kernel.numpy(), att.w2.kernel.numpy()


def cascade_inputs(rng, d, n=6, m=4, v_valid=(6, 4), q_valid=(4, 2), unit=True):
    v = rng.normal(size=(2, n, d))
    q = rng.normal(size=(2, m, d))
    if unit:
        v, q = ref.l2n(v), ref.l2n(q)
    v_mask = np.arange(n)[None] < np.array(v_valid)[:, None]
    q_mask = np.arange(m)[None] < np.array(q_valid)[:, None]
    return {
        "video": (v * v_mask[..., None]).astype("float32"),
        "query": (q * q_mask[..., None]).astype("float32"),
        "video_mask": v_mask,
        "query_mask": q_mask,
        "fallback_scores": np.zeros((2, n), "float32"),
    }


def cascade_weights(layer):
    self_w = None
    if layer.use_self_attention:
        self_w = (kernels(layer.self_video), kernels(layer.self_query))
    return self_w, [kernels(a) for a in layer.cross], kernels(layer.similarity_head)


# ---- eqs. 7-8 ----------------------------------------------------------------------


@pytest.mark.parametrize("window", [0, 1])
def test_paper_dense_attention_is_eq_7_on_the_re_weighted_rows(window):
    d = 6
    keras.utils.set_random_seed(1)
    layer = DenseAttention(d, init_scale=3.0, window=window, form="paper")
    x = RNG.normal(size=(2, 5, d)).astype("float32")
    y = x if window else RNG.normal(size=(2, 4, d)).astype("float32")
    x_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    y_mask = x_mask if window else np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    x_scale = (RNG.random((2, 5)) + 0.1).astype("float32")
    y_scale = x_scale if window else (RNG.random((2, 4)) + 0.1).astype("float32")
    out = layer(
        {
            "x": x, "y": y, "x_mask": x_mask, "y_mask": y_mask,
            "x_log_scale": np.log(x_scale), "y_log_scale": np.log(y_scale),
        }
    )  # fmt: skip
    w1, w2 = kernels(layer)
    for b in range(2):
        rows_x = x[b] * x_scale[b][:, None]
        rows_y = y[b] * y_scale[b][:, None]
        want, weights, e = ref.paper_dense_attention(
            rows_x, rows_y, w1, w2, x_mask[b], y_mask[b], band=window or None
        )
        np.testing.assert_allclose(out["energy"].numpy()[b], e, atol=1e-5)
        np.testing.assert_allclose(out["weights"].numpy()[b], weights, atol=1e-6)
        # `outputs` re-weights the given rows; the row's own scale stays with the caller.
        np.testing.assert_allclose(
            out["outputs"].numpy()[b] * x_scale[b][:, None], want, atol=1e-6
        )
    # A sum over the valid words, not a mean: it leaves (-1, 1).
    assert np.abs(out["energy"].numpy()).max() > 1.0
    assert np.all(out["log_weights"].numpy()[0, 3:] == MASKED_LOG_WEIGHT)


def test_the_forms_agree_on_one_dense_attention_over_unit_rows_with_sum():
    d = 6
    keras.utils.set_random_seed(2)
    project = DenseAttention(d, reduction="sum", init_scale=3.0)
    paper = DenseAttention(d, init_scale=3.0, form="paper")
    x = ref.l2n(RNG.normal(size=(2, 5, d))).astype("float32")
    y = ref.l2n(RNG.normal(size=(2, 4, d))).astype("float32")
    masks = {"x_mask": np.array([[1, 1, 1, 0, 0], [1] * 5], bool),
             "y_mask": np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)}  # fmt: skip
    a = project({"x": x, "y": y, **masks})
    paper({"x": x, "y": y, **masks})
    paper.set_weights(project.get_weights())
    b = paper({"x": x, "y": y, **masks})
    for key in ("energy", "weights", "outputs"):
        np.testing.assert_allclose(a[key].numpy(), b[key].numpy(), atol=1e-6, err_msg=key)
    # And so do the two references, written separately.
    w1, w2 = kernels(project)
    for i in range(2):
        want = ref.project_vla(x[i], y[i], w1, w2, masks["y_mask"][i], reduction="sum")
        got = ref.paper_vla(x[i], y[i], w1, w2, masks["y_mask"][i])
        np.testing.assert_allclose(got, want, atol=1e-6)


# ---- eqs. 9-13 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "self_attention,steps,share,window",
    [(True, 3, False, 0), (True, 4, True, 0), (False, 2, False, 0), (True, 1, False, 0),
     (True, 3, False, 1)],
)
def test_paper_cascade_matches_the_equations_as_printed(self_attention, steps, share, window):
    d = 5
    keras.utils.set_random_seed(steps)
    layer = CascadedCrossModalAttention(
        d, self_attention, True, steps, share, init_scale=4.0,
        video_self_attention_window=window, form="paper",
    )  # fmt: skip
    data = cascade_inputs(np.random.default_rng(steps), d, unit=False)
    out = {k: v.numpy() for k, v in layer(data).items()}
    self_w, cross_w, sim_w = cascade_weights(layer)
    for b in range(2):
        v_mask, q_mask = data["video_mask"][b], data["query_mask"][b]
        c, big_v, big_q = ref.paper_cascade(
            data["video"][b], data["query"][b], v_mask, q_mask, self_w, cross_w, sim_w,
            video_band=window or None,
        )  # fmt: skip
        np.testing.assert_allclose(out["similarity"][b], c, rtol=1e-5, atol=1e-6)
        # The scores are the logs of the weights each row of V carries.
        v = data["video"][b][v_mask]
        weight = np.linalg.norm(big_v[v_mask], axis=-1) / np.linalg.norm(v, axis=-1)
        np.testing.assert_allclose(out["scores"][b][v_mask], np.log(weight), atol=1e-4)
        assert np.all(out["scores"][b][~v_mask] == MASKED_LOG_WEIGHT)
        q = data["query"][b][q_mask]
        q_weight = np.linalg.norm(big_q[q_mask], axis=-1) / np.linalg.norm(q, axis=-1)
        np.testing.assert_allclose(
            out["query_log_scale"][b][q_mask], np.log(q_weight), atol=1e-4
        )


def _same_weight_pair(**kwargs):
    d = 5
    data = cascade_inputs(np.random.default_rng(5), d)
    keras.utils.set_random_seed(5)
    project = CascadedCrossModalAttention(d, init_scale=1.5, reduction="sum", **kwargs)
    paper = CascadedCrossModalAttention(d, init_scale=1.5, form="paper", **kwargs)
    project(data)
    paper(data)
    paper.set_weights(project.get_weights())
    return (
        {k: v.numpy() for k, v in project(data).items()},
        {k: v.numpy() for k, v in paper(data).items()},
    )


def test_the_forms_part_after_the_first_step_that_reads_re_weighted_rows():
    # One Q2V step on the unit rows: the same V weights; c already differs (the paper's
    # v_comp is the plain sum of the re-weighted rows, the project's its direction).
    project, paper = _same_weight_pair(use_self_attention=False, cross_steps=1)
    np.testing.assert_allclose(project["scores"], paper["scores"], atol=1e-5)
    assert np.abs(project["similarity"] - paper["similarity"]).max() > 1e-2
    # The V2Q step reads V's re-weighted rows: the Q weights differ.
    project, paper = _same_weight_pair(use_self_attention=False, cross_steps=2)
    valid = paper["query_log_scale"] > MASKED_LOG_WEIGHT / 2
    gap = np.abs(project["query_log_scale"] - paper["query_log_scale"])[valid]
    assert gap.max() > 1e-2
    # And the references written from each reading differ there too.
    rng = np.random.default_rng(2)
    v, q = ref.l2n(rng.normal(size=(6, 5))), ref.l2n(rng.normal(size=(4, 5)))
    vm, qm = np.ones(6, bool), np.ones(4, bool)
    w = [tuple(rng.normal(size=(2, 5, 5)) * 2.0) for _ in range(3)]
    c_paper, _, _ = ref.paper_cascade(v, q, vm, qm, None, w[:2], w[2])
    c_project, _ = ref.project_cascade(v, q, vm, qm, None, w[:2], w[2])
    assert abs(c_paper - c_project) > 1e-2


def test_the_paper_form_is_exact_where_its_weights_underflow_float16():
    # 90 groups, self-attention and three cross steps: the weights a row of V carries
    # fall below float16's smallest normal number (6.1e-5), so forming the re-weighted
    # rows in float16 would flush them; the log-scale form matches float64 still.
    d = 8
    keras.utils.set_random_seed(9)
    data = cascade_inputs(np.random.default_rng(9), d, n=90, m=12, v_valid=(90, 61),
                          q_valid=(12, 7))  # fmt: skip
    f32 = CascadedCrossModalAttention(d, init_scale=2.0, form="paper")
    f32(data)
    self_w, cross_w, sim_w = cascade_weights(f32)
    want = np.array(
        [
            ref.paper_cascade(
                data["video"][b], data["query"][b], data["video_mask"][b],
                data["query_mask"][b], self_w, cross_w, sim_w,
            )[0]
            for b in range(2)
        ]
    )  # fmt: skip
    out = {k: v.numpy() for k, v in f32(data).items()}
    np.testing.assert_allclose(out["similarity"], want, rtol=1e-4)
    weights = np.exp(out["scores"][data["video_mask"]])
    assert np.median(weights) < np.finfo(np.float16).tiny
    f16 = CascadedCrossModalAttention(d, init_scale=2.0, form="paper", dtype="mixed_float16")
    f16(data)
    f16.set_weights(f32.get_weights())
    half = {k: v.numpy() for k, v in f16(data).items()}
    assert np.all(half["similarity"] != 0)
    np.testing.assert_allclose(half["similarity"], want, rtol=3e-2)


def test_cascade_form_defaults_to_the_project_form_and_rejects_others():
    # (--cascade_form reaching the field is checked with every flag in test_flags.py.)
    assert ModelConfig().cascade_form == "project"
    with pytest.raises(ValueError, match="cascade_form"):
        ModelConfig(cascade_form="literal")
    with pytest.raises(ValueError, match="form"):
        DenseAttention(4, form="literal")
