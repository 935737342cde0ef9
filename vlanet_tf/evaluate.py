"""Scores moment rankings: a predictions file, a reference baseline or a trained model.

A thin main over the standalone evaluator `vlanet_tf.evaluation`. One mode per run, in
this order of precedence (so the training flagfile, which names --model_dir, works
with every mode):
  --predictions=FILE.jsonl   score a predictions file (rules in
                             `vlanet_tf.evaluation.predictions`);
  --baseline=random|upper_bound
                             the reference rows of SPEC §8 over the candidates of the
                             proposal flags (no features, no model);
  --model_dir=DIR            rank a prepared split with a trained run; the run's data
                             directory, query length, geometry and eval top-k are
                             reloaded from it (flags given explicitly override them;
                             so does --score_mix, which changes rankings only).

Ground truth comes from the raw annotation files (--dataset, --annotations and, for
Charades-STA, --durations) when --annotations is given, else from the prepared
--data_dir's --split (for --model_dir, the run's data directory). Example:

  python -m vlanet_tf.evaluate --baseline=random --dataset=charades_sta \
      --annotations=charades_sta_test.txt --durations=Charades_v1_test.csv \
      --seeds=5 --output=random.json
"""

from __future__ import annotations

from typing import Any, Sequence

from absl import app, flags

from vlanet_tf import flags as vflags
from vlanet_tf.evaluation import baselines, ground_truth, predictions, scoring
from vlanet_tf.evaluation.ground_truth import DATASETS
from vlanet_tf.geometry import ProposalGeometry

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines this main's flags; safe to call more than once.

    The shared flags (data, model, training) come from `vlanet_tf.flags`, so that the
    flagfile a model was trained with parses here too; of the model flags, only the
    proposal layout is read, by --baseline.
    """
    vflags.define_all_flags()
    if "predictions" in FLAGS:
        return
    flags.DEFINE_string("predictions", None, "Predictions JSONL file to score.")
    flags.DEFINE_enum(
        "baseline", None, list(baselines.BASELINES), "Score a reference row instead."
    )
    flags.DEFINE_integer("seeds", 5, "Random baseline: number of seeds (0 … n-1) to average.")
    flags.DEFINE_enum("dataset", None, list(DATASETS), "Dataset of --annotations.")
    flags.DEFINE_string(
        "annotations",
        None,
        "Raw annotation file: charades_sta_{split}.txt or DiDeMo {split}_data.json.",
    )
    flags.DEFINE_string(
        "durations", None, "Charades-STA only: Charades_v1_{split}.csv (video lengths)."
    )
    flags.DEFINE_string(
        "checkpoint", "best", "--model_dir: best, last, or a path to a .weights.h5 file."
    )
    flags.DEFINE_string("output", None, "Write the metrics JSON here.")
    flags.DEFINE_string("output_predictions", None, "Write the ranked predictions (JSONL) here.")
    flags.DEFINE_integer(
        "top_k", None, "Keep at most this many moments per query (default: the run's, or all)."
    )
    flags.DEFINE_float(
        "nms_threshold",
        None,
        "Temporal NMS IoU threshold for rankings (default: --model_dir's --nms_iou, "
        "else off).",
    )


def mode() -> str:
    """predictions, baseline or model (see the module docstring)."""
    if FLAGS.predictions and FLAGS.baseline:
        raise app.UsageError("give one of --predictions and --baseline, not both")
    if FLAGS.predictions:
        return "predictions"
    if FLAGS.baseline:
        return "baseline"
    if FLAGS.model_dir:
        return "model"
    raise app.UsageError("give one of --predictions, --baseline or --model_dir")


def ground_truth_of(data_dir: str | None) -> tuple[str, ground_truth.Queries, str]:
    """(dataset, queries, where they came from) for the flags' ground truth."""
    if FLAGS.annotations:
        if not FLAGS.dataset:
            raise app.UsageError("--annotations needs --dataset (charades_sta or didemo)")
        queries, summary = ground_truth.from_annotations(
            FLAGS.dataset, FLAGS.annotations, FLAGS.durations
        )
        if summary["skips"]:
            dropped = {reason: entry["count"] for reason, entry in summary["skips"].items()}
            print(f"annotation lines the readers dropped (not evaluated): {dropped}")
        return FLAGS.dataset, queries, FLAGS.annotations
    if not data_dir:
        raise app.UsageError(
            "ground truth needs --dataset and --annotations (and --durations for "
            "charades_sta), or a prepared --data_dir"
        )
    dataset, queries = ground_truth.from_shards(data_dir, FLAGS.split)
    return dataset, queries, f"{data_dir} ({FLAGS.split})"


def baseline_geometry(dataset: str) -> ProposalGeometry:
    """The candidates of the proposal flags; the layout follows the dataset unless given."""
    proposal_mode = FLAGS.proposal_mode or ("didemo" if dataset == "didemo" else "sliding")
    return ProposalGeometry(
        mode=proposal_mode,
        fps=FLAGS.fps,
        stride_frames=FLAGS.stride_frames,
        window_frames=tuple(int(w) for w in FLAGS.window_frames),
        didemo_segments=FLAGS.didemo_segments,
        segment_seconds=FLAGS.segment_seconds,
        min_window_fraction=FLAGS.min_window_fraction,
    )


def evaluate_model(model_dir: str) -> tuple[dict, Any, ground_truth.Queries, str]:
    """Ranks the split with a trained run, reloading the run's options."""
    from vlanet_tf import validation
    from vlanet_tf.run_dir import RunDir

    options = vflags.saved_run_options(FLAGS, model_dir)
    if FLAGS["score_mix"].present:
        # Rankings only (no weight depends on it): another λ on the trained weights.
        options = options.with_model(score_mix=FLAGS.score_mix)
    run = options.run
    model = RunDir(model_dir).load_model(FLAGS.checkpoint, options)
    top_k = FLAGS.top_k if FLAGS.top_k is not None else run.eval_top_k
    if FLAGS.annotations:
        raise app.UsageError(
            "--model_dir ranks a prepared split and takes its ground truth from it; "
            "drop --annotations"
        )
    result, rankings, queries, dataset = validation.evaluate_split(
        model,
        run.data_dir,
        FLAGS.split,
        top_k=top_k,
        nms_threshold=FLAGS.nms_threshold if FLAGS.nms_threshold is not None else run.nms_iou,
        max_query_length=run.max_query_length,
        jit_compile=FLAGS.jit_compile if FLAGS["jit_compile"].present else run.jit_compile,
    )
    title = f"{dataset}: {model_dir} ({FLAGS.checkpoint}) on {run.data_dir} ({FLAGS.split})"
    return result, rankings, queries, title


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    chosen = mode()
    if chosen == "model":
        result, rankings, queries, title = evaluate_model(FLAGS.model_dir)
    else:
        dataset, queries, source = ground_truth_of(FLAGS.data_dir)
        if chosen == "baseline":
            result, rankings = baselines.evaluate_baseline(
                FLAGS.baseline, dataset, queries, baseline_geometry(dataset), FLAGS.seeds
            )
            title = f"{dataset}: {FLAGS.baseline} baseline on {source}, {len(queries)} queries"
            if FLAGS.baseline == "random":
                title += f", {FLAGS.seeds} seeds"
        else:
            rankings = predictions.rerank(
                predictions.read(FLAGS.predictions, queries), FLAGS.nms_threshold, FLAGS.top_k
            )
            result = scoring.score(dataset, queries, rankings)
            missing = len(queries) - len(rankings)
            title = (
                f"{dataset}: {FLAGS.predictions} on {source}, {len(queries)} queries, "
                f"{missing} without a prediction (counted as misses)"
            )
    print(scoring.format_table(result, title))
    if FLAGS.output:
        scoring.write_metrics(FLAGS.output, result)
    if FLAGS.output_predictions:
        predictions.write(FLAGS.output_predictions, queries, rankings)


if __name__ == "__main__":
    define_flags()
    app.run(vflags.one_line_errors(main))
