"""Scores moment rankings: a predictions file, a reference baseline or a trained model.

Exactly one mode per run:
  --predictions=FILE.jsonl   score a predictions file (docs/ARCHITECTURE.md format);
  --baseline=random|upper_bound
                             the reference rows of SPEC §8, straight from the raw
                             annotation files (no features, no model);
  --model_dir=DIR            rank a prepared split with a trained model.

Ground truth comes from the raw annotation files (--dataset, --annotations and, for
Charades-STA, --durations) or, for --predictions and --model_dir, from a prepared
--data_dir. Example:

  python -m vlanet_tf.evaluate --baseline=random --dataset=charades_sta \
      --annotations=charades_sta_test.txt --durations=Charades_v1_test.csv \
      --seeds=5 --output=random.json

Predictions file rules. Each non-blank line is one query:
``{"query_id": str, "video_id": str, "moments": [[start, end, score], ...]}``, seconds,
best first: the order of the lines' moments *is* the ranking (the score travels
along but does not re-rank). A malformed line — invalid JSON, a missing key, an
empty or ill-shaped `moments`, a start after its end, a query id that is not in the
ground truth or appears twice, a video id that disagrees with the ground truth — is
an error naming the file and line; nothing is skipped silently. Ground-truth queries
without a line count as misses, and their number is printed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from absl import app, flags

from vlanet_tf import flags as flags_lib
from vlanet_tf import metrics as metrics_lib
from vlanet_tf import spans

CHARADES_STA = "charades_sta"
DIDEMO = "didemo"
DATASETS = (CHARADES_STA, DIDEMO)
BASELINES = ("random", "upper_bound")
# Queries per batch when a model ranks a prepared split; only speed depends on it.
EVAL_BATCH_SIZE = 64

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this main's flags; safe to call more than once.

    The shared flags (--data_dir, --model_dir, --split, --max_query_length, the model
    and training flags) come from `vlanet_tf.flags`; of the model flags, only the
    proposal layout (--fps, --stride_frames, --window_frames) is read here, by
    --baseline=random, while --model_dir runs take the model from the run's config.
    """
    # All shared flags, so that the flagfile a model was trained with parses here too.
    flags_lib.define_all_flags()
    if "predictions" in FLAGS:
        return
    flags.DEFINE_string("predictions", None, "Predictions JSONL file to score.")
    flags.DEFINE_enum(
        "baseline", None, BASELINES, "Score a reference row instead of predictions."
    )
    flags.DEFINE_integer(
        "seeds", 5, "Random baseline: number of seeds (0 … n-1) to average."
    )
    flags.DEFINE_enum("dataset", None, DATASETS, "Dataset of --annotations.")
    flags.DEFINE_string(
        "annotations",
        None,
        "Raw annotation file: charades_sta_{split}.txt or DiDeMo {split}_data.json.",
    )
    flags.DEFINE_string(
        "durations", None, "Charades-STA only: Charades_v1_{split}.csv (video lengths)."
    )
    flags.DEFINE_string("output", None, "Write the metrics JSON here.")
    flags.DEFINE_string(
        "output_predictions", None, "Write the ranked predictions (JSONL) here."
    )
    flags.DEFINE_integer(
        "top_k", None, "Keep at most this many moments per query (default: all)."
    )
    flags.DEFINE_float(
        "nms_threshold",
        None,
        "Temporal NMS IoU threshold for model/predictions rankings (default: off).",
    )


define_flags()


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """One query's annotation.

    Attributes:
      moments: ``[A, 2]`` seconds, ends clipped to the duration; A = 1 for
        Charades-STA, the annotators (usually 4, sometimes 5 or 7) for DiDeMo.
      segments: DiDeMo only: ``[A, 2]`` inclusive segment indices.
    """

    query_id: str
    video_id: str
    duration: float
    moments: np.ndarray
    segments: np.ndarray | None = None

    @property
    def num_segments(self) -> int:
        """DiDeMo segments in the video (the duration is a whole number of them)."""
        return int(math.ceil(self.duration / spans.DIDEMO_SEGMENT_SECONDS - 1e-6))


Queries = dict[str, GroundTruth]
Rankings = dict[str, np.ndarray]  # query id -> [n, 3] (start, end, score), best first.


def load_annotations(
    dataset: str, annotations: str, durations: str | None = None
) -> tuple[Queries, dict[str, Any]]:
    """Reads the raw release files with the data_prep readers.

    Returns:
      (query id -> ground truth in file order, the readers' skip/adjustment summary),
      so that a sentence the readers drop is reported instead of silently vanishing.
    """
    # The readers share the tokeniser with the TF pipeline; imported here so the
    # other modes and the metric library stay free of TensorFlow.
    from data_prep import readers

    if dataset == CHARADES_STA:
        if not durations:
            raise ValueError(
                "--dataset=charades_sta needs --durations=Charades_v1_{split}.csv, "
                "got none"
            )
        records, counter = readers.read_charades_sta(annotations, durations)
    elif dataset == DIDEMO:
        records, counter = readers.read_didemo(annotations)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    queries = {
        r.query_id: GroundTruth(
            query_id=r.query_id,
            video_id=r.video_id,
            duration=float(r.duration),
            moments=np.asarray(r.moments, dtype=np.float64).reshape(-1, 2),
            segments=(
                None
                if r.segments is None
                else np.asarray(r.segments, dtype=np.int64).reshape(-1, 2)
            ),
        )
        for r in records
    }
    return queries, counter.to_dict()


def ground_truth_from_data_dir(
    data_dir: str, split: str, batch_size: int = EVAL_BATCH_SIZE
) -> tuple[str, Queries]:
    """Ground truth of a prepared split, decoded by the input pipeline.

    Returns (dataset name from the manifest, queries). DiDeMo segment indices are
    recovered from the stored seconds (SPEC: (s, e) -> (5 s, 5 (e + 1))).
    """
    try:
        from vlanet_tf.data import pipeline
    except ImportError as error:
        raise RuntimeError(
            "reading ground truth from --data_dir needs vlanet_tf.data.pipeline: "
            f"{error}"
        ) from error
    dataset = pipeline.load_manifest(data_dir)["dataset"]
    queries: Queries = {}
    batches = pipeline.make_dataset(data_dir, split, batch_size, training=False)
    for batch in batches.as_numpy_iterator():
        for i, query_id in enumerate(batch["query_id"]):
            query_id = query_id.decode()
            moments = batch["moments"][i, : batch["num_annotations"][i]].astype(
                np.float64
            )
            segments = None
            if dataset == DIDEMO:
                segments = np.stack(spans.seconds_to_didemo_segments(*moments.T), -1)
            queries[query_id] = GroundTruth(
                query_id=query_id,
                video_id=batch["video_id"][i].decode(),
                duration=float(batch["duration"][i]),
                moments=moments,
                segments=segments,
            )
    return dataset, queries


def parse_prediction(
    record: Any, queries: Queries, where: str
) -> tuple[str, np.ndarray]:
    """Validates one prediction record; errors name ``where`` (file:line)."""
    if not isinstance(record, dict):
        raise ValueError(
            f"{where}: expected a JSON object, got {type(record).__name__}"
        )
    missing = {"query_id", "video_id", "moments"} - set(record)
    if missing:
        raise ValueError(
            f"{where}: missing key(s) {sorted(missing)}; expected query_id, video_id, "
            f"moments, got {sorted(record)}"
        )
    query_id = str(record["query_id"])
    if query_id not in queries:
        raise ValueError(f"{where}: query_id {query_id!r} is not in the ground truth")
    expected_video = queries[query_id].video_id
    if str(record["video_id"]) != expected_video:
        raise ValueError(
            f"{where}: query {query_id!r} has video_id {record['video_id']!r}, "
            f"the ground truth says {expected_video!r}"
        )
    try:
        moments = np.asarray(record["moments"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{where}: moments must be a list of [start, end, score] numbers: {error}"
        ) from error
    if moments.size == 0:
        raise ValueError(f"{where}: query {query_id!r} has no moments")
    if moments.ndim != 2 or moments.shape[1] != 3:
        raise ValueError(
            f"{where}: moments must have shape [n, 3] (start, end, score), "
            f"got {list(moments.shape)}"
        )
    if not np.isfinite(moments).all():
        raise ValueError(f"{where}: moments hold a NaN or infinite value")
    backwards = np.flatnonzero(moments[:, 0] > moments[:, 1])
    if backwards.size:
        raise ValueError(
            f"{where}: moment {int(backwards[0])} starts after it ends: "
            f"{moments[backwards[0], :2].tolist()}"
        )
    return query_id, moments


def collect_predictions(
    records: Iterable[tuple[str, Any]], queries: Queries
) -> Rankings:
    """(where, record) pairs -> rankings, refusing duplicate query ids."""
    rankings: Rankings = {}
    first_seen: dict[str, str] = {}
    for where, record in records:
        query_id, moments = parse_prediction(record, queries, where)
        if query_id in rankings:
            raise ValueError(
                f"{where}: query_id {query_id!r} already predicted at "
                f"{first_seen[query_id]}"
            )
        rankings[query_id] = moments
        first_seen[query_id] = where
    return rankings


def read_predictions(path: str, queries: Queries) -> Rankings:
    """Reads and validates a predictions JSONL file (rules in the module docstring)."""

    def records() -> Iterable[tuple[str, Any]]:
        with open(path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{line_number}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: invalid JSON: {error}") from error

    return collect_predictions(records(), queries)


def rerank(
    rankings: Rankings, nms_threshold: float | None, top_k: int | None
) -> Rankings:
    """Optional NMS and truncation, keeping each ranking's own order.

    The rank order given is authoritative, so NMS walks it best first (scores
    equal to minus the position) rather than re-sorting by the score column.
    """
    if (nms_threshold is None or nms_threshold <= 0) and top_k is None:
        return rankings
    return {
        query_id: moments[
            spans.temporal_nms(
                moments[:, :2], -np.arange(len(moments)), nms_threshold, top_k
            )
        ]
        for query_id, moments in rankings.items()
    }


def score(dataset: str, queries: Queries, rankings: Mapping[str, np.ndarray]) -> dict:
    """The dataset's metrics (percent) of rankings in seconds over all queries."""
    if dataset == CHARADES_STA:
        truth = {q.query_id: q.moments[0] for q in queries.values()}
        return metrics_lib.charades_recall(rankings, truth)
    if dataset == DIDEMO:
        truth = {q.query_id: q.segments for q in queries.values()}
        ranked_segments = {}
        for query_id, moments in rankings.items():
            moments = np.asarray(moments)
            s, e = spans.seconds_to_didemo_segments(moments[:, 0], moments[:, 1])
            ranked_segments[query_id] = list(zip(s.tolist(), e.tolist(), strict=True))
        return metrics_lib.didemo_metrics(ranked_segments, truth)
    raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def _with_rank_scores(moments: np.ndarray) -> np.ndarray:
    """[C, 2] ranked -> [C, 3] with a score falling from 1 by rank (baselines)."""
    scores = 1.0 - np.arange(len(moments)) / len(moments)
    return np.concatenate([moments, scores[:, None]], axis=1)


def baseline_candidates(
    dataset: str,
    queries: Queries,
    fps: float = 24.0,
    stride_frames: int = 8,
    window_frames: Sequence[int] = (176, 208, 240),
) -> dict[str, np.ndarray]:
    """The valid proposals a model would rank for each query, ``[C, 2]`` seconds."""
    if dataset == CHARADES_STA:
        return {
            q.query_id: spans.sliding_windows(
                q.duration, fps, stride_frames, window_frames
            )
            for q in queries.values()
        }
    candidates = {}
    for q in queries.values():
        pairs = spans.didemo_candidate_moments(q.num_segments)
        candidates[q.query_id] = np.stack(
            spans.didemo_segments_to_seconds(pairs[:, 0], pairs[:, 1]), axis=-1
        )
    return candidates


def evaluate_baseline(
    kind: str, dataset: str, queries: Queries, seeds: int = 5, **window_kwargs: Any
) -> tuple[dict, Rankings]:
    """A reference row: (metrics, one of its rankings to write out).

    random: mean and std over ``seeds`` uniformly random rankings of the valid
    proposals (the rankings written are seed 0's). upper_bound (DiDeMo): the
    per-metric oracle of `metrics.didemo_upper_bound`; the rankings written are the
    agreement rankings, which reach its R@1 and R@5 (its mIoU picks its own top-1).
    """
    if kind == "random":
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        candidates = baseline_candidates(dataset, queries, **window_kwargs)
        result = metrics_lib.random_baseline(
            candidates, functools.partial(score, dataset, queries), seeds
        )
        rankings = metrics_lib.random_ranking(candidates, seed=0)
        return result, {k: _with_rank_scores(v) for k, v in rankings.items()}
    if kind == "upper_bound":
        if dataset != DIDEMO:
            raise ValueError(
                f"--baseline=upper_bound is defined for didemo only, got {dataset!r}"
            )
        truth = {q.query_id: q.segments for q in queries.values()}
        result = metrics_lib.didemo_upper_bound(truth)
        rankings = {}
        for q in queries.values():
            pairs = metrics_lib.didemo_agreement_ranking(q.segments, q.num_segments)
            start, end = spans.didemo_segments_to_seconds(pairs[:, 0], pairs[:, 1])
            rankings[q.query_id] = _with_rank_scores(np.stack([start, end], axis=-1))
        return result, rankings
    raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")


def _evaluate_model(
    model_dir: str,
    data_dir: str,
    split: str,
    top_k: int | None,
    nms_threshold: float | None,
    max_query_length: int | None = None,
) -> Iterable[dict]:
    """Prediction records of a trained model over a prepared split.

    TensorFlow and the model are imported here only, so that scoring files and
    baselines never load them.
    """
    try:
        from vlanet_tf.data import pipeline
        from vlanet_tf.inference import predict_dataset
        from vlanet_tf.training import load_trained_model
    except ImportError as error:
        raise RuntimeError(
            "ranking with --model_dir needs vlanet_tf.inference.predict_dataset, "
            "vlanet_tf.training.load_trained_model and vlanet_tf.data.pipeline: "
            f"{error}"
        ) from error
    model = load_trained_model(model_dir)
    dataset = pipeline.make_dataset(
        data_dir,
        split,
        EVAL_BATCH_SIZE,
        training=False,
        max_query_length=max_query_length,
    )
    return predict_dataset(model, dataset, top_k=top_k, nms_threshold=nms_threshold)


def format_table(result: Mapping[str, Any], title: str) -> str:
    """An aligned metric table; a std column appears when the result has one."""
    keys = [k for k in result if not k.endswith("_std") and k != "seeds"]
    has_std = any(f"{k}_std" in result for k in keys)
    width = max(len("metric"), *(len(k) for k in keys))
    header = f"{'metric':<{width}}  {'mean' if has_std else 'value':>7}"
    header += f"  {'std':>6}" if has_std else ""
    lines = [title, header]
    for key in keys:
        line = f"{key:<{width}}  {result[key]:7.2f}"
        if has_std:
            line += f"  {result[f'{key}_std']:6.2f}"
        lines.append(line)
    return "\n".join(lines)


def write_predictions(path: str, queries: Queries, rankings: Rankings) -> None:
    """One JSONL line per ranked query, in ground-truth order."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for query_id, query in queries.items():
            if query_id not in rankings:
                continue
            moments = [[round(float(x), 6) for x in row] for row in rankings[query_id]]
            f.write(
                json.dumps(
                    {
                        "query_id": query_id,
                        "video_id": query.video_id,
                        "moments": moments,
                    }
                )
                + "\n"
            )


def write_metrics(path: str, result: Mapping[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(dict(result), f, indent=2)
        f.write("\n")


def _window_kwargs() -> dict[str, Any]:
    """The sliding-window layout of the random baseline (the model's flags)."""
    return {
        "fps": FLAGS.fps,
        "stride_frames": FLAGS.stride_frames,
        "window_frames": tuple(int(w) for w in FLAGS.window_frames),
    }


def _ground_truth_from_flags() -> tuple[str, Queries]:
    if FLAGS.annotations and FLAGS.data_dir:
        raise app.UsageError(
            "give --annotations or --data_dir for ground truth, not both"
        )
    if FLAGS.data_dir:
        return ground_truth_from_data_dir(FLAGS.data_dir, FLAGS.split)
    if not FLAGS.annotations or not FLAGS.dataset:
        raise app.UsageError(
            "ground truth needs --dataset and --annotations (and --durations for "
            "charades_sta), or a prepared --data_dir"
        )
    queries, summary = load_annotations(
        FLAGS.dataset, FLAGS.annotations, FLAGS.durations
    )
    if summary["skips"]:
        dropped = {reason: entry["count"] for reason, entry in summary["skips"].items()}
        print(f"annotation lines the readers dropped (not evaluated): {dropped}")
    return FLAGS.dataset, queries


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    model_dir = FLAGS.model_dir
    modes = [m for m in (FLAGS.predictions, FLAGS.baseline, model_dir) if m]
    if len(modes) != 1:
        raise app.UsageError(
            "give exactly one of --predictions, --baseline, --model_dir; "
            f"got {len(modes)}"
        )
    dataset, queries = _ground_truth_from_flags()
    if not queries:
        raise ValueError("the ground truth holds no queries: nothing to evaluate")
    if FLAGS.baseline:
        result, rankings = evaluate_baseline(
            FLAGS.baseline, dataset, queries, FLAGS.seeds, **_window_kwargs()
        )
        title = f"{dataset}: {FLAGS.baseline} baseline, {len(queries)} queries"
        if FLAGS.baseline == "random":
            title += f", {FLAGS.seeds} seeds"
    else:
        if FLAGS.predictions:
            rankings = rerank(
                read_predictions(FLAGS.predictions, queries),
                FLAGS.nms_threshold,
                FLAGS.top_k,
            )
            source = FLAGS.predictions
        else:
            if not FLAGS.data_dir:
                raise app.UsageError(
                    "--model_dir needs the prepared --data_dir to rank"
                )
            records = _evaluate_model(
                model_dir,
                FLAGS.data_dir,
                FLAGS.split,
                FLAGS.top_k,
                FLAGS.nms_threshold,
                FLAGS.max_query_length,
            )
            rankings = collect_predictions(
                ((f"{model_dir}[{i}]", r) for i, r in enumerate(records)), queries
            )
            source = model_dir
        result = score(dataset, queries, rankings)
        missing = len(queries) - len(rankings)
        title = (
            f"{dataset}: {source}, {len(queries)} queries, "
            f"{missing} without a prediction (counted as misses)"
        )
    print(format_table(result, title))
    if FLAGS.output:
        write_metrics(FLAGS.output, result)
    if FLAGS.output_predictions:
        write_predictions(FLAGS.output_predictions, queries, rankings)


if __name__ == "__main__":
    app.run(main)
