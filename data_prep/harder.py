"""A harder synthetic release, shaped like the real Charades-STA, and its oracle.

    python -m data_prep.harder --output_dir=DIR --stats_dir=DIR_OF_REAL_CHARADES_STA \
        --difficulty=medium
    python -m data_prep.harder --output_dir=DIR --oracle_predictions=oracle.jsonl ...

writes the same files as `data_prep.synthesize` (`charades_sta_{train,test}.txt`,
`Charades_v1_{train,test}.csv`, `features.h5`, `glove.synthetic.{dim}d.txt`), which
`data_prep.build --dataset=charades_sta` reads unchanged.

What is harder than the demo release:
- The shape is the real one. Each synthetic video copies a real Charades-STA video of
  the same split (drawn with replacement from `--stats_dir`): its duration, its number
  of sentences, every sentence's moment (so moments overlap where the real ones do,
  and moment start and length relative to the duration follow the real distribution)
  and every sentence's length in words.
- Sentences are compositional: a verb, an object and (when the sentence is long enough)
  an adjective, each a content word with its own planted direction; the conjunction,
  not any one word, identifies the moment. Filler phrases pad the sentence to the real
  length, and an optional "in the PLACE" names the video's scene.
- Distractors: partial events elsewhere in the video carry some of a sentence's
  concepts with others swapped (the same object with another verb or adjective, ...),
  and unrelated events plant conjunctions that other videos' sentences name.
- Noise: per-clip Gaussian noise; a per-video scene component (the place's direction
  and a random per-video one) on every clip; per-clip amplitude jitter and occlusion
  (clips of an event where it is not visible); event boundaries offset from the
  annotated ones (annotation noise).

`--difficulty` (easy = 0, medium = 0.5, hard = 1, or any float in [0, 1]) scales all
of them at once (`Difficulty`). The oracle ranks a split's candidate windows by how
much of the sentence's planted conjunction the clips hold, knowing the directions (they
are a function of `--seed` and `--feature_dim` only): the upper reference row.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import sys
from typing import Sequence

import h5py
import numpy as np

from data_prep import synthesize
from vlanet_tf.data import readers
from vlanet_tf.geometry import ProposalGeometry

VERBS = synthesize.VERBS
OBJECTS = synthesize.OBJECTS
PLACES = synthesize.PLACES
ADJECTIVES = ("red", "blue", "green", "small", "large", "old", "wooden", "white")
SUBJECTS = ("a person", "the person", "someone", "a man", "a woman")
# Phrases without a visual concept that pad a sentence to its real length.
FILLERS = (
    "then", "slowly", "again", "and smiles", "while standing", "near the table",
    "and then leaves", "for a while", "before sitting down", "quickly",
)  # fmt: skip
DIFFICULTIES = {"easy": 0.0, "medium": 0.5, "hard": 1.0}
MAX_SENTENCES = len(VERBS)  # Sentences of a video never share a verb.


def parse_difficulty(value: str | float) -> float:
    """easy | medium | hard, or a number in [0, 1]."""
    if isinstance(value, str) and value in DIFFICULTIES:
        return DIFFICULTIES[value]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise ValueError(
            f"--difficulty must be one of {sorted(DIFFICULTIES)} or a number in [0, 1], "
            f"got {value!r}"
        )
    return number


@dataclasses.dataclass(frozen=True)
class Difficulty:
    """What one difficulty level plants; every field is a linear function of `level`."""

    level: float

    @property
    def signal(self) -> float:
        """Norm of each planted concept direction (the clip noise has norm ~`noise`)."""
        return 0.8 - 0.4 * self.level

    @property
    def noise(self) -> float:
        return 1.0 + 0.5 * self.level

    @property
    def scene(self) -> float:
        """Norm of the per-video scene component, on every clip."""
        return 0.5 + 1.5 * self.level

    @property
    def min_amplitude(self) -> float:
        """A planted clip's amplitude is uniform in [min_amplitude, 1]."""
        return 1.0 - 0.6 * self.level

    @property
    def occlusion(self) -> float:
        """Probability that a clip of an event shows none of it."""
        return 0.3 * self.level

    @property
    def boundary_jitter(self) -> float:
        """Std of the planted start and end around the annotated ones, x moment length."""
        return 0.15 * self.level

    @property
    def partial_per_sentence(self) -> float:
        """Mean partial-distractor events per sentence."""
        return 1.5 * self.level

    @property
    def unrelated_per_video(self) -> float:
        """Mean unrelated events per video (at least one is always planted)."""
        return 1.0 + self.level


@dataclasses.dataclass
class HarderOptions:
    output_dir: str
    stats_dir: str
    difficulty: str = "medium"
    num_videos: int = 300
    num_test_videos: int = 100
    feature_dim: int = 64
    word_dim: int = 50
    seed: int = 0
    clip_frames: int = 16
    fps: float = 24.0


def vocabulary_words() -> list[str]:
    words = set(synthesize.vocabulary_words())
    for phrase in ADJECTIVES + SUBJECTS + FILLERS + ("is", "in the"):
        words.update(phrase.split())
    return sorted(words)


def concept_directions(seed: int, feature_dim: int) -> np.ndarray:
    """Unit directions [verbs + objects + adjectives + places, F]; a function of the
    seed and the feature size only, so the oracle can rebuild them."""
    count = len(VERBS) + len(OBJECTS) + len(ADJECTIVES) + len(PLACES)
    directions = np.random.default_rng([seed, 7]).normal(size=(count, feature_dim))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _verb(i: int) -> int:
    return i


def _object(i: int) -> int:
    return len(VERBS) + i


def _adjective(i: int) -> int:
    return len(VERBS) + len(OBJECTS) + i


def _place(i: int) -> int:
    return len(VERBS) + len(OBJECTS) + len(ADJECTIVES) + i


def sentence_concepts(sentence: str) -> list[int]:
    """The localised concepts (verb, object, adjective) a sentence names, as indices
    into `concept_directions`; places are left out (they are the scene)."""
    padded = f" {sentence.rstrip('.')} "
    found = [
        _verb(i)
        for i, (_, third, ing) in enumerate(VERBS)
        if f" {third} " in padded or f" {ing} " in padded
    ]
    found += [_object(i) for i, o in enumerate(OBJECTS) if f" {o} " in padded]
    found += [_adjective(i) for i, a in enumerate(ADJECTIVES) if f" {a} " in padded]
    return found


@dataclasses.dataclass
class RealVideo:
    duration: float
    moments: list[tuple[float, float]]
    sentence_lengths: list[int]


@functools.lru_cache(maxsize=4)
def real_videos(stats_dir: str, split: str) -> tuple[RealVideo, ...]:
    """The real split's videos (readers' rules: reversed lines dropped, ends clipped);
    read once per process."""
    txt = os.path.join(stats_dir, f"charades_sta_{split}.txt")
    csv_path = os.path.join(stats_dir, f"Charades_v1_{split}.csv")
    for path in (txt, csv_path):
        if not os.path.isfile(path):
            raise ValueError(f"--stats_dir: {path} does not exist (the real Charades-STA files)")
    records, _ = readers.read_charades_sta(txt, csv_path)
    videos = []
    for group in readers.group_by_video(records).values():
        videos.append(
            RealVideo(
                duration=group[0].duration,
                moments=[r.moments[0] for r in group],
                sentence_lengths=[len(r.sentence.split()) for r in group],
            )
        )
    if not videos:
        raise ValueError(f"--stats_dir: {txt} holds no usable sentence")
    return tuple(videos)


def _sentence(
    rng: np.random.Generator, verb: int, obj: int, adjective: int | None, place: int, length: int
) -> str:
    """Subject, verb, [adjective], object, then fillers (and perhaps the place) until
    the sentence has about `length` words."""
    base, third, ing = VERBS[verb]
    subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    verb_phrase = third if rng.random() < 0.6 else f"is {ing}"
    noun = OBJECTS[obj] if adjective is None else f"{ADJECTIVES[adjective]} {OBJECTS[obj]}"
    words = f"{subject} {verb_phrase} {'the' if rng.random() < 0.5 else 'a'} {noun}".split()
    extras = [FILLERS[int(i)] for i in rng.permutation(len(FILLERS))]
    if rng.random() < 0.5:
        extras.insert(int(rng.integers(0, 2)), f"in the {PLACES[place]}")
    for phrase in extras:
        if len(words) >= length:
            break
        words += phrase.split()
    return " ".join(words)


def _round_moment(start: float, end: float, duration: float) -> tuple[float, float]:
    end = min(end, math.floor(duration * 10) / 10)
    start = min(math.floor(start * 10) / 10, end - 0.1)
    return max(start, 0.0), end


def synthesize_harder(options: HarderOptions) -> dict[str, str]:
    """Writes the harder release; returns {role: path} of the files written."""
    level = Difficulty(parse_difficulty(options.difficulty))
    rng = np.random.default_rng(options.seed)
    f_dim = options.feature_dim
    directions = concept_directions(options.seed, f_dim)
    seconds_per_clip = options.clip_frames / options.fps
    taken: set[str] = set()
    features: dict[str, np.ndarray] = {}
    splits = {}
    for split, n in (("train", options.num_videos), ("test", options.num_test_videos)):
        real = real_videos(options.stats_dir, split)
        lines, rows = [], []
        for vid in synthesize._video_ids(rng, n, taken):
            template = real[int(rng.integers(len(real)))]
            duration = template.duration
            num_clips = max(1, int(round(duration / seconds_per_clip)))
            clip_times = (np.arange(num_clips) + 0.5) * duration / num_clips
            count = min(len(template.moments), MAX_SENTENCES)
            verbs = rng.choice(len(VERBS), count, replace=False)
            objects = rng.choice(len(OBJECTS), count, replace=False)
            place = int(rng.integers(len(PLACES)))
            x = rng.normal(scale=level.noise / np.sqrt(f_dim), size=(num_clips, f_dim))
            own = rng.normal(size=f_dim)
            scene = directions[_place(place)] + own / np.linalg.norm(own)
            x += level.scene * scene / np.linalg.norm(scene)
            events: list[tuple[tuple[float, float], list[int]]] = []
            sentences: list[tuple[int, int, int | None]] = []
            for i in range(count):
                length = template.sentence_lengths[i]
                adjective = int(rng.integers(len(ADJECTIVES))) if length >= 6 else None
                sentences.append((int(verbs[i]), int(objects[i]), adjective))
                concepts = [_verb(verbs[i]), _object(objects[i])]
                if adjective is not None:
                    concepts.append(_adjective(adjective))
                start, end = _round_moment(*template.moments[i], duration)
                events.append(((start, end), concepts))
                text = _sentence(rng, int(verbs[i]), int(objects[i]), adjective, place, length)
                lines.append(f"{vid} {start:.1f} {end:.1f}##{text}.")
            annotated = list(events)
            for (start, end), concepts in annotated:
                for _ in range(int(rng.poisson(level.partial_per_sentence))):
                    events.append(_partial_event(rng, concepts, end - start, duration))
            named = {(v, o) for v, o, _ in sentences}
            for _ in range(1 + int(rng.poisson(level.unrelated_per_video - 1.0))):
                v, o = int(rng.integers(len(VERBS))), int(rng.integers(len(OBJECTS)))
                if (v, o) in named:
                    continue
                start, end = annotated[int(rng.integers(len(annotated)))][0]
                events.append(_moved(rng, [_verb(v), _object(o)], end - start, duration))
            for (start, end), concepts in events:
                _plant(rng, x, clip_times, start, end, directions[concepts].sum(0), level)
            features[vid] = x.astype(np.float32)
            rows.append((vid, f"{duration:.2f}"))
        splits[split] = (lines, rows)
    words = vocabulary_words()
    vectors = rng.normal(scale=0.5, size=(len(words), options.word_dim)).astype(np.float32)
    return synthesize.write_release(options.output_dir, splits, features, words, vectors)


def _moved(
    rng: np.random.Generator, concepts: list[int], length: float, duration: float
) -> tuple[tuple[float, float], list[int]]:
    """An event of `length` seconds at a uniform place in the video."""
    length = min(length, duration)
    start = float(rng.uniform(0.0, max(duration - length, 0.0)))
    return (start, start + length), concepts


def _partial_event(
    rng: np.random.Generator, concepts: list[int], length: float, duration: float
) -> tuple[tuple[float, float], list[int]]:
    """Keeps a random non-empty proper subset of `concepts` and swaps the rest for
    other concepts of the same kind, at a random place of the video."""
    keep = rng.permutation(len(concepts))[: int(rng.integers(1, len(concepts)))]
    swapped = []
    for i, concept in enumerate(concepts):
        if i in keep:
            swapped.append(concept)
            continue
        if concept < _object(0):
            kind, size = _verb, len(VERBS)
        elif concept < _adjective(0):
            kind, size = _object, len(OBJECTS)
        else:
            kind, size = _adjective, len(ADJECTIVES)
        choices = [kind(j) for j in range(size) if kind(j) != concept]
        swapped.append(choices[int(rng.integers(len(choices)))])
    return _moved(rng, swapped, length, duration)


def _plant(
    rng: np.random.Generator,
    x: np.ndarray,
    clip_times: np.ndarray,
    start: float,
    end: float,
    direction: np.ndarray,
    level: Difficulty,
) -> None:
    """Adds `direction` x signal to the clips of [start, end], its boundaries jittered,
    each clip's amplitude jittered and some clips occluded."""
    jitter = level.boundary_jitter * (end - start)
    start, end = start + rng.normal(0.0, jitter), end + rng.normal(0.0, jitter)
    inside = np.flatnonzero((clip_times >= start) & (clip_times <= end))
    if inside.size == 0:
        return
    amplitude = rng.uniform(level.min_amplitude, 1.0, inside.size)
    amplitude *= rng.random(inside.size) >= level.occlusion
    x[inside] += level.signal * amplitude[:, None] * direction[None, :]


def oracle_rankings(
    release_dir: str,
    split: str,
    seed: int,
    feature_dim: int,
    geometry: ProposalGeometry,
) -> tuple[dict, dict[str, np.ndarray]]:
    """(queries, rankings) of the oracle on a release's split.

    A clip's presence is the smallest projection of its feature on the sentence's
    concept directions (the conjunction); a candidate window scores the mean presence
    of its clips minus that of the video's other clips (the scene, the same on every
    clip, cancels).
    """
    from vlanet_tf.evaluation import ground_truth

    txt = os.path.join(release_dir, f"charades_sta_{split}.txt")
    csv_path = os.path.join(release_dir, f"Charades_v1_{split}.csv")
    queries, _ = ground_truth.from_annotations(ground_truth.CHARADES_STA, txt, csv_path)
    records, _ = readers.read_charades_sta(txt, csv_path)
    directions = concept_directions(seed, feature_dim)
    rankings = {}
    with h5py.File(os.path.join(release_dir, "features.h5"), "r") as h5:
        for record in records:
            x = np.asarray(h5[record.video_id][()], np.float64)
            concepts = sentence_concepts(record.sentence)
            if concepts:
                presence = (x @ directions[concepts].T).min(axis=1)
            else:
                presence = np.zeros(len(x))
            candidates = geometry.candidates(record.duration)
            clips = len(x)
            first = np.floor(candidates[:, 0] / record.duration * clips + 1e-4).astype(int)
            last = np.ceil(candidates[:, 1] / record.duration * clips - 1e-4).astype(int)
            first = np.clip(first, 0, clips - 1)
            last = np.clip(last, first + 1, clips)
            prefix = np.concatenate([[0.0], np.cumsum(presence)])
            inside = prefix[last] - prefix[first]
            count = last - first
            outside = (prefix[-1] - inside) / np.maximum(clips - count, 1)
            score = inside / count - np.where(count < clips, outside, presence.mean())
            order = np.argsort(-score, kind="stable")
            rankings[record.query_id] = np.concatenate(
                [candidates[order], score[order, None]], axis=1
            )
    return queries, rankings


def main(argv: Sequence[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if f.oracle_predictions:
        from vlanet_tf.evaluation import predictions, scoring

        geometry = ProposalGeometry(
            fps=f.fps,
            stride_frames=f.stride_frames,
            window_frames=tuple(int(w) for w in f.window_frames),
        )
        queries, rankings = oracle_rankings(
            f.output_dir, f.split, f.seed, f.feature_dim, geometry
        )
        predictions.write(f.oracle_predictions, queries, rankings)
        print(scoring.format_table(scoring.score("charades_sta", queries, rankings),
                                   f"charades_sta: oracle on {f.output_dir} ({f.split})"))
        return
    if not f.stats_dir:
        raise app.UsageError("--stats_dir is required to synthesize (the real Charades-STA files)")
    options = HarderOptions(
        **{field.name: f[field.name].value for field in dataclasses.fields(HarderOptions)}
    )
    paths = synthesize_harder(options)
    for role, path in sorted(paths.items()):
        print(f"{role:<20}{path}", file=sys.stderr)


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Where the release is written (or read, with "
                        "--oracle_predictions).")
    flags.DEFINE_string(
        "stats_dir", None, "Directory of the real charades_sta_{train,test}.txt and "
        "Charades_v1_{train,test}.csv whose statistics the release copies."
    )
    flags.DEFINE_string("difficulty", "medium", "easy, medium, hard or a number in [0, 1].")
    flags.DEFINE_integer("num_videos", 300, "Training videos.")
    flags.DEFINE_integer("num_test_videos", 100, "Test videos.")
    flags.DEFINE_integer("feature_dim", 64, "F of the clip features.")
    flags.DEFINE_integer("word_dim", 50, "Dimension of the word vectors.")
    flags.DEFINE_integer("seed", 0, "Random seed; the output is a function of the flags.")
    flags.DEFINE_integer("clip_frames", 16, "Frames per feature clip.")
    flags.DEFINE_float("fps", 24.0, "Frame rate (clips, and the oracle's windows).")
    flags.DEFINE_string(
        "oracle_predictions", None,
        "Instead of synthesizing: write the oracle's predictions for --split of the "
        "release in --output_dir (same --seed and --feature_dim) and print its scores.",
    )
    flags.DEFINE_string("split", "test", "--oracle_predictions: the split ranked.")
    flags.DEFINE_integer("stride_frames", 8, "--oracle_predictions: segment-group stride.")
    flags.DEFINE_list("window_frames", ["176", "208", "240"],
                      "--oracle_predictions: window lengths in frames.")
    flags.mark_flag_as_required("output_dir")


if __name__ == "__main__":
    from absl import app

    from vlanet_tf.flags import one_line_errors

    _define_flags()
    app.run(one_line_errors(main))
