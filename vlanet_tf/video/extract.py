"""Videos -> clip features: one video as an array, or many into a resumable HDF5 store.

A store is one HDF5 file with a float32 [T, F] dataset per video id (the file's stem),
dataset attributes `duration` (seconds) and `num_frames` (at the spec's fps), and the
file attribute `vlanet_extractor` (the ExtractorSpec as JSON). Beside it:
`{stem}_durations.csv` (the Charades_v1_*.csv layout: `id` ... `length`) and
`{stem}.report.json` (counts, the videos that yielded nothing and why, timing).

Work in progress lives in `{output}.parts/`: a video's clips are appended to
`{id}.f32.tmp` as they come, renamed to `{id}.f32` when the video is done, and
`{id}.json` (shape, duration) is written last, atomically. A video counts as done only
when its json is there and the .f32 has the size it names, so a run killed at any point
and started again redoes only unfinished videos. The store is written at the end from
the previous store (same extractor) and the parts, under a temporary name, then renamed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Sequence, TextIO

import numpy as np

from vlanet_tf import files
from vlanet_tf.data.features import EXTRACTOR_ATTR, VIDEO_EXTENSIONS
from vlanet_tf.video import decode
from vlanet_tf.video.decode import VideoError
from vlanet_tf.video.extractor import Extractor, ExtractorSpec, check_same

CHARADES_COLUMNS = ("id", "subject", "scene", "quality", "relevance", "verified", "script",
                    "objects", "descriptions", "actions", "length")


@dataclasses.dataclass
class VideoStats:
    num_clips: int = 0
    num_frames: int = 0  # resampled frames (at spec.fps)
    embedded: int = 0  # frames through the backbone
    decode_seconds: float = 0.0
    backbone_seconds: float = 0.0
    duration_seconds: float = 0.0  # num_frames / fps


def iter_clip_features(
    path: str, extractor: Extractor, batch_size: int = 32, stats: VideoStats | None = None
) -> Iterator[np.ndarray]:
    """Yields float32 [n, F] runs of consecutive clip features of one video, in order.

    Frames are streamed and sent through the backbone `batch_size` at a time, so memory
    is constant in the video's length. Fills `stats` (duration = frames / fps).
    Raises VideoError (the video yields no clip).
    """
    spec = extractor.spec
    stats = stats if stats is not None else VideoStats()
    c = spec.clip_frames
    positions = set(spec.sample_positions())
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    images: list[np.ndarray] = []
    owners: list[int] = []
    next_clip = 0  # first clip not yet yielded

    def run_batch() -> None:
        start = time.perf_counter()
        features = extractor.embed(np.stack(images))
        stats.backbone_seconds += time.perf_counter() - start
        stats.embedded += len(images)
        for clip, feature in zip(owners, features):
            if clip in sums:
                sums[clip] += feature
            else:
                sums[clip] = feature.astype(np.float64)
            counts[clip] = counts.get(clip, 0) + 1
        images.clear()
        owners.clear()

    def ready(upto: int) -> np.ndarray | None:
        nonlocal next_clip
        rows = []
        while next_clip < upto and next_clip in sums:
            rows.append(sums.pop(next_clip) / counts.pop(next_clip))
            next_clip += 1
        return np.asarray(rows, np.float32) if rows else None

    frames = decode.resampled_frames(
        path, spec.fps, lambda k: k % c in positions, spec.image_size
    )
    num_frames = 0
    while True:
        start = time.perf_counter()
        try:
            k, image = next(frames)
        except StopIteration:
            stats.decode_seconds += time.perf_counter() - start
            break
        stats.decode_seconds += time.perf_counter() - start
        num_frames = k + 1
        if image is not None:
            images.append(image)
            owners.append(k // c)
            if len(images) >= batch_size:
                run_batch()
                rows = ready(num_frames // c)
                if rows is not None:
                    stats.num_clips += len(rows)
                    yield rows
    stats.num_frames = num_frames
    stats.duration_seconds = num_frames / spec.fps
    full, rest = divmod(num_frames, c)
    keep = full + (1 if rest and 2 * rest >= c else 0)
    if images:
        run_batch()
    for clip in [k for k in sums if k >= keep]:
        del sums[clip]
    rows = ready(keep)
    if rows is not None:
        stats.num_clips += len(rows)
        yield rows
    if stats.num_clips == 0:
        raise VideoError(
            decode.SHORTER_THAN_CLIP, path,
            f"{num_frames} frames at {spec.fps:g} fps, a clip is {c}",
        )


def extract_video(path: str, extractor: Extractor, batch_size: int = 32
                  ) -> tuple[np.ndarray, float]:
    """(float32 [T, F] clip features, duration in seconds) of one video file."""
    stats = VideoStats()
    rows = list(iter_clip_features(path, extractor, batch_size, stats))
    return np.concatenate(rows), stats.duration_seconds


# ------------------------------------------------------------------------- the store


def list_videos(source: str) -> list[tuple[str, str]]:
    """(video id, path) sorted by id, from a folder (video extensions) or a list file
    (one path a line, relative to the list file's folder; # comments)."""
    if os.path.isdir(source):
        paths = [
            os.path.join(source, n) for n in os.listdir(source)
            if os.path.splitext(n)[1].lower() in VIDEO_EXTENSIONS
        ]
    elif os.path.isfile(source):
        base = os.path.dirname(os.path.abspath(source))
        with open(source, encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
        paths = [os.path.join(base, ln) for ln in lines if ln and not ln.startswith("#")]
    else:
        raise ValueError(f"--videos={source!r}: expected a folder of videos or a list file")
    videos: dict[str, str] = {}
    for path in paths:
        video_id = os.path.splitext(os.path.basename(path))[0]
        if video_id in videos:
            raise ValueError(
                f"two videos share the id {video_id!r}: {videos[video_id]} and {path}"
            )
        videos[video_id] = path
    return sorted(videos.items())


def shard(videos: Sequence[tuple[str, str]], index: int, num_shards: int
          ) -> list[tuple[str, str]]:
    """The videos of shard `index` of `num_shards` (every num_shards-th, by id)."""
    if not 0 <= index < num_shards:
        raise ValueError(f"--shard must be in [0, {num_shards}), got {index}")
    return list(videos[index::num_shards])


def shard_output(output: str, index: int, num_shards: int) -> str:
    root, ext = os.path.splitext(output)
    return f"{root}.shard-{index:05d}-of-{num_shards:05d}{ext or '.h5'}"


def durations_path(output: str) -> str:
    return os.path.splitext(output)[0] + "_durations.csv"


def report_path(output: str) -> str:
    return os.path.splitext(output)[0] + ".report.json"


def read_spec(h5_path: str) -> ExtractorSpec | None:
    """The extractor recorded in a feature file (None: features of unknown origin)."""
    import h5py

    with h5py.File(h5_path, "r") as f:
        raw = f.attrs.get(EXTRACTOR_ATTR)
    return None if raw is None else ExtractorSpec.from_dict(json.loads(raw))


class ExtractionError(Exception):
    """--strict: a video yielded no features."""


@dataclasses.dataclass
class Progress:
    """Prints a line per video: done/total, frames/s, ETA; and the summary."""

    total: int
    stream: TextIO = sys.stderr
    start: float = dataclasses.field(default_factory=time.time)
    done: int = 0
    frames: int = 0

    def video(self, video_id: str, message: str, frames: int = 0) -> None:
        self.done += 1
        self.frames += frames
        elapsed = max(time.time() - self.start, 1e-9)
        rate = self.frames / elapsed
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {video_id}: {message}; {rate:.0f} frames/s, "
              f"ETA {eta:.0f}s", file=self.stream, flush=True)


class _Parts:
    """The work folder of a store in progress."""

    def __init__(self, output: str, spec: ExtractorSpec):
        self.dir = output + ".parts"
        os.makedirs(self.dir, exist_ok=True)
        spec_file = os.path.join(self.dir, "extractor.json")
        if os.path.exists(spec_file):
            check_same(files.read_json(spec_file), spec, "the unfinished features in "
                       f"{self.dir}")
        else:
            files.write_json(spec_file, spec.to_dict())

    def _paths(self, video_id: str) -> tuple[str, str]:
        return (os.path.join(self.dir, video_id + ".f32"),
                os.path.join(self.dir, video_id + ".json"))

    def done(self, video_id: str) -> dict[str, Any] | None:
        data, meta = self._paths(video_id)
        if not os.path.exists(meta):
            return None
        info = files.read_json(meta)
        if not os.path.exists(data) or os.path.getsize(data) != 4 * info["rows"] * info["dim"]:
            os.remove(meta)  # A .f32 that does not match its record: redo the video.
            return None
        return info

    def write(self, video_id: str, rows: Iterable[np.ndarray], stats: VideoStats,
              on_rows: Callable[[str, int], None] | None) -> dict[str, Any]:
        data, meta = self._paths(video_id)
        tmp = data + ".tmp"
        written, dim = 0, 0
        try:
            with open(tmp, "wb") as f:
                for chunk in rows:
                    f.write(np.ascontiguousarray(chunk, "<f4").tobytes())
                    f.flush()
                    written += len(chunk)
                    dim = chunk.shape[1]
                    if on_rows is not None:
                        on_rows(video_id, written)
                os.fsync(f.fileno())
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        os.replace(tmp, data)
        info = {"rows": written, "dim": dim, "duration": stats.duration_seconds,
                "num_frames": stats.num_frames}
        files.write_json(meta, info)
        return info

    def load(self, video_id: str, info: dict[str, Any]) -> np.ndarray:
        data, _ = self._paths(video_id)
        return np.fromfile(data, "<f4").reshape(info["rows"], info["dim"])


def extract_store(
    videos: Sequence[tuple[str, str]],
    extractor: Extractor,
    output: str,
    batch_size: int = 32,
    strict: bool = False,
    on_rows: Callable[[str, int], None] | None = None,
    stream: TextIO = sys.stderr,
) -> dict[str, Any]:
    """Extracts `videos` into the store `output` (resuming); returns the report.

    `on_rows(video_id, clips written so far)` is called after each run of clips reaches
    the disk (progress and test hooks).
    Raises ExtractionError with `strict` at the first video that yields nothing.
    """
    import h5py

    spec = extractor.spec
    start = time.time()
    previous = _previous_store(output, spec)
    parts = _Parts(output, spec)
    progress = Progress(len(videos), stream)
    failures: list[dict[str, str]] = []
    kept = extracted = 0
    totals = VideoStats()
    for video_id, path in videos:
        if video_id in previous or parts.done(video_id) is not None:
            kept += 1
            progress.video(video_id, "done in an earlier run")
            continue
        stats = VideoStats()
        try:
            info = parts.write(
                video_id, iter_clip_features(path, extractor, batch_size, stats), stats,
                on_rows,
            )
        except VideoError as error:
            failures.append({"video": video_id, "path": path, "reason": error.reason,
                             "detail": error.detail})
            progress.video(video_id, f"skipped: {error.reason}")
            if strict:
                _write_report(output, spec, videos, failures, kept, extracted, totals, start)
                raise ExtractionError(str(error)) from error
            continue
        extracted += 1
        for name in ("num_frames", "embedded", "decode_seconds", "backbone_seconds"):
            setattr(totals, name, getattr(totals, name) + getattr(stats, name))
        progress.video(video_id, f"{info['rows']} clips, {stats.duration_seconds:.1f}s",
                       stats.num_frames)

    wanted = [v for v, _ in videos]
    with files.atomic_path(output) as tmp:
        with h5py.File(tmp, "w") as out:
            out.attrs[EXTRACTOR_ATTR] = spec.to_json()
            if previous:
                with h5py.File(output, "r") as old:
                    for video_id in old:
                        old.copy(old[video_id], out, name=video_id)
            for video_id in wanted:
                info = parts.done(video_id)
                if info is None or video_id in out:
                    continue
                _put(out, video_id, parts.load(video_id, info), info)
    write_durations(output)
    report = _write_report(output, spec, videos, failures, kept, extracted, totals, start)
    shutil.rmtree(parts.dir)
    print(format_summary(report), file=stream, flush=True)
    return report


def _put(out, video_id: str, array: np.ndarray, info: dict[str, Any]) -> None:
    dataset = out.create_dataset(video_id, data=array)
    dataset.attrs["duration"] = float(info["duration"])
    dataset.attrs["num_frames"] = int(info["num_frames"])


def _previous_store(output: str, spec: ExtractorSpec) -> set[str]:
    """Video ids of an earlier store at `output` (refused if from another extractor)."""
    import h5py

    if not os.path.exists(output):
        return set()
    check_same(read_spec(output), spec, f"the features already in {output}")
    with h5py.File(output, "r") as f:
        return set(f.keys())


def write_durations(output: str) -> str:
    """`{stem}_durations.csv` (Charades_v1 layout) from a store's duration attributes."""
    import h5py

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CHARADES_COLUMNS)
    with h5py.File(output, "r") as f:
        for video_id in sorted(f):
            row = [""] * len(CHARADES_COLUMNS)
            row[0], row[-1] = video_id, f"{float(f[video_id].attrs['duration']):.3f}"
            writer.writerow(row)
    path = durations_path(output)
    files.write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path


def _write_report(output, spec, videos, failures, kept, extracted, totals, start):
    counts: dict[str, int] = {}
    for failure in failures:
        counts[failure["reason"]] = counts.get(failure["reason"], 0) + 1
    elapsed = time.time() - start
    report = {
        "output": os.path.abspath(output),
        "extractor": spec.to_dict(),
        "videos": len(videos),
        "extracted": extracted,
        "done_in_earlier_runs": kept,
        "failed": counts,
        "failures": failures,
        "frames": totals.num_frames,
        "backbone_frames": totals.embedded,
        "seconds": round(elapsed, 3),
        "frames_per_second": round(totals.num_frames / max(elapsed, 1e-9), 1),
    }
    files.write_json(report_path(output), report)
    return report


def merge_shards(output: str, num_shards: int, stream: TextIO = sys.stderr) -> dict[str, Any]:
    """Merges the stores of `--shard=i --num_shards=n` runs into `output` (+ durations
    CSV and a report summing theirs). Every shard must be finished, with one extractor."""
    import h5py

    paths = [shard_output(output, i, num_shards) for i in range(num_shards)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise ValueError(f"cannot merge: unfinished or missing shards {missing}")
    specs = [read_spec(p) for p in paths]
    for p, s in zip(paths[1:], specs[1:]):
        check_same(specs[0], s, f"the features in {p}")
    reports = [files.read_json(report_path(p)) for p in paths]
    with files.atomic_path(output) as tmp:
        with h5py.File(tmp, "w") as out:
            out.attrs[EXTRACTOR_ATTR] = specs[0].to_json()
            for p in paths:
                with h5py.File(p, "r") as f:
                    for video_id in f:
                        f.copy(f[video_id], out, name=video_id)
    write_durations(output)
    failed: dict[str, int] = {}
    for r in reports:
        for reason, n in r["failed"].items():
            failed[reason] = failed.get(reason, 0) + n
    report = {
        "output": os.path.abspath(output),
        "extractor": specs[0].to_dict(),
        "shards": paths,
        **{k: sum(r[k] for r in reports) for k in
           ("videos", "extracted", "done_in_earlier_runs", "frames", "backbone_frames")},
        "failed": failed,
        "failures": [f for r in reports for f in r["failures"]],
    }
    files.write_json(report_path(output), report)
    print(format_summary(report), file=stream, flush=True)
    return report


def format_summary(report: dict[str, Any]) -> str:
    lines = [
        f"{report['videos']} videos: {report['extracted']} extracted, "
        f"{report['done_in_earlier_runs']} done in earlier runs, "
        f"{sum(report['failed'].values())} yielded nothing",
    ]
    if "seconds" in report:
        lines.append(f"{report['frames']} frames ({report['backbone_frames']} through the "
                     f"backbone) in {report['seconds']:.1f}s, "
                     f"{report['frames_per_second']:.0f} frames/s")
    for reason in sorted(report["failed"]):
        names = [f["video"] for f in report["failures"] if f["reason"] == reason]
        lines.append(f"  {reason}: {report['failed'][reason]} ({', '.join(names[:5])}"
                     f"{', ...' if len(names) > 5 else ''})")
    lines.append(f"report: {report_path(report['output'])}")
    return "\n".join(lines)
