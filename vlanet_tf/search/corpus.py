"""Corpus-level recall (TVR-style video corpus moment retrieval) of a Searcher.

For each query with a known video and moment: video R@k (its video among the first k
videos) and moment R@k at IoU >= `iou` (among the first k moments of the corpus-level
list, where the videos come in order of c and each contributes its best moment first,
`moments_per_video` of them; a moment counts when its video is right and its IoU with
the annotation reaches `iou`). Percent.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from vlanet_tf import spans


def evaluate(
    searcher,
    queries: Iterable,
    ks: Sequence[int] = (1, 5, 10),
    iou: float = 0.5,
    exhaustive: bool = False,
    moments_per_video: int = 1,
) -> dict[str, float]:
    """{"video_R@k": .., "moment_R@k@iou": .., "queries": n} over `queries`.

    `queries` hold `sentence`, `video_id` and `moments` [(start, end), ...]
    (`vlanet_tf.data.readers.QueryRecord`).
    """
    top = max(ks)
    video_hits = {k: 0 for k in ks}
    moment_hits = {k: 0 for k in ks}
    n = 0
    for record in queries:
        n += 1
        result = searcher.search(
            record.sentence, top_videos=top, top_moments=moments_per_video, exhaustive=exhaustive
        )
        ids = [v.video_id for v in result.videos]
        flat = [(v.video_id, m) for v in result.videos for m in v.moments[:moments_per_video]]
        for k in ks:
            video_hits[k] += record.video_id in ids[:k]
            moment_hits[k] += any(
                vid == record.video_id
                and float(
                    spans.temporal_iou(np.array([m[:2]]), np.asarray(record.moments)).max()
                )
                >= iou
                for vid, m in flat[:k]
            )
    out = {"queries": n}
    for k in ks:
        out[f"video_R@{k}"] = 100.0 * video_hits[k] / max(n, 1)
        out[f"moment_R@{k}@{iou}"] = 100.0 * moment_hits[k] / max(n, 1)
    return out
