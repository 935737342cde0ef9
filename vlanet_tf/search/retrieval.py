"""Two-stage retrieval over an index: FAISS MIPS on a query vector, then the cascade on
the top N.

Stage 1 needs no cascade: one query vector against every cached proposal by maximum
inner product, each video scored by the max over its proposals. The vector is the
cascade head's first-order probe u (`stage1="similarity"`, the default:
`CascadedCrossModalAttention.similarity_probe`) or the query's w_M (`"selection"`,
QueryEncoder `last`: the eq. 3 cosine that picks surrogates; both are unit vectors).
Stage 2 runs surrogate selection and the cascade (`vlanet_tf.model.match`, the run's
layers) on the N best videos in batches, from the cached proposals, and ranks them by
c (eq. 13); each video's moments are ranked by `vlanet_tf.ranking.rank`. `exhaustive=True` runs the
cascade on every video instead (the reference the two-stage ranking is checked
against).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from vlanet_tf.ranking import rank
from vlanet_tf.search.index import Index, check_model, read_manifest
from vlanet_tf.search.model import SearchModel, load_model

DEFAULT_CANDIDATES = 50
DEFAULT_BATCH = 256
# Stage 1's query vector: "selection", w_M (the eq. 3 cosine that picks surrogates), or
# "similarity", the cascade head's first-order probe u (`similarity_probe`).
STAGE1_VECTORS = {"selection": "last", "similarity": "probe"}
DEFAULT_STAGE1 = "similarity"


@dataclasses.dataclass
class VideoHit:
    video_id: str
    similarity: float  # c of eq. 13
    stage1: float | None  # max_p <w_M or u, p> (None in exhaustive mode)
    duration: float
    moments: list[list[float]]  # [start, end, score], best first, seconds

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
    query: str
    videos: list[VideoHit]
    timings_ms: dict[str, float]
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "videos": [v.to_dict() for v in self.videos],
            "timings_ms": self.timings_ms,
            "candidates": self.candidates,
        }


class Searcher:
    """Queries one index with the model it was built with.

    Args:
      index: an opened `Index`.
      model: the `SearchModel` (or `SavedModelSearch`) that built it (checked by
        fingerprint).
      candidates: N, the videos stage 1 hands to the cascade.
      batch_size: videos per cascade call.
      stage1: which query vector stage 1 takes the maximum inner product with (see
        STAGE1_VECTORS): "selection" (w_M) or "similarity" (the probe u).
    """

    def __init__(
        self,
        index: Index,
        model: SearchModel,
        candidates: int = DEFAULT_CANDIDATES,
        batch_size: int = DEFAULT_BATCH,
        stage1: str = DEFAULT_STAGE1,
    ) -> None:
        check_model(index.manifest, model, "(opened index)")
        if stage1 not in STAGE1_VECTORS:
            raise ValueError(
                f"stage1 must be one of {sorted(STAGE1_VECTORS)}, got {stage1!r}"
            )
        self.index = index
        self.model = model
        self.candidates = int(candidates)
        self.batch_size = int(batch_size)
        self.stage1 = stage1

    @classmethod
    def open(
        cls,
        index_dir: str,
        model_dir: str | None = None,
        checkpoint: str = "best",
        saved_model: str | None = None,
        **kwargs: Any,
    ) -> "Searcher":
        """The index at `index_dir` with its model: `model_dir` or `saved_model`, default
        the one the index names."""
        manifest = read_manifest(index_dir)
        if saved_model or model_dir:
            kind = "saved_model" if saved_model else "run"
            source = saved_model or model_dir
        else:
            kind = manifest["model"].get("kind", "run")
            source = manifest["model"]["source"]
        model = load_model(source, kind, checkpoint)
        check_model(manifest, model, index_dir)
        return cls(Index.open(index_dir), model, **kwargs)

    def _cascade(self, videos: np.ndarray, query: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        parts = []
        for start in range(0, len(videos), self.batch_size):
            batch = videos[start : start + self.batch_size]
            proposals, windows, mask = self.index.data.padded(batch)
            parts.append(self.model.match(proposals, windows, mask, query))
        similarity = np.concatenate([p["similarity"] for p in parts])
        per_video = []
        for p in parts:
            for i in range(p["similarity"].shape[0]):
                per_video.append((p["scores"][i], p["moments"][i], p["valid"][i]))
        return {"similarity": similarity, "rows": per_video}

    def search(
        self,
        query: str,
        top_videos: int = 10,
        top_moments: int = 5,
        exhaustive: bool = False,
        candidates: int | None = None,
    ) -> SearchResult:
        """Videos ranked by c, each with its `top_moments` moments in seconds."""
        if not query or not query.strip():
            raise ValueError("the query is empty; type a sentence describing a moment")
        times = {}
        t0 = time.perf_counter()
        encoded = self.model.encode_query(query)
        t1 = time.perf_counter()
        times["encode_query"] = (t1 - t0) * 1e3
        if exhaustive:
            videos = np.arange(self.index.num_videos)
            stage1 = None
        else:
            n = max(candidates or self.candidates, top_videos)
            vector = encoded.get(STAGE1_VECTORS[self.stage1])
            if vector is None:
                raise ValueError(
                    f"this model's encode_query gives no {STAGE1_VECTORS[self.stage1]!r} "
                    f"for --stage1={self.stage1}: export it again with this version"
                )
            videos, stage1 = self.index.top_videos(vector, n)
        t2 = time.perf_counter()
        times["stage1"] = (t2 - t1) * 1e3
        scored = self._cascade(videos, encoded)
        t3 = time.perf_counter()
        times["cascade"] = (t3 - t2) * 1e3
        # Ties keep stage 1's order (or the index order): a stable sort on -c.
        order = np.argsort(-scored["similarity"], kind="stable")[:top_videos]
        hits = []
        for i in order:
            v = int(videos[i])
            scores, moments, valid = scored["rows"][i]
            hits.append(
                VideoHit(
                    str(self.index.data.video_ids[v]),
                    float(scored["similarity"][i]),
                    None if stage1 is None else float(stage1[i]),
                    float(self.index.data.durations[v]),
                    rank(scores, moments, valid, top_moments),
                )
            )
        times["rank"] = (time.perf_counter() - t3) * 1e3
        times["total"] = (time.perf_counter() - t0) * 1e3
        return SearchResult(query, hits, times, len(videos))
