"""Collection search with a trained run: agreement with the exhaustive cascade, and time.

    python -m benchmarks.search_trained [--sizes=1000,10000,100000] [--queries=40]
        [--exhaustive_queries=20,20,5] [--candidates=50,100] [--root=DIR]
        [--output=benchmarks/results/search_trained.json]

Where `benchmarks.search` times an untrained D = 256 model on random vectors, this one
asks whether stage 1 finds what the cascade would rank first, with a model that has
learned something. It

1. synthesizes the demo release (`data_prep.synthesize`, seed 0: 300 training and
   300 test videos)
   and trains VLANet on it with `configs/synthetic.flags` (hidden 64) and negatives in
   both directions, InfoNCE over every in-batch pair (so c ranks videos for a sentence);
2. per size S, synthesizes a collection of S videos from the same generator (same seed,
   so the same planted concept directions; its test split), indexes it and scores the
   first `queries` test sentences, whose own video is the known answer;
3. per stage-1 vector (`selection`: w_M; `similarity`: the cascade head's probe u) and
   N: the two-stage p50/p90 and its parts, video R@10, and on the first
   `exhaustive_queries` sentences the recall@10 of the two-stage video ranking against
   the exhaustive cascade's (the exhaustive run costs S cascade calls a query).

Every step's output is kept under `--root` and reused, so an interrupted run resumes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Sequence

import numpy as np
from absl import app, flags

from benchmarks.search import _exponent, p
from data_prep import build as build_lib
from data_prep import synthesize
from vlanet_tf import files
from vlanet_tf.data import readers
from vlanet_tf.search.index import Index, build_index
from vlanet_tf.search.model import SearchModel
from vlanet_tf.search.retrieval import STAGE1_VECTORS, Searcher

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_VIDEOS = 300


def define_flags() -> None:
    """The main's flags (defined on demand, so importing the module defines none)."""
    flags.DEFINE_list("sizes", ["1000", "10000", "100000"], "Collection sizes.")
    flags.DEFINE_integer("queries", 40, "Timed sentences per size.")
    flags.DEFINE_list(
        "exhaustive_queries", ["20", "20", "5"],
        "Sentences per size also run exhaustively (one value per size, or one for all).",
    )
    flags.DEFINE_list("candidates", ["50", "100"], "N values of stage 2.")
    flags.DEFINE_string("root", "/tmp/vlanet_search_trained", "Cache of every step.")
    flags.DEFINE_string(
        "output", "benchmarks/results/search_trained.json", "JSON written here."
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def trained_run(root: str) -> str:
    """The demo release, built, and a run trained on it (cached)."""
    release, data_dir = os.path.join(root, "release"), os.path.join(root, "data")
    model_dir = os.path.join(root, "model")
    if not os.path.isfile(os.path.join(data_dir, "manifest.json")):
        log("synthesizing and building the training release")
        paths = synthesize.synthesize(
            synthesize.SynthesisOptions(
                output_dir=release, num_videos=TRAIN_VIDEOS, num_test_videos=300, seed=0
            )
        )
        build_lib.build(
            build_lib.BuildOptions(
                dataset="charades_sta", annotations_dir=release,
                features=paths["features"], word_vectors=paths["word_vectors"],
                output_dir=data_dir, num_shards=1,
            )
        )
    if not os.path.isfile(os.path.join(model_dir, "best.json")):
        log("training (configs/synthetic.flags, both directions, InfoNCE)")
        subprocess.run(
            [
                sys.executable, "-m", "vlanet_tf.train",
                f"--flagfile={os.path.join(REPO, 'configs', 'synthetic.flags')}",
                f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                "--strategy=one_device", "--negative_direction=both",
                "--num_negatives=0", "--loss=infonce",
            ],
            check=True, cwd=REPO,
        )
    return model_dir


def collection(root: str, size: int, model: SearchModel):
    """S test videos of the same generator, indexed; (index dir, test records)."""
    release = os.path.join(root, f"collection_{size}")
    index_dir = os.path.join(root, f"index_{size}")
    durations = os.path.join(release, "Charades_v1_test.csv")
    annotations = os.path.join(release, "charades_sta_test.txt")
    if not os.path.isfile(annotations):
        log(f"synthesizing a collection of {size:,} videos")
        synthesize.synthesize(
            synthesize.SynthesisOptions(
                output_dir=release, num_videos=TRAIN_VIDEOS, num_test_videos=size, seed=0
            )
        )
    records, _ = readers.read_charades_sta(annotations, durations)
    test_ids = sorted({r.video_id for r in records})
    t = time.perf_counter()
    report = build_index(
        model, os.path.join(release, "features.h5"), index_dir, durations, video_ids=test_ids
    )
    if report.added:
        log(f"indexed {report.added:,} videos in {time.perf_counter() - t:.0f} s")
    return index_dir, records


def measure(searcher: Searcher, records, reference: dict[str, list[str]]) -> dict:
    """Two-stage timings, video R@10 and recall@10 against the exhaustive top 10."""
    for r in records[:3]:
        searcher.search(r.sentence)  # warm-up: traces, FAISS first touch
    parts = {k: [] for k in ("encode_query", "stage1", "cascade", "rank", "total")}
    found, recall = [], []
    for r in records:
        result = searcher.search(r.sentence, top_videos=10)
        ids = [v.video_id for v in result.videos]
        found.append(r.video_id in ids)
        if r.query_id in reference:
            recall.append(len(set(ids) & set(reference[r.query_id])) / 10)
        for k in parts:
            parts[k].append(result.timings_ms[k])
    return {
        "p50_ms": p(parts["total"], 50),
        "p90_ms": p(parts["total"], 90),
        "parts_p50_ms": {k: p(v, 50) for k, v in parts.items()},
        "video_R@10": 100.0 * float(np.mean(found)),
        "recall_at_10_vs_exhaustive": float(np.mean(recall)),
        "recall_queries": len(recall),
    }


def exhaustive_pass(root: str, size: int, searcher: Searcher, records) -> dict:
    """The cascade on every video for `records`: p50, video R@10, each top 10 and every
    video's c (cached under `root`)."""
    cache = os.path.join(root, f"exhaustive_{size}.npz")
    if os.path.isfile(cache):
        with np.load(cache) as z:
            if z["similarity"].shape[0] >= len(records):
                return _exhaustive_summary(z["similarity"], z["times"], searcher, records)
    log(f"{size:,}: exhaustive cascade on {len(records)} sentences")
    searcher.search(records[0].sentence, exhaustive=True)
    position = {v: i for i, v in enumerate(searcher.index.data.video_ids.tolist())}
    similarity = np.empty((len(records), searcher.index.num_videos), np.float32)
    times = []
    for q, r in enumerate(records):
        result = searcher.search(
            r.sentence, top_videos=searcher.index.num_videos, top_moments=1, exhaustive=True
        )
        times.append(result.timings_ms["total"])
        for v in result.videos:
            similarity[q, position[v.video_id]] = v.similarity
    tmp = cache + ".tmp.npz"
    np.savez(tmp, similarity=similarity, times=np.asarray(times))
    os.replace(tmp, cache)
    return _exhaustive_summary(similarity, np.asarray(times), searcher, records)


def _exhaustive_summary(similarity, times, searcher: Searcher, records) -> dict:
    similarity = similarity[: len(records)]
    ids = searcher.index.data.video_ids
    top10 = {
        r.query_id: [str(ids[i]) for i in np.argsort(-c, kind="stable")[:10]]
        for r, c in zip(records, similarity)
    }
    found = [r.video_id in top10[r.query_id] for r in records]
    return {
        "p50_ms": p(times[: len(records)], 50),
        "video_R@10": 100.0 * float(np.mean(found)),
        "top10": top10,
        "similarity": similarity,
    }


def stage1_scores(index: Index, vector: np.ndarray) -> np.ndarray:
    """max_p <vector, p> of every video, exactly (NumPy over the cached proposals)."""
    data = index.data
    per_group = np.full(data.proposals.shape[0], -np.inf, np.float32)
    step = 1 << 16
    for a in range(0, per_group.shape[0], step):
        dots = data.proposals[a : a + step].astype(np.float32) @ vector
        per_group[a : a + step] = np.where(data.mask[a : a + step], dots, -np.inf).max(-1)
    return np.maximum.reduceat(per_group, data.group_offsets[:-1])


CANDIDATE_GRID = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


def recall_by_candidates(index: Index, model: SearchModel, records, similarity) -> dict:
    """Recall@10 against the exhaustive top 10 had stage 2 run on stage 1's top N, for
    N over CANDIDATE_GRID (exact stage 1; the exhaustive c of each video is reused)."""
    curves = {stage1: {} for stage1 in STAGE1_VECTORS}
    grid = [n for n in CANDIDATE_GRID if n <= index.num_videos]
    for r, c in zip(records, similarity):
        encoded = model.encode_query(r.sentence)
        reference = set(np.argsort(-c, kind="stable")[:10].tolist())
        for stage1, key in STAGE1_VECTORS.items():
            order = np.argsort(-stage1_scores(index, encoded[key]), kind="stable")
            for n in grid:
                candidates = order[:n]
                top = candidates[np.argsort(-c[candidates], kind="stable")[:10]]
                curves[stage1].setdefault(n, []).append(len(reference & set(top.tolist())) / 10)
    return {
        stage1: {str(n): float(np.mean(v)) for n, v in curve.items()}
        for stage1, curve in curves.items()
    }


def main(argv: Sequence[str]) -> None:
    del argv
    os.makedirs(FLAGS.root, exist_ok=True)
    model = SearchModel.from_run(trained_run(FLAGS.root))
    sizes = [int(s) for s in FLAGS.sizes]
    exhaustive_queries = [int(n) for n in FLAGS.exhaustive_queries]
    if len(exhaustive_queries) == 1:
        exhaustive_queries *= len(sizes)
    rows = []
    for size, n_exhaustive in zip(sizes, exhaustive_queries):
        index_dir, records = collection(FLAGS.root, size, model)
        records = records[: FLAGS.queries]
        index = Index.open(index_dir)
        searcher = Searcher(index, model)
        exhaustive = exhaustive_pass(FLAGS.root, size, searcher, records[:n_exhaustive])
        row = {
            "videos": index.num_videos,
            "vectors": index.num_vectors,
            "stage1_index": type(index.faiss).__name__,
            "memory_bytes_per_video": index.memory_bytes()["total"] / index.num_videos,
            "exhaustive_p50_ms": exhaustive["p50_ms"],
            "exhaustive_video_R@10": exhaustive["video_R@10"],
            "exhaustive_queries": len(exhaustive["top10"]),
            "two_stage": {},
            "recall_by_candidates": recall_by_candidates(
                index, model, records, exhaustive["similarity"]
            ),
        }
        for stage1 in STAGE1_VECTORS:
            for n in [int(c) for c in FLAGS.candidates]:
                searcher = Searcher(index, model, candidates=n, stage1=stage1)
                got = measure(searcher, records, exhaustive["top10"])
                row["two_stage"][f"{stage1}_N{n}"] = got
                log(
                    f"{size:,} {stage1} N={n}: p50 {got['p50_ms']:.1f} ms, recall@10 vs "
                    f"exhaustive {got['recall_at_10_vs_exhaustive']:.3f}, video R@10 "
                    f"{got['video_R@10']:.1f}"
                )
        rows.append(row)
        del index, searcher
    result = {"queries": FLAGS.queries, "rows": rows, "cpu_count": os.cpu_count()}
    for stage1 in STAGE1_VECTORS:
        for n in FLAGS.candidates:
            key = f"{stage1}_N{n}"
            if len(rows) >= 2:
                result[f"exponent_{key}"] = _exponent(
                    [{"videos": r["videos"], "p50": r["two_stage"][key]["p50_ms"]} for r in rows],
                    "p50",
                )
    files.write_json(FLAGS.output, result)
    print(table(rows))
    print(curve_table(rows))


def table(rows: list[dict]) -> str:
    """The README's markdown table of a run."""
    keys = sorted(
        rows[0]["two_stage"], key=lambda k: (k.rsplit("_N", 1)[0], int(k.rsplit("_N", 1)[1]))
    )
    lines = [
        "| videos | stage 1 | N | two-stage p50 / p90 ms | recall@10 vs exhaustive "
        "| video R@10: two-stage / exhaustive | exhaustive p50 ms |",
        "| --- | --- | ---: | --- | ---: | --- | ---: |",
    ]
    for r in rows:
        for key in keys:
            stage1, n = key.rsplit("_N", 1)
            got = r["two_stage"][key]
            lines.append(
                f"| {r['videos']:,} | {stage1} ({r['stage1_index']}) | {n} "
                f"| {got['p50_ms']:.1f} / {got['p90_ms']:.1f} "
                f"| {got['recall_at_10_vs_exhaustive']:.2f} ({got['recall_queries']} q) "
                f"| {got['video_R@10']:.1f} / {r['exhaustive_video_R@10']:.1f} "
                f"| {r['exhaustive_p50_ms']:,.0f} |"
            )
    return "\n".join(lines)


def curve_table(rows: list[dict]) -> str:
    """Recall@10 against the exhaustive top 10 by N (the README's second table)."""
    grid = [n for n in CANDIDATE_GRID if any(str(n) in r["recall_by_candidates"]["selection"]
                                             for r in rows)]
    lines = [
        "| videos | stage 1 | " + " | ".join(f"N={n:,}" for n in grid) + " |",
        "| --- | --- |" + " ---: |" * len(grid),
    ]
    for r in rows:
        for stage1, curve in r["recall_by_candidates"].items():
            cells = [f"{curve[str(n)]:.2f}" if str(n) in curve else "" for n in grid]
            lines.append(f"| {r['videos']:,} | {stage1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    define_flags()
    app.run(main)
