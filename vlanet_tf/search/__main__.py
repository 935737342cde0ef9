"""Search a video collection with a trained run.

    python -m vlanet_tf.search index --model_dir=RUN (or --saved_model=E/1) \
        --features=FILE.h5 --index=DIR
        [--durations=Charades_v1_test.csv]        (else each dataset's `duration` attr)
    python -m vlanet_tf.search query --index=DIR --query="..." [--top_videos=10]
        [--top_moments=3] [--candidates=100] [--stage1=selection|similarity] [--exhaustive] [--json]
    python -m vlanet_tf.search serve --index=DIR --videos=FOLDER [--port=8000]
    python -m vlanet_tf.search evaluate --index=DIR --annotations=charades_sta_test.txt
        --durations=Charades_v1_test.csv [--exhaustive]

`index` adds the videos the index does not hold yet (a new index, more videos, or a
killed build resumed). `query` and `serve` load the run the index names (or
`--model_dir`, which must be the same run). The library is `vlanet_tf.search.*`.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence

from absl import app, flags

FLAGS = flags.FLAGS
COMMANDS = ("index", "query", "serve", "evaluate")

flags.DEFINE_string("model_dir", None, "Training run (index: required; else the index's).")
flags.DEFINE_string("saved_model", None, "An exported version folder, instead of a run.")
flags.DEFINE_string("checkpoint", "best", "best|last|PATH of the run's weights.")
flags.DEFINE_string("features", None, "index: HDF5 file or folder of .npy features.")
flags.DEFINE_string("durations", None, "CSV with id,length columns (Charades-STA).")
flags.DEFINE_string("index", None, "The index folder.")
flags.DEFINE_string("query", None, "query: the sentence.")
flags.DEFINE_integer("top_videos", 10, "Videos to return.")
flags.DEFINE_integer("top_moments", 3, "Moments per video.")
flags.DEFINE_integer("candidates", 50, "N: videos stage 1 hands to the cascade.")
flags.DEFINE_boolean("exhaustive", False, "Run the cascade on every video.")
flags.DEFINE_enum(
    "stage1", "similarity", ["selection", "similarity"],
    "Stage 1's query vector: similarity = the cascade head's first-order probe u "
    "(agrees better with the cascade: README), selection = w_M (the eq. 3 cosine).",
)
flags.DEFINE_boolean("json", False, "query: print one JSON object.")
flags.DEFINE_string("videos", None, "serve: folder of video files named by video id.")
flags.DEFINE_integer("port", 8000, "serve: port on 127.0.0.1.")
flags.DEFINE_string("annotations", None, "evaluate: charades_sta_{split}.txt.")


def _require(*names: str) -> None:
    for name in names:
        if FLAGS[name].value is None:
            raise app.UsageError(f"--{name} is required")


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"expected one command of {COMMANDS}, got {list(argv[1:])}")
    command = argv[1]
    _require("index")
    from vlanet_tf.search.retrieval import Searcher

    if command == "index":
        from vlanet_tf.search.index import build_index
        from vlanet_tf.search.model import load_model

        _require("features")
        if (FLAGS.model_dir is None) == (FLAGS.saved_model is None):
            raise app.UsageError("index needs one of --model_dir and --saved_model")
        if FLAGS.saved_model:
            model = load_model(FLAGS.saved_model, "saved_model")
        else:
            model = load_model(FLAGS.model_dir, "run", FLAGS.checkpoint)
        report = build_index(model, FLAGS.features, FLAGS.index, FLAGS.durations)
        print(
            f"added {report.added} videos ({report.total} in {FLAGS.index}) in "
            f"{report.seconds:.1f} s; skipped: {report.skipped or 'none'}"
        )
        return

    def open_searcher() -> Searcher:
        return Searcher.open(
            FLAGS.index,
            FLAGS.model_dir,
            FLAGS.checkpoint,
            saved_model=FLAGS.saved_model,
            candidates=FLAGS.candidates,
            stage1=FLAGS.stage1,
        )

    if command == "query":
        _require("query")
        result = open_searcher().search(
            FLAGS.query, FLAGS.top_videos, FLAGS.top_moments, FLAGS.exhaustive
        )
        if FLAGS.json:
            print(json.dumps(result.to_dict()))
            return
        for i, v in enumerate(result.videos, 1):
            moments = ", ".join(f"{m[0]:.1f}-{m[1]:.1f} s" for m in v.moments)
            print(f"{i:3d}. {v.video_id:<16} c={v.similarity:+.3f}  {moments}")
        print(f"({result.candidates} videos scored, {result.timings_ms['total']:.1f} ms)")
    elif command == "serve":
        from vlanet_tf.search.web import HOST, SearchApp, make_server

        _require("videos")
        server = make_server(SearchApp(open_searcher, FLAGS.videos, verbose=True), FLAGS.port)
        print(f"serving http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    else:
        from vlanet_tf.data import readers
        from vlanet_tf.search.corpus import evaluate

        _require("annotations", "durations")
        records, _ = readers.read_charades_sta(FLAGS.annotations, FLAGS.durations)
        searcher = open_searcher()
        held = set(searcher.index.data.video_ids.tolist())
        records = [r for r in records if r.video_id in held]
        print(json.dumps(evaluate(searcher, records, exhaustive=FLAGS.exhaustive), indent=2))


if __name__ == "__main__":
    try:
        app.run(main)
    except ValueError as error:  # a bad index, model or query: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
