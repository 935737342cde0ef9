"""Corpus-level recall of the collection search on a synthetic release with answers.

    python -m benchmarks.search_corpus [--test_videos=1000] [--epochs=4]
        [--output=benchmarks/results/search_corpus.json]

Synthesizes a Charades-STA-style release (seed 0; 160 training videos, `test_videos`
test videos), trains a small VLANet briefly on it (D = 32; by default with negatives in
both directions and InfoNCE over every in-batch pair, so that c learns to rank videos
for a sentence, not only sentences for a video), indexes the test videos
and scores every test sentence over the whole test collection: video R@k and moment
R@k at IoU >= 0.5 (TVR-style VCMR, `vlanet_tf.search.corpus`), for the exhaustive
cascade and for two-stage search at several N, plus the recall@10 of each two-stage
video ranking against the exhaustive one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Sequence

import numpy as np
from absl import app, flags

from data_prep import build as build_lib
from data_prep import synthesize
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import readers
from vlanet_tf.data.prepared import data_properties
from vlanet_tf.experiment import run_experiment
from vlanet_tf.run_dir import RunDir
from vlanet_tf.search import corpus
from vlanet_tf.search.index import Index, build_index
from vlanet_tf.search.model import SearchModel
from vlanet_tf.search.retrieval import Searcher

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The main's flags (defined on demand, so importing the module defines none)."""
    flags.DEFINE_integer("test_videos", 1000, "Videos in the searched collection.")
    flags.DEFINE_integer("epochs", 4, "Training epochs.")
    flags.DEFINE_integer("max_queries", 300, "Sentences scored.")
    flags.DEFINE_list("candidates", ["10", "50", "100"], "N values of stage 2.")
    flags.DEFINE_enum(
        "negative_direction", "both", ["sentence", "video", "both"], "Training negatives."
    )
    flags.DEFINE_string("loss", "infonce", "Training loss (hinge, hinge_hardest, infonce).")
    flags.DEFINE_integer("num_negatives", 0, "Negatives per pair; 0: every in-batch one.")
    flags.DEFINE_string("output", "benchmarks/results/search_corpus.json", "JSON written here.")


def main(argv: Sequence[str]) -> None:
    del argv
    root = tempfile.mkdtemp(prefix="search_corpus_")
    release, data_dir = os.path.join(root, "release"), os.path.join(root, "data")
    synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=release, num_videos=160, num_test_videos=FLAGS.test_videos,
            feature_dim=32, word_dim=16, seed=0,
        )
    )
    build_lib.build(
        build_lib.BuildOptions(
            dataset="charades_sta", annotations_dir=release,
            features=os.path.join(release, "features.h5"),
            word_vectors=os.path.join(release, "glove.synthetic.16d.txt"),
            output_dir=data_dir, num_shards=1,
        )
    )
    props = data_properties(data_dir)
    model_config = ModelConfig(
        vocab_size=props["vocab_size"], word_dim=props["word_dim"],
        feature_dim=props["feature_dim"], hidden_dim=32,
    )
    train_config = TrainConfig(
        batch_size=32, epochs=FLAGS.epochs, learning_rate=0.003,
        negative_direction=FLAGS.negative_direction, loss=FLAGS.loss,
        num_negatives=FLAGS.num_negatives,
    )
    run_config = RunConfig(
        data_dir=data_dir, model_dir=os.path.join(root, "model"),
        strategy="one_device", deterministic=True, verbose=0,
    )
    RunDir(run_config.model_dir).save_options(model_config, train_config, run_config)
    run_experiment(model_config, train_config, run_config)
    model = SearchModel.from_run(run_config.model_dir)
    durations = os.path.join(release, "Charades_v1_test.csv")
    index_dir = os.path.join(root, "index")
    build_index(model, os.path.join(release, "features.h5"), index_dir, durations)
    records, _ = readers.read_charades_sta(
        os.path.join(release, "charades_sta_test.txt"), durations
    )
    records = records[: FLAGS.max_queries]
    index = Index.open(index_dir)
    searcher = Searcher(index, model)
    t = time.perf_counter()
    exhaustive = corpus.evaluate(searcher, records, exhaustive=True)
    exhaustive["seconds"] = time.perf_counter() - t
    reference = {
        r.query_id: {v.video_id for v in searcher.search(r.sentence, 10, exhaustive=True).videos}
        for r in records
    }
    rows = {"exhaustive": exhaustive}
    for n in [int(c) for c in FLAGS.candidates]:
        searcher.candidates = n
        t = time.perf_counter()
        scores = corpus.evaluate(searcher, records)
        scores["seconds"] = time.perf_counter() - t
        overlap = []
        for r in records:
            found = {v.video_id for v in searcher.search(r.sentence, 10).videos}
            overlap.append(len(reference[r.query_id] & found))
        scores["recall_at_10_vs_exhaustive"] = float(np.mean(overlap)) / 10
        rows[f"two_stage_N{n}"] = scores
    result = {
        "videos": index.num_videos,
        "queries": len(records),
        "training": {
            k: getattr(train_config, k)
            for k in ("negative_direction", "loss", "num_negatives", "epochs")
        },
        "rows": rows,
    }
    print(json.dumps(result, indent=2))
    os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    define_flags()
    app.run(main)
