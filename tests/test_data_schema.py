"""The TFRecord schema: encode -> decode returns the source exactly."""

import numpy as np
import pytest
import tensorflow as tf

from vlanet_tf.data import schema


def _example(num_clips=5, dim=7):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(num_clips, dim)).astype(np.float32)
    features[0, 0] = np.float32(1e-38)  # Subnormal-adjacent values survive bit-exactly.
    return schema.VideoExample(
        video_id="58792004@N06_8544469262_fd25eddb2e.",
        features=features,
        duration=25.0,
        query_ids=["1", "2"],
        sentences=["The man's hat, briefly.", "a dog runs"],
        moments=[[(0.0, 5.0), (5.0, 10.0), (0.0, 10.0), (20.0, 25.0)], [(1.5, 2.25)]],
    )


def test_round_trip_is_exact():
    source = _example()
    decoded = schema.decode_to_example(schema.encode(source))
    assert decoded.video_id == source.video_id
    assert decoded.features.dtype == np.float32
    assert decoded.features.tobytes() == source.features.tobytes()
    assert decoded.duration == source.duration
    assert decoded.query_ids == source.query_ids
    assert decoded.sentences == source.sentences
    assert decoded.moments == source.moments


def test_decode_shapes_inside_tf_function():
    serialized = tf.constant(schema.encode(_example(num_clips=3, dim=4)))
    decoded = tf.function(schema.decode)(serialized)
    assert decoded["features"].shape == (3, 4)
    assert int(decoded["num_clips"]) == 3
    assert decoded["moments"].shape.as_list() == [2, None, 2]
    assert decoded["num_annotations"].numpy().tolist() == [4, 1]


def test_decoded_tokens_match_source_tokens():
    from vlanet_tf.text import tokenize, words

    source = _example()
    decoded = schema.decode(tf.constant(schema.encode(source)))
    tokens = tokenize(decoded["sentences"]).to_list()
    assert tokens == [[w.encode() for w in words(s)] for s in source.sentences]


def test_video_example_validation():
    with pytest.raises(ValueError, match=r"must be \[T, F\]"):
        schema.VideoExample("v", np.zeros(3, np.float32), 1.0, [], [], [])
    with pytest.raises(ValueError, match="same length"):
        schema.VideoExample("v", np.zeros((1, 2), np.float32), 1.0, ["q"], [], [])
    with pytest.raises(ValueError, match=">= 1 moment"):
        schema.VideoExample("v", np.zeros((1, 2), np.float32), 1.0, ["q"], ["s"], [[]])


def test_shard_name():
    assert schema.shard_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    with pytest.raises(ValueError, match="split must be one of"):
        schema.shard_name("dev", 0, 1)
    with pytest.raises(ValueError, match=r"in \[0, 2\)"):
        schema.shard_name("val", 2, 2)
