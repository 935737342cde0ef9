"""The `precision` section: float32, mixed_bfloat16, mixed_float16 and XLA side by side.

    python -m benchmarks.precision [--quick]

One process, every variant built first, then timed in interleaved rounds (the order
rotates each round) so that the load of other processes falls on all of them:

- training: samples/s of the training step (`VLANet.train_step` in a tf.function, as
  `benchmarks.train` times it) at batch B with Charades-STA shapes, for each precision
  and, with XLA (`jit_compile=True`), for the faster of float32 and mixed_bfloat16.
  Each round brackets the steps with the matmul rate of the step's own largest product
  shapes *in the variant's compute format* (bfloat16 for mixed_bfloat16), and the
  roofline ratio is the step's analytic GFLOP/s over that rate;
- serving: p50/p99 latency of one (video, query) and queries/s at batch
  `infer_batch`, for the exported SavedModel (`export.serving`, float32 inputs and
  outputs) of each precision and for the Keras forward pass (a tf.function, as
  `vlanet_tf.inference` runs it), with XLA on the faster precision;
- peak memory: the working memory of the first training step and of the first
  batched forward pass, each read in a process of its own (`--memory=VARIANT`; the
  allocator of a process that has already run keeps freed buffers, which would hide
  the growth of whatever runs later).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from benchmarks import common, flops, reference, scaling, serving
from benchmarks.common import BenchOptions

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# The compute format of each precision: what its matmul probe runs in.
COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def variant_name(precision: str, jit: bool) -> str:
    return f"{precision}+xla" if jit else precision


def _parse_variant(name: str) -> tuple[str, bool]:
    precision, _, xla = name.partition("+")
    if precision not in PRECISIONS or xla not in ("", "xla"):
        raise ValueError(f"unknown variant {name!r}")
    return precision, xla == "xla"


# ---------------------------------------------------------------------------- training


def _train_step(precision: str, jit: bool, feature_dim: int, options: BenchOptions) -> Any:
    import tensorflow as tf

    config = common.model_config(feature_dim, precision=precision)
    model = common.training_model(config, common.train_config(batch_size=options.batch_size))
    return config, model, tf.function(model.train_step, jit_compile=jit)


def _gemms(config: Any, shape: Any, options: BenchOptions, negatives: int) -> list:
    b, t, d = options.batch_size, options.clips, config.hidden_dim
    f = config.feature_dim
    return [(b * t, f, d), (f, b * t, d), ((1 + negatives) * b * shape.groups, d, d)]


def _training_batch(b: int, t: int, feature_dim: int, m: int) -> dict[str, Any]:
    """A batch as the training input gives it: an int64 key per video, no strings (XLA
    compiles no string ops; `vlanet_tf.training.training_features` does the same)."""
    import tensorflow as tf

    batch = common.synthetic_batch(b, t, feature_dim, m)
    video_id = batch.pop("video_id")
    batch["video_key"] = tf.strings.to_hash_bucket_fast(video_id, 2**62)
    return batch


def measure_training(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """Every precision, then XLA on the faster of float32 and mixed_bfloat16, interleaved."""
    b, t, m = options.batch_size, options.clips, options.words
    batch = _training_batch(b, t, feature_dim, m)
    variants: dict[str, dict[str, Any]] = {}

    def add(precision: str, jit: bool) -> None:
        config, model, step = _train_step(precision, jit, feature_dim, options)
        start = time.perf_counter()
        step(batch)["loss"].numpy()
        trace_s = time.perf_counter() - start
        step(batch)["loss"].numpy()
        variants[variant_name(precision, jit)] = {
            "precision": precision,
            "jit_compile": jit,
            "config": config,
            "model": model,
            "step": step,
            "trace_s": trace_s,
            "rounds": [],
        }

    for precision in PRECISIONS:
        add(precision, False)
    # A first look at which format is faster, to put XLA on top of it.
    probe = {
        name: reference.median(
            reference.time_calls(lambda: variants[name]["step"](batch)["loss"].numpy(), 3)
        )
        for name in ("float32", "mixed_bfloat16")
    }
    better = min(probe, key=probe.get)
    add(better, True)

    config = variants["float32"]["config"]
    negatives = variants["float32"]["model"].num_negatives
    shape = flops.StepShape.charades(t, m, config, common.CLIP_FRAMES)
    terms = flops.step_terms(config, shape, True, negatives, b)
    per_sample = sum(term.total for term in terms.values())
    gemms = _gemms(config, shape, options, negatives)
    names = list(variants)
    for r in range(options.train_rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            v = variants[name]
            dtype = COMPUTE_DTYPE[v["precision"]]
            before = reference.matmul_rate(gemms, options.matmul_seconds, 1, dtype)
            times = reference.time_calls(
                lambda: v["step"](batch)["loss"].numpy(), options.train_steps_per_round
            )
            after = reference.matmul_rate(gemms, options.matmul_seconds, 1, dtype)
            best = max(before, after, key=lambda p: p["gflops_per_s"])
            step_s = reference.median(times)
            achieved = per_sample * b / step_s / 1e9
            v["rounds"].append(
                {
                    "step_times_s": times,
                    "samples_per_s": b / step_s,
                    "train_gflops_per_s": achieved,
                    "matmul_gflops_per_s": best["gflops_per_s"],
                    "roofline_ratio": achieved / best["gflops_per_s"],
                }
            )
    out: dict[str, Any] = {}
    for name, v in variants.items():
        rounds = v["rounds"]
        samples = [x["samples_per_s"] for x in rounds]
        out[name] = {
            "precision": v["precision"],
            "jit_compile": v["jit_compile"],
            "compute_dtype": COMPUTE_DTYPE[v["precision"]],
            "trace_s": v["trace_s"],
            "samples_per_s": reference.median(samples),
            "step_ms": 1000.0 * b / reference.median(samples),
            "train_gflops_per_s": reference.median([x["train_gflops_per_s"] for x in rounds]),
            "matmul_gflops_per_s": reference.median([x["matmul_gflops_per_s"] for x in rounds]),
            "roofline_ratio": reference.median([x["roofline_ratio"] for x in rounds]),
            "samples_per_s_per_round": samples,
            "matmul_gflops_per_s_per_round": [x["matmul_gflops_per_s"] for x in rounds],
            "step_s_per_round": [x["step_times_s"] for x in rounds],
        }
    # Speed-ups within each round (same load), then their median.
    for name in out:
        out[name]["speedup_over_float32"] = reference.median(
            [
                a["samples_per_s"] / f["samples_per_s"]
                for a, f in zip(variants[name]["rounds"], variants["float32"]["rounds"])
            ]
        )
    return {
        "feature_dim": feature_dim,
        "batch_size": b,
        "clips": t,
        "words": m,
        "mflops_per_sample": per_sample / 1e6,
        "matmul_shapes": [list(g) for g in gemms],
        "xla_on": better,
        "first_look_step_s": probe,
        "variants": out,
    }


# ------------------------------------------------------------------------ per layer


def measure_layers(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """Forward + backward ms of each part of one training pass, float32 against
    mixed_bfloat16, interleaved: where a reduced format gains or loses time.

    Parts: the query encoder (embedding + GRU, eq. 1), the proposal builder
    (projection + pooling, eq. 2) and the match (surrogate selection + cascade,
    eqs. 3-13); each is a tf.function of the part's outputs summed, differentiated
    with respect to the part's own weights, at the training step's batch shapes.
    """
    import tensorflow as tf

    b, t, m = options.batch_size, options.clips, options.words
    batch = common.synthetic_batch(b, t, feature_dim, m)
    match = common.match_fn()
    parts: dict[str, dict[str, Callable]] = {}
    for precision in ("float32", "mixed_bfloat16"):
        model = common.vlanet(common.model_config(feature_dim, precision=precision))
        net = model.network
        select = net.get_layer("surrogate_select")
        cascade = net.get_layer("cascaded_cross_modal_attention")
        video_in = {k: batch[k] for k in ("video_features", "video_length", "duration")}
        video = model.proposal_builder(video_in)
        query = model.query_encoder(batch["query_tokens"])

        def grad_of(layer_vars: Any, fn: Callable) -> Callable:
            @tf.function
            def run() -> Any:
                with tf.GradientTape() as tape:
                    loss = tf.cast(fn(), tf.float32)
                return tape.gradient(loss, layer_vars)

            return run

        parts[precision] = {
            "query_encoder": grad_of(
                model.query_encoder.trainable_variables,
                lambda qe=model.query_encoder: tf.reduce_sum(
                    tf.cast(qe(batch["query_tokens"], training=True)["words"], tf.float32)
                ),
            ),
            "proposal_builder": grad_of(
                model.proposal_builder.trainable_variables,
                lambda pb=model.proposal_builder: tf.reduce_sum(
                    tf.cast(pb(video_in, training=True)["proposals"], tf.float32)
                ),
            ),
            "match": grad_of(
                select.trainable_variables + cascade.trainable_variables,
                lambda s=select, c=cascade, v=video, q=query: tf.reduce_sum(
                    match(s, c, v, q)["similarity"]
                ),
            ),
        }
    times: dict[str, dict[str, list[float]]] = {
        p: {k: [] for k in fns} for p, fns in parts.items()
    }
    for fns in parts.values():
        for fn in fns.values():
            fn()
            fn()
    for r in range(options.train_rounds):
        for precision in (["float32", "mixed_bfloat16"] if r % 2 == 0 else ["mixed_bfloat16", "float32"]):
            for name, fn in parts[precision].items():
                times[precision][name] += reference.time_calls(
                    lambda: [g.numpy() for g in fn() if g is not None], 3
                )
    out = {
        p: {name: 1000.0 * reference.median(ts) for name, ts in parts_.items()}
        for p, parts_ in times.items()
    }
    return {
        "ms": out,
        "bfloat16_over_float32": {
            name: out["mixed_bfloat16"][name] / out["float32"][name] for name in out["float32"]
        },
    }


# ----------------------------------------------------------------------------- serving


def _forward(network: Any, feature_dim: int, jit: bool) -> Callable:
    import tensorflow as tf

    return tf.function(
        lambda x: network(x, training=False), jit_compile=jit, reduce_retracing=True
    )


def measure_serving(
    feature_dim: int, options: BenchOptions, root: str, xla_on: str
) -> dict[str, Any]:
    """SavedModel of each precision and the Keras forward (XLA on `xla_on`), interleaved."""
    keys = common.input_keys()

    def inputs(batch: int, seed: int) -> dict[str, Any]:
        x = common.synthetic_batch(batch, options.clips, feature_dim, options.words, seed=seed)
        return {k: x[k] for k in keys}

    engines: dict[str, dict[str, Any]] = {}
    for precision in PRECISIONS:
        network = common.network(common.model_config(feature_dim, precision=precision))
        folder = os.path.join(root, f"precision-{precision}")
        os.makedirs(folder, exist_ok=True)
        saved = serving._saved_model_engine(network, folder)
        if not isinstance(saved, str):
            engines[f"saved_model/{precision}"] = {"single": saved[0], "batched": saved[1]}
        forward = _forward(network, feature_dim, False)
        call = lambda x, f=forward: f(x)["similarity"].numpy()  # noqa: E731
        engines[f"keras/{precision}"] = {"single": call, "batched": call}
        if precision == xla_on:
            jitted = _forward(network, feature_dim, True)
            call = lambda x, f=jitted: f(x)["similarity"].numpy()  # noqa: E731
            engines[f"keras/{precision}+xla"] = {"single": call, "batched": call}

    single, batched = inputs(1, 0), inputs(options.infer_batch, 1)
    for e in engines.values():
        for _ in range(3):
            e["single"](single)
        e["batched"](batched)
        e["latencies"], e["batch_times"] = [], []
    per_round = max(1, options.infer_calls // options.infer_rounds)
    batch_per_round = max(1, options.infer_batch_calls // options.infer_rounds)
    names = list(engines)
    for r in range(options.infer_rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            e = engines[name]
            e["latencies"] += reference.time_calls(lambda: e["single"](single), per_round)
            e["batch_times"] += reference.time_calls(
                lambda: e["batched"](batched), batch_per_round
            )
    out = {}
    for name, e in engines.items():
        lat_ms = [1000.0 * s for s in e["latencies"]]
        out[name] = {
            "calls": len(lat_ms),
            "ms_p50": reference.percentile(lat_ms, 50),
            "ms_p99": reference.percentile(lat_ms, 99),
            "batched_queries_per_s": options.infer_batch / reference.median(e["batch_times"]),
        }
    return {"batch": options.infer_batch, "engines": out}


# ------------------------------------------------------------------------------ memory


def _memory_in_process(name: str, feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """Working memory (MiB) of one variant's first training step and first batched
    forward; each read starts from a fresh allocator only in a fresh process."""
    precision, jit = _parse_variant(name)
    b = options.batch_size
    batch = _training_batch(b, options.clips, feature_dim, options.words)
    _, _, step = _train_step(precision, jit, feature_dim, options)
    if not jit:
        step.get_concrete_function(batch)  # trace outside the reading
    ok = scaling._reset_peak()
    if not ok:
        return {"not_measured": "the kernel does not let /proc/self/clear_refs reset VmHWM"}
    before = scaling._status_mb("VmRSS")
    step(batch)["loss"].numpy()
    train_mb = scaling._status_mb("VmHWM") - before
    return {"train_step_peak_mb": train_mb, "method": "VmHWM reset by clear_refs"}


def _forward_memory_in_process(name: str, feature_dim: int, options: BenchOptions) -> dict:
    precision, jit = _parse_variant(name)
    network = common.network(common.model_config(feature_dim, precision=precision))
    forward = _forward(network, feature_dim, jit)
    keys = common.input_keys()
    x = common.synthetic_batch(options.infer_batch, options.clips, feature_dim, options.words)
    x = {k: x[k] for k in keys}
    if not jit:
        forward.get_concrete_function(x)
    if not scaling._reset_peak():
        return {"not_measured": "the kernel does not let /proc/self/clear_refs reset VmHWM"}
    before = scaling._status_mb("VmRSS")
    forward(x)["similarity"].numpy()
    return {"forward_peak_mb": scaling._status_mb("VmHWM") - before}


def measure_memory(
    names: Sequence[str], feature_dim: int, quick: bool, timeout_s: float = 600.0
) -> dict[str, Any]:
    """`python -m benchmarks.precision --memory=NAME[:forward]` for each variant."""
    out: dict[str, Any] = {}
    for name in names:
        entry: dict[str, Any] = {}
        for what in ("train", "forward"):
            command = [
                sys.executable,
                "-m",
                "benchmarks.precision",
                f"--memory={name}:{what}",
                f"--feature_dim={feature_dim}",
            ] + (["--quick"] if quick else [])
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )
            if done.returncode != 0:
                entry[f"{what}_not_measured"] = done.stderr.strip().splitlines()[-1:]
            else:
                entry.update(json.loads(done.stdout.strip().splitlines()[-1]))
        out[name] = entry
    return out


# ------------------------------------------------------------------------------ section


def measure(feature_dim: int, options: BenchOptions, root: str) -> dict[str, Any]:
    """The `precision` entry: training, serving and memory of every variant."""
    started = time.perf_counter()
    training = measure_training(feature_dim, options)
    serving_ = measure_serving(feature_dim, options, root, training["xla_on"])
    layers = measure_layers(feature_dim, options)
    memory = measure_memory(list(training["variants"]), feature_dim, options.quick)
    return {
        "feature_dim": feature_dim,
        "training": training,
        "layers": layers,
        "serving": serving_,
        "memory": memory,
        "seconds": time.perf_counter() - started,
    }


def merge_run(path: str, markdown: str | None, quick: bool) -> int:
    """Measures the section and writes it into the benchmark JSON at `path` (its other
    sections and headline figures are kept), then rewrites `markdown`'s tables."""
    import tempfile

    from benchmarks import report

    options = BenchOptions.quick_options() if quick else BenchOptions()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vlanet_bench_") as root:
        section = measure(max(options.feature_dims), options, root)
    section["machine"] = reference.machine()
    section["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started))
    section["options"] = dataclasses.asdict(options)
    result.setdefault("sections", {})["precision"] = section
    result.setdefault("section_seconds", {})["precision"] = section["seconds"]
    result = common.write_result(path, result)
    if markdown:
        report.write_page(result, markdown)
    print(report.markdown_table(report.TABLES["precision_train"](result)))
    print(report.markdown_table(report.TABLES["precision_serving"](result)))
    print(report.markdown_table(report.TABLES["precision_memory"](result)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memory", default=None, help="VARIANT:train|forward (internal)")
    parser.add_argument("--feature_dim", type=int, default=None)
    parser.add_argument(
        "--merge",
        default=None,
        help="a benchmark JSON (benchmarks/results/bench.json) to add this section to, "
        "keeping its other sections; without it the section's JSON is printed",
    )
    parser.add_argument(
        "--markdown", default=None, help="then rewrite the tables of this page from it"
    )
    args, rest = parser.parse_known_args(argv)
    if args.memory is None and args.merge is None:
        return common.section_main(
            lambda options, root: measure(max(options.feature_dims), options, root),
            (["--quick"] if args.quick else []) + rest,
        )
    if args.memory is None:
        return merge_run(args.merge, args.markdown, args.quick)
    options = BenchOptions.quick_options() if args.quick else BenchOptions()
    feature_dim = args.feature_dim or max(options.feature_dims)
    name, _, what = args.memory.partition(":")
    if what == "forward":
        result = _forward_memory_in_process(name, feature_dim, options)
    else:
        result = _memory_in_process(name, feature_dim, options)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
