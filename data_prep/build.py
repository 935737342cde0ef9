"""Turns a public moment-retrieval release into TFRecord shards.

    python -m data_prep.build --dataset=charades_sta --annotations_dir=DIR \
        --features=features.h5 --word_vectors=glove.840B.300d.txt --output_dir=OUT

Output (docs/ARCHITECTURE.md, "A prepared data directory"): `{split}-*-of-*.tfrecord`,
`vocab.txt`, `embeddings.npy` and, written last, `manifest.json`.

The run is restartable. The shard plan (which videos go to which shard) is worked out
from the inputs before anything is written; each shard is written under a `.tmp` name
and renamed when complete, and `.build_state.json` records finished shards. A rerun
with the same inputs and flags keeps finished shards and rewrites the rest, so a run
killed at any point and started again yields the same files as an uninterrupted run.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import hashlib
import json
import math
import os
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from data_prep.word_vectors import FORMATS, load_word_vectors
from vlanet_tf import files as file_io
from vlanet_tf.data import features as feature_lib
from vlanet_tf.data import readers
from vlanet_tf.data.prepared import EMBEDDINGS_FILE, MANIFEST_FILE, VOCAB_FILE
from vlanet_tf.data.readers import QueryRecord, SkipCounter

DATASETS = ("charades_sta", "didemo", "custom")
# The evaluation protocol (the manifest's `dataset`): own videos are scored like
# Charades-STA (R@n at IoU thresholds, sliding-window proposals).
PROTOCOL = {"custom": "charades_sta"}
STATE_FILE = ".build_state.json"
# Within a long shard, a progress line at most this often.
PROGRESS_SECONDS = 10.0

ALL_OOV_SENTENCE = "all_oov_sentence"
QUERY_TRUNCATED = "query_truncated"
# Sentences past this many words are skipped (counted under SENTENCE_TOO_LONG), so no
# sentence of a prepared directory outgrows the serving bound (export.serving's
# MAX_QUERY_WORDS, the same 128). The real releases' longest: Charades-STA 10, DiDeMo 48.
MAX_SENTENCE_WORDS = 128
SENTENCE_TOO_LONG = "sentence_too_long"


@dataclasses.dataclass
class BuildOptions:
    """Everything that determines a build's output (the flags of the main)."""

    dataset: str
    annotations_dir: str
    features: str
    word_vectors: str
    output_dir: str
    word_vectors_format: str = "auto"
    word_vectors_limit: int = 0  # 0: read every vector.
    num_shards: int = 0  # Per split; 0: from target_shard_mb.
    target_shard_mb: float = 256.0
    val_fraction: float = 0.1
    strict: bool = False
    min_word_count: int = 1
    max_query_length: int = 0  # 0: no truncation.
    hash_limit_mb: float = 1024.0  # Larger inputs are fingerprinted by size and mtime.
    feature_layout: str = feature_lib.AUTO_LAYOUT  # One of features.FEATURE_LAYOUTS.

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.word_vectors_format not in FORMATS:
            raise ValueError(
                f"--word_vectors_format must be one of {FORMATS}, "
                f"got {self.word_vectors_format!r}"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.num_shards < 0 or self.target_shard_mb <= 0:
            raise ValueError(
                f"--num_shards must be >= 0 and --target_shard_mb > 0, got "
                f"{self.num_shards} and {self.target_shard_mb}"
            )
        if self.feature_layout not in feature_lib.FEATURE_LAYOUTS:
            raise ValueError(
                f"--feature_layout must be one of {feature_lib.FEATURE_LAYOUTS}, "
                f"got {self.feature_layout!r}"
            )
        if self.min_word_count < 1 or self.max_query_length < 0:
            raise ValueError(
                f"--min_word_count must be >= 1 and --max_query_length >= 0, got "
                f"{self.min_word_count} and {self.max_query_length}"
            )


# ---------------------------------------------------------------------------- inputs


def _fingerprint_file(path: str, hash_limit_mb: float) -> dict[str, Any]:
    size = os.path.getsize(path)
    entry: dict[str, Any] = {"path": os.path.abspath(path), "bytes": size}
    if size <= hash_limit_mb * 2**20:
        entry["sha256"] = file_io.sha256(path)
    else:
        # Hashing tens of GB of features would dominate the run; size + mtime still
        # detect a replaced file.
        entry["mtime_ns"] = os.stat(path).st_mtime_ns
    return entry


def _fingerprint_input(path: str, hash_limit_mb: float) -> dict[str, Any]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.endswith(".npy"))
        digest = hashlib.sha256()
        total = 0
        for name in names:
            st = os.stat(os.path.join(path, name))
            total += st.st_size
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {
            "path": os.path.abspath(path),
            "files": len(names),
            "bytes": total,
            "listing_sha256": digest.hexdigest(),
        }
    return _fingerprint_file(path, hash_limit_mb)


def _val_hash(video_id: str) -> float:
    """Deterministic uniform value in [0, 1) per video (independent of PYTHONHASHSEED)."""
    h = hashlib.sha256(video_id.encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def carve_val(
    records: Sequence[QueryRecord], val_fraction: float
) -> tuple[list[QueryRecord], list[QueryRecord]]:
    """Splits records into (train, val) by video, with a hash of the video id."""
    train, val = [], []
    for record in records:
        (val if _val_hash(record.video_id) < val_fraction else train).append(record)
    return train, val


def read_annotations(
    options: BuildOptions,
) -> tuple[dict[str, list[QueryRecord]], dict[str, SkipCounter], dict[str, str], list[str]]:
    """Reads the release's annotation files.

    Returns:
      (records per split, skip counter per split, {role: annotation file path},
       notes for the manifest).
    """
    d = options.annotations_dir
    records: dict[str, list[QueryRecord]] = {}
    counters: dict[str, SkipCounter] = {}
    files: dict[str, str] = {}
    notes: list[str] = []
    strict = options.strict
    if options.dataset == "charades_sta":
        for split in ("train", "test"):
            txt = os.path.join(d, f"charades_sta_{split}.txt")
            csv_path = os.path.join(d, f"Charades_v1_{split}.csv")
            present = [os.path.isfile(p) for p in (txt, csv_path)]
            if not any(present):
                continue
            if not all(present):
                raise ValueError(
                    f"{d}: found only one of {os.path.basename(txt)} and "
                    f"{os.path.basename(csv_path)}; both are needed for the {split} split"
                )
            files[f"{split}_annotations"], files[f"{split}_durations"] = txt, csv_path
            records[split], counters[split] = readers.read_charades_sta(
                txt, csv_path, strict=strict
            )
        if "train" not in records:
            raise ValueError(
                f"{d}: expected charades_sta_train.txt and Charades_v1_train.csv"
            )
        carve_from = "train"
    elif options.dataset == "custom":
        return _read_custom(options)
    else:
        for split in ("train", "val", "test"):
            path = os.path.join(d, f"{split}_data.json")
            if os.path.isfile(path):
                files[f"{split}_annotations"] = path
                records[split], counters[split] = readers.read_didemo(path, strict=strict)
        if not records:
            raise ValueError(f"{d}: expected at least one of {{train,val,test}}_data.json")
        if "train" in records:
            carve_from = None
            if "val" in records:
                notes.append("val is the release's val_data.json (not carved from train)")
            else:
                carve_from = "train"
        elif "val" in records:
            notes.append(
                "train_data.json is absent: val_data.json is the training source and "
                "val is carved from it by video"
            )
            records["train"], counters["train"] = records.pop("val"), counters.pop("val")
            carve_from = "train"
        else:
            raise ValueError(f"{d}: DiDeMo needs train_data.json or val_data.json")
    if carve_from is not None:
        records["train"], records["val"] = carve_val(records["train"], options.val_fraction)
        counters["val"] = SkipCounter(strict=strict)
        notes.append(
            f"val = videos of the training source whose sha256(video id) falls below "
            f"val_fraction={options.val_fraction}; reader skips are counted under train"
        )
    return records, counters, files, notes


def _read_custom(options: BuildOptions):
    """Own videos: {train,val,test}.{jsonl,csv} in annotations_dir; durations from its
    durations.csv, else the `{stem}_durations.csv` extract_features wrote beside
    --features. Sentences without a moment train only: their videos stay in train."""
    d, strict = options.annotations_dir, options.strict
    durations_csv = os.path.join(d, "durations.csv")
    if not os.path.isfile(durations_csv):
        durations_csv = os.path.splitext(options.features)[0] + "_durations.csv"
    if not os.path.isfile(durations_csv):
        raise ValueError(
            f"custom: expected {os.path.join(d, 'durations.csv')} or {durations_csv} "
            "(written by data_prep.extract_features), found neither"
        )
    durations = readers.read_charades_durations(durations_csv)
    records, counters, files, notes = {}, {}, {"durations": durations_csv}, []
    for split in ("train", "val", "test"):
        for ext in (".jsonl", ".csv"):
            path = os.path.join(d, split + ext)
            if os.path.isfile(path):
                files[f"{split}_annotations"] = path
                records[split], counters[split] = readers.read_custom(path, durations, strict)
                break
    if "train" not in records:
        raise ValueError(f"{d}: custom needs train.jsonl or train.csv")
    for split in ("val", "test"):
        if split in records:
            unscored = [r for r in records[split] if not r.annotated]
            for r in unscored:
                counters[split].skip(readers.NO_MOMENTS, r.query_id)
            records[split] = [r for r in records[split] if r.annotated]
    if "val" not in records:
        train, val = carve_val(records["train"], options.val_fraction)
        unannotated = {r.video_id for r in val if not r.annotated}
        records["train"] = train + [r for r in val if r.video_id in unannotated]
        records["val"] = [r for r in val if r.video_id not in unannotated]
        counters["val"] = SkipCounter(strict=strict)
        notes.append(
            f"val = videos of train.* whose sha256(video id) falls below "
            f"val_fraction={options.val_fraction}, except videos with a sentence without "
            "a moment; reader skips are counted under train"
        )
    notes.append("custom: scored like Charades-STA (R@n at IoU thresholds)")
    return records, counters, files, notes


# ------------------------------------------------------------------------------ plan


@dataclasses.dataclass
class VideoPlan:
    video_id: str
    feature_key: str
    records: list[QueryRecord]


def _filter_by_features(
    groups: dict[str, list[QueryRecord]],
    store: feature_lib.FeatureStore,
    shapes: dict[str, tuple[int, ...] | None],
    feature_dim: int | None,
    counter: SkipCounter,
) -> list[VideoPlan]:
    """Videos whose stored features have a usable shape; the rest are counted."""
    plans = []
    for video_id, group in groups.items():
        key = store.resolve(video_id)
        reason = None
        if key is None:
            reason = feature_lib.MISSING_FEATURES
        else:
            shape = shapes[key]
            if shape is None or len(shape) != 2:
                reason = feature_lib.BAD_FEATURE_SHAPE
            elif shape[0] == 0 or shape[1] == 0:
                reason = feature_lib.EMPTY_FEATURES
            elif feature_dim is not None and shape[1] != feature_dim:
                reason = feature_lib.FEATURE_DIM_MISMATCH
        if reason is not None:
            counter.skip(reason, video_id, count=len(group))
            continue
        plans.append(VideoPlan(video_id, key, group))
    return plans


def _common_feature_dim(shapes: dict[str, tuple[int, ...] | None]) -> int | None:
    """The most common F among the usable [T, F] shapes (ties: the smaller F)."""
    dims = collections.Counter(
        s[1] for s in shapes.values() if s is not None and len(s) == 2 and s[0] > 0 and s[1] > 0
    )
    if not dims:
        return None
    return min(dims, key=lambda f: (-dims[f], f))


def _split_into_shards(
    videos: list[VideoPlan], shapes: dict[str, tuple[int, ...] | None], options: BuildOptions
) -> list[list[VideoPlan]]:
    """Contiguous runs of the id-sorted videos, balanced by count."""
    if not videos:
        return []
    if options.num_shards:
        n = options.num_shards
    else:
        total = sum(math.prod(shapes[v.feature_key]) * 4 for v in videos)
        n = math.ceil(total / (options.target_shard_mb * 2**20))
    n = max(1, min(n, len(videos)))
    return [videos[i * len(videos) // n : (i + 1) * len(videos) // n] for i in range(n)]


# ----------------------------------------------------------------------------- files


def _write_json_atomic(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_npy_atomic(path: str, array: np.ndarray) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove_stale(output_dir: str, planned: set[str]) -> None:
    """Deletes leftover temporary files and shards that are not in the plan."""
    from vlanet_tf.data import schema

    for split in schema.SPLITS:
        for path in glob.glob(os.path.join(output_dir, schema.shard_glob(split))):
            if os.path.basename(path) not in planned:
                os.remove(path)
        for path in glob.glob(os.path.join(output_dir, schema.shard_glob(split) + ".tmp")):
            os.remove(path)
    for name in (MANIFEST_FILE, VOCAB_FILE, EMBEDDINGS_FILE, STATE_FILE):
        tmp = os.path.join(output_dir, name + ".tmp")
        if os.path.exists(tmp):
            os.remove(tmp)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- build


LOCK_FILE = ".build.lock"


def build(
    options: BuildOptions, on_record_written: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Runs the whole conversion; returns the manifest (also written to output_dir).

    Holds `output_dir/.build.lock` (an flock, released by the kernel if the process
    dies) for the whole build, so a second build into the same directory stops at once
    with a clear message; removes manifest.json before writing anything and writes it
    last, so a directory without a manifest is visibly incomplete.
    """
    import fcntl

    os.makedirs(options.output_dir, exist_ok=True)
    lock_path = os.path.join(options.output_dir, LOCK_FILE)
    with open(lock_path, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(
                f"{options.output_dir}: another data_prep.build is writing this directory "
                f"(it holds {lock_path}); wait for it or use another --output_dir"
            ) from None
        manifest_path = os.path.join(options.output_dir, MANIFEST_FILE)
        if os.path.exists(manifest_path):
            os.remove(manifest_path)
        return _build(options, on_record_written)


def _build(
    options: BuildOptions, on_record_written: Callable[[], None] | None = None
) -> dict[str, Any]:
    """`build` under its lock.

    `on_record_written` is called after each record reaches a shard (progress hooks).

    Raises:
      readers.SkipError: in strict mode, at the first skipped record.
      ValueError: on missing or unusable inputs.
    """
    # TensorFlow is imported here, not at module level, so `--help` stays fast.
    import tensorflow as tf

    from vlanet_tf import text
    from vlanet_tf.data import schema

    start_time = time.time()
    records, counters, files, notes = read_annotations(options)
    splits = [s for s in schema.SPLITS if s in records]

    store = feature_lib.FeatureStore(options.features, options.feature_layout)
    try:
        groups = {s: readers.group_by_video(records[s]) for s in splits}
        keys = {store.resolve(v) for s in splits for v in groups[s]} - {None}
        shapes = {k: store.shape(k) for k in sorted(keys)}
        store.check_layout(keys)
        if options.feature_layout == feature_lib.I3D_LGI_LAYOUT:
            notes.append(
                "features: the I3D/LGI release (1024-d, about one row per 8 frames of "
                "the 24 fps RGB frames); rows are spread over the duration (SPEC §2), "
                "as LGI, CPL and PPS map times to rows"
            )
        feature_dim = _common_feature_dim(shapes)
        extractor = store.extractor()
        if feature_dim is None:
            raise ValueError(
                f"--features={options.features!r}: none of the annotated videos has "
                f"usable [T, F] features (looked up {sum(len(g) for g in groups.values())} "
                f"video ids, found {len(keys)})"
            )
        videos = {
            s: _filter_by_features(groups[s], store, shapes, feature_dim, counters[s])
            for s in splits
        }

        # Vocabulary from the training sentences only, so val/test words never leak in.
        kv, vectors_format = load_word_vectors(
            options.word_vectors,
            options.word_vectors_format,
            limit=options.word_vectors_limit or None,
        )
        train_sentences = [
            r.sentence
            for v in videos["train"]
            for r in v.records
            if len(text.words(r.sentence)) <= MAX_SENTENCE_WORDS
        ]
        vocabulary, embeddings, vocab_stats = text.build_vocabulary(
            train_sentences, kv, min_count=options.min_word_count
        )
        del kv
        token_ids = {t: i for i, t in enumerate(vocabulary.tokens)}
        for s in splits:
            kept_videos = []
            for video in videos[s]:
                kept = []
                for r in video.records:
                    if len(text.words(r.sentence)) > MAX_SENTENCE_WORDS:
                        counters[s].skip(SENTENCE_TOO_LONG, r.query_id)
                        continue
                    if text.known_word_count(r.sentence, token_ids) == 0:
                        counters[s].skip(ALL_OOV_SENTENCE, r.query_id)
                        continue
                    if (
                        options.max_query_length
                        and len(text.words(r.sentence)) > options.max_query_length
                    ):
                        counters[s].adjust(QUERY_TRUNCATED, r.query_id)
                    kept.append(r)
                if kept:
                    kept_videos.append(VideoPlan(video.video_id, video.feature_key, kept))
            videos[s] = kept_videos

        if not videos["train"]:
            skipped = dict(counters["train"].skips)
            raise ValueError(
                f"{options.annotations_dir}: the train split has no usable sentence "
                f"(skipped: {skipped or 'none; the file holds no record'})"
            )
        plan = {s: _split_into_shards(videos[s], shapes, options) for s in splits}
        shard_names = {
            s: [schema.shard_name(s, i, len(plan[s])) for i in range(len(plan[s]))]
            for s in splits
        }
        inputs = {role: _fingerprint_file(p, options.hash_limit_mb) for role, p in files.items()}
        inputs["features"] = _fingerprint_input(options.features, options.hash_limit_mb)
        inputs["word_vectors"] = _fingerprint_file(options.word_vectors, options.hash_limit_mb)
        flags = {k: v for k, v in dataclasses.asdict(options).items() if k != "output_dir"}
        fingerprint = hashlib.sha256(
            json.dumps(
                {
                    "schema": schema.SCHEMA_VERSION,
                    "flags": flags,
                    "inputs": inputs,
                    "plan": {
                        name: [v.video_id for v in shard]
                        for s in splits
                        for name, shard in zip(shard_names[s], plan[s])
                    },
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()

        state_path = os.path.join(options.output_dir, STATE_FILE)
        state = {"fingerprint": fingerprint, "shards": {}}
        if os.path.exists(state_path):
            with open(state_path, encoding="utf-8") as f:
                previous = json.load(f)
            if previous.get("fingerprint") == fingerprint:
                state = previous
            else:
                _log("inputs or flags changed since the last run: rewriting every shard")
        planned = {n for s in splits for n in shard_names[s]}
        _remove_stale(options.output_dir, planned)
        _write_json_atomic(state_path, state)

        vocabulary.save(os.path.join(options.output_dir, VOCAB_FILE))
        _save_npy_atomic(os.path.join(options.output_dir, EMBEDDINGS_FILE), embeddings)

        total_shards = len(planned)
        done_shards = 0
        for s in splits:
            for name, shard in zip(shard_names[s], plan[s]):
                done_shards += 1
                path = os.path.join(options.output_dir, name)
                entry = state["shards"].get(name)
                if (
                    entry is not None
                    and os.path.exists(path)
                    and os.path.getsize(path) == entry["bytes"]
                ):
                    _log(f"[{done_shards}/{total_shards}] {name}: kept from a previous run")
                    continue
                shard_counter = SkipCounter(strict=options.strict)
                shard_start = time.time()
                num_videos = num_sentences = 0
                last_report = shard_start
                with tf.io.TFRecordWriter(path + ".tmp") as writer:
                    for position, video in enumerate(shard):
                        if time.time() - last_report > PROGRESS_SECONDS:
                            last_report = time.time()
                            rate = position / (last_report - shard_start)
                            _log(f"  {name}: {position}/{len(shard)} videos, {rate:.1f} videos/s")
                        array = store.load(video.feature_key)
                        reason = feature_lib.check_features(array, feature_dim)
                        if reason is not None:
                            shard_counter.skip(reason, video.video_id, len(video.records))
                            continue
                        writer.write(
                            schema.encode(
                                schema.VideoExample(
                                    video_id=video.video_id,
                                    features=array,
                                    duration=video.records[0].duration,
                                    query_ids=[r.query_id for r in video.records],
                                    sentences=[r.sentence for r in video.records],
                                    moments=[r.moments for r in video.records],
                                )
                            )
                        )
                        num_videos += 1
                        num_sentences += len(video.records)
                        if on_record_written is not None:
                            on_record_written()
                os.replace(path + ".tmp", path)
                state["shards"][name] = {
                    "videos": num_videos,
                    "sentences": num_sentences,
                    "bytes": os.path.getsize(path),
                    "sha256": file_io.sha256(path),
                    "counts": shard_counter.to_dict(),
                }
                _write_json_atomic(state_path, state)
                elapsed = max(time.time() - shard_start, 1e-9)
                _log(
                    f"[{done_shards}/{total_shards}] {name}: {num_videos} videos, "
                    f"{num_sentences} sentences, {num_videos / elapsed:.1f} videos/s"
                )
    finally:
        store.close()

    split_info = {}
    for s in splits:
        entries = [state["shards"][n] for n in shard_names[s]]
        for entry in entries:
            counters[s].update(SkipCounter.from_dict(entry["counts"]))
        split_info[s] = {
            "videos": sum(e["videos"] for e in entries),
            "sentences": sum(e["sentences"] for e in entries),
            "bytes": sum(e["bytes"] for e in entries),
            "shards": shard_names[s],
            "skips": {r: int(c) for r, c in sorted(counters[s].skips.items())},
            "adjustments": {r: int(c) for r, c in sorted(counters[s].adjustments.items())},
        }
    total = SkipCounter()
    for s in splits:
        total.update(counters[s])
    manifest = {
        "schema_version": schema.SCHEMA_VERSION,
        "dataset": PROTOCOL.get(options.dataset, options.dataset),
        # The ExtractorSpec of vlanet_tf.video (None: features of unknown origin).
        "extractor": extractor,
        "splits": split_info,
        **total.to_dict(),
        "count_unit": "sentences",
        "feature_dim": int(feature_dim),
        "vocab_size": vocabulary.size,
        "word_dim": int(embeddings.shape[1]),
        "vocabulary": {**vocab_stats, "word_vectors_format": vectors_format},
        "max_query_length": options.max_query_length or None,
        "notes": notes,
        "flags": dataclasses.asdict(options),
        "inputs": inputs,
        # What readers check: sizes always, hashes on `prepared.verify(hashes=True)`.
        "files": {
            **{
                n: {"bytes": state["shards"][n]["bytes"], "sha256": state["shards"][n].get("sha256") or file_io.sha256(os.path.join(options.output_dir, n))}
                for s in splits
                for n in shard_names[s]
            },
            **{
                n: {"bytes": os.path.getsize(os.path.join(options.output_dir, n)), "sha256": file_io.sha256(os.path.join(options.output_dir, n))}
                for n in (VOCAB_FILE, EMBEDDINGS_FILE)
            },
        },
    }
    _write_json_atomic(os.path.join(options.output_dir, MANIFEST_FILE), manifest)
    print(format_summary(manifest))
    _log(f"done in {time.time() - start_time:.1f}s: {options.output_dir}")
    return manifest


def format_summary(manifest: dict[str, Any]) -> str:
    """A plain-text table: sentences/videos per split, then counts per reason."""
    splits = list(manifest["splits"])
    lines = [f"{'split':<8}{'videos':>10}{'sentences':>12}{'shards':>8}"]
    for s in splits:
        info = manifest["splits"][s]
        lines.append(f"{s:<8}{info['videos']:>10}{info['sentences']:>12}{len(info['shards']):>8}")
    for kind in ("skips", "adjustments"):
        reasons = sorted({r for s in splits for r in manifest["splits"][s][kind]})
        lines.append("")
        lines.append(f"{kind} (sentences)".ljust(36) + "".join(f"{s:>8}" for s in splits))
        if not reasons:
            lines.append("  none")
        for r in reasons:
            counts = "".join(f"{manifest['splits'][s][kind].get(r, 0):>8}" for s in splits)
            lines.append(f"  {r:<34}{counts}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_enum("dataset", None, list(DATASETS), "Which release layout to read.")
    flags.DEFINE_string(
        "annotations_dir",
        None,
        "Folder with charades_sta_{train,test}.txt + Charades_v1_{train,test}.csv, "
        "DiDeMo {train,val,test}_data.json, or custom {train,val,test}.{jsonl,csv}.",
    )
    flags.DEFINE_string(
        "features", None, "HDF5 file with one [T, F] dataset per video, or a .npy folder."
    )
    flags.DEFINE_string("word_vectors", None, "GloVe or word2vec vectors file.")
    flags.DEFINE_enum(
        "word_vectors_format", "auto", list(FORMATS), "Format of --word_vectors."
    )
    flags.DEFINE_integer(
        "word_vectors_limit", 0, "Read only the first N vectors (0: all)."
    )
    flags.DEFINE_string("output_dir", None, "Where shards, vocab and manifest go.")
    flags.DEFINE_integer(
        "num_shards", 0, "Shards per split; 0 sizes them by --target_shard_mb."
    )
    flags.DEFINE_float("target_shard_mb", 256.0, "Target shard size when num_shards=0.")
    flags.DEFINE_float(
        "val_fraction", 0.1, "Share of training videos carved out as val (by video id hash)."
    )
    flags.DEFINE_boolean("strict", False, "Fail at the first skipped record.")
    flags.DEFINE_integer("min_word_count", 1, "Training count for a word to get an id.")
    flags.DEFINE_integer(
        "max_query_length", 0, "Truncate queries to N tokens in the pipeline (0: never)."
    )
    flags.DEFINE_float(
        "hash_limit_mb", 1024.0, "Inputs above this size are fingerprinted by size+mtime."
    )
    flags.DEFINE_enum(
        "feature_layout",
        feature_lib.AUTO_LAYOUT,
        list(feature_lib.FEATURE_LAYOUTS),
        "auto: any [T, F] array per video (C3D, DiDeMo fc7, own extractions); i3d_lgi: "
        "the Charades-STA I3D features of the LGI release ([T, 1, 1, 1024] .npy per "
        "video, or CPL's i3d_features.hdf5), checked to be [T, 1024].",
    )
    for name in ("dataset", "annotations_dir", "features", "word_vectors", "output_dir"):
        flags.mark_flag_as_required(name)


def options_from_flags(flag_values: Any) -> BuildOptions:
    """BuildOptions from the parsed flags (one flag per field, same names)."""
    return BuildOptions(
        **{f.name: flag_values[f.name].value for f in dataclasses.fields(BuildOptions)}
    )


def main(argv: Sequence[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    build(options_from_flags(flags.FLAGS))


if __name__ == "__main__":
    from absl import app

    from vlanet_tf.flags import one_line_errors

    _define_flags()
    app.run(one_line_errors(main))
