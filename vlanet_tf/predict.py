"""Ranks the moments of one video for one sentence with an exported SavedModel.

    python -m vlanet_tf.predict --saved_model=E/1 --features=features.h5 --video_id=ID \
        --duration=30.5 --query="a person opens the door" [--top_k=5] [--json]
        [--plot=timeline.png] [--ground_truth=12.0,19.5]

Runs the SavedModel's `serving_default` signature (so it needs neither the training
code nor its data directory) and prints the ranked moments in seconds, or one JSON
object with `--json`. `--plot` draws SPEC §10's timeline from the `proposals`
signature: every surrogate coloured by its attention weight, the top-2 predictions and,
with `--ground_truth`, the annotated moment.

Or `--video=clip.mp4` (no --features, --duration): the clip features are extracted with
exactly the extractor the model was trained on (recorded in the export; a weights file
is passed with --extractor_weights and its hash checked), and the duration is the
video's. Features recorded as coming from another extractor are refused.

`--features` is an HDF5 file (one [T, F] dataset per video id), a folder of per-video
`.npy` files, or a single `.npy` file (then `--video_id` is only a label). `--duration`
is the video's length in seconds; the model spreads the clips evenly over it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Sequence

import numpy as np
from absl import app, flags

from vlanet_tf import flags as vflags

from vlanet_tf.serving_io import (
    batch_inputs,
    export_extractor,
    features_extractor,
    format_moments,
    load_features,
    ranked_moments,
)

FLAGS = flags.FLAGS


def predict(
    saved_model: str,
    features: np.ndarray,
    duration: float,
    query: str,
    top_k: int | None = None,
    with_proposals: bool = False,
) -> dict[str, Any]:
    """Runs the SavedModel on one (video, sentence) pair.

    Returns:
      {"moments": [[start, end, score], ...] best first, "similarity": float} and, with
      `with_proposals`, "proposals": every ranked row's moments [N, 2], scores [N] and
      valid [N] (numpy), valid only on the surrogates (the rows that carry attention).
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model)
    inputs = batch_inputs([query], [features], [duration])
    tensors = {
        "query": tf.constant(inputs["query"].tolist(), tf.string),
        **{k: tf.constant(v) for k, v in inputs.items() if k != "query"},
    }
    expected = loaded.signatures["serving_default"].structured_input_signature[1]
    feature_dim = expected["video_features"].shape[-1]
    if features.ndim != 2 or features.shape[1] != feature_dim:
        raise ValueError(
            f"the model takes features [T, {feature_dim}], got shape {features.shape}"
        )
    outputs = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**tensors).items()}
    exported_k = outputs["scores"].shape[1]
    if top_k is not None and top_k > exported_k:
        raise ValueError(
            f"--top_k={top_k} but the SavedModel was exported with top_k={exported_k}; "
            "ask for fewer or export again with a larger --top_k"
        )
    result: dict[str, Any] = {
        "moments": ranked_moments(outputs, 0, top_k),
        "similarity": float(outputs["similarity"][0]),
    }
    if with_proposals:
        every = loaded.signatures["proposals"](**tensors)
        result["proposals"] = {k: every[k].numpy()[0] for k in ("moments", "scores", "valid")}
        # The timeline colours the rows that received attention: the surrogates (an
        # export older than the `surrogate` output ranked only those).
        if "surrogate" in every:
            result["proposals"]["valid"] &= every["surrogate"].numpy()[0]
    return result


def extract_with(
    extractor: dict[str, Any] | None, video: str, weights: str | None = None
) -> tuple[np.ndarray, float]:
    """(features [T, F], duration) of a video file, by the export's recorded extractor."""
    if extractor is None:
        raise ValueError(
            "the export records no feature extractor (its data directory was not built "
            "from data_prep.extract_features output): pass --features and --duration"
        )
    from vlanet_tf.video.extract import extract_video
    from vlanet_tf.video.extractor import Extractor

    return extract_video(video, Extractor.from_spec(extractor, weights))


def define_flags() -> None:
    flags.DEFINE_string("saved_model", None, "An exported version folder, e.g. E/1.")
    flags.DEFINE_string("features", None, "HDF5 file, folder of .npy files, or one .npy.")
    flags.DEFINE_string("video_id", None, "Video whose features to read.")
    flags.DEFINE_string("video", None, "A video file: extract with the model's extractor.")
    flags.DEFINE_string(
        "extractor_weights", None, "The extractor's weights file (when not 'imagenet')."
    )
    flags.DEFINE_float("duration", None, "Video length in seconds.")
    flags.DEFINE_string("query", None, "The sentence to ground.")
    flags.DEFINE_integer("top_k", 5, "Moments to print (at most the exported k).")
    flags.DEFINE_boolean("json", False, "Print one JSON object instead of a table.")
    flags.DEFINE_string("plot", None, "Write the timeline picture (PNG) here.")
    flags.DEFINE_list("ground_truth", None, "start,end seconds of the annotated moment.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    required = ("saved_model", "query") + (() if FLAGS.video else ("features", "duration"))
    for name in required:
        if FLAGS[name].value is None:
            raise app.UsageError(f"--{name} is required")
    truth: list[list[float]] = []
    if FLAGS.ground_truth:
        if len(FLAGS.ground_truth) != 2:
            raise app.UsageError(f"--ground_truth must be start,end, got {FLAGS.ground_truth}")
        truth = [[float(v) for v in FLAGS.ground_truth]]
    trained_on = export_extractor(FLAGS.saved_model)
    source = FLAGS.video or FLAGS.features
    video_id = FLAGS.video_id or os.path.splitext(os.path.basename(source))[0]
    try:
        if FLAGS.video:
            features, duration = extract_with(trained_on, FLAGS.video, FLAGS.extractor_weights)
        else:
            from vlanet_tf.video.extractor import check_same

            where = f"the features in {FLAGS.features}"
            check_same(trained_on, features_extractor(FLAGS.features), where)
            features, duration = load_features(FLAGS.features, FLAGS.video_id), FLAGS.duration
    except ValueError as error:
        sys.exit(f"error: {error}")
    result = predict(
        FLAGS.saved_model,
        features,
        duration,
        FLAGS.query,
        FLAGS.top_k,
        with_proposals=bool(FLAGS.plot),
    )
    if FLAGS.plot:
        from vlanet_tf.plots import render_timeline

        proposals = result.pop("proposals")
        png = render_timeline(
            proposals["moments"],
            proposals["scores"],
            proposals["valid"],
            duration,
            predictions=result["moments"],
            ground_truth=truth,
            title=f'"{FLAGS.query}" ({video_id})',
        )
        with open(FLAGS.plot, "wb") as f:
            f.write(png)
    if FLAGS.json:
        record = {"video_id": FLAGS.video_id if FLAGS.features else video_id, "query": FLAGS.query, "duration": duration, **result}
        print(json.dumps(record))
    else:
        print(format_moments(result["moments"], result["similarity"]))


if __name__ == "__main__":
    # The shared flags too, so that the training flagfile parses here.
    vflags.define_all_flags()
    define_flags()
    app.run(vflags.one_line_errors(main))
