"""A synthetic moment-retrieval release in the public Charades-STA or DiDeMo formats.

    python -m data_prep.synthesize --output_dir=DIR

writes `charades_sta_{train,test}.txt`, `Charades_v1_{train,test}.csv`, `features.h5`
and `glove.synthetic.{dim}d.txt`, which `data_prep.build --dataset=charades_sta` reads
like the real release.

    python -m data_prep.synthesize --dataset=didemo --output_dir=DIR

writes DiDeMo's `{train,test}_data.json` (records with `annotation_id`, `description`,
`dl_link`, `num_segments`, `times`, `video`), `average_fc7.h5` (one [6, F] dataset per
video file name, rows past a 5-segment video's end zero) and the word vectors, which
`data_prep.build --dataset=didemo` reads like the real release (val is carved from
train). Videos have 6 segments of 5 s, or 5 (`--short_video_fraction`); each sentence
has 4 annotators, each of whom moves one end of the true moment by a segment with
probability `--annotator_disagreement`.

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
    dataset: str = "charades_sta"  # or "didemo"
    short_video_fraction: float = 0.15  # DiDeMo: share of 5-segment videos.
    annotator_disagreement: float = 0.2  # DiDeMo: chance an annotator is a segment off.


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


def _random_word_vectors(word_dim: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    words = vocabulary_words()
    return words, rng.normal(scale=0.5, size=(len(words), word_dim)).astype(np.float32)


def _write_word_vectors(path: str, words: Sequence[str], vectors: np.ndarray) -> None:
    """GloVe's text format: a word and its values per line."""
    with open(path, "w", encoding="utf-8") as f:
        for word, vector in zip(words, vectors):
            f.write(word + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")


def _sentence(rng: np.random.Generator, verb: int, obj: int) -> str:
    _, third, ing = VERBS[verb]
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return template.format(
        third=third, ing=ing, object=OBJECTS[obj], place=PLACES[int(rng.integers(len(PLACES)))]
    )


# DiDeMo's segments: 5 s each, 6 per video (5 for the shorter videos), 4 annotators.
_DIDEMO_SEGMENTS = 6
_DIDEMO_ANNOTATORS = 4


def _didemo_annotator(
    rng: np.random.Generator, moment: tuple[int, int], num_segments: int, disagreement: float
) -> list[int]:
    """One annotator's (start, end) segments: the moment, or one end moved by one."""
    start, end = moment
    if rng.random() < disagreement:
        options = [
            (s, e)
            for s, e in ((start - 1, end), (start + 1, end), (start, end - 1), (start, end + 1))
            if 0 <= s <= e < num_segments
        ]
        start, end = options[int(rng.integers(len(options)))]
    return [int(start), int(end)]


def synthesize_didemo(options: SynthesisOptions) -> dict[str, str]:
    """The DiDeMo-format release (see the module docstring); {role: path}."""
    import json

    rng = np.random.default_rng(options.seed)
    f_dim = options.feature_dim
    verb_dirs = rng.normal(size=(len(VERBS), f_dim))
    verb_dirs /= np.linalg.norm(verb_dirs, axis=1, keepdims=True)
    object_dirs = rng.normal(size=(len(OBJECTS), f_dim))
    object_dirs /= np.linalg.norm(object_dirs, axis=1, keepdims=True)
    os.makedirs(options.output_dir, exist_ok=True)
    paths = {
        "features": os.path.join(options.output_dir, "average_fc7.h5"),
        "word_vectors": os.path.join(
            options.output_dir, f"glove.synthetic.{options.word_dim}d.txt"
        ),
    }
    taken: set[str] = set()
    features: dict[str, np.ndarray] = {}
    annotation_id = 0
    for split, n in (("train", options.num_videos), ("test", options.num_test_videos)):
        records = []
        for index, vid in enumerate(_video_ids(rng, n, taken)):
            # Flickr-style file names; some end in a bare "." as in the release.
            name = f"{vid}@N00_{index:06d}" + ("." if index % 9 == 4 else ".mp4")
            key = name + "mp4" if name.endswith(".") else name
            num_segments = 5 if rng.random() < options.short_video_fraction else 6
            # Two or three described events and one distractor, on distinct segments
            # where possible; events are 1-3 segments long.
            num_events = int(rng.integers(2, 4)) + 1
            verbs = rng.choice(len(VERBS), num_events, replace=False)
            objects = rng.choice(len(OBJECTS), num_events, replace=False)
            x = rng.normal(scale=1.0 / np.sqrt(f_dim), size=(_DIDEMO_SEGMENTS, f_dim))
            x += rng.normal(scale=0.5 / np.sqrt(f_dim), size=(1, f_dim))
            starts = rng.permutation(num_segments)[:num_events]
            for i, (start, v, o) in enumerate(zip(starts, verbs, objects)):
                end = int(min(num_segments - 1, start + rng.integers(0, 3)))
                x[start : end + 1] += options.signal_strength * (verb_dirs[v] + object_dirs[o])
                if i == num_events - 1:
                    continue  # The distractor has no sentence.
                times = [
                    _didemo_annotator(
                        rng, (int(start), end), num_segments, options.annotator_disagreement
                    )
                    for _ in range(_DIDEMO_ANNOTATORS)
                ]
                records.append(
                    {
                        "annotation_id": annotation_id,
                        "description": _sentence(rng, int(v), int(o)),
                        "dl_link": f"https://example.invalid/{key}",
                        "num_segments": num_segments,
                        "times": times,
                        "video": name,
                    }
                )
                annotation_id += 1
            x[num_segments:] = 0.0  # No segment past the video's end.
            features[key] = x.astype(np.float32)
        path = os.path.join(options.output_dir, f"{split}_data.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(records, f)
        paths[f"{split}_annotations"] = path
    with h5py.File(paths["features"], "w") as h5:
        for key in sorted(features):
            h5.create_dataset(key, data=features[key], track_times=False)
    _write_word_vectors(paths["word_vectors"], *_random_word_vectors(options.word_dim, rng))
    return paths


def synthesize(options: SynthesisOptions) -> dict[str, str]:
    """Writes the synthetic release; returns {role: path} of the files written."""
    if options.dataset == "didemo":
        return synthesize_didemo(options)
    if options.dataset != "charades_sta":
        raise ValueError(
            f"--dataset must be 'charades_sta' or 'didemo', got {options.dataset!r}"
        )
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
    words, vectors = _random_word_vectors(options.word_dim, rng)
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
    _write_word_vectors(paths["word_vectors"], words, vectors)
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
    flags.DEFINE_enum(
        "dataset", "charades_sta", ["charades_sta", "didemo"], "The release format to write."
    )
    flags.DEFINE_float(
        "short_video_fraction", 0.15, "DiDeMo: share of videos with 5 segments, not 6."
    )
    flags.DEFINE_float(
        "annotator_disagreement",
        0.2,
        "DiDeMo: chance that an annotator moves one end of the moment by a segment.",
    )
    flags.mark_flag_as_required("output_dir")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
