"""Collection search at 1k, 10k and 100k videos: query time, memory, disk, recall.

    python -m benchmarks.search [--sizes=1000,10000,100000] [--exhaustive_max=10000]
        [--output=benchmarks/results/search.json]

Synthetic collections: each video has `groups` x L = 10 x 3 proposals of D = 256 (unit
vectors near one of 256 topic directions), and the model is an untrained VLANet of
D = 256 (timing needs its shapes, not its training). Per size: the p50/p90 of a query
(encode + stage 1 + cascade on N candidates + ranking) over `queries` sentences after
one warm-up, the exhaustive cascade's p50 up to `exhaustive_max` videos (beyond it is
extrapolated linearly from the largest measured size, and marked so), the recall@10 of
the two-stage video ranking against the exhaustive one, the index's memory and its
shard bytes on disk per video, and the fitted exponent of p50 in the corpus size.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Sequence

import numpy as np
from absl import app, flags

from vlanet_tf import text
from vlanet_tf.config import ModelConfig
from vlanet_tf.model import build_vlanet
from vlanet_tf.search.index import Index, Proposals
from vlanet_tf.search.model import SearchModel
from vlanet_tf.search.retrieval import Searcher

FLAGS = flags.FLAGS

D, L, TOPICS = 256, 3, 256
WORDS = [f"w{i}" for i in range(200)]


def synthetic_model() -> SearchModel:
    config = ModelConfig(vocab_size=len(WORDS) + 2, word_dim=64, hidden_dim=D, feature_dim=16)
    network = build_vlanet(config)
    return SearchModel(network, text.Vocabulary(["<pad>", "<unk>", *WORDS]), "synthetic")


def synthetic_proposals(n: int, groups: int, rng: np.random.Generator) -> Proposals:
    topics = rng.normal(size=(TOPICS, D)).astype(np.float32)
    topic = rng.integers(TOPICS, size=n)
    out = np.empty((n * groups, L, D), np.float16)
    for start in range(0, n, 4096):
        idx = np.arange(start, min(n, start + 4096))
        x = topics[topic[idx]][:, None, None, :] + rng.normal(
            scale=1.5, size=(len(idx), groups, L, D)
        ).astype(np.float32)
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        out[start * groups : (idx[-1] + 1) * groups] = x.reshape(-1, L, D)
    starts = np.arange(groups, dtype=np.float32)[:, None] * 2.0
    windows = np.stack([np.broadcast_to(starts, (groups, L)), starts + [7.3, 8.7, 10.0]], -1)
    return Proposals(
        np.array([f"v{i:06d}" for i in range(n)]),
        np.full(n, 2.0 * groups + 10.0, np.float32),
        (np.arange(n + 1) * groups).astype(np.int64),
        out,
        np.tile(windows.astype(np.float32), (n, 1, 1)),
        np.ones((n * groups, L), bool),
    )


def sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(5, 10))))


def p(values, q) -> float:
    return float(np.percentile(values, q))


def define_flags() -> None:
    """The main's flags (defined on demand, so importing the module defines none)."""
    flags.DEFINE_list("sizes", ["1000", "10000", "100000"], "Collection sizes.")
    flags.DEFINE_integer("exhaustive_max", 10000, "Largest size the exhaustive run measures.")
    flags.DEFINE_integer("queries", 20, "Timed queries per size.")
    flags.DEFINE_integer("candidates", 50, "N of stage 2.")
    flags.DEFINE_integer("groups", 10, "Segment groups per video.")
    flags.DEFINE_string("output", "benchmarks/results/search.json", "JSON written here.")


def main(argv: Sequence[str]) -> None:
    del argv
    rng = np.random.default_rng(0)
    model = synthetic_model()
    queries = [sentence(rng) for _ in range(FLAGS.queries)]
    rows = []
    for size in [int(s) for s in FLAGS.sizes]:
        data = synthetic_proposals(size, FLAGS.groups, rng)
        t = time.perf_counter()
        index = Index(data, {"model": {"fingerprint": "synthetic", "source": ""}})
        build_s = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "shard.npz")
            head = min(size, 1000)
            rows_ = head * FLAGS.groups
            Proposals(
                data.video_ids[:head], data.durations[:head], data.group_offsets[: head + 1],
                data.proposals[:rows_], data.windows[:rows_], data.mask[:rows_],
            ).save(path)
            disk_per_video = os.path.getsize(path) / head
        searcher = Searcher(index, model, candidates=FLAGS.candidates)
        for q in queries[:3]:  # warm-up: traces the functions, fills the caches
            searcher.search(q)
        parts = {k: [] for k in ("encode_query", "stage1", "cascade", "rank", "total")}
        two_stage = []
        for q in queries:
            result = searcher.search(q, top_videos=10)
            two_stage.append([v.video_id for v in result.videos])
            for k in parts:
                parts[k].append(result.timings_ms[k])
        row = {
            "videos": size,
            "vectors": index.num_vectors,
            "stage1_index": type(index.faiss).__name__,
            "candidates": FLAGS.candidates,
            "index_build_s": build_s,
            "two_stage_p50_ms": p(parts["total"], 50),
            "two_stage_p90_ms": p(parts["total"], 90),
            "parts_p50_ms": {k: p(v, 50) for k, v in parts.items()},
            "memory_bytes_per_video": index.memory_bytes()["total"] / size,
            "disk_bytes_per_video": disk_per_video,
        }
        if size <= FLAGS.exhaustive_max:
            searcher.search(queries[0], exhaustive=True)
            times, recall = [], []
            for q, got in zip(queries[:5], two_stage[:5]):
                result = searcher.search(q, top_videos=10, exhaustive=True)
                times.append(result.timings_ms["total"])
                recall.append(len(set(got) & {v.video_id for v in result.videos}) / 10)
            row["exhaustive_p50_ms"] = p(times, 50)
            row["exhaustive_measured"] = True
            row["recall_at_10_vs_exhaustive"] = float(np.mean(recall))
        rows.append(row)
        print(json.dumps(row), flush=True)
        del index, searcher, data
    measured = [r for r in rows if r.get("exhaustive_measured")]
    for r in rows:
        if "exhaustive_p50_ms" not in r and measured:
            last = measured[-1]
            r["exhaustive_p50_ms"] = last["exhaustive_p50_ms"] * r["videos"] / last["videos"]
            r["exhaustive_measured"] = False
    summary = {
        "two_stage_exponent": _exponent(rows, "two_stage_p50_ms"),
        "exhaustive_exponent_measured": _exponent(measured, "exhaustive_p50_ms"),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary))
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=2)
        f.write("\n")
    print(table(rows))


def _exponent(rows: list[dict], key: str) -> float | None:
    """Slope of log(time) against log(videos): the cost exponent in corpus size."""
    if len(rows) < 2:
        return None
    x = np.log([r["videos"] for r in rows])
    return float(np.polyfit(x, np.log([r[key] for r in rows]), 1)[0])


def table(rows: list[dict]) -> str:
    """The README's markdown table of a run."""
    lines = [
        "| videos | stage 1 | two-stage p50 / p90 ms | encode / stage 1 / cascade (p50 ms) "
        "| exhaustive p50 ms | recall@10 vs exhaustive | memory / disk per video |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        pp = r["parts_p50_ms"]
        ex = f"{r['exhaustive_p50_ms']:,.0f}"
        if not r["exhaustive_measured"]:
            ex += " (extrapolated)"
        rec = r.get("recall_at_10_vs_exhaustive")
        lines.append(
            f"| {r['videos']:,} | {r['stage1_index']} "
            f"| {r['two_stage_p50_ms']:.1f} / {r['two_stage_p90_ms']:.1f} "
            f"| {pp['encode_query']:.1f} / {pp['stage1']:.1f} / {pp['cascade']:.1f} | {ex} "
            f"| {'-' if rec is None else f'{rec:.2f}'} "
            f"| {r['memory_bytes_per_video'] / 1024:.1f} KiB / "
            f"{r['disk_bytes_per_video'] / 1024:.1f} KiB |"
        )
    return "\n".join(lines)

if __name__ == "__main__":
    define_flags()
    app.run(main)
