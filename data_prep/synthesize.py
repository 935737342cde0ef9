"""A synthetic moment-retrieval release in the public Charades-STA formats.

    python -m data_prep.synthesize --output_dir=DIR

writes `charades_sta_{train,test}.txt`, `Charades_v1_{train,test}.csv`, `features.h5`
and `glove.synthetic.{dim}d.txt`, which `data_prep.build --dataset=charades_sta` reads
like the real release.

How grounding is planted: every sentence names a (verb, object) concept pair. Each verb
and each object owns a fixed random unit direction in feature space. A video's clip
features are Gaussian background noise plus a per-video offset; inside each sentence's
true moment the verb's and the object's directions are added. Distractor events (concepts
no sentence of the video names) are planted too, so "find any event" is not enough:
the model has to match the sentence's words to the right event. Sentences of one video
never share a verb or an object, so (video, sentence) pairs alone identify the moment.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import string
import sys
from typing import Sequence

import h5py
import numpy as np

# (base form, third person, -ing form).
VERBS = (
    ("open", "opens", "opening"),
    ("close", "closes", "closing"),
    ("hold", "holds", "holding"),
    ("wash", "washes", "washing"),
    ("throw", "throws", "throwing"),
    ("eat", "eats", "eating"),
    ("fix", "fixes", "fixing"),
    ("carry", "carries", "carrying"),
    ("clean", "cleans", "cleaning"),
    ("put down", "puts down", "putting down"),
    ("pick up", "picks up", "picking up"),
    ("watch", "watches", "watching"),
)
OBJECTS = (
    "door", "book", "cup", "laptop", "towel", "phone", "sandwich", "box",
    "window", "pillow", "shoe", "broom", "blanket", "mirror", "bag", "dish",
)  # fmt: skip
PLACES = ("kitchen", "bedroom", "hallway", "garage", "bathroom", "living room")
TEMPLATES = (
    "a person {third} the {object}",
    "the person is {ing} a {object}",
    "person {third} a {object} in the {place}",
    "someone is {ing} the {object}",
    "a person {third} the {object} then looks around",
    "the person starts {ing} a {object}",
)
# Words a defect-injected dataset uses that the vectors file does not contain.
UNKNOWN_WORDS = ("zxqv", "blorpt", "quillax")


@dataclasses.dataclass
class SynthesisOptions:
    output_dir: str
    num_videos: int = 300
    num_test_videos: int = 100
    feature_dim: int = 64
    word_dim: int = 50
    seed: int = 0
    clip_frames: int = 16
    fps: float = 24.0
    min_duration: float = 15.0
    max_duration: float = 45.0
    signal_strength: float = 0.6  # Norm of each planted direction relative to noise ~1.
    inject_defects: bool = False


def vocabulary_words() -> list[str]:
    """Every word the templates can produce (sorted), plus a few unused fillers."""
    words = set()
    for base, third, ing in VERBS:
        words.update(base.split() + third.split() + ing.split())
    words.update(OBJECTS)
    for place in PLACES:
        words.update(place.split())
    for template in TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    words.update(("the", "a", "an", "and", "of", "chair", "table", "walks"))
    return sorted(words)


def _video_ids(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    ids = []
    while len(ids) < n:
        vid = "".join(rng.choice(alphabet, 5))
        if vid not in taken:
            taken.add(vid)
            ids.append(vid)
    return ids


def _place_moments(
    rng: np.random.Generator, duration: float, count: int
) -> list[tuple[float, float]]:
    """Up to `count` non-overlapping moments of 4-12 s inside [0, duration], in order.

    Lengths are drawn first and the remaining time is split into random gaps, so the
    moments always fit; short videos get fewer moments rather than shorter ones.
    """
    count = max(1, min(count, int(0.8 * duration // 4.5)))
    max_length = min(12.0, 0.8 * duration / count)
    # 4.2 s leaves room for the two 0.1 s roundings below.
    lengths = rng.uniform(4.2, max(max_length, 4.2), count)
    gaps = rng.dirichlet(np.ones(count + 1)) * (duration - lengths.sum())
    moments = []
    t = 0.0
    for gap, length in zip(gaps, lengths):
        start = t + gap
        # 0.1 s is what the text format keeps; floor so no end passes the duration.
        moments.append((math.ceil(start * 10) / 10, math.floor((start + length) * 10) / 10))
        t = start + length
    return moments


def synthesize(options: SynthesisOptions) -> dict[str, str]:
    """Writes the synthetic release; returns {role: path} of the files written."""
    rng = np.random.default_rng(options.seed)
    f_dim = options.feature_dim
    verb_dirs = rng.normal(size=(len(VERBS), f_dim))
    verb_dirs /= np.linalg.norm(verb_dirs, axis=1, keepdims=True)
    object_dirs = rng.normal(size=(len(OBJECTS), f_dim))
    object_dirs /= np.linalg.norm(object_dirs, axis=1, keepdims=True)

    taken: set[str] = set()
    features: dict[str, np.ndarray] = {}
    seconds_per_clip = options.clip_frames / options.fps
    splits = {}
    for split, n in (("train", options.num_videos), ("test", options.num_test_videos)):
        lines, rows = [], []
        for vid in _video_ids(rng, n, taken):
            duration = round(float(rng.uniform(options.min_duration, options.max_duration)), 2)
            num_clips = max(1, int(round(duration / seconds_per_clip)))
            moments = _place_moments(rng, duration, int(rng.integers(2, 5)))
            # Distinct verbs and objects per video: sentences + distractor events.
            num_events = len(moments) + 1
            verbs = rng.choice(len(VERBS), num_events, replace=False)
            objects = rng.choice(len(OBJECTS), num_events, replace=False)
            x = rng.normal(scale=1.0 / np.sqrt(f_dim), size=(num_clips, f_dim))
            x += rng.normal(scale=0.5 / np.sqrt(f_dim), size=(1, f_dim))
            clip_times = (np.arange(num_clips) + 0.5) * duration / num_clips
            events = list(zip(moments, verbs, objects))
            events.append((_place_moments(rng, duration, 1)[0], verbs[-1], objects[-1]))
            for i, ((start, end), v, o) in enumerate(events):
                inside = (clip_times >= start) & (clip_times <= end)
                x[inside] += options.signal_strength * (verb_dirs[v] + object_dirs[o])
                if i >= len(moments):
                    continue  # The distractor has no sentence.
                base, third, ing = VERBS[v]
                template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
                sentence = template.format(
                    third=third,
                    ing=ing,
                    object=OBJECTS[o],
                    place=PLACES[int(rng.integers(len(PLACES)))],
                )
                lines.append(f"{vid} {start:.1f} {end:.1f}##{sentence}.")
            features[vid] = x.astype(np.float32)
            rows.append((vid, f"{duration:.2f}"))
        if options.inject_defects and split == "train":
            lines, rows = _inject_defects(lines, rows, features, rng)
        splits[split] = (lines, rows)
    words = vocabulary_words()
    vectors = rng.normal(scale=0.5, size=(len(words), options.word_dim)).astype(np.float32)
    return write_release(options.output_dir, splits, features, words, vectors)


def write_release(
    output_dir: str,
    splits: dict[str, tuple[list[str], list[tuple[str, str]]]],
    features: dict[str, np.ndarray],
    words: Sequence[str],
    vectors: np.ndarray,
) -> dict[str, str]:
    """Writes a release in the public formats; returns {role: path} of its files.

    `splits`: {split: (annotation lines, (video id, duration text) rows)}; `vectors`
    [len(words), word_dim].
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "features": os.path.join(output_dir, "features.h5"),
        "word_vectors": os.path.join(output_dir, f"glove.synthetic.{vectors.shape[1]}d.txt"),
    }
    for split, (lines, rows) in splits.items():
        txt = os.path.join(output_dir, f"charades_sta_{split}.txt")
        with open(txt, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        csv_path = os.path.join(output_dir, f"Charades_v1_{split}.csv")
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "scene", "length"])
            for vid, length in rows:
                writer.writerow([vid, "synthetic", length])
        paths[f"{split}_annotations"], paths[f"{split}_durations"] = txt, csv_path
    with h5py.File(paths["features"], "w") as h5:
        for vid in sorted(features):
            h5.create_dataset(vid, data=features[vid], track_times=False)
    with open(paths["word_vectors"], "w", encoding="utf-8") as f:
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")
    return paths


def _inject_defects(
    lines: list[str],
    rows: list[tuple[str, str]],
    features: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Adds one instance of each defect real releases show (train split only)."""
    vid0, vid1, vid2, vid3 = (r[0] for r in rows[:4])
    f_dim = features[vid0].shape[1]
    lines = list(lines)
    lines.append(f"{vid0} 8.0 7.0##a person opens the door.")  # start > end
    lines.append(f"{vid0} 999.0 1000.0##a person opens the door.")  # start >= length
    lines.append(f"{vid0} 1.0 999.0##a person holds the cup.")  # end clipped, kept
    lines.append(f"{vid0} 1.0 2.0##...")  # empty sentence
    lines.append(f"{vid0} 1.0 2.0##" + " ".join(UNKNOWN_WORDS))  # all out of vocabulary
    lines.append(f"{vid0} one 2.0##a person eats a sandwich.")  # malformed line
    features[vid1] = np.full_like(features[vid1], np.nan)  # NaN features
    features[vid2] = np.zeros((0, f_dim), np.float32)  # zero-length features
    del features[vid3]  # video id with no features
    return lines, rows


def main(argv: Sequence[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    options = SynthesisOptions(
        **{field.name: f[field.name].value for field in dataclasses.fields(SynthesisOptions)}
    )
    paths = synthesize(options)
    for role, path in sorted(paths.items()):
        print(f"{role:<20}{path}", file=sys.stderr)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Where the synthetic release is written.")
    flags.DEFINE_integer("num_videos", 300, "Training videos.")
    flags.DEFINE_integer("num_test_videos", 100, "Test videos.")
    flags.DEFINE_integer("feature_dim", 64, "F of the clip features.")
    flags.DEFINE_integer("word_dim", 50, "Dimension of the word vectors.")
    flags.DEFINE_integer("seed", 0, "Random seed; the output is a function of the flags.")
    flags.DEFINE_integer("clip_frames", 16, "Frames per feature clip.")
    flags.DEFINE_float("fps", 24.0, "Frame rate used to turn durations into clips.")
    flags.DEFINE_float("min_duration", 15.0, "Shortest video, seconds.")
    flags.DEFINE_float("max_duration", 45.0, "Longest video, seconds.")
    flags.DEFINE_float("signal_strength", 0.6, "Weight of each planted concept direction.")
    flags.DEFINE_boolean(
        "inject_defects", False, "Add one instance of each defect real releases show."
    )
    flags.mark_flag_as_required("output_dir")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
