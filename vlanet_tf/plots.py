"""The pictures of SPEC §10, rendered with matplotlib's Agg canvas (no display).

- `render_timeline`: proposals coloured by the attention they carry, the top-2
  predictions and the ground truth, on one time axis in seconds;
- `render_attention_map`: one query's attention, surrogates by time × words;
- `plot_similarity_curve`: mean positive vs negative similarity c per epoch.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np

from vlanet_tf import files


def attention_weights(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scores are log weights (SPEC §7): exp, normalised over the valid surrogates."""
    scores = np.asarray(scores, np.float64)
    valid = np.asarray(valid, bool)
    weights = np.zeros_like(scores)
    if valid.any():
        shifted = np.exp(scores[valid] - scores[valid].max())
        weights[valid] = shifted / shifted.sum()
    return weights


def render_timeline(
    moments: np.ndarray,
    scores: np.ndarray,
    valid: np.ndarray,
    duration: float,
    predictions: Sequence[Sequence[float]] = (),
    ground_truth: Sequence[Sequence[float]] = (),
    title: str = "",
) -> bytes:
    """PNG of one query's timeline.

    Args:
      moments: [N, 2] every surrogate's (start, end) in seconds.
      scores: [N] their log weights; valid: bool [N] (invalid rows are not drawn).
      duration: video length in seconds (the x range).
      predictions: ranked [start, end(, score)] rows; the first two are drawn.
      ground_truth: [start, end] rows (annotators), drawn when given.
      title: e.g. the query sentence.
    """
    from matplotlib import cm, colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    moments = np.asarray(moments, np.float64).reshape(-1, 2)
    valid = np.asarray(valid, bool).reshape(-1)
    weights = attention_weights(scores, valid)
    rows = np.flatnonzero(valid)
    rows = rows[np.lexsort((moments[rows, 1], moments[rows, 0]))]
    norm = Normalize(vmin=0.0, vmax=max(float(weights.max()), 1e-12))
    cmap = colormaps["viridis"]

    fig = Figure(figsize=(9.0, 5.0))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for y, r in enumerate(rows):
        top.barh(
            y, moments[r, 1] - moments[r, 0], left=moments[r, 0], height=0.8,
            color=cmap(norm(weights[r])), edgecolor="none",
        )  # fmt: skip
    top.set_ylim(len(rows) - 0.5 if len(rows) else 0.5, -0.5)
    top.set_ylabel(f"{len(rows)} proposals\n(by start)", fontsize=8)
    top.set_yticks([])
    top.set_title(title, fontsize=9)
    colourbar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=top, pad=0.01)
    colourbar.set_label("attention weight", fontsize=8)

    lanes = [
        (f"top-{rank + 1}", colour, [prediction[:2]])
        for rank, (colour, prediction) in enumerate(
            zip(("tab:red", "tab:orange"), predictions[:2])
        )
    ]
    if len(ground_truth):
        lanes.append(("truth", "tab:green", list(ground_truth)))
    for y, (label, colour, rows_) in enumerate(lanes):
        for start, end in rows_:
            bottom.barh(y, float(end) - float(start), left=float(start), height=0.7,
                        color=colour, alpha=0.85)  # fmt: skip
        start, end = (float(v) for v in rows_[0])
        # Label on whichever side of the bar has room.
        right = end < 0.75 * duration
        bottom.text(
            end if right else start, y, f" {start:.1f}-{end:.1f}s ",
            ha="left" if right else "right", va="center", fontsize=8,
        )  # fmt: skip
    bottom.set_yticks(range(len(lanes)))
    bottom.set_yticklabels([lane[0] for lane in lanes], fontsize=8)
    bottom.set_ylim(len(lanes) - 0.5, -0.5)
    bottom.set_xlim(0.0, max(float(duration), 1e-6))
    bottom.set_xlabel("time (s)")
    # Keep the two panels' time axes aligned despite the colour bar on the top one.
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=bottom, pad=0.01).remove()
    fig.tight_layout()
    return figure_png(fig)


def figure_png(fig: Any) -> bytes:
    """A matplotlib Figure as PNG bytes, through the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def render_attention_map(
    attention: np.ndarray,
    moments: np.ndarray,
    valid: np.ndarray,
    words: Sequence[str],
    title: str = "",
) -> bytes:
    """PNG of one query's attention map (SPEC §10): surrogates by time × words.

    Args:
      attention: [N, M] model output `attention_map` of one example.
      moments: [N, 2] each surrogate's (start, end) in seconds.
      valid: bool [N]; invalid surrogates are left out.
      words: the sentence's tokens (the first M are shown).
    """
    from matplotlib.figure import Figure

    rows = np.flatnonzero(np.asarray(valid, bool))
    rows = rows[np.argsort(moments[rows, 0], kind="stable")]
    m = min(len(words), attention.shape[1])
    image = attention[rows][:, :m]
    fig = Figure(figsize=(max(4.0, 0.6 * m + 2.0), max(3.0, 0.18 * len(rows) + 1.5)))
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(image, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(m))
    ax.set_xticklabels(words[:m], rotation=45, ha="right")
    step = max(1, len(rows) // 20)
    ax.set_yticks(range(0, len(rows), step))
    ax.set_yticklabels(
        [f"{moments[r, 0]:.1f}-{moments[r, 1]:.1f}s" for r in rows[::step]], fontsize=7
    )
    ax.set_ylabel("surrogate (time)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax)
    fig.tight_layout()
    return figure_png(fig)


def plot_similarity_curve(history: Sequence[Mapping[str, float]], path: str) -> None:
    """Writes the paper's Fig. 4 to `path`: mean positive vs negative c per epoch.

    The points are `val_pos_sim` / `val_neg_sim`, c over the val split's fixed pairs
    after each epoch (`validation.similarity_curve_point`); a run without a val split
    has only the running means of its training batches (`pos_sim` / `neg_sim`), and
    the figure says so.
    """
    from matplotlib.figure import Figure

    validated = all("val_pos_sim" in r for r in history)
    prefix, where = ("val_", "val split") if validated else ("", "training batches")
    epochs = [int(r["epoch"]) + 1 for r in history]
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(epochs, [float(r[f"{prefix}pos_sim"]) for r in history], "o-", label="positive pairs")
    ax.plot(epochs, [float(r[f"{prefix}neg_sim"]) for r in history], "s-", label="negative pairs")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean similarity c (eq. 13)")
    ax.set_title(f"Fig. 4: mean c over the {where}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    files.write_bytes(path, figure_png(fig))
