"""The `data_prep` section: `data_prep.build` on a synthetic Charades-STA-size release.

    python -m benchmarks.data_build [--quick]

Synthesises a release of `data_prep_videos` videos (6,672, Charades-STA's count, by
default) and times building it into TFRecord shards; the synthesis is timed apart and
not counted.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from benchmarks import common, reference
from benchmarks.common import BenchOptions


def measure(options: BenchOptions, root: str) -> dict[str, Any]:
    """The `data_prep` entry: videos/s of `data_prep.build`, with matmul probes around it."""
    release = os.path.join(root, "data_prep_release")
    start = time.perf_counter()
    common.synthesize_release(release, options.data_prep_videos, options.data_prep_feature_dim)
    synthesize_s = time.perf_counter() - start
    before = reference.quick_reference()
    start = time.perf_counter()
    manifest = common.build_data(release, os.path.join(root, "data_prep_out"), shards=0)
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


if __name__ == "__main__":
    sys.exit(common.section_main(measure))
