"""Readers for the annotation files that public moment-retrieval releases ship.

They return plain Python records and a `SkipCounter` and need no features, so
evaluation code can use them on their own.

Every record the files contain is either returned or counted under a reason. Reasons
are of two kinds: a *skip* drops the sentence, an *adjustment* keeps it after a fix
(e.g. an end clipped to the duration) or only marks it (e.g. 7 annotators).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import re
from typing import Iterable

from vlanet_tf.geometry import DIDEMO_SEGMENT_SECONDS
from vlanet_tf.text import words


DIDEMO_USUAL_ANNOTATORS = 4
MAX_EXAMPLES_PER_REASON = 5

# Reasons that drop a sentence.
MALFORMED_LINE = "malformed_line"
NOT_UTF8_LINE = "not_utf8_line"
DUPLICATE_LINE = "duplicate_line"
MISSING_DURATION = "missing_duration"
START_AFTER_END = "start_after_end"
START_AFTER_DURATION = "start_at_or_after_duration"
NEGATIVE_TIME = "negative_time"
EMPTY_SENTENCE = "empty_sentence"
NO_MOMENTS = "no_moments"
# Reasons that keep a sentence.
END_CLIPPED = "end_after_duration_clipped"
NAME_WITHOUT_EXTENSION = "video_name_without_extension"
WHOLE_VIDEO_PLACEHOLDER = "no_moment_whole_video_placeholder"


def annotators_reason(n: int) -> str:
    return f"annotators_{n}"


class SkipError(RuntimeError):
    """Raised in strict mode at the first skipped record."""

    def __init__(self, reason: str, example: str):
        super().__init__(f"strict mode: skipped {example!r} because of {reason!r}")
        self.reason = reason
        self.example = example


class SkipCounter:
    """Counts skips and adjustments per reason, with a few example ids for each.

    Args:
      strict: raise `SkipError` at the first skip instead of counting it.
    """

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.skips: collections.Counter[str] = collections.Counter()
        self.adjustments: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)

    def _note(self, reason: str, example: str) -> None:
        if len(self.examples[reason]) < MAX_EXAMPLES_PER_REASON:
            self.examples[reason].append(example)

    def skip(self, reason: str, example: str, count: int = 1) -> None:
        if self.strict:
            raise SkipError(reason, example)
        self.skips[reason] += count
        self._note(reason, example)

    def adjust(self, reason: str, example: str, count: int = 1) -> None:
        self.adjustments[reason] += count
        self._note(reason, example)

    def update(self, other: "SkipCounter") -> None:
        self.skips.update(other.skips)
        self.adjustments.update(other.adjustments)
        for reason, examples in other.examples.items():
            for example in examples:
                self._note(reason, example)

    @property
    def num_skipped(self) -> int:
        return sum(self.skips.values())

    def to_dict(self) -> dict[str, dict]:
        def table(counter):
            return {
                r: {"count": int(counter[r]), "examples": list(self.examples[r])}
                for r in sorted(counter)
            }

        return {"skips": table(self.skips), "adjustments": table(self.adjustments)}

    @classmethod
    def from_dict(cls, d: dict[str, dict], strict: bool = False) -> "SkipCounter":
        counter = cls(strict=strict)
        for kind, target in (("skips", counter.skips), ("adjustments", counter.adjustments)):
            for reason, entry in d.get(kind, {}).items():
                target[reason] += entry["count"]
                for example in entry["examples"]:
                    counter._note(reason, example)
        return counter


@dataclasses.dataclass
class QueryRecord:
    """One sentence and its annotated moment(s).

    Attributes:
      query_id: Charades-STA `{video}_{line number}`; DiDeMo the annotation_id.
      video_id: the id features are stored under (DiDeMo: the video file name).
      sentence: raw text.
      duration: video length in seconds.
      moments: (start, end) in seconds, one per annotator; ends clipped to duration.
      segments: DiDeMo only: the raw inclusive (start, end) segment indices.
    """

    query_id: str
    video_id: str
    sentence: str
    duration: float
    moments: list[tuple[float, float]]
    segments: list[tuple[int, int]] | None = None
    annotated: bool = True  # False: custom sentence without a moment (training only)


def read_charades_durations(csv_path: str | os.PathLike) -> dict[str, float]:
    """Charades_v1_*.csv -> {video id: `length` in seconds}."""
    durations = {}
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"id", "length"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{csv_path}: expected columns 'id' and 'length', got {reader.fieldnames}"
            )
        for row in reader:
            try:
                durations[row["id"]] = float(row["length"])
            except (TypeError, ValueError):
                continue  # Such a video is reported as missing_duration if it is used.
    return durations


_STA_HEAD = re.compile(r"^(\S+)\s+(\S+)\s+(\S+)$")


def read_charades_sta(
    txt_path: str | os.PathLike,
    csv_path: str | os.PathLike,
    strict: bool = False,
) -> tuple[list[QueryRecord], SkipCounter]:
    """Reads `charades_sta_{split}.txt` (`VID START END##sentence`) with durations.

    Lines with start > end, a start at or after the duration, a negative time, no
    duration, no words or a malformed layout are skipped and counted; ends after the
    duration are clipped and counted.

    Returns:
      (records in file order, skip counter).
    """
    durations = read_charades_durations(csv_path)
    counter = SkipCounter(strict=strict)
    records = []
    seen: set[tuple[str, str]] = set()
    with open(txt_path, "rb") as f:
        for line_number, raw_bytes in enumerate(f, start=1):
            where = f"{os.path.basename(txt_path)}:{line_number}"
            try:
                line = raw_bytes.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                counter.skip(NOT_UTF8_LINE, where)
                continue
            if not line.strip():
                continue  # Blank lines carry no record (e.g. a trailing empty line).
            # The same line twice would be scored twice; the first one is kept.
            key = (line.split("##", 1)[0].split()[0] if line.split() else "", line.strip())
            if key in seen:
                counter.skip(DUPLICATE_LINE, where)
                continue
            seen.add(key)
            head, sep, sentence = line.partition("##")
            match = _STA_HEAD.match(head.strip())
            if not sep or not match:
                counter.skip(MALFORMED_LINE, where)
                continue
            vid, start_text, end_text = match.groups()
            try:
                start, end = float(start_text), float(end_text)
            except ValueError:
                counter.skip(MALFORMED_LINE, where)
                continue
            if start != start or end != end:  # NaN in the text.
                counter.skip(MALFORMED_LINE, where)
                continue
            query_id = f"{vid}_{line_number}"
            sentence = sentence.strip()
            if vid not in durations:
                counter.skip(MISSING_DURATION, query_id)
                continue
            duration = durations[vid]
            if start < 0 or end < 0:
                counter.skip(NEGATIVE_TIME, query_id)
                continue
            if start > end:
                counter.skip(START_AFTER_END, query_id)
                continue
            if start >= duration:
                counter.skip(START_AFTER_DURATION, query_id)
                continue
            if not words(sentence):
                counter.skip(EMPTY_SENTENCE, query_id)
                continue
            if end > duration:
                counter.adjust(END_CLIPPED, query_id)
                end = duration
            records.append(QueryRecord(query_id, vid, sentence, duration, [(start, end)]))
    return records, counter


def _is_segment_pair(pair) -> bool:
    return (
        isinstance(pair, (list, tuple))
        and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
    )


def read_didemo(
    json_path: str | os.PathLike, strict: bool = False
) -> tuple[list[QueryRecord], SkipCounter]:
    """Reads a DiDeMo `{split}_data.json`.

    duration = num_segments * 5 s; a segment pair (s, e) becomes (5 s, 5 (e + 1))
    seconds, clipped to the duration. Sentences with other than 4 annotators are kept
    and counted under `annotators_{n}`; video names ending in a bare "." are kept and
    counted under `video_name_without_extension`.

    Returns:
      (records in file order, skip counter).
    """
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{json_path}: not valid UTF-8 JSON ({error})") from error
    if not isinstance(data, list):
        raise ValueError(
            f"{json_path}: expected a JSON list of records, got {type(data).__name__}"
        )
    counter = SkipCounter(strict=strict)
    records = []
    for index, item in enumerate(data):
        where = f"{os.path.basename(json_path)}[{index}]"
        try:
            query_id = str(item["annotation_id"])
            video = item["video"]
            sentence = item["description"]
            num_segments = int(item["num_segments"])
            times = item["times"]
        except (KeyError, TypeError, ValueError):
            counter.skip(MALFORMED_LINE, where)
            continue
        if (
            not isinstance(video, str)
            or not video
            or not isinstance(sentence, str)
            or num_segments <= 0
            or not isinstance(times, list)
            or not all(_is_segment_pair(p) for p in times)
        ):
            counter.skip(MALFORMED_LINE, where)
            continue
        if not times:
            counter.skip(NO_MOMENTS, query_id)
            continue
        if any(s < 0 or e < 0 for s, e in times):
            counter.skip(NEGATIVE_TIME, query_id)
            continue
        if any(s > e for s, e in times):
            counter.skip(START_AFTER_END, query_id)
            continue
        if any(s >= num_segments for s, _ in times):
            counter.skip(START_AFTER_DURATION, query_id)
            continue
        if not words(sentence):
            counter.skip(EMPTY_SENTENCE, query_id)
            continue
        duration = num_segments * DIDEMO_SEGMENT_SECONDS
        moments = []
        clipped = False
        for s, e in times:
            end = DIDEMO_SEGMENT_SECONDS * (e + 1)
            if end > duration:
                end, clipped = duration, True
            moments.append((DIDEMO_SEGMENT_SECONDS * s, end))
        if clipped:
            counter.adjust(END_CLIPPED, query_id)
        if len(times) != DIDEMO_USUAL_ANNOTATORS:
            counter.adjust(annotators_reason(len(times)), query_id)
        if video.endswith("."):
            counter.adjust(NAME_WITHOUT_EXTENSION, query_id)
        records.append(
            QueryRecord(
                query_id,
                video,
                sentence.strip(),
                duration,
                moments,
                segments=[(int(s), int(e)) for s, e in times],
            )
        )
    return records, counter


def group_by_video(records: Iterable[QueryRecord]) -> dict[str, list[QueryRecord]]:
    """{video id: its records in input order}, videos sorted by id."""
    groups: dict[str, list[QueryRecord]] = collections.defaultdict(list)
    for record in records:
        groups[record.video_id].append(record)
    return {vid: groups[vid] for vid in sorted(groups)}


def read_custom(
    path: str | os.PathLike, durations: dict[str, float], strict: bool = False
) -> tuple[list[QueryRecord], SkipCounter]:
    """Reads an own-videos annotation file: JSONL or CSV with `video`, `sentence` and,
    optionally, `start` and `end` seconds (used only for evaluation).

    A sentence without start/end gets the placeholder moment (0, duration), counted under
    `no_moment_whole_video_placeholder`: it trains (weak supervision needs no moment)
    but is never scored. Query ids are `{video}_{line number}`.
    """
    path = os.fspath(path)
    counter = SkipCounter(strict=strict)
    records = []
    with open(path, newline="", encoding="utf-8") as f:
        if path.endswith(".csv"):
            rows = [(i, row) for i, row in enumerate(csv.DictReader(f), start=2)]
        else:
            rows = []
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((i, json.loads(line)))
                except json.JSONDecodeError:
                    rows.append((i, None))
    for line_number, row in rows:
        where = f"{os.path.basename(path)}:{line_number}"
        if not isinstance(row, dict) or not row.get("video") or not isinstance(
            row.get("sentence"), str
        ):
            counter.skip(MALFORMED_LINE, where)
            continue
        video, sentence = str(row["video"]), row["sentence"].strip()
        query_id = f"{video}_{line_number}"
        if video not in durations:
            counter.skip(MISSING_DURATION, query_id)
            continue
        duration = durations[video]
        if not words(sentence):
            counter.skip(EMPTY_SENTENCE, query_id)
            continue
        start, end = row.get("start"), row.get("end")
        if start in (None, "") or end in (None, ""):
            counter.adjust(WHOLE_VIDEO_PLACEHOLDER, query_id)
            records.append(QueryRecord(query_id, video, sentence, duration,
                                       [(0.0, duration)], annotated=False))
            continue
        try:
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            counter.skip(MALFORMED_LINE, where)
            continue
        if start < 0 or end < 0:
            counter.skip(NEGATIVE_TIME, query_id)
            continue
        if start > end:
            counter.skip(START_AFTER_END, query_id)
            continue
        if start >= duration:
            counter.skip(START_AFTER_DURATION, query_id)
            continue
        if end > duration:
            counter.adjust(END_CLIPPED, query_id)
            end = duration
        records.append(QueryRecord(query_id, video, sentence, duration, [(start, end)]))
    return records, counter
