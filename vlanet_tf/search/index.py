"""The collection index: each video's cached proposals on disk, and its FAISS index.

```
DIR/index.json             format, the run's fingerprint and source, D, L, the shards
                           (file, video count) in order, skipped videos by reason;
                           written atomically after every shard
DIR/shards/shard-NNNNN.npz video_ids [V], durations f32 [V], group_offsets i64 [V + 1],
                           proposals f16 [G, L, D] (unit rows), windows f32 [G, L, 2]
                           seconds, mask bool [G, L]; G: the valid segment groups of
                           the V videos, video i owning groups offsets[i]:offsets[i+1]
```
A build walks the features file's videos in sorted order, `shard_size` at a time: it
writes a shard (atomically, `vlanet_tf.files`) and then the manifest that lists it, so
a killed build resumes at the first video no listed shard holds and ends with the same
files as an uninterrupted one. Adding videos is the same walk over the ids the index
does not hold yet. The manifest records the run's fingerprint; building on or opening
an index with another model raises `ModelMismatch`.

The stage-1 index (FAISS, maximum inner product over every valid proposal) is built
from the shards the first time an index is opened: exact (`IndexFlatIP`) up to
`FLAT_LIMIT` vectors, an inverted file with 8-bit scalar-quantised vectors beyond. It
is then kept on disk (`DIR/stage1.faiss`, written atomically, and `DIR/stage1.json`:
the shards it covers, their SHA-256, and its kind), so later opens read it instead of
training and filling it again; adding videos, another shard file or another kind makes
it stale and it is rebuilt. An index folder that cannot be written is still opened
(the stage-1 index is then built in memory only).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable, Iterable, Sequence

import h5py
import numpy as np

from vlanet_tf import files
from vlanet_tf.data import features as features_lib
from vlanet_tf.data import readers

FORMAT = 1
MANIFEST = "index.json"
SHARDS_DIR = "shards"
SHARD_PATTERN = "shard-{:05d}.npz"
DEFAULT_SHARD_SIZE = 256
DEFAULT_BATCH_SIZE = 32
# Up to this many proposal vectors stage 1 is exact (a flat scan); above, an IVF.
FLAT_LIMIT = 200_000
IVF_NPROBE = 32
STAGE1_FILE = "stage1.faiss"
STAGE1_MANIFEST = "stage1.json"
MISSING_DURATION = "missing_duration"
DURATION_ATTRIBUTE = "duration"


class ModelMismatch(ValueError):
    """The index was built with another run (config or weights differ)."""


@dataclasses.dataclass
class Proposals:
    """Cached proposals of V videos, groups concatenated (the shard layout)."""

    video_ids: np.ndarray  # str [V]
    durations: np.ndarray  # f32 [V]
    group_offsets: np.ndarray  # i64 [V + 1]
    proposals: np.ndarray  # f16 [G, L, D]
    windows: np.ndarray  # f32 [G, L, 2]
    mask: np.ndarray  # bool [G, L]

    @property
    def num_videos(self) -> int:
        return int(self.video_ids.shape[0])

    @staticmethod
    def concatenate(parts: Sequence["Proposals"]) -> "Proposals":
        offsets, base = [np.zeros(1, np.int64)], 0
        for part in parts:
            offsets.append(part.group_offsets[1:] + base)
            base += int(part.group_offsets[-1])
        return Proposals(
            np.concatenate([p.video_ids for p in parts]),
            np.concatenate([p.durations for p in parts]).astype(np.float32),
            np.concatenate(offsets),
            np.concatenate([p.proposals for p in parts]),
            np.concatenate([p.windows for p in parts]),
            np.concatenate([p.mask for p in parts]),
        )

    def save(self, path: str) -> None:
        with files.atomic_path(path) as tmp:
            np.savez(
                tmp,
                video_ids=self.video_ids.astype(str),
                durations=self.durations,
                group_offsets=self.group_offsets,
                proposals=self.proposals,
                windows=self.windows,
                mask=self.mask,
            )

    @staticmethod
    def load(path: str) -> "Proposals":
        with np.load(path) as z:
            return Proposals(**{f.name: z[f.name] for f in dataclasses.fields(Proposals)})

    def padded(self, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """proposals [N, K, L, D], windows [N, K, L, 2], mask [N, K, L] of `videos`.

        K is the largest group count among them; shorter videos are padded with masked
        groups (zero vectors), which neither selection nor the cascade can pick.
        """
        starts, ends = self.group_offsets[videos], self.group_offsets[videos + 1]
        counts = ends - starts
        k = max(int(counts.max(initial=1)), 1)
        n, scales, d = len(videos), self.proposals.shape[1], self.proposals.shape[2]
        rows = starts[:, None] + np.arange(k)[None, :]
        inside = np.arange(k)[None, :] < counts[:, None]
        rows = np.where(inside, rows, 0)
        proposals = self.proposals[rows] * inside[..., None, None].astype(np.float16)
        windows = self.windows[rows] * inside[..., None, None]
        mask = self.mask[rows] & inside[..., None]
        return (
            proposals.reshape(n, k, scales, d),
            windows.astype(np.float32),
            mask,
        )


# ---------------------------------------------------------------------- durations


def duration_lookup(
    store: features_lib.FeatureStore, durations_csv: str | None = None
) -> Callable[[str], float | None]:
    """video id -> seconds: the CSV's `length` (Charades_v1_*.csv: id, length), else the
    dataset's `duration` attribute in the HDF5 file, else None."""
    table = readers.read_charades_durations(durations_csv) if durations_csv else {}
    h5 = h5py.File(store.path, "r") if os.path.isfile(store.path) else None

    def lookup(video_id: str) -> float | None:
        if video_id in table:
            return table[video_id]
        if h5 is not None and video_id in h5:
            value = h5[video_id].attrs.get(DURATION_ATTRIBUTE)
            return None if value is None else float(value)
        return None

    return lookup


# ---------------------------------------------------------------------- manifest


def manifest_path(index_dir: str) -> str:
    return os.path.join(index_dir, MANIFEST)


def read_manifest(index_dir: str) -> dict[str, Any]:
    path = manifest_path(index_dir)
    if not os.path.isfile(path):
        raise ValueError(
            f"{index_dir!r} is not a search index: expected {MANIFEST} there (written by "
            "`python -m vlanet_tf.search index`)"
        )
    manifest = files.read_json(path)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: index format {manifest.get('format')!r}, expected {FORMAT}")
    return manifest


def check_model(manifest: dict[str, Any], model: Any, index_dir: str) -> None:
    if manifest["model"]["fingerprint"] != model.fingerprint:
        raise ModelMismatch(
            f"the index {index_dir!r} was built with the run {manifest['model']['source']!r} "
            f"(fingerprint {manifest['model']['fingerprint'][:12]}), not with this model "
            f"({model.source!r}, {model.fingerprint[:12]}); rebuild the index or use "
            "that run"
        )


# ---------------------------------------------------------------------- building


@dataclasses.dataclass
class BuildReport:
    added: int
    skipped: dict[str, int]
    total: int
    seconds: float


def _progress_printer(stream=sys.stderr) -> Callable[[int, int, float], None]:
    def show(done: int, todo: int, seconds: float) -> None:
        rate = done / seconds if seconds > 0 else 0.0
        stream.write(f"\rindexed {done}/{todo} videos ({rate:.1f} videos/s)")
        if done == todo:
            stream.write("\n")
        stream.flush()

    return show


def _encode_shard(model, store, lookup, video_ids, batch_size) -> Proposals:
    parts = []
    for start in range(0, len(video_ids), batch_size):
        batch = video_ids[start : start + batch_size]
        arrays = [store.load(store.resolve(v)) for v in batch]
        t = max(a.shape[0] for a in arrays)
        features = np.zeros((len(batch), t, model.feature_dim), np.float32)
        for i, a in enumerate(arrays):
            features[i, : a.shape[0]] = a
        length = np.array([a.shape[0] for a in arrays], np.int32)
        duration = np.array([lookup(v) for v in batch], np.float32)
        out = model.encode_videos(features, length, duration)
        groups = out["mask"].any(axis=-1)  # [B, K]; the valid groups are a prefix
        counts = groups.sum(axis=1)
        parts.append(
            Proposals(
                np.array(batch, dtype=str),
                duration,
                np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                np.concatenate([out["proposals"][i, :c] for i, c in enumerate(counts)]),
                np.concatenate([out["windows"][i, :c] for i, c in enumerate(counts)]),
                np.concatenate([out["mask"][i, :c] for i, c in enumerate(counts)]),
            )
        )
    return Proposals.concatenate(parts)


def build_index(
    model: Any,
    features: str,
    index_dir: str,
    durations_csv: str | None = None,
    video_ids: Iterable[str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int, int, float], None] | None | bool = True,
    after_shard: Callable[[int], None] | None = None,
) -> BuildReport:
    """Indexes the videos of `features` that `index_dir` does not hold yet.

    Creates the index, adds to it, or resumes a killed build (module docstring).

    Args:
      model: a `SearchModel` or `SavedModelSearch`; an existing index must have been
        built with it.
      features: HDF5 file or folder of .npy files (`vlanet_tf.data.features`).
      durations_csv: Charades-style CSV (id, length); without it each HDF5 dataset's
        `duration` attribute is used. Videos without a duration are skipped.
      video_ids: only these (default: every video of `features`).
      progress: True prints progress to stderr; a callable gets (done, todo, seconds).
      after_shard: called with the shard number after each shard and its manifest are
        on disk (to stop a build part-way, e.g. in a test).
    """
    started = time.monotonic()
    if progress is True:
        progress = _progress_printer()
    os.makedirs(os.path.join(index_dir, SHARDS_DIR), exist_ok=True)
    if os.path.isfile(manifest_path(index_dir)):
        manifest = read_manifest(index_dir)
        check_model(manifest, model, index_dir)
    else:
        manifest = {
            "format": FORMAT,
            "model": {
                "fingerprint": model.fingerprint,
                "source": model.source,
                "kind": "saved_model" if hasattr(model, "loaded") else "run",
            },
            "hidden_dim": model.hidden_dim,
            "num_scales": model.num_scales,
            "shards": [],
            "skipped": {},
        }
    held = set()
    for shard in manifest["shards"]:
        held.update(Proposals.load(os.path.join(index_dir, shard["file"])).video_ids.tolist())
    skipped: dict[str, int] = {}
    todo = []
    with features_lib.FeatureStore(features) as store:
        lookup = duration_lookup(store, durations_csv)
        wanted = sorted(video_ids) if video_ids is not None else store.keys()
        for vid in wanted:
            if vid in held:
                continue
            key = store.resolve(vid)
            reason = None
            if key is None:
                reason = features_lib.MISSING_FEATURES
            else:
                reason = features_lib.check_features(store.load(key), model.feature_dim)
            if reason is None:
                duration = lookup(vid)
                if duration is None or not math.isfinite(duration) or duration <= 0:
                    reason = MISSING_DURATION
            if reason is not None:
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            todo.append(vid)
        done = 0
        for start in range(0, len(todo), shard_size):
            chunk = todo[start : start + shard_size]
            number = len(manifest["shards"])
            name = os.path.join(SHARDS_DIR, SHARD_PATTERN.format(number))
            _encode_shard(model, store, lookup, chunk, batch_size).save(
                os.path.join(index_dir, name)
            )
            manifest["shards"].append({"file": name, "videos": len(chunk)})
            files.write_json(manifest_path(index_dir), manifest)
            done += len(chunk)
            if progress:
                progress(done, len(todo), time.monotonic() - started)
            if after_shard is not None:
                after_shard(number)
    for reason, count in skipped.items():
        manifest["skipped"][reason] = manifest["skipped"].get(reason, 0) + count
    files.write_json(manifest_path(index_dir), manifest)
    total = sum(s["videos"] for s in manifest["shards"])
    return BuildReport(len(todo), skipped, total, time.monotonic() - started)


# ---------------------------------------------------------------------- stage 1


def faiss_index(
    vectors: np.ndarray,
    flat_limit: int = FLAT_LIMIT,
    nprobe: int = IVF_NPROBE,
    valid: np.ndarray | None = None,
    chunk: int = 1 << 20,
):
    """Maximum-inner-product FAISS index over unit vectors [P, D] (any float dtype).

    Only the rows where `valid` holds are added, in order. Rows go to FAISS as float32
    `chunk` at a time, so a float16 collection is never copied whole (100,000 videos of
    270 proposals of D = 64 are 3.5 GB in float16, twice that in float32).

    Exact `IndexFlatIP` up to `flat_limit` vectors. Beyond, `IndexIVFScalarQuantizer`
    (8-bit, inner product): sqrt(P) lists trained on a sample, `nprobe` of them scanned
    per query, so a query scans about nprobe * sqrt(P) codes of D bytes.
    """
    import faiss

    rows = None if valid is None else np.flatnonzero(valid)
    p, d = (vectors.shape[0] if rows is None else rows.shape[0]), vectors.shape[1]

    def take(which) -> np.ndarray:
        return np.ascontiguousarray(vectors[which if rows is None else rows[which]], np.float32)

    if p <= flat_limit:
        index = faiss.IndexFlatIP(d)
    else:
        nlist = int(math.sqrt(p))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).choice(p, min(p, 40 * nlist), replace=False)
        index.train(take(np.sort(sample)))
        index.nprobe = min(nprobe, nlist)
    for start in range(0, p, chunk):
        index.add(take(slice(start, min(p, start + chunk))))
    return index


def _stage1_key(index_dir: str, manifest: dict[str, Any], flat_limit: int) -> dict[str, Any]:
    """What a kept stage-1 index must have been built from to be reused."""
    return {
        "shards": [
            {**s, "sha256": files.sha256(os.path.join(index_dir, s["file"]))}
            for s in manifest["shards"]
        ],
        "flat_limit": flat_limit,
        "nprobe": IVF_NPROBE,
    }


def _kept_stage1(index_dir: str, key: dict[str, Any]) -> Any | None:
    """The stage-1 index kept in `index_dir` if it was built from `key`, else None."""
    import faiss

    path = os.path.join(index_dir, STAGE1_FILE)
    try:
        if files.read_json(os.path.join(index_dir, STAGE1_MANIFEST)) != key:
            return None
        return faiss.read_index(path)
    except (OSError, ValueError, RuntimeError):  # Missing, truncated or unreadable.
        return None


def _keep_stage1(index_dir: str, key: dict[str, Any], index: Any) -> None:
    """Writes the stage-1 index and then its key, each atomically; a folder that cannot
    be written is left as it is."""
    import faiss

    try:
        # The old key goes first: a kill between the two writes leaves no key, not an
        # old key beside a new index.
        if os.path.exists(os.path.join(index_dir, STAGE1_MANIFEST)):
            os.remove(os.path.join(index_dir, STAGE1_MANIFEST))
        with files.atomic_path(os.path.join(index_dir, STAGE1_FILE)) as tmp:
            faiss.write_index(index, tmp)
        files.write_json(os.path.join(index_dir, STAGE1_MANIFEST), key)
    except (OSError, RuntimeError) as error:
        print(f"stage-1 index not kept in {index_dir}: {error}", file=sys.stderr)


class Index:
    """An opened index: every video's cached proposals and the stage-1 FAISS index."""

    def __init__(
        self,
        proposals: Proposals,
        manifest: dict[str, Any],
        flat_limit: int = FLAT_LIMIT,
        stage1: Any | None = None,
    ):
        """`stage1`: a FAISS index over exactly these proposals (a kept one); built
        from them when None."""
        self.data = proposals
        self.manifest = manifest
        valid = proposals.mask.reshape(-1)
        d = proposals.proposals.shape[-1]
        group_video = np.repeat(
            np.arange(proposals.num_videos), np.diff(proposals.group_offsets)
        )
        scales = proposals.mask.shape[1]
        # Row of FAISS vector i -> its video.
        self.vector_video = np.repeat(group_video, scales)[valid].astype(np.int64)
        if stage1 is not None and stage1.ntotal != self.vector_video.shape[0]:
            raise ValueError(
                f"a stage-1 index of {stage1.ntotal} vectors for "
                f"{self.vector_video.shape[0]} proposals"
            )
        self.faiss = stage1 if stage1 is not None else faiss_index(
            proposals.proposals.reshape(-1, d), flat_limit, valid=valid
        )
        self.stage1_reused = stage1 is not None
        import faiss

        # One query at a time: FAISS's OpenMP threads would only spin-wait beside
        # TensorFlow's and slow the cascade (measured: stage 1 of 30k vectors 34 ms
        # with them, well under 1 ms without). Process-wide, set after the build.
        faiss.omp_set_num_threads(1)

    @classmethod
    def open(cls, index_dir: str, flat_limit: int = FLAT_LIMIT) -> "Index":
        manifest = read_manifest(index_dir)
        if not manifest["shards"]:
            raise ValueError(f"the index {index_dir!r} holds no video yet")
        parts = [Proposals.load(os.path.join(index_dir, s["file"])) for s in manifest["shards"]]
        key = _stage1_key(index_dir, manifest, flat_limit)
        kept = _kept_stage1(index_dir, key)
        index = cls(Proposals.concatenate(parts), manifest, flat_limit, stage1=kept)
        if kept is None:
            _keep_stage1(index_dir, key, index.faiss)
        return index

    @property
    def num_videos(self) -> int:
        return self.data.num_videos

    @property
    def num_vectors(self) -> int:
        return int(self.vector_video.shape[0])

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held in memory: cached proposals (stage 2) and the FAISS index."""
        import faiss

        cached = sum(
            a.nbytes
            for a in (
                self.data.proposals,
                self.data.windows,
                self.data.mask,
                self.data.group_offsets,
                self.data.durations,
            )
        )
        stage1 = int(faiss.serialize_index(self.faiss).nbytes) + self.vector_video.nbytes
        return {"proposals": int(cached), "stage1": stage1, "total": int(cached) + stage1}

    def top_videos(self, last: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Stage 1: the `count` videos with the largest max_p <w_M, p>, best first.

        Returns (video indices, their max inner product). Asks FAISS for more proposals
        until `count` distinct videos are seen or every vector has been returned.
        """
        query = np.ascontiguousarray(last[None], np.float32)
        k = min(self.num_vectors, max(4 * count * self.data.mask.shape[1], 256))
        while True:
            scores, rows = self.faiss.search(query, k)
            rows, scores = rows[0], scores[0]
            keep = rows >= 0
            videos = self.vector_video[rows[keep]]
            _, first = np.unique(videos, return_index=True)
            first.sort()
            # An IVF returns fewer than k rows once its probed lists are exhausted.
            if len(first) >= count or k >= self.num_vectors or keep.sum() < k:
                first = first[:count]
                return videos[first], scores[keep][first]
            k = min(self.num_vectors, 4 * k)
