"""Video files -> an HDF5 clip-feature file that `data_prep.build` reads unchanged.

    python -m data_prep.extract_features --videos=DIR_OR_LIST --output=features.h5 \
        [--backbone=mobilenet_v3_small] [--weights=imagenet|PATH] [--style=charades]
        [--shard=i --num_shards=n] [--merge] [--strict]

Writes `features.h5` (one [T, F] dataset per video id, the file stem), beside it
`features_durations.csv` (the Charades_v1_*.csv layout, so it can serve as
Charades_v1_{split}.csv or a custom build's durations) and `features.report.json`
(videos that yielded nothing, with the reason). Killed and run again, it redoes only
unfinished videos. With `--num_shards=n`, run `--shard=0..n-1` (anywhere sharing the
output folder), then `--merge --num_shards=n`. The library part is vlanet_tf.video.
"""

from __future__ import annotations

import sys
from typing import Callable, Sequence

from absl import app, flags

from vlanet_tf.video import backbones, extract
from vlanet_tf.video.extractor import STYLES, Extractor

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("videos", None, "A folder of video files, or a list file of paths.")
    flags.DEFINE_string("output", None, "The HDF5 feature file to write.")
    flags.DEFINE_enum("backbone", "mobilenet_v3_small", list(backbones.BACKBONES),
                      "Image backbone (vlanet_tf/video/backbones.py).")
    flags.DEFINE_string("weights", backbones.IMAGENET, "'imagenet' or a save_weights file.")
    flags.DEFINE_enum("style", "charades", sorted(STYLES),
                      "charades: a feature per 16 frames at 24 fps; didemo: per 5-s segment.")
    flags.DEFINE_integer("image_size", None, "Backbone input size (default: the backbone's).")
    flags.DEFINE_float("fps", None, "Resampled frame rate (default: the style's).")
    flags.DEFINE_integer("clip_frames", None, "Frames per clip (default: the style's).")
    flags.DEFINE_integer("frames_per_clip", None, "Frames per clip through the backbone.")
    flags.DEFINE_integer("batch_size", 32, "Frames per backbone call.")
    flags.DEFINE_boolean("strict", False, "Fail at the first video that yields nothing.")
    flags.DEFINE_integer("shard", 0, "This run's shard.")
    flags.DEFINE_integer("num_shards", 1, "Shards the video list is split into.")
    flags.DEFINE_boolean("merge", False, "Merge the --num_shards finished shards.")
    flags.mark_flag_as_required("output")


def main(argv: Sequence[str], on_rows: Callable[[str, int], None] | None = None) -> None:
    """The main; `on_rows(video_id, clips written)` is passed to extract_store (hooks)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if FLAGS.merge:
        extract.merge_shards(FLAGS.output, FLAGS.num_shards)
        return
    if not FLAGS.videos:
        raise app.UsageError("--videos is required (unless --merge)")
    videos = extract.list_videos(FLAGS.videos)
    output = FLAGS.output
    if FLAGS.num_shards > 1:
        videos = extract.shard(videos, FLAGS.shard, FLAGS.num_shards)
        output = extract.shard_output(FLAGS.output, FLAGS.shard, FLAGS.num_shards)
    extractor = Extractor(
        FLAGS.backbone, FLAGS.weights, FLAGS.style, FLAGS.image_size, FLAGS.fps,
        FLAGS.clip_frames, FLAGS.frames_per_clip,
    )
    print(f"extractor: {extractor.spec.describe()}", file=sys.stderr, flush=True)
    try:
        extract.extract_store(
            videos, extractor, output, FLAGS.batch_size, FLAGS.strict, on_rows=on_rows
        )
    except extract.ExtractionError as error:
        sys.exit(f"error (--strict): {error}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
