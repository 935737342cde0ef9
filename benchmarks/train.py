"""Training throughput and its roofline: one training step against the matmul rate.

    python -m benchmarks.train [--quick]

A training step (positive and negative passes, backward, AdamW) at batch B with
Charades-STA shapes, its analytic FLOPs (`benchmarks.flops`), and, just before and
after the step in each of several rounds, the dense matmul rate of the step's own
largest product shapes. roofline_ratio = step GFLOP/s / matmul GFLOP/s.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from benchmarks import common, flops, reference
from benchmarks.common import BenchOptions


def measure(feature_dim: int, options: BenchOptions) -> dict[str, Any]:
    """The `train` entry at `feature_dim`: rounds of steps, each between two matmul probes."""
    import tensorflow as tf

    b, t, m = options.batch_size, options.clips, options.words
    config = common.model_config(feature_dim)
    train_config = common.train_config(batch_size=b)
    model = common.training_model(config, train_config)
    step = tf.function(model.train_step)
    batch = common.synthetic_batch(b, t, feature_dim, m)
    start = time.perf_counter()
    step(batch)["loss"].numpy()
    trace_s = time.perf_counter() - start
    step(batch)["loss"].numpy()

    shape = flops.StepShape.charades(t, m, config, common.CLIP_FRAMES)
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
        rounds.append(round_figures(times, b, per_sample, max(before, after, key=_rate)))
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
        "step_s_per_round": [r["step_times_s"] for r in rounds],
        "matmul_shapes": best["matmul_shapes"],
        "flops_breakdown": flops.breakdown(terms),
    }


def _rate(probe: dict[str, Any]) -> float:
    return probe["gflops_per_s"]


def round_figures(
    step_times_s: list[float], batch: int, flops_per_sample: float, matmul: dict[str, Any]
) -> dict[str, Any]:
    """One round's figures from its step times and the matmul probe (`matmul_rate`) kept."""
    step_s = reference.median(step_times_s)
    achieved = flops_per_sample * batch / step_s / 1e9
    return {
        "step_times_s": list(step_times_s),
        "step_s": step_s,
        "samples_per_s": batch / step_s,
        "train_gflops_per_s": achieved,
        "matmul_gflops_per_s": matmul["gflops_per_s"],
        "matmul_shapes": matmul["shapes"],
        "roofline_ratio": achieved / matmul["gflops_per_s"],
    }


if __name__ == "__main__":
    sys.exit(
        common.section_main(
            lambda options, root: {
                str(f): measure(f, options) for f in options.feature_dims
            }
        )
    )
