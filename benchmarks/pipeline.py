"""Throughput of the input pipeline (records/s and MB/s).

    python -m benchmarks.pipeline --data_dir=DIR [--split=train --batch_size=64]

Without --data_dir it synthesizes and builds a small dataset in a temporary folder.
A record is one (video, sentence) element; MB/s counts the bytes of the batch tensors
delivered (features dominate).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any, Sequence


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
    from vlanet_tf.data.pipeline import make_dataset

    dataset = make_dataset(data_dir, split, batch_size, training=training, repeat=True)
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


def _synthetic_data_dir(root: str) -> str:
    from data_prep import build, synthesize

    release = os.path.join(root, "release")
    synthesize.synthesize(synthesize.SynthesisOptions(output_dir=release))
    out = os.path.join(root, "data")
    build.build(
        build.BuildOptions(
            dataset="charades_sta",
            annotations_dir=release,
            features=os.path.join(release, "features.h5"),
            word_vectors=os.path.join(release, "glove.synthetic.50d.txt"),
            output_dir=out,
            num_shards=4,
        )
    )
    return out


def main(argv: Sequence[str]) -> None:
    from absl import flags

    f = flags.FLAGS
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = f.data_dir or _synthetic_data_dir(tmp)
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
