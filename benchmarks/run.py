"""Speed, memory and scaling of VLANet, each figure beside a reference from the same run.

    python -m benchmarks.run [--quick] [--sections=train,scaling] --output=bench.json
        [--markdown=docs/PERFORMANCE.md]

One module per section, each with a `measure` function that returns a JSON-ready dict
(and, but for `pipeline` and `scaling`, which have CLIs of their own, runnable alone as
`python -m benchmarks.<module> [--quick]`):

  train      benchmarks.train       a training step at batch 64 with Charades-STA shapes,
                                    F = 1024 and 4096, against the matmul rate of its
                                    own product shapes (roofline_ratio)
  pipeline   benchmarks.pipeline    the input pipeline at the same F, over the training
                                    step's consumption rate
  data_prep  benchmarks.data_build  data_prep.build on a synthetic Charades-STA-size
                                    release (6,672 videos)
  inference  benchmarks.serving     one (video, query): p50/p99 latency and queries/s at
                                    batch 64 for Keras, the SavedModel and TFLite
  scaling    benchmarks.scaling     time and peak memory per query against T, for the
                                    paper's model, without self-attention, and banded
  corpus     benchmarks.corpus      ranking N videos for one query with the proposal
                                    features cached, beside the full model on every video

The top-level keys hold the headline figures (the largest F measured); the sections
hold the details. `--markdown` rewrites the generated tables of the page in place
(`benchmarks.report`); the prose around them is written by hand.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

from benchmarks import (
    common,
    corpus,
    data_build,
    pipeline,
    precision,
    reference,
    report,
    scaling,
    serving,
    train,
)
from benchmarks.common import BenchOptions, json_default

__all__ = ["BenchOptions", "SECTIONS", "headline", "main", "run"]

# Section name (the JSON key) -> its measurement, given the options, a temporary folder
# and the sections measured so far; run in this order.
SECTIONS: dict[str, Callable[[BenchOptions, str, dict[str, Any]], Any]] = {
    "train": lambda o, root, done: {str(f): train.measure(f, o) for f in o.feature_dims},
    "pipeline": lambda o, root, done: {
        str(f): pipeline.measure(f, o, root, done["train"][str(f)]["samples_per_s"])
        for f in o.feature_dims
    },
    "data_prep": lambda o, root, done: data_build.measure(o, root),
    "inference": lambda o, root, done: serving.measure(max(o.feature_dims), o, root),
    "scaling": lambda o, root, done: scaling.measure(
        o.scaling_clips,
        feature_dim=max(o.feature_dims),
        min_seconds=o.scaling_min_seconds,
        process=o.scaling_process,
    ),
    "corpus": lambda o, root, done: corpus.measure(max(o.feature_dims), o),
    # Each precision and XLA side by side, interleaved (benchmarks/precision.py).
    "precision": lambda o, root, done: precision.measure(max(o.feature_dims), o, root),
}
# A section needs the ones named here to have run first.
NEEDS = {"pipeline": ("train",)}


def run(
    options: BenchOptions,
    log: Callable[[str], None] = print,
    sections: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Runs the chosen sections (all by default); returns the benchmark JSON.

    The headline keys and the targets are only written when every section ran.
    """
    import tensorflow as tf

    chosen = _with_needs(sections or list(SECTIONS))
    started = time.time()
    result: dict[str, Any] = {
        "machine": reference.machine(),
        "quick": options.quick,
        "options": dataclasses.asdict(options),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
    }
    log(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"TensorFlow {tf.__version__}")
    done: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vlanet_bench_") as root:
        for name in chosen:
            log(f"{name} ...")
            start = time.perf_counter()
            done[name] = SECTIONS[name](options, root, done)
            seconds[name] = time.perf_counter() - start
    result["section_seconds"] = seconds
    if set(done) == set(SECTIONS):
        result.update(headline(done, max(options.feature_dims)))
    result["sections"] = done
    if set(done) == set(SECTIONS):
        result["targets"] = report.targets(result)
    result["seconds"] = time.time() - started
    return result


def _with_needs(names: Sequence[str]) -> list[str]:
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    wanted = set(names) | {n for name in names for n in NEEDS.get(name, ())}
    return [name for name in SECTIONS if name in wanted]


def headline(sections: dict[str, Any], head: int) -> dict[str, Any]:
    """The top-level keys: figures at the largest F measured."""
    train_ = sections["train"][str(head)]
    pipe = sections["pipeline"][str(head)]
    engines = sections["inference"]["engines"]
    out: dict[str, Any] = {
        "feature_dim": head,
        "train_samples_per_s": train_["samples_per_s"],
        "train_gflops_per_s": train_["train_gflops_per_s"],
        "matmul_gflops_per_s": train_["matmul_gflops_per_s"],
        "roofline_ratio": train_["roofline_ratio"],
        "pipeline_records_per_s": pipe["records_per_s"],
        "pipeline_to_train_ratio": pipe["pipeline_to_train_ratio"],
        "data_prep_videos_per_s": sections["data_prep"]["videos_per_s"],
        "infer_ms_p50": engines["keras"]["ms_p50"],
        "infer_ms_p99": engines["keras"]["ms_p99"],
        "infer_queries_per_s_batched": engines["keras"]["batched_queries_per_s"],
        "scaling": {
            k: sections["scaling"][k]
            for k in ("T", "ms", "peak_mb", "exponent", "memory_method")
        },
        "scaling_banded": {
            k: sections["scaling"]["banded"][k]
            for k in ("T", "ms", "peak_mb", "exponent", "window")
        },
        "corpus_ms_per_video": sections["corpus"]["ms_per_video"],
        "corpus_naive_ms_per_video": sections["corpus"]["naive_ms_per_video"],
    }
    serving_: dict[str, Any] = {}
    for name in serving.ENGINES:
        if name in engines:
            e = engines[name]
            batched = "batched_queries_per_s" in e
            serving_[name] = {
                "ms_p50": e["ms_p50"],
                "ms_p99": e["ms_p99"],
                # A batch-1 engine's throughput is its single-query rate.
                "queries_per_s_batched": e.get("batched_queries_per_s", 1000.0 / e["ms_p50"]),
                "batch": sections["inference"]["batch"] if batched else 1,
            }
        else:
            serving_[name] = sections["inference"]["not_measured"][name]
    out["serving"] = serving_
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (about a minute)")
    parser.add_argument("--output", default="bench.json", help="where the JSON goes")
    parser.add_argument(
        "--markdown", default=None, help="rewrite the tables of this Performance page"
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated sections to run (default: all; the page needs all)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = BenchOptions.quick_options() if args.quick else BenchOptions()
    sections = [s for s in args.sections.split(",") if s]
    result = run(options, log=lambda s: print(s, file=sys.stderr, flush=True), sections=sections)
    result = common.write_result(args.output, result)
    if "targets" not in result:
        print(json.dumps(result["sections"], indent=2, sort_keys=True, default=json_default))
        if args.markdown:
            print("--markdown needs every section; the page was not written", file=sys.stderr)
        return 0
    print(report.table(result))
    if args.markdown:
        report.write_page(result, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
