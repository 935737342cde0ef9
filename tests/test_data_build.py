"""data_prep.build: manifest, exact round trip, every bad-input case, restarts."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep import build as build_lib
from vlanet_tf.data import features as feature_lib
from vlanet_tf.data import readers
from tests import data_testing
from vlanet_tf.data import schema


@pytest.fixture()
def release(tmp_path):
    path = tmp_path / "release"
    data_testing.make_charades_release(path)
    return path


def _first_video(release: Path, split: str = "train") -> tuple[str, float]:
    with open(release / f"Charades_v1_{split}.csv") as f:
        row = next(csv.DictReader(f))
    return row["id"], float(row["length"])


def _append_line(release: Path, line: str, split: str = "train") -> str:
    """Appends a line to the STA file; returns the query id it gets."""
    path = release / f"charades_sta_{split}.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [line]) + "\n")
    return f"{line.split()[0]}_{len(lines) + 1}"


def _set_features(release: Path, video_id: str, array) -> None:
    with h5py.File(release / "features.h5", "a") as h5:
        del h5[video_id]
        if array is not None:
            h5.create_dataset(video_id, data=array)


def _sentences_of(release: Path, video_id: str) -> int:
    text = (release / "charades_sta_train.txt").read_text()
    return sum(line.split()[0] == video_id for line in text.splitlines())


def _shard_examples(output: Path):
    import tensorflow as tf

    for path in sorted(output.glob("*.tfrecord")):
        for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            yield path.name.split("-")[0], schema.decode_to_example(serialized)


def _build(release: Path, output: Path, **kw):
    return build_lib.build(data_testing.charades_options(release, output, **kw))


def test_build_writes_documented_layout(release, tmp_path):
    out = tmp_path / "out"
    manifest = _build(release, out, num_shards=3)
    names = {p.name for p in out.iterdir()}
    for split in ("train", "val", "test"):
        n = len(manifest["splits"][split]["shards"])
        assert {f"{split}-{i:05d}-of-{n:05d}.tfrecord" for i in range(n)} <= names
    assert {"manifest.json", "vocab.txt", "embeddings.npy"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    emb = np.load(out / "embeddings.npy")
    assert emb.shape == (manifest["vocab_size"], data_testing.WORD_DIM)
    assert manifest["feature_dim"] == data_testing.FEATURE_DIM
    assert manifest["skips"] == {} and manifest["adjustments"] == {}
    for key in ("train_annotations", "train_durations", "features", "word_vectors"):
        assert len(manifest["inputs"][key]["sha256"]) == 64
        assert manifest["inputs"][key]["bytes"] > 0
    assert manifest["flags"]["num_shards"] == 3
    lines = (release / "charades_sta_train.txt").read_text().splitlines()
    train = manifest["splits"]["train"]["sentences"] + manifest["splits"]["val"]["sentences"]
    assert train == len(lines)


def test_round_trip_returns_source_arrays_and_text_exactly(release, tmp_path):
    out = tmp_path / "out"
    _build(release, out, num_shards=2)
    lines = {}
    for split in ("train", "test"):
        for n, line in enumerate((release / f"charades_sta_{split}.txt").read_text().splitlines(), 1):
            head, _, sentence = line.partition("##")
            vid, start, end = head.split()
            lines[f"{vid}_{n}"] = (vid, sentence, (float(start), float(end)))
    seen = set()
    val_videos = set()
    with h5py.File(release / "features.h5") as h5:
        for split, example in _shard_examples(out):
            source = h5[example.video_id][()]
            assert example.features.tobytes() == source.tobytes()
            assert example.features.shape == source.shape
            if split == "val":
                val_videos.add(example.video_id)
            for qid, sentence, moments in zip(example.query_ids, example.sentences, example.moments):
                vid, text, moment = lines[qid]
                assert (vid, sentence) == (example.video_id, text)
                assert moments == [tuple(np.float32(moment).tolist())]
                seen.add(qid)
    assert seen == set(lines)
    assert val_videos  # val is carved from train by video


def test_val_is_carved_by_video_deterministically():
    records = [
        readers.QueryRecord(f"v{i}_{j}", f"v{i}", "a b", 10.0, [(0.0, 1.0)])
        for i in range(400)
        for j in range(3)
    ]
    train, val = build_lib.carve_val(records, 0.1)
    assert {r.video_id for r in train}.isdisjoint({r.video_id for r in val})
    assert 20 <= len({r.video_id for r in val}) <= 60
    assert build_lib.carve_val(records, 0.1) == (train, val)


CASES = {
    # name: (edit(release) -> (reason, id expected among the examples, sentences))
    "start_after_end": lambda r: (
        readers.START_AFTER_END,
        _append_line(r, f"{_first_video(r)[0]} 8.0 7.0##a person opens the door."),
        1,
    ),
    "start_at_or_after_duration": lambda r: (
        readers.START_AFTER_DURATION,
        _append_line(r, f"{_first_video(r)[0]} {_first_video(r)[1]} 999.0##a person opens the door."),
        1,
    ),
    "missing_duration": lambda r: (
        readers.MISSING_DURATION,
        _append_line(r, "ZZZZZ 1.0 2.0##a person opens the door."),
        1,
    ),
    "empty_sentence": lambda r: (
        readers.EMPTY_SENTENCE,
        _append_line(r, f"{_first_video(r)[0]} 1.0 2.0##..."),
        1,
    ),
    "all_oov_sentence": lambda r: (
        build_lib.ALL_OOV_SENTENCE,
        _append_line(r, f"{_first_video(r)[0]} 1.0 2.0##zxqv blorpt quillax"),
        1,
    ),
    "malformed_line": lambda r: (
        readers.MALFORMED_LINE,
        _append_line(r, f"{_first_video(r)[0]} one 2.0##a person opens the door.")
        .replace(_first_video(r)[0] + "_", "charades_sta_train.txt:"),
        1,
    ),
    "missing_features": lambda r: (
        feature_lib.MISSING_FEATURES,
        _set_features(r, _first_video(r)[0], None) or _first_video(r)[0],
        _sentences_of(r, _first_video(r)[0]),
    ),
    "nan_features": lambda r: (
        feature_lib.NONFINITE_FEATURES,
        _set_features(r, _first_video(r)[0], np.full((5, data_testing.FEATURE_DIM), np.nan, np.float32))
        or _first_video(r)[0],
        _sentences_of(r, _first_video(r)[0]),
    ),
    "inf_features": lambda r: (
        feature_lib.NONFINITE_FEATURES,
        _set_features(r, _first_video(r)[0], np.full((5, data_testing.FEATURE_DIM), np.inf, np.float32))
        or _first_video(r)[0],
        _sentences_of(r, _first_video(r)[0]),
    ),
    "zero_length_features": lambda r: (
        feature_lib.EMPTY_FEATURES,
        _set_features(r, _first_video(r)[0], np.zeros((0, data_testing.FEATURE_DIM), np.float32))
        or _first_video(r)[0],
        _sentences_of(r, _first_video(r)[0]),
    ),
    "feature_dim_mismatch": lambda r: (
        feature_lib.FEATURE_DIM_MISMATCH,
        _set_features(r, _first_video(r)[0], np.zeros((5, 3), np.float32)) or _first_video(r)[0],
        _sentences_of(r, _first_video(r)[0]),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_skipped_counted_and_strict_fails(case, release, tmp_path):
    reason, example_id, sentences = CASES[case](release)
    manifest = _build(release, tmp_path / "out")
    assert manifest["skips"][reason]["count"] == sentences
    assert example_id in manifest["skips"][reason]["examples"]
    assert sum(e["count"] for e in manifest["skips"].values()) == sentences
    kept_ids = {q for _, ex in _shard_examples(tmp_path / "out") for q in ex.query_ids}
    kept_videos = {ex.video_id for _, ex in _shard_examples(tmp_path / "out")}
    assert example_id not in kept_ids and example_id not in kept_videos
    with pytest.raises(readers.SkipError) as error:
        _build(release, tmp_path / "strict", strict=True)
    assert error.value.reason == reason


def test_end_after_duration_is_clipped_and_kept(release, tmp_path):
    vid, length = _first_video(release)
    qid = _append_line(release, f"{vid} 1.0 {length + 1.3}##a person holds the cup.")
    manifest = _build(release, tmp_path / "out", strict=True)
    assert manifest["adjustments"][readers.END_CLIPPED] == {"count": 1, "examples": [qid]}
    (example,) = [ex for _, ex in _shard_examples(tmp_path / "out") if qid in ex.query_ids]
    moments = example.moments[example.query_ids.index(qid)]
    assert moments == [(1.0, float(np.float32(length)))]


def test_max_query_length_counts_truncated_queries(release, tmp_path):
    manifest = _build(release, tmp_path / "out", max_query_length=4)
    assert manifest["adjustments"][build_lib.QUERY_TRUNCATED]["count"] > 0
    assert manifest["max_query_length"] == 4


def test_didemo_hdf5_and_npy_features(tmp_path):
    release = tmp_path / "didemo"
    data_testing.make_didemo_release(release, npy_features=True)
    # Also write the HDF5 flavour next to it.
    data_testing.make_didemo_release(tmp_path / "didemo_h5")
    for opts in (
        data_testing.didemo_options(release, tmp_path / "out_npy", npy=True),
        data_testing.didemo_options(tmp_path / "didemo_h5", tmp_path / "out_h5"),
    ):
        manifest = build_lib.build(opts)
        assert manifest["skips"] == {}
        adjustments = {r: e["count"] for r, e in manifest["adjustments"].items()}
        assert adjustments[readers.NAME_WITHOUT_EXTENSION] == 4  # 2 sentences x 2 files
        assert adjustments[readers.annotators_reason(5)] == 2
        assert adjustments[readers.annotators_reason(7)] == 2
        assert any("val_data.json is the training source" in n for n in manifest["notes"])
        assert manifest["vocabulary"]["word_vectors_format"] == "word2vec"
        total = sum(s["sentences"] for s in manifest["splits"].values())
        assert total == 32
    examples = [ex for _, ex in _shard_examples(tmp_path / "out_h5")]
    assert any(ex.video_id.endswith(".") for ex in examples)
    assert {len(m) for ex in examples for m in ex.moments} == {4, 5, 7}


def test_rerun_keeps_finished_shards_and_changed_flags_rewrite(release, tmp_path):
    out = tmp_path / "out"
    _build(release, out, num_shards=3)
    before = data_testing.read_files(out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")}
    _build(release, out, num_shards=3)
    assert data_testing.read_files(out) == before
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tfrecord")} == mtimes
    _build(release, out, num_shards=2)
    assert not list(out.glob("*-of-00003.tfrecord"))
    assert len(list(out.glob("train-*-of-00002.tfrecord"))) == 2


def _run_cli(args, env_extra=None):
    env = data_testing.env_with_repo_on_path()
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "data_prep.build", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# Parses data_prep.build's flags and builds with a hook that SIGKILLs the process after
# N records, so the rerun test sees a real kill mid-shard.
_KILLED_BUILD = """
import os, signal, sys
from absl import flags
from data_prep import build
build._define_flags()
flags.FLAGS(["build", *sys.argv[2:]])
remaining = [int(sys.argv[1])]
def kill_after():
    remaining[0] -= 1
    if remaining[0] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
build.build(build.options_from_flags(flags.FLAGS), on_record_written=kill_after)
"""


def _run_killed_build(args, after_records):
    return subprocess.run(
        [sys.executable, "-c", _KILLED_BUILD, str(after_records), *args],
        env=data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli_args(release: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset=charades_sta",
        f"--annotations_dir={release}",
        f"--features={release / 'features.h5'}",
        f"--word_vectors={release / f'glove.synthetic.{data_testing.WORD_DIM}d.txt'}",
        f"--output_dir={out}",
        *extra,
    ]


def test_killed_build_reruns_to_the_same_output(release, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _build(release, clean, num_shards=4)
    run = _run_killed_build(_cli_args(release, killed, "--num_shards=4"), after_records=7)
    assert run.returncode == -9, run.stderr[-2000:]
    names = {p.name for p in killed.iterdir()}
    assert "manifest.json" not in names
    assert any(n.endswith(".tfrecord.tmp") for n in names)  # killed mid-shard
    assert any(n.endswith(".tfrecord") for n in names)  # after a finished shard
    _build(release, killed, num_shards=4)
    a, b = data_testing.read_files(clean), data_testing.read_files(killed)
    assert sorted(a) == sorted(b)
    assert not [n for n in b if n.endswith(".tmp")]
    for name in a:
        if name == "manifest.json":
            ma, mb = json.loads(a[name]), json.loads(b[name])
            assert ma["flags"].pop("output_dir") != mb["flags"].pop("output_dir")
            assert ma == mb
        else:
            assert a[name] == b[name], name


def test_cli_strict_exits_non_zero_with_the_reason(release, tmp_path, capsys):
    vid, _ = _first_video(release)
    _append_line(release, f"{vid} 8.0 7.0##a person opens the door.")
    run = _run_cli(_cli_args(release, tmp_path / "out", "--strict"))
    assert run.returncode != 0
    assert readers.START_AFTER_END in run.stderr
    _build(release, tmp_path / "out2")
    summary = capsys.readouterr().out
    assert "start_after_end" in summary and "sentences" in summary


def test_missing_inputs_raise_clear_errors(release, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        build_lib.build(
            data_testing.charades_options(release, tmp_path / "o", features=str(tmp_path / "nope.h5"))
        )
    with pytest.raises(ValueError, match="charades_sta_train.txt"):
        build_lib.build(data_testing.charades_options(tmp_path, tmp_path / "o"))
    with pytest.raises(ValueError, match="--val_fraction"):
        data_testing.charades_options(release, tmp_path / "o", val_fraction=1.5)
