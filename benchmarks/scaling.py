"""Time and peak memory of one (video, query) against the video's length T.

    python -m benchmarks.scaling --clips=16,64 [--feature_dim=4096 --min_seconds=2]

prints one JSON line per T. `measure` runs that in fresh subprocesses and fits the
power law ms = a·T^e.

Peak memory: TensorFlow's CPU allocator reports nothing through
`tf.config.experimental.get_memory_info` (it returns zeros on CPU) and tracemalloc
does not see its buffers, so the figure is read from the kernel: the process's peak
resident set (VmHWM) is reset through /proc/self/clear_refs right before the query and
read right after it, minus the resident set before it. That is the working memory of
one call, the inputs (4·T·F bytes of features, created before the reset) excluded,
after tracing and a warm-up call at T = 4. Where clear_refs is not available the growth of
`ru_maxrss` over the peak after the warm-up is used instead (it cannot see below the
warm-up's high-water mark). Several T in one process must be given in increasing order.

Time: the median of repeated calls, in rounds that each start with a matmul probe of
how busy the (shared) machine is. Time multiplied by that probe's GFLOP/s, the
"matmul-equivalent MFLOP" of a query, moves far less with other processes' load than
the time itself, so the exponent is also fitted on it.

Why a point costs what it costs: beside the full model, each point also times the model
without self-attention (the only part whose cost is quadratic in the number of segment
groups K, through the K x K energies of A(V, V)), and carries the analytic FLOPs of
every term from `benchmarks.flops`.

The banded variant: each point also measures the model with
`video_self_attention_window=BANDED_WINDOW` (A(V, V) over ±45 groups, 15 s at the
Charades-STA stride, O(K·w)), timed in the same rounds as the other two models so the
three are compared side by side. Its memory is read in a process of its own
(`--banded_memory`): after the full model has run, the allocator holds enough freed
memory for the smaller banded call, whose readings then show little or no growth.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
from typing import Any, Sequence

import numpy as np

from benchmarks import common, reference
from benchmarks.common import CLIP_FRAMES

WORDS = 9
LARGE_T = 256
WARMUP_T = 4
TIMING_ROUNDS = 3
# Band of the banded variant, in segment groups: ±15 s at a stride of 8 frames at 24 fps.
BANDED_WINDOW = 45


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Sets the peak resident set to the current one; False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return _status_mb("VmHWM") is not None
    except OSError:
        return False


def _maxrss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def call_peak_mb(fn: Any, inputs: dict[str, Any], fallback_baseline: float) -> tuple[float, str]:
    """(peak working memory of one call in MiB, the method used)."""
    if _reset_peak():
        before = _status_mb("VmRSS")
        fn(inputs)["similarity"].numpy()
        return max(_status_mb("VmHWM") - before, 0.0), "VmHWM reset by clear_refs"
    fn(inputs)["similarity"].numpy()
    return max(_maxrss_mb() - fallback_baseline, 0.0), "ru_maxrss growth over the warm-up"


def _inputs(clips: int, feature_dim: int, seed: int = 0) -> dict[str, Any]:
    """One query of WORDS words against one video of `clips` clips."""
    batch = common.synthetic_batch(1, clips, feature_dim, WORDS, seed=seed)
    return {k: v for k, v in batch.items() if k != "video_id"}


def _timed(fn: Any, inputs: dict[str, Any], min_seconds: float) -> float:
    """Median ms of repeated calls for at least `min_seconds` (3 calls at least)."""
    times = reference.time_for(lambda: fn(inputs)["similarity"].numpy(), min_seconds)
    return 1000.0 * reference.median(times)


def _check_increasing(clips: Sequence[int]) -> None:
    if list(clips) != sorted(clips):
        raise ValueError(f"clips must be increasing, got {list(clips)}")


def _compiled(config: Any) -> Any:
    """The model as a tf.function with a free T, so every point reuses one graph."""
    import tensorflow as tf

    network = common.network(config)
    signature = [
        {
            "query_tokens": tf.TensorSpec([1, WORDS], tf.int32),
            "video_features": tf.TensorSpec([1, None, config.feature_dim], tf.float32),
            "video_length": tf.TensorSpec([1], tf.int32),
            "duration": tf.TensorSpec([1], tf.float32),
        }
    ]
    return tf.function(lambda x: network(x, training=False), input_signature=signature)


def banded_peaks(clips: Sequence[int], feature_dim: int) -> list[dict[str, Any]]:
    """Peak working memory of the banded model at each T, measured in this process.

    Run it in a process that has run no other model (see the module docstring).
    """
    _check_increasing(clips)
    config = common.model_config(feature_dim, video_self_attention_window=BANDED_WINDOW)
    banded = _compiled(config)
    banded(_inputs(WARMUP_T, feature_dim))["similarity"].numpy()
    baseline = _maxrss_mb()
    points = []
    for t in clips:
        peak, _ = call_peak_mb(banded, _inputs(t, feature_dim), baseline)
        points.append({"T": t, "peak_mb_banded": peak})
    return points


def run_points(
    clips: Sequence[int], feature_dim: int, min_seconds: float
) -> list[dict[str, Any]]:
    """Measures each T in this process (T increasing); see the module docstring."""
    from benchmarks import flops

    _check_increasing(clips)
    config = common.model_config(feature_dim)
    ablated = common.model_config(feature_dim, use_self_attention=False)
    banded_config = common.model_config(feature_dim, video_self_attention_window=BANDED_WINDOW)

    full = _compiled(config)
    # Warm up at a tiny T, not at a measured one: a warm-up at T itself would leave
    # that call's buffers in the allocator's free lists and hide them from the peak.
    full(_inputs(WARMUP_T, feature_dim))["similarity"].numpy()
    baseline = _maxrss_mb()
    points = []
    for t in clips:
        peak, method = call_peak_mb(full, _inputs(t, feature_dim), baseline)
        shape = flops.StepShape.charades(t, WORDS, config, CLIP_FRAMES)
        terms = flops.step_terms(config, shape, training=False)
        total = sum(term.total for term in terms.values())
        banded_terms = flops.step_terms(banded_config, shape, training=False)
        banded_total = sum(term.total for term in banded_terms.values())
        points.append(
            {
                "T": t,
                "K": shape.groups,
                "peak_mb": peak,
                "memory_method": method,
                "input_mb": 4.0 * t * feature_dim / 2**20,
                "mflops": total / 1e6,
                "self_video_flop_share": terms["self_video"].total / total,
                "mflops_banded": banded_total / 1e6,
                "self_video_flop_share_banded": banded_terms["self_video"].total / banded_total,
            }
        )
    # Timing comes after every memory reading, so the other models cannot raise them.
    without_self = _compiled(ablated)
    banded = _compiled(banded_config)
    for fn in (without_self, banded):
        fn(_inputs(WARMUP_T, feature_dim))["similarity"].numpy()
    for point in points:
        inputs = _inputs(point["T"], feature_dim)
        without_self(inputs)["similarity"].numpy()
        banded(inputs)["similarity"].numpy()
        full_ms, ablated_ms, banded_ms, busy = [], [], [], []
        # Rounds of (reference, full model, model without self-attention, banded
        # model): the models are compared side by side, and each time can be expressed
        # in units of the machine's matmul rate measured moments before it.
        for _ in range(TIMING_ROUNDS):
            busy.append(reference.quick_reference())
            full_ms.append(_timed(full, inputs, min_seconds / TIMING_ROUNDS))
            ablated_ms.append(_timed(without_self, inputs, min_seconds / (2 * TIMING_ROUNDS)))
            banded_ms.append(_timed(banded, inputs, min_seconds / (2 * TIMING_ROUNDS)))
        point.update(
            ms=float(np.median(full_ms)),
            ms_without_self_attention=float(np.median(ablated_ms)),
            reference_matmul_gflops_per_s=float(np.median(busy)),
            # ms x GFLOP/s = MFLOP: the dense-matmul work the machine could have done
            # in the time the query took. It moves far less with other processes'
            # load than the time itself.
            matmul_equivalent_mflop=float(np.median([m * g for m, g in zip(full_ms, busy)])),
            matmul_equivalent_mflop_without_self_attention=float(
                np.median([m * g for m, g in zip(ablated_ms, busy)])
            ),
            ms_banded=float(np.median(banded_ms)),
            matmul_equivalent_mflop_banded=float(
                np.median([m * g for m, g in zip(banded_ms, busy)])
            ),
        )
    return points


def fit_exponent(clips: Sequence[float], ms: Sequence[float]) -> float:
    """e of the least-squares fit log(ms) = log(a) + e·log(T)."""
    slope, _ = np.polyfit(np.log(np.asarray(clips, float)), np.log(np.asarray(ms, float)), 1)
    return float(slope)


def _large_fit(clips: Sequence[int], ms: Sequence[float]) -> float | None:
    pairs = [(c, v) for c, v in zip(clips, ms) if c >= LARGE_T]
    if len(pairs) < 2:
        return None
    return fit_exponent([c for c, _ in pairs], [v for _, v in pairs])


def local_exponents(clips: Sequence[float], ms: Sequence[float]) -> list[float]:
    """The slope of log(ms) against log(T) between consecutive points."""
    return [
        math.log(ms[i + 1] / ms[i]) / math.log(clips[i + 1] / clips[i])
        for i in range(len(clips) - 1)
    ]


def measure(
    clips: Sequence[int],
    feature_dim: int = 4096,
    min_seconds: float = 2.0,
    process: str = "per_point",
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """The `scaling` entry of the benchmark JSON (see the module docstring).

    `process`: "per_point" runs each T in a fresh subprocess (allocator state of one
    point cannot affect the next); "in_process" runs every T here, in increasing order,
    which saves a TensorFlow start-up per point for smoke runs.
    """
    if process == "in_process":
        points = run_points(sorted(clips), feature_dim, min_seconds)
        # The banded model's memory always needs a process of its own; one for all T.
        peaks = _subprocess_points(sorted(clips), feature_dim, min_seconds, timeout_s, True)
    elif process == "per_point":
        points, peaks = [], []
        for t in clips:
            points += _subprocess_points([t], feature_dim, min_seconds, timeout_s)
            peaks += _subprocess_points([t], feature_dim, min_seconds, timeout_s, True)
    else:
        raise ValueError(f"process must be 'per_point' or 'in_process', got {process!r}")
    peak_banded = {p["T"]: p["peak_mb_banded"] for p in peaks}
    for p in points:
        p["peak_mb_banded"] = peak_banded[p["T"]]
    return summarise(points, feature_dim, process)


def summarise(points: Sequence[dict[str, Any]], feature_dim: int, process: str) -> dict[str, Any]:
    """The `scaling` entry from the per-T points of `run_points` (with `peak_mb_banded`)."""
    t = [p["T"] for p in points]
    ms = [p["ms"] for p in points]
    ablated = [p["ms_without_self_attention"] for p in points]
    cost = [p["matmul_equivalent_mflop"] for p in points]
    ablated_cost = [p["matmul_equivalent_mflop_without_self_attention"] for p in points]
    banded = [p["ms_banded"] for p in points]
    banded_cost = [p["matmul_equivalent_mflop_banded"] for p in points]
    return {
        "T": t,
        "K": [p["K"] for p in points],
        "ms": ms,
        "peak_mb": [p["peak_mb"] for p in points],
        "exponent": fit_exponent(t, ms),
        # Small T is dominated by per-call overhead, which flattens the full fit; the
        # fit over T >= LARGE_T shows how the model itself grows.
        "exponent_large_T": _large_fit(t, ms),
        "local_exponents": local_exponents(t, ms),
        "ms_without_self_attention": ablated,
        "exponent_without_self_attention": fit_exponent(t, ablated),
        "exponent_large_T_without_self_attention": _large_fit(t, ablated),
        # The same fits on time x the matmul rate measured beside it, which removes
        # most of the effect of other processes' load changing between points.
        "matmul_equivalent_mflop": cost,
        "exponent_load_normalised": fit_exponent(t, cost),
        "exponent_large_T_load_normalised": _large_fit(t, cost),
        "matmul_equivalent_mflop_without_self_attention": ablated_cost,
        "exponent_large_T_load_normalised_without_self_attention": _large_fit(t, ablated_cost),
        "mflops": [p["mflops"] for p in points],
        "self_video_flop_share": [p["self_video_flop_share"] for p in points],
        # The same model with A(V, V) restricted to ±window groups, timed in the same
        # rounds; the same keys as above.
        "banded": {
            "window": BANDED_WINDOW,
            "T": t,
            "K": [p["K"] for p in points],
            "ms": banded,
            "peak_mb": [p["peak_mb_banded"] for p in points],
            "exponent": fit_exponent(t, banded),
            "exponent_large_T": _large_fit(t, banded),
            "local_exponents": local_exponents(t, banded),
            "matmul_equivalent_mflop": banded_cost,
            "exponent_load_normalised": fit_exponent(t, banded_cost),
            "exponent_large_T_load_normalised": _large_fit(t, banded_cost),
            "mflops": [p["mflops_banded"] for p in points],
            "self_video_flop_share": [p["self_video_flop_share_banded"] for p in points],
        },
        "feature_dim": feature_dim,
        "words": WORDS,
        "clip_frames": CLIP_FRAMES,
        "input_mb": [p["input_mb"] for p in points],
        "reference_matmul_gflops_per_s": [p["reference_matmul_gflops_per_s"] for p in points],
        "memory_method": (
            "peak resident set growth during one call, inputs excluded ("
            + ", ".join(sorted({p["memory_method"] for p in points}))
            + "), after a warm-up; "
            + ("a fresh process per T" if process == "per_point" else "one process, T increasing")
        ),
    }


def _subprocess_points(
    clips: Sequence[int],
    feature_dim: int,
    min_seconds: float,
    timeout_s: float,
    banded_memory: bool = False,
) -> list[dict[str, Any]]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "benchmarks.scaling",
        "--clips=" + ",".join(map(str, clips)),
        f"--feature_dim={feature_dim}",
        f"--min_seconds={min_seconds}",
    ] + (["--banded_memory"] if banded_memory else [])
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=root, timeout=timeout_s
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with {result.returncode}: {result.stderr[-2000:]}"
        )
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", required=True, help="comma-separated T values, increasing")
    parser.add_argument("--feature_dim", type=int, default=4096)
    parser.add_argument("--min_seconds", type=float, default=2.0)
    parser.add_argument(
        "--banded_memory",
        action="store_true",
        help="only the banded model's peak memory at each T (no timing)",
    )
    args = parser.parse_args()
    clips = [int(c) for c in args.clips.split(",")]
    if args.banded_memory:
        points = banded_peaks(clips, args.feature_dim)
    else:
        points = run_points(clips, args.feature_dim, args.min_seconds)
    for point in points:
        print(json.dumps(point), flush=True)


if __name__ == "__main__":
    main()
