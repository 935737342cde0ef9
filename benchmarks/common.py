"""What the benchmark sections share: their options, synthetic inputs and a section CLI.

This is the one module of `benchmarks/` (with `flops.py`'s ModelConfig type) that
imports `vlanet_tf` and `data_prep`; every section reaches them through the functions
below, so a move in those packages is a change here only. The imports stay inside the
functions: TensorFlow takes seconds to import, and `benchmarks.report` needs none of it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np

VOCAB_SIZE = 1000
CLIP_FRAMES = 16  # C3D clips of Charades-STA: 16 frames at 24 fps.
CHARADES_VIDEOS = 6672  # 5,338 train + 1,334 test videos in Charades-STA.
CHARADES_TEST_SHARE = 1334 / 6672
# Synthetic videos of 20-40 s: 30 s on average, 45 C3D clips of 16 frames at 24 fps,
# as in Charades-STA.
MIN_DURATION, MAX_DURATION = 20.0, 40.0


@dataclasses.dataclass
class BenchOptions:
    """Sizes of every section; `quick_options()` shrinks them to a smoke run."""

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


# ------------------------------------------------------------------ vlanet_tf, data_prep


def model_config(feature_dim: int, **overrides: Any) -> Any:
    """Charades-STA defaults of ModelConfig (stride 8, windows 176/208/240, D 256)."""
    from vlanet_tf.config import ModelConfig

    return ModelConfig(**{"vocab_size": VOCAB_SIZE, "feature_dim": feature_dim, **overrides})


def train_config(**overrides: Any) -> Any:
    from vlanet_tf.config import TrainConfig

    return TrainConfig(**overrides)


def training_model(config: Any, train: Any) -> Any:
    """The Keras model whose `train_step` training runs."""
    from vlanet_tf.training import build_model

    return build_model(config, train)


def network(config: Any) -> Any:
    """The functional VLANet network (inputs -> similarity, attention, ...)."""
    from vlanet_tf.model import build_vlanet

    return build_vlanet(config)


def vlanet(config: Any) -> Any:
    """The VLANet model, with its `proposal_builder` and `query_encoder` parts."""
    from vlanet_tf.model import VLANet

    return VLANet(config)


def match_fn() -> Callable[..., Any]:
    """`vlanet_tf.model.match`: the query-dependent half of the network."""
    from vlanet_tf.model import match

    return match


def input_keys() -> tuple[str, ...]:
    from vlanet_tf.model import INPUT_KEYS

    return tuple(INPUT_KEYS)


def make_dataset(*args: Any, **kwargs: Any) -> Any:
    from vlanet_tf.data.pipeline import make_dataset as make

    return make(*args, **kwargs)


def synthesize_release(
    release: str, videos: int, feature_dim: int, **overrides: Any
) -> None:
    """A synthetic Charades-STA release of `videos` videos (train and test) in `release`."""
    from data_prep import synthesize

    test = max(1, round(videos * CHARADES_TEST_SHARE))
    fields = dict(
        output_dir=release,
        num_videos=videos - test,
        num_test_videos=test,
        feature_dim=feature_dim,
        min_duration=MIN_DURATION,
        max_duration=MAX_DURATION,
    )
    synthesize.synthesize(synthesize.SynthesisOptions(**{**fields, **overrides}))


def build_data(release: str, out: str, shards: int = 4) -> dict[str, Any]:
    """`data_prep.build` of `release` into `out`, its progress lines silenced; the manifest."""
    from data_prep import build

    options = build.BuildOptions(
        dataset="charades_sta",
        annotations_dir=release,
        features=os.path.join(release, "features.h5"),
        word_vectors=os.path.join(release, "glove.synthetic.50d.txt"),
        output_dir=out,
        num_shards=shards,
    )
    with _quiet():
        return build.build(options)


def synthetic_data_dir(root: str, videos: int, feature_dim: int, shards: int = 4) -> str:
    """A prepared data directory under `root` from a synthetic release of `videos` videos."""
    release = os.path.join(root, "release")
    synthesize_release(release, videos, feature_dim)
    out = os.path.join(root, "data")
    build_data(release, out, shards)
    return out


@contextlib.contextmanager
def _quiet() -> Any:
    """Keeps data_prep's progress lines out of the benchmark's table."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# -------------------------------------------------------------------------------- inputs


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
        "duration": tf.fill([batch], clips * CLIP_FRAMES / fps),
        "video_id": tf.constant([f"video{i}" for i in range(batch)]),
    }


# ----------------------------------------------------------------------------------- CLI


def json_default(value: Any) -> Any:
    """`json.dump`'s fallback: NumPy scalars as Python numbers, non-finite floats as null."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_result(path: str, result: dict[str, Any]) -> dict[str, Any]:
    """Writes a benchmark result as indented JSON with sorted keys and returns it as read
    back, so that a page rendered from the return value has the file's row order (a
    page rendered from the file again is the same page)."""
    text = json.dumps(result, indent=2, sort_keys=True, default=json_default)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return json.loads(text)


def section_main(
    measure: Callable[[BenchOptions, str], dict[str, Any]],
    argv: Sequence[str] | None = None,
) -> int:
    """`python -m benchmarks.<section> [--quick]`: runs one section, prints its JSON.

    `measure(options, root)` gets the full (or `--quick`) options and a temporary folder.
    """
    import argparse

    parser = argparse.ArgumentParser(description="Runs one benchmark section; prints JSON.")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes of run.py")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    options = BenchOptions.quick_options() if args.quick else BenchOptions()
    with tempfile.TemporaryDirectory(prefix="vlanet_bench_") as root:
        result = measure(options, root)
    json.dump(result, sys.stdout, indent=2, sort_keys=True, default=json_default)
    sys.stdout.write("\n")
    return 0


def trained_and_tested(
    model_dir: str,
    train_args: Sequence[str],
    run: Callable[[Sequence[str]], None],
    metrics_name: str = "test_eval.json",
) -> tuple[dict[str, Any], float]:
    """A run trained and scored on the test split by the CLIs, or the one already there.

    Trains `python -m vlanet_tf.train TRAIN_ARGS --model_dir=MODEL_DIR`, then scores its
    best epoch with `python -m vlanet_tf.evaluate --split=test`, unless MODEL_DIR holds
    the metrics file already (so an interrupted benchmark resumes). `run(args)` runs one
    `python -m ARGS` (each benchmark shows or logs its output its own way). Returns the
    test metrics and the seconds the two took, also when reused.
    """
    from vlanet_tf import files

    metrics_path = os.path.join(model_dir, metrics_name)
    seconds_path = os.path.join(model_dir, "seconds.json")
    if not os.path.isfile(metrics_path):
        start = time.perf_counter()
        run(["vlanet_tf.train", *train_args, f"--model_dir={model_dir}"])
        run(
            [
                "vlanet_tf.evaluate",
                f"--model_dir={model_dir}",
                "--split=test",
                f"--output={metrics_path}",
            ]
        )
        files.write_json(seconds_path, time.perf_counter() - start)
    return files.read_json(metrics_path), files.read_json(seconds_path)
