"""Speed, memory and scaling of VLANet, each figure beside a reference from the same run.

    python -m benchmarks.run [--quick] --output=bench.json [--markdown=docs/PERFORMANCE.md]

Sections (each a function returning a JSON-ready dict):
  train      a training step at batch 64 with Charades-STA shapes (45 clips, 9 words,
             stride 8, windows 176/208/240), F = 1024 and 4096; its analytic FLOPs
             (`benchmarks.flops`) and, just before and after the step in each of
             several rounds, the dense matmul rate of the step's own product shapes.
             roofline_ratio = step GFLOP/s / matmul GFLOP/s.
  pipeline   `benchmarks.pipeline.benchmark_pipeline` on a synthetic Charades-shaped set
             at the same F, over the training step's consumption rate.
  data_prep  `data_prep.build` on a synthetic Charades-STA-size release (6,672 videos).
  inference  one (video, query): p50/p99 latency and queries/s at batch 64, for the
             Keras model, the SavedModel and TFLite, timed in alternating rounds.
  scaling    `benchmarks.scaling`: time and peak memory per query against T, for the
             paper's model, without self-attention, and with the video self-attention
             banded (`video_self_attention_window`; top-level `scaling_banded`).
  corpus     ranking N videos for one query with the query-independent proposal features
             computed once (`VLANet.proposal_builder`) and only the query encoder and
             `model.match` run per query, beside the full model run on every video.

The top-level keys hold the headline figures (the largest F measured); the sections
hold the details. A section that cannot run says why under "not_measured".
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks import flops, reference, report, scaling

VOCAB_SIZE = 1000
CHARADES_VIDEOS = 6672  # 5,338 train + 1,334 test videos in Charades-STA.
CHARADES_TEST_SHARE = 1334 / 6672
# Synthetic videos of 20-40 s: 30 s on average, 45 C3D clips of 16 frames at 24 fps,
# as in Charades-STA.
MIN_DURATION, MAX_DURATION = 20.0, 40.0


@dataclasses.dataclass
class BenchOptions:
    """Sizes of every section; `quick()` shrinks them to a sub-minute smoke run."""

    quick: bool = False
    batch_size: int = 64
    clips: int = 45
    words: int = 9
    feature_dims: tuple[int, ...] = (1024, 4096)
    train_rounds: int = 5
    train_steps_per_round: int = 4
    matmul_seconds: float = 0.3
    pipeline_videos: int = 400
    pipeline_batches: int = 100
    data_prep_videos: int = CHARADES_VIDEOS
    data_prep_feature_dim: int = 1024
    infer_rounds: int = 4
    infer_calls: int = 200  # single-query calls per engine, over all rounds
    infer_batch: int = 64
    infer_batch_calls: int = 12
    scaling_clips: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    scaling_min_seconds: float = 2.0
    scaling_process: str = "per_point"  # see scaling.measure
    corpus_videos: int = 1000
    corpus_queries: int = 5
    corpus_rounds: int = 2

    @classmethod
    def quick_options(cls) -> "BenchOptions":
        return cls(
            quick=True,
            batch_size=16,
            feature_dims=(1024,),
            train_rounds=2,
            train_steps_per_round=2,
            matmul_seconds=0.1,
            pipeline_videos=60,
            pipeline_batches=10,
            data_prep_videos=200,
            infer_rounds=2,
            infer_calls=20,
            infer_batch=16,
            infer_batch_calls=2,
            scaling_clips=(16, 64, 256),
            scaling_min_seconds=0.2,
            scaling_process="in_process",
            corpus_videos=64,
            corpus_queries=3,
            corpus_rounds=1,
        )


# ---------------------------------------------------------------------------- inputs


def synthetic_batch(
    batch: int, clips: int, feature_dim: int, words: int, seed: int = 0, fps: float = 24.0
) -> dict[str, Any]:
    """Model inputs plus distinct `video_id`s: B videos of `clips` C3D clips each."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    return {
        "query_tokens": tf.constant(rng.integers(2, VOCAB_SIZE, (batch, words)), tf.int32),
        "video_features": tf.constant(
            rng.standard_normal((batch, clips, feature_dim), dtype=np.float32)
        ),
        "video_length": tf.fill([batch], clips),
        "duration": tf.fill([batch], clips * scaling.CLIP_FRAMES / fps),
        "video_id": tf.constant([f"video{i}" for i in range(batch)]),
    }


def model_config(feature_dim: int, **overrides: Any) -> Any:
    """Charades-STA defaults of ModelConfig (stride 8, windows 176/208/240, D 256)."""
    from vlanet_tf.config import ModelConfig

    return ModelConfig(vocab_size=VOCAB_SIZE, feature_dim=feature_dim, **overrides)


def _synthetic_data_dir(root: str, videos: int, feature_dim: int, shards: int = 4) -> str:
    """A synthetic Charades-STA release with `videos` videos, prepared by data_prep."""
    from data_prep import build, synthesize

    release = os.path.join(root, "release")
    test = max(1, round(videos * CHARADES_TEST_SHARE))
    synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=release,
            num_videos=videos - test,
            num_test_videos=test,
            feature_dim=feature_dim,
            min_duration=MIN_DURATION,
            max_duration=MAX_DURATION,
        )
    )
    out = os.path.join(root, "data")
    with _quiet():
        build.build(_build_options(release, out, shards))
    return out


@contextlib.contextmanager
def _quiet() -> Any:
    """Keeps data_prep's progress lines out of the benchmark's table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def _build_options(release: str, out: str, shards: int) -> Any:
    from data_prep import build

    return build.BuildOptions(
        dataset="charades_sta",
        annotations_dir=release,
        features=os.path.join(release, "features.h5"),
        word_vectors=os.path.join(release, "glove.synthetic.50d.txt"),
        output_dir=out,
        num_shards=shards,
    )


# ----------------------------------------------------------------------------- train


def bench_train(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """One training step (positive and negative passes, backward, AdamW) at batch B."""
    import tensorflow as tf

    from vlanet_tf.config import TrainConfig
    from vlanet_tf.training import build_model

    b, t, m = options.batch_size, options.clips, options.words
    config = model_config(feature_dim)
    train_config = TrainConfig(batch_size=b)
    model = build_model(config, train_config)
    step = tf.function(model.train_step)
    batch = synthetic_batch(b, t, feature_dim, m)
    start = time.perf_counter()
    step(batch)["loss"].numpy()
    trace_s = time.perf_counter() - start
    step(batch)["loss"].numpy()

    shape = flops.StepShape.charades(t, m, config, scaling.CLIP_FRAMES)
    terms = flops.step_terms(config, shape, True, train_config.num_negatives, b)
    per_sample = sum(term.total for term in terms.values())
    d, passes = config.hidden_dim, 1 + train_config.num_negatives
    # The step's largest products: the projection forward, its kernel gradient, and the
    # D x D attention products over every surrogate of every pass.
    gemms = [(b * t, feature_dim, d), (feature_dim, b * t, d), (passes * b * shape.groups, d, d)]

    rounds = []
    for _ in range(options.train_rounds):
        # The reference brackets the step: a load spike during one probe would
        # otherwise lower the limit and inflate the ratio, so the better probe counts.
        before = reference.matmul_rate(gemms, options.matmul_seconds, repeats=1)
        times = reference.time_calls(
            lambda: step(batch)["loss"].numpy(), options.train_steps_per_round
        )
        after = reference.matmul_rate(gemms, options.matmul_seconds, repeats=1)
        matmul = max(before, after, key=lambda r: r["gflops_per_s"])
        step_s = reference.median(times)
        achieved = per_sample * b / step_s / 1e9
        rounds.append(
            {
                "step_s": step_s,
                "samples_per_s": b / step_s,
                "train_gflops_per_s": achieved,
                "matmul_gflops_per_s": matmul["gflops_per_s"],
                "matmul_shapes": matmul["shapes"],
                "roofline_ratio": achieved / matmul["gflops_per_s"],
            }
        )
    # Each round's ratio compares a step with references taken just around it, so
    # other processes' load mostly cancels; the round with the median ratio is
    # reported whole, so that its three figures stay consistent with each other.
    best = sorted(rounds, key=lambda r: r["roofline_ratio"])[(len(rounds) - 1) // 2]
    return {
        "feature_dim": feature_dim,
        "batch_size": b,
        "clips": t,
        "words": m,
        "groups": shape.groups,
        "scales": config.num_scales,
        "hidden_dim": d,
        "num_negatives": train_config.num_negatives,
        "optimizer": train_config.optimizer,
        "trace_s": trace_s,
        "samples_per_s": best["samples_per_s"],
        "step_ms": 1000.0 * best["step_s"],
        "mflops_per_sample": per_sample / 1e6,
        "train_gflops_per_s": best["train_gflops_per_s"],
        "matmul_gflops_per_s": best["matmul_gflops_per_s"],
        "roofline_ratio": best["roofline_ratio"],
        "roofline_ratio_per_round": [r["roofline_ratio"] for r in rounds],
        "samples_per_s_per_round": [r["samples_per_s"] for r in rounds],
        "matmul_gflops_per_s_per_round": [r["matmul_gflops_per_s"] for r in rounds],
        "matmul_shapes": best["matmul_shapes"],
        "flops_breakdown": flops.breakdown(terms),
    }


# -------------------------------------------------------------------------- pipeline


def bench_pipeline(
    feature_dim: int, options: BenchOptions, train_samples_per_s: float, root: str
) -> dict[str, Any]:
    """`benchmark_pipeline` on a synthetic Charades-shaped set at `feature_dim`."""
    from benchmarks.pipeline import benchmark_pipeline

    data_dir = _synthetic_data_dir(
        os.path.join(root, f"pipeline{feature_dim}"), options.pipeline_videos, feature_dim
    )
    before = reference.quick_reference()
    result = benchmark_pipeline(
        data_dir, "train", options.batch_size, options.pipeline_batches, training=True
    )
    return {
        "feature_dim": feature_dim,
        "videos": options.pipeline_videos,
        "batch_size": options.batch_size,
        "records_per_s": result["records_per_s"],
        "mb_per_s": result["mb_per_s"],
        "records": result["records"],
        "train_samples_per_s": train_samples_per_s,
        "pipeline_to_train_ratio": result["records_per_s"] / train_samples_per_s,
        "reference_matmul_gflops_per_s": before,
    }


# ------------------------------------------------------------------------- data_prep


def bench_data_prep(options: BenchOptions, root: str) -> dict[str, Any]:
    """`data_prep.build` on a synthetic release of `data_prep_videos` videos."""
    from data_prep import build, synthesize

    videos = options.data_prep_videos
    test = round(videos * CHARADES_TEST_SHARE)
    release = os.path.join(root, "data_prep_release")
    start = time.perf_counter()
    synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=release,
            num_videos=videos - test,
            num_test_videos=test,
            feature_dim=options.data_prep_feature_dim,
            min_duration=MIN_DURATION,
            max_duration=MAX_DURATION,
        )
    )
    synthesize_s = time.perf_counter() - start
    before = reference.quick_reference()
    out = os.path.join(root, "data_prep_out")
    start = time.perf_counter()
    with _quiet():
        manifest = build.build(_build_options(release, out, shards=0))
    seconds = time.perf_counter() - start
    after = reference.quick_reference()
    splits = manifest["splits"]
    written = sum(s["videos"] for s in splits.values())
    return {
        "videos": written,
        "sentences": sum(s["sentences"] for s in splits.values()),
        "feature_dim": options.data_prep_feature_dim,
        "bytes_written": sum(s["bytes"] for s in splits.values()),
        "seconds": seconds,
        "videos_per_s": written / seconds,
        "synthesize_s": synthesize_s,
        "reference_matmul_gflops_per_s": [before, after],
    }


# ------------------------------------------------------------------------- inference


def _vocabulary_file(root: str) -> str:
    path = os.path.join(root, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(["<pad>", "<unk>"] + [f"w{i}" for i in range(2, VOCAB_SIZE)]) + "\n")
    return path


def _saved_model_engine(network: Any, root: str) -> tuple[Callable, Callable, str] | str:
    """(single call, batched call, path) of the exported SavedModel, or why not."""
    try:
        from export import saved_model as export_saved_model
    except ImportError as e:
        return f"not measured: export.saved_model is not importable ({e})"
    import tensorflow as tf

    module = export_saved_model.VLANetServing(network, _vocabulary_file(root))
    path = export_saved_model.save(module, os.path.join(root, "saved_model"))
    loaded = tf.saved_model.load(path)
    single = loaded.signatures[export_saved_model.SINGLE_SIGNATURE]
    batched = loaded.signatures[export_saved_model.TOKENS_SIGNATURE]

    def call(fn: Callable) -> Callable:
        return lambda x: fn(
            query_tokens=x["query_tokens"],
            video_features=x["video_features"],
            video_length=x["video_length"],
            duration=x["duration"],
        )["similarity"].numpy()

    return call(single), call(batched), path


def _tflite_engine(saved_model_path: str | None, root: str) -> tuple[Callable, None, str] | str:
    """(single call, None, path) of the float32 TFLite conversion, or why not."""
    try:
        from export import saved_model as export_saved_model
        from export import tflite as export_tflite
    except ImportError as e:
        return f"not measured: export.tflite is not importable ({e})"
    if saved_model_path is None:
        return "not measured: TFLite is converted from the SavedModel, which was not exported"
    path = os.path.join(root, export_tflite.model_filename("float32"))
    try:
        flatbuffer = export_tflite.convert(saved_model_path, "float32")
    except Exception as e:  # The converter raises its own error types; report any.
        # The converter's message is pages of MLIR; the line naming the ops says why.
        lines = [l.strip() for l in str(e).splitlines() if l.strip()] or [repr(e)]
        why = next((l for l in lines if l.startswith("TF Select ops")), lines[0])
        return f"not measured: export.tflite.convert failed ({type(e).__name__}: {why[:300]})"
    with open(path, "wb") as f:
        f.write(flatbuffer)
    try:
        ranker = export_tflite.TFLiteRanker(
            path, export_saved_model.vocabulary_path(saved_model_path)
        )
    except ImportError as e:
        return f"not measured: no TFLite interpreter ({e})"

    def single(x: dict[str, Any]) -> Any:
        return ranker(**{k: x[k].numpy() for k in export_tflite.INPUT_ORDER})["similarity"]

    return single, None, path


def bench_inference(feature_dim: int, options: BenchOptions, root: str) -> dict[str, Any]:
    """Latency of one (video, query) and batched queries/s, per serving engine."""
    import tensorflow as tf

    from vlanet_tf.model import INPUT_KEYS, build_vlanet

    network = build_vlanet(model_config(feature_dim))
    signature = [
        {
            "query_tokens": tf.TensorSpec([None, None], tf.int32),
            "video_features": tf.TensorSpec([None, None, feature_dim], tf.float32),
            "video_length": tf.TensorSpec([None], tf.int32),
            "duration": tf.TensorSpec([None], tf.float32),
        }
    ]
    keras_call = tf.function(lambda x: network(x, training=False), input_signature=signature)
    engines: dict[str, dict[str, Any]] = {
        "keras": {
            "single": lambda x: keras_call(x)["similarity"].numpy(),
            "batched": lambda x: keras_call(x)["similarity"].numpy(),
            "what": "tf.function around the functional model (network forward only)",
        }
    }
    not_measured: dict[str, str] = {}
    saved = _saved_model_engine(network, root)
    saved_path = None
    if isinstance(saved, str):
        not_measured["saved_model"] = saved
    else:
        saved_path = saved[2]
        engines["saved_model"] = {
            "single": saved[0],
            "batched": saved[1],
            "what": "tf.saved_model.load of export.saved_model; serve_tokens_single and "
            "serve_tokens (forward + in-graph top-k ranking)",
        }
    lite = _tflite_engine(saved_path, root)
    if isinstance(lite, str):
        not_measured["tflite"] = lite
    else:
        engines["tflite"] = {
            "single": lite[0],
            "batched": None,
            "what": "export.tflite float32 conversion of serve_tokens_single, run by "
            "export.tflite.TFLiteRanker (ai_edge_litert)",
        }

    def inputs(batch: int, seed: int) -> dict[str, Any]:
        x = synthetic_batch(batch, options.clips, feature_dim, options.words, seed=seed)
        return {k: x[k] for k in INPUT_KEYS}

    single, batched = inputs(1, 0), inputs(options.infer_batch, 1)
    for engine in engines.values():
        for _ in range(3):
            engine["single"](single)
        if engine["batched"] is not None:
            engine["batched"](batched)
        engine["latencies"], engine["batch_times"] = [], []
    per_round = max(1, options.infer_calls // options.infer_rounds)
    batch_per_round = max(1, options.infer_batch_calls // options.infer_rounds)
    references = []
    for _ in range(options.infer_rounds):
        references.append(reference.quick_reference())
        for engine in engines.values():
            engine["latencies"] += reference.time_calls(lambda: engine["single"](single), per_round)
            if engine["batched"] is not None:
                engine["batch_times"] += reference.time_calls(
                    lambda: engine["batched"](batched), batch_per_round
                )
    results: dict[str, Any] = {}
    for name, engine in engines.items():
        lat_ms = [1000.0 * s for s in engine["latencies"]]
        entry = {
            "what": engine["what"],
            "calls": len(lat_ms),
            "ms_p50": reference.percentile(lat_ms, 50),
            "ms_p99": reference.percentile(lat_ms, 99),
            "single_queries_per_s": 1000.0 / reference.percentile(lat_ms, 50),
        }
        if engine["batch_times"]:
            entry["batched_queries_per_s"] = options.infer_batch / reference.median(
                engine["batch_times"]
            )
        else:
            entry["batched_queries_per_s_not_measured"] = (
                "the TFLite model has a fixed batch of 1; batch throughput equals single"
            )
        results[name] = entry
    return {
        "feature_dim": feature_dim,
        "clips": options.clips,
        "words": options.words,
        "batch": options.infer_batch,
        "engines": results,
        "not_measured": not_measured,
        "reference_matmul_gflops_per_s": references,
    }


# ---------------------------------------------------------------------------- corpus


def bench_corpus(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """Ranking N videos for one query, reusing each video's proposal features."""
    import tensorflow as tf

    from vlanet_tf.model import VLANet, match

    n, t, m = options.corpus_videos, options.clips, options.words
    model = VLANet(model_config(feature_dim))
    network = model.network
    builder = model.proposal_builder
    encoder = model.query_encoder
    select = network.get_layer("surrogate_select")
    cascade = network.get_layer("cascaded_cross_modal_attention")
    videos = synthetic_batch(n, t, feature_dim, m, seed=2)
    video_keys = ("video_features", "video_length", "duration")
    top = min(10, n)

    @tf.function
    def precompute(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return builder(inputs, training=False)

    @tf.function
    def rank(tokens: tf.Tensor, proposals: dict[str, tf.Tensor]) -> tf.Tensor:
        query = encoder(tokens, training=False)
        rows = tf.shape(proposals["proposals"])[0]
        query = {k: tf.repeat(v, rows, axis=0) for k, v in query.items()}
        similarity = match(select, cascade, proposals, query)["similarity"]
        return tf.math.top_k(similarity, top).indices

    @tf.function
    def rank_naive(tokens: tf.Tensor, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        rows = tf.shape(inputs["video_features"])[0]
        out = network({"query_tokens": tf.repeat(tokens, rows, axis=0), **inputs}, training=False)
        return tf.math.top_k(out["similarity"], top).indices

    video_inputs = {k: videos[k] for k in video_keys}
    start = time.perf_counter()
    proposals = precompute(video_inputs)
    proposals = {k: tf.identity(v) for k, v in proposals.items()}
    proposals["proposals"].numpy()
    precompute_first_s = time.perf_counter() - start
    precompute_s = reference.median(
        reference.time_calls(lambda: precompute(video_inputs)["proposals"].numpy(), 2)
    )
    queries = synthetic_batch(options.corpus_queries, 1, 1, m, seed=3)["query_tokens"]
    rank(queries[:1], proposals).numpy()
    rank_naive(queries[:1], video_inputs).numpy()
    reused, naive = [], []
    for _ in range(options.corpus_rounds):
        for i in range(options.corpus_queries):
            tokens = queries[i : i + 1]
            reused += reference.time_calls(lambda: rank(tokens, proposals).numpy(), 1)
            naive += reference.time_calls(lambda: rank_naive(tokens, video_inputs).numpy(), 1)
    reused_ms = 1000.0 * reference.median(reused) / n
    naive_ms = 1000.0 * reference.median(naive) / n
    return {
        "videos": n,
        "feature_dim": feature_dim,
        "clips": t,
        "queries": len(reused),
        "ms_per_video": reused_ms,
        "naive_ms_per_video": naive_ms,
        "speedup": naive_ms / reused_ms,
        "precompute_ms_per_video": 1000.0 * precompute_s / n,
        "precompute_first_call_s": precompute_first_s,
        "proposal_cache_mb": sum(
            int(v.shape.num_elements()) * v.dtype.size for v in proposals.values()
        )
        / 2**20,
        "what": "query encoder once, then surrogate selection and the cascade against "
        "every cached video (model.match), top-10 by similarity; naive: the full model "
        "(projection and pooling included) on every video",
    }


# ------------------------------------------------------------------------------ main


def run(options: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs every section; returns the benchmark JSON."""
    import tensorflow as tf

    started = time.time()
    result: dict[str, Any] = {
        "machine": reference.machine(),
        "quick": options.quick,
        "options": dataclasses.asdict(options),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
    }
    log(f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"TensorFlow {tf.__version__}")
    sections: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    head = max(options.feature_dims)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        start = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - start
        return out

    with tempfile.TemporaryDirectory(prefix="vlanet_bench_") as root:
        sections["train"], sections["pipeline"] = {}, {}
        for f in options.feature_dims:
            sections["train"][str(f)] = timed(f"train F={f}", lambda: bench_train(f, options))
        for f in options.feature_dims:
            rate = sections["train"][str(f)]["samples_per_s"]
            sections["pipeline"][str(f)] = timed(
                f"pipeline F={f}", lambda: bench_pipeline(f, options, rate, root)
            )
        sections["data_prep"] = timed("data_prep", lambda: bench_data_prep(options, root))
        sections["inference"] = timed(
            f"inference F={head}", lambda: bench_inference(head, options, root)
        )
        sections["scaling"] = timed(
            f"scaling T={list(options.scaling_clips)}",
            lambda: scaling.measure(
                options.scaling_clips,
                feature_dim=head,
                min_seconds=options.scaling_min_seconds,
                process=options.scaling_process,
            ),
        )
        sections["corpus"] = timed(
            f"corpus N={options.corpus_videos}", lambda: bench_corpus(head, options)
        )
    result["section_seconds"] = seconds
    result.update(headline(sections, head))
    result["sections"] = sections
    result["targets"] = report.targets(result)
    result["seconds"] = time.time() - started
    return result


def headline(sections: dict[str, Any], head: int) -> dict[str, Any]:
    """The top-level keys: figures at the largest F measured."""
    train = sections["train"][str(head)]
    pipe = sections["pipeline"][str(head)]
    engines = sections["inference"]["engines"]
    out: dict[str, Any] = {
        "feature_dim": head,
        "train_samples_per_s": train["samples_per_s"],
        "train_gflops_per_s": train["train_gflops_per_s"],
        "matmul_gflops_per_s": train["matmul_gflops_per_s"],
        "roofline_ratio": train["roofline_ratio"],
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
    serving: dict[str, Any] = {}
    for name in ("keras", "saved_model", "tflite"):
        if name in engines:
            e = engines[name]
            batched = "batched_queries_per_s" in e
            serving[name] = {
                "ms_p50": e["ms_p50"],
                "ms_p99": e["ms_p99"],
                # A batch-1 engine's throughput is its single-query rate.
                "queries_per_s_batched": e.get("batched_queries_per_s", 1000.0 / e["ms_p50"]),
                "batch": sections["inference"]["batch"] if batched else 1,
            }
        else:
            serving[name] = sections["inference"]["not_measured"][name]
    out["serving"] = serving
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a sub-minute smoke run")
    parser.add_argument("--output", default="bench.json", help="where the JSON goes")
    parser.add_argument("--markdown", default=None, help="write the Performance page here")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = BenchOptions.quick_options() if args.quick else BenchOptions()
    result = run(options, log=lambda s: print(s, file=sys.stderr, flush=True))
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True, default=_json_default)
        f.write("\n")
    print(report.table(result))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(report.markdown(result, json_path=args.output))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
