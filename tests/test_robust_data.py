"""Issue 16, data and serving side: a data directory complete or visibly not, bounded
requests, and errors that say where (one test per reproduced case)."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep import build as build_lib
from export import serving
from tests import data_testing
from vlanet_tf.config import ModelConfig
from vlanet_tf.data import prepared
from vlanet_tf.model import build_vlanet
from vlanet_tf.text import PAD_TOKEN, UNK_TOKEN, Vocabulary

F = 8


@pytest.fixture()
def release(tmp_path):
    path = tmp_path / "release"
    data_testing.make_charades_release(path, num_videos=8, num_test=2)
    return path


# --------------------------------------------------------------------- 5. complete


def test_case5_failed_rebuild_leaves_no_manifest_and_sizes_are_checked(release, tmp_path):
    output = tmp_path / "data"
    build_lib.build(data_testing.charades_options(release, output))
    shards = prepared.shard_files(output, "train")
    assert prepared.verify(output, hashes=True) >= len(shards) + 2

    class DiskFull(OSError):
        pass

    def fail():
        raise DiskFull("No space left on device")

    with pytest.raises(DiskFull):
        build_lib.build(
            data_testing.charades_options(release, output, val_fraction=0.5), fail
        )
    # Old manifest gone: the half-new directory is refused, not read.
    with pytest.raises(ValueError, match="not a prepared data directory"):
        prepared.load_manifest(output)
    build_lib.build(data_testing.charades_options(release, output))
    shard = prepared.shard_files(output, "train")[0]
    with open(shard, "r+b") as f:  # a flipped byte: same size, other hash
        f.seek(20)
        byte = f.read(1)
        f.seek(20)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=rf"{shard}: its SHA-256"):
        prepared.verify(output, hashes=True)
    with open(shard, "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match=rf"{shard}: \d+ bytes, the manifest lists"):
        prepared.shard_files(output, "train")


def test_case5_second_build_into_a_directory_is_refused(release, tmp_path):
    output = tmp_path / "data"
    os.makedirs(output)
    with open(output / build_lib.LOCK_FILE, "a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another data_prep.build is writing"):
            build_lib.build(data_testing.charades_options(release, output))
    # Released (as by a killed build): the next build goes ahead.
    build_lib.build(data_testing.charades_options(release, output))


# ---------------------------------------------------------------------- 6. bounded


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    vocab_path = tmp_path_factory.mktemp("serve") / "vocab.txt"
    Vocabulary([PAD_TOKEN, UNK_TOKEN] + [f"w{i}" for i in range(18)]).save(vocab_path)
    network = build_vlanet(ModelConfig(vocab_size=20, word_dim=4, hidden_dim=8, feature_dim=F))
    return serving.VLANetServing(network, str(vocab_path))


@pytest.fixture(scope="module")
def serve_tokens(module):
    # Traced once: a signature traced per test would cost seconds each.
    return module.signatures()["serve_tokens"]


def _tokens_request(tokens, clips=6, duration=10.0):
    batch = len(tokens)
    return dict(
        query_tokens=tf.constant(np.asarray(tokens, np.int32).reshape(batch, -1 if batch else 2)),
        video_features=tf.zeros([batch, clips, F]),
        video_length=tf.fill([batch], clips),
        duration=tf.fill([batch], duration),
    )


@pytest.mark.parametrize(
    "request_kw, message",
    [
        (dict(tokens=[[2, 3]], duration=1e5), "segment groups"),
        (dict(tokens=np.zeros([0, 2])), "B = 0"),
        (dict(tokens=[[2, -1]]), "negative token id"),
        (dict(tokens=[[2, 20]]), "vocabulary size 20"),
        (dict(tokens=[[2] * (serving.MAX_QUERY_WORDS + 1)]), "tokens"),
    ],
)
def test_case6_unbounded_requests_are_invalid_arguments(serve_tokens, request_kw, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve_tokens(**_tokens_request(**request_kw))


def test_case6_a_bounded_request_is_served(serve_tokens):
    out = serve_tokens(**_tokens_request([[2, 3]]))
    assert out["moments"].shape[0] == 1


def test_case6_build_counts_over_long_sentences(release, tmp_path):
    manifest = build_lib.build(
        data_testing.charades_options(release, tmp_path / "data", max_query_length=3)
    )
    adjusted = sum(s["adjustments"].get(build_lib.QUERY_TRUNCATED, 0) for s in manifest["splits"].values())
    assert adjusted > 0


# ----------------------------------------------------------------- 7. say where


def test_case7_mains_print_one_line_naming_the_file(release, tmp_path):
    annotations = release / "charades_sta_train.txt"
    data = annotations.read_bytes()
    annotations.write_bytes(b"\xff\xfe bad\n" + data + data.splitlines(True)[0])
    bad_vectors = tmp_path / "vectors.txt"
    bad_vectors.write_text("the 0.1 0.2\nopen 0.3 zero\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable, "-m", "data_prep.build", "--dataset=charades_sta",
            f"--annotations_dir={release}",
            f"--features={data_testing.charades_options(release, tmp_path).features}",
            f"--word_vectors={bad_vectors}", f"--output_dir={tmp_path / 'out'}",
        ],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=data_testing.env_with_repo_on_path(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert str(bad_vectors) in errors[0]


def test_case7_non_utf8_and_duplicate_lines_are_counted_and_empty_train_refused(release, tmp_path):
    annotations = release / "charades_sta_train.txt"
    data = annotations.read_bytes()
    annotations.write_bytes(b"\xff\xfe bad\n" + data + data.splitlines(True)[0])
    manifest = build_lib.build(data_testing.charades_options(release, tmp_path / "data"))
    from vlanet_tf.data import readers

    skips = {r: sum(s["skips"].get(r, 0) for s in manifest["splits"].values())
             for r in (readers.NOT_UTF8_LINE, readers.DUPLICATE_LINE)}
    assert skips == {readers.NOT_UTF8_LINE: 1, readers.DUPLICATE_LINE: 1}
    annotations.write_bytes(b"")
    with pytest.raises(ValueError, match="train split has no usable sentence"):
        build_lib.build(data_testing.charades_options(release, tmp_path / "empty"))


def test_case6_build_skips_sentences_past_the_serving_bound(release, tmp_path):
    annotations = release / "charades_sta_train.txt"
    first = annotations.read_text(encoding="utf-8").splitlines()[0]
    head, _, _ = first.partition("##")
    long_line = head + "##" + " ".join(["person"] * (build_lib.MAX_SENTENCE_WORDS + 1))
    with open(annotations, "a", encoding="utf-8") as f:
        f.write(long_line + "\n")
    manifest = build_lib.build(data_testing.charades_options(release, tmp_path / "data"))
    skipped = sum(s["skips"].get(build_lib.SENTENCE_TOO_LONG, 0) for s in manifest["splits"].values())
    assert skipped == 1


def test_case7_corrupt_hdf5_and_shard_are_named(release, tmp_path):
    from vlanet_tf import validation
    from vlanet_tf.data.features import FeatureStore

    output = tmp_path / "data"
    build_lib.build(data_testing.charades_options(release, output))
    shard = prepared.shard_files(output, "test")[0]
    with open(shard, "r+b") as f:  # inside the first record's payload
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ValueError, match=rf"{re.escape(shard)}: its SHA-256.*corrupted record"):
        validation.evaluate_split(None, str(output), "test")

    features = str(release / "features.h5")
    import h5py

    with h5py.File(features, "r") as f:
        key = sorted(f.keys())[0]
        offset = f[key].id.get_offset()
    with open(features, "r+b") as f:
        f.truncate(offset + 4)  # the dataset's bytes cut off
    with pytest.raises(ValueError, match=re.escape(features)):
        with FeatureStore(features) as store:
            store.load(key)


def test_case7_predictions_outside_the_video_are_refused():
    from vlanet_tf.evaluation import ground_truth, predictions

    queries = {"q": ground_truth.GroundTruth("q", "v", 30.0, np.array([[1.0, 5.0]]))}
    ok = {"query_id": "q", "video_id": "v", "moments": [[0.0, 30.0, 1.0]]}
    assert predictions.parse_prediction(ok, queries, "p.jsonl:1")[0] == "q"
    bad = {"query_id": "q", "video_id": "v", "moments": [[0.0, 3.0, 1.0], [25.0, 45.0, 0.5]]}
    with pytest.raises(ValueError, match=r"p.jsonl:2: moment 1 .* outside the video"):
        predictions.parse_prediction(bad, queries, "p.jsonl:2")
