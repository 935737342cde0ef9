"""Corpus-level recall of the collection search on a synthetic collection with answers.

    python -m benchmarks.search_corpus [--videos=1000] [--max_queries=300]
        [--candidates=50,100] [--root=DIR] [--output=benchmarks/results/search_corpus.json]

Uses `benchmarks.search_trained`'s trained run and collection (the same `--root` cache:
VLANet trained on the demo release with negatives in both directions and InfoNCE; a
collection of `videos` test videos from the same generator) and scores the first
`max_queries` test sentences over the whole collection: video R@k and moment R@k at
IoU >= 0.5 (TVR-style VCMR, `vlanet_tf.search.corpus`), for the exhaustive cascade and
for two-stage search with each stage-1 vector at several N.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

from absl import app, flags

from benchmarks import search_trained
from vlanet_tf import files
from vlanet_tf.search import corpus
from vlanet_tf.search.index import Index
from vlanet_tf.search.model import SearchModel
from vlanet_tf.search.retrieval import STAGE1_VECTORS, Searcher

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The main's flags (defined on demand, so importing the module defines none)."""
    flags.DEFINE_integer("videos", 1000, "Videos in the searched collection.")
    flags.DEFINE_integer("max_queries", 300, "Sentences scored.")
    flags.DEFINE_list("candidates", ["50", "100"], "N values of stage 2.")
    flags.DEFINE_string("root", "/tmp/vlanet_search_trained", "benchmarks.search_trained's cache.")
    flags.DEFINE_string("output", "benchmarks/results/search_corpus.json", "JSON written here.")


def main(argv: Sequence[str]) -> None:
    del argv
    os.makedirs(FLAGS.root, exist_ok=True)
    model = SearchModel.from_run(search_trained.trained_run(FLAGS.root))
    index_dir, records = search_trained.collection(FLAGS.root, FLAGS.videos, model)
    records = records[: FLAGS.max_queries]
    index = Index.open(index_dir)
    rows = {}
    t = time.perf_counter()
    rows["exhaustive"] = corpus.evaluate(Searcher(index, model), records, exhaustive=True)
    rows["exhaustive"]["seconds"] = time.perf_counter() - t
    search_trained.log(f"exhaustive: {rows['exhaustive']}")
    for stage1 in STAGE1_VECTORS:
        for n in [int(c) for c in FLAGS.candidates]:
            searcher = Searcher(index, model, candidates=n, stage1=stage1)
            t = time.perf_counter()
            rows[f"{stage1}_N{n}"] = corpus.evaluate(searcher, records)
            rows[f"{stage1}_N{n}"]["seconds"] = time.perf_counter() - t
            search_trained.log(f"{stage1} N={n}: {rows[f'{stage1}_N{n}']}")
    result = {"videos": index.num_videos, "queries": len(records), "rows": rows}
    files.write_json(FLAGS.output, result, sort_keys=False)
    print(table(result))


def table(result: dict) -> str:
    """The README's markdown table of a run."""
    keys = ("video_R@1", "video_R@5", "video_R@10", "moment_R@1@0.5", "moment_R@10@0.5")
    lines = [
        "| search | " + " | ".join(keys) + " |",
        "| --- |" + " ---: |" * len(keys),
    ]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    define_flags()
    app.run(main)
