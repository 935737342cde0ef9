"""Throughput of the input pipeline (records/s and MB/s), and over the training step's.

    python -m benchmarks.pipeline --data_dir=DIR [--split=train --batch_size=64]

Without --data_dir it synthesizes and builds a small dataset in a temporary folder.
A record is one (video, sentence) element; MB/s counts the bytes of the batch tensors
delivered (features dominate). `measure` is the benchmark's `pipeline` section: the
same on a synthetic Charades-shaped set at the training step's F, over the step's
consumption rate (`benchmarks.train`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any, Sequence

from benchmarks import common, reference
from benchmarks.common import BenchOptions


def benchmark_pipeline(
    data_dir: str,
    split: str = "train",
    batch_size: int = 64,
    num_batches: int = 200,
    warmup_batches: int = 5,
    training: bool = True,
) -> dict[str, Any]:
    """Iterates `num_batches` batches of `make_dataset` after a warm-up; returns rates.

    Returns:
      {"records_per_s", "mb_per_s", "batches", "records", "seconds"}.
    """
    dataset = common.make_dataset(data_dir, split, batch_size, training=training, repeat=True)
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    records = num_bytes = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        records += int(batch["query_tokens"].shape[0])
        num_bytes += sum(
            int(t.shape.num_elements()) * t.dtype.size
            for t in batch.values()
            if t.dtype.is_numeric
        )
    seconds = time.perf_counter() - start
    return {
        "records_per_s": records / seconds,
        "mb_per_s": num_bytes / seconds / 2**20,
        "batches": num_batches,
        "records": records,
        "seconds": seconds,
    }


def measure(
    feature_dim: int, options: BenchOptions, root: str, train_samples_per_s: float
) -> dict[str, Any]:
    """The `pipeline` entry: `benchmark_pipeline` on a synthetic set at `feature_dim`."""
    data_dir = common.synthetic_data_dir(
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
        "seconds": result["seconds"],
        "train_samples_per_s": train_samples_per_s,
        "pipeline_to_train_ratio": result["records_per_s"] / train_samples_per_s,
        "reference_matmul_gflops_per_s": before,
    }


def main(argv: Sequence[str]) -> None:
    from absl import flags

    f = flags.FLAGS
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = f.data_dir or common.synthetic_data_dir(tmp, videos=400, feature_dim=64)
        result = benchmark_pipeline(
            data_dir, f.split, f.batch_size, f.num_batches, training=not f.eval_mode
        )
    print(
        f"{f.split}: {result['records_per_s']:.0f} records/s, "
        f"{result['mb_per_s']:.1f} MB/s ({result['records']} records in "
        f"{result['seconds']:.2f}s, batch {f.batch_size})"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("data_dir", None, "Prepared data dir (default: a synthetic one).")
    flags.DEFINE_string("split", "train", "Split to read.")
    flags.DEFINE_integer("batch_size", 64, "Batch size.")
    flags.DEFINE_integer("num_batches", 200, "Batches timed after the warm-up.")
    flags.DEFINE_boolean("eval_mode", False, "Read as evaluation does (no shuffling).")
    app.run(main)
