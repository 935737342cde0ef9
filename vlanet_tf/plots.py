"""The inference timeline picture of SPEC §10.

Proposals coloured by the attention they carry, the top-2 predictions and the ground
truth, on one time axis in seconds. Rendered with matplotlib's Agg canvas (no display).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np


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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
