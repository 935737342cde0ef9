"""vlanet_tf.data.pipeline: the batch format, ordering, sharding and errors."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data_prep import build as build_lib
from tests import data_testing
from vlanet_tf.data import pipeline
from vlanet_tf.text import Vocabulary, words


@pytest.fixture(scope="module")
def charades_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("charades")
    data_testing.make_charades_release(root / "release", num_videos=30, num_test=10)
    build_lib.build(data_testing.charades_options(root / "release", root / "out", num_shards=3))
    return root / "out"


@pytest.fixture(scope="module")
def didemo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("didemo")
    data_testing.make_didemo_release(root / "release")
    build_lib.build(data_testing.didemo_options(root / "release", root / "out", num_shards=2))
    return root / "out"


def _all(dataset):
    batches = list(dataset.as_numpy_iterator())
    flat = {k: np.concatenate([b[k] for b in batches]) for k in ("query_id", "num_annotations")}
    return flat, batches


def test_batch_format(charades_dir):
    manifest = pipeline.load_manifest(charades_dir)
    batch = next(iter(pipeline.make_dataset(charades_dir, "train", 4, training=True)))
    expected = {
        "query_tokens": tf.int32,
        "video_features": tf.float32,
        "video_length": tf.int32,
        "duration": tf.float32,
        "video_id": tf.string,
        "query_id": tf.string,
        "sentence": tf.string,
        "moments": tf.float32,
        "num_annotations": tf.int32,
    }
    assert {k: v.dtype for k, v in batch.items()} == expected
    b, t, f = batch["video_features"].shape
    assert b == 4 and f == manifest["feature_dim"]
    assert batch["moments"].shape == (4, 1, 2)
    assert int(tf.reduce_max(batch["video_length"])) == t
    for i in range(4):
        n = int(batch["video_length"][i])
        assert not np.any(batch["video_features"][i, n:].numpy())


def test_eval_pass_yields_every_sentence_once_with_its_tokens(charades_dir):
    manifest = pipeline.load_manifest(charades_dir)
    vocab, _ = pipeline.load_vocabulary(charades_dir)
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    flat, batches = _all(pipeline.make_dataset(charades_dir, "test", 3, training=False))
    assert len(flat["query_id"]) == len(set(flat["query_id"])) == manifest["splits"]["test"]["sentences"]
    assert batches[-1]["query_id"].shape[0] <= 3  # the remainder is kept in evaluation
    for batch in batches:
        for sentence, tokens in zip(batch["sentence"], batch["query_tokens"]):
            expected = [ids.get(w, 1) for w in words(sentence.decode())]
            assert tokens[: len(expected)].tolist() == expected
            assert not tokens[len(expected) :].any()


def test_didemo_moments_padded_with_minus_one(didemo_dir):
    flat, batches = _all(pipeline.make_dataset(didemo_dir, "test", 8, training=False))
    for batch in batches:
        for m, n in zip(batch["moments"], batch["num_annotations"]):
            assert (m[n:] == -1).all() and (m[:n] >= 0).all()
            assert (m[:n, 1] > m[:n, 0]).all()
    assert set(flat["num_annotations"]) == {4, 5, 7}


def test_deterministic_order_and_training_shuffle(charades_dir):
    def order(**kw):
        ds = pipeline.make_dataset(charades_dir, "train", 5, training=True, **kw)
        return [q for b in ds.as_numpy_iterator() for q in b["query_id"]]

    first = order(deterministic=True, seed=1)
    assert first == order(deterministic=True, seed=1)
    assert first != order(deterministic=True, seed=2)
    evaluation = [
        q
        for b in pipeline.make_dataset(charades_dir, "train", 5, training=False).as_numpy_iterator()
        for q in b["query_id"]
    ]
    assert set(first) <= set(evaluation)
    assert len(first) == len(evaluation) // 5 * 5  # training drops the remainder


def test_input_context_shards_are_disjoint_and_complete(charades_dir):
    def ids(num, index):
        ctx = tf.distribute.InputContext(num_input_pipelines=num, input_pipeline_id=index)
        ds = pipeline.make_dataset(
            charades_dir, "train", 2, training=False, input_context=ctx
        )
        return [q for b in ds.as_numpy_iterator() for q in b["query_id"]]

    everything = ids(1, 0)
    for num in (2, 5):  # 5 > 3 shard files: records are sharded instead of files
        parts = [ids(num, i) for i in range(num)]
        assert sorted(q for p in parts for q in p) == sorted(everything)
        assert all(p for p in parts)


def test_max_query_length_and_custom_vocabulary(charades_dir):
    vocab = Vocabulary(["<pad>", "<unk>", "person"])
    batch = next(
        iter(
            pipeline.make_dataset(
                charades_dir, "val", 4, training=False, vocabulary=vocab, max_query_length=3
            )
        )
    )
    tokens = batch["query_tokens"].numpy()
    assert tokens.shape[1] <= 3 and set(np.unique(tokens)) <= {0, 1, 2}


def test_repeat_runs_past_one_epoch(charades_dir):
    ds = pipeline.make_dataset(charades_dir, "val", 4, training=True, repeat=True)
    n = pipeline.load_manifest(charades_dir)["splits"]["val"]["sentences"]
    assert len(list(ds.take(n // 4 + 3))) == n // 4 + 3


def test_clear_errors(tmp_path, charades_dir):
    with pytest.raises(ValueError, match="manifest.json"):
        pipeline.make_dataset(tmp_path, "train", 2, training=True)
    (tmp_path / "manifest.json").write_text(json.dumps({"splits": {}}))
    with pytest.raises(ValueError, match="no shards for split 'train'"):
        pipeline.make_dataset(tmp_path, "train", 2, training=True)
    with pytest.raises(ValueError, match="vocab.txt"):
        pipeline.load_vocabulary(tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.make_dataset(charades_dir, "train", 0, training=True)


def test_benchmark_reports_rates(charades_dir):
    from benchmarks.pipeline import benchmark_pipeline

    result = benchmark_pipeline(str(charades_dir), split="train", batch_size=4, num_batches=5)
    assert result["records_per_s"] > 0 and result["mb_per_s"] > 0
    assert result["batches"] == 5
