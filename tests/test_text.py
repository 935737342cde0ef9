"""Tokenisation, vocabulary lookup and vocabulary building."""

import numpy as np
import pytest
import tensorflow as tf
from gensim.models import KeyedVectors

from vlanet_tf import text

TRICKY = [
    "A person is putting a book on a shelf.",
    "person's  phone,then--door!!",
    "  ",
    "...",
    "Don't OPEN the 2nd door\tnow\n",
    "café NAÏVE über",
    "",
]


def test_tokenize_lowercases_and_splits_on_non_word_characters():
    tokens = text.tokenize(tf.constant(TRICKY[:2])).to_list()
    assert tokens == [
        [b"a", b"person", b"is", b"putting", b"a", b"book", b"on", b"a", b"shelf"],
        [b"person's", b"phone", b"then", b"door"],
    ]


def test_python_words_match_graph_tokenize():
    graph = text.tokenize(tf.constant(TRICKY)).to_list()
    python = [[w.encode() for w in text.words(s)] for s in TRICKY]
    assert graph == python


def test_tokenize_keeps_leading_shape():
    tokens = text.tokenize(tf.constant([["a b", "c"], ["", "d e f"]]))
    assert tokens.shape.as_list() == [2, 2, None]


def test_vocabulary_lookup_dense_and_ragged():
    vocab = text.Vocabulary(["<pad>", "<unk>", "door", "open"])
    ids = vocab.lookup(tf.constant(["open", "door", "nope"]))
    assert ids.dtype == tf.int32
    assert ids.numpy().tolist() == [3, 2, 1]
    encoded = vocab.encode(tf.constant(["Open the door.", "door"]))
    assert encoded.to_list() == [[3, 1, 2], [2]]
    assert vocab.encode(tf.constant(["open the door"]), max_length=2).to_list() == [[3, 1]]


def test_vocabulary_rejects_bad_token_lists():
    with pytest.raises(ValueError, match="must start with"):
        text.Vocabulary(["door", "<pad>", "<unk>"])
    with pytest.raises(ValueError, match="duplicate"):
        text.Vocabulary(["<pad>", "<unk>", "a", "a"])


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = text.Vocabulary(["<pad>", "<unk>", "door", "person's"])
    vocab.save(tmp_path / "vocab.txt")
    assert text.Vocabulary.load(tmp_path / "vocab.txt").tokens == vocab.tokens
    assert not list(tmp_path.glob("*.tmp"))


def test_vocabulary_works_inside_a_saved_model(tmp_path):
    module = tf.Module()
    module.vocabulary = text.Vocabulary(["<pad>", "<unk>", "door", "open"])
    module.encode = tf.function(
        lambda s: module.vocabulary.encode(s).to_tensor(0),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    out = loaded.encode(tf.constant(["Open the DOOR", "door"]))
    assert out.numpy().tolist() == [[3, 1, 2], [2, 0, 0]]


def _keyed_vectors(words, dim=3):
    kv = KeyedVectors(vector_size=dim)
    kv.add_vectors(words, np.arange(len(words) * dim, dtype=np.float32).reshape(-1, dim) + 1)
    return kv


def test_build_vocabulary_orders_by_count_and_drops_words_without_vectors():
    kv = _keyed_vectors(["door", "open", "the", "Shelf"])
    sentences = ["Open the door.", "open the door", "the shelf", "zzz door"]
    vocab, emb, stats = text.build_vocabulary(sentences, kv)
    # Counts: the 3, door 3, open 2, shelf 1 (title-case fallback), zzz (no vector).
    assert vocab.tokens == ["<pad>", "<unk>", "door", "the", "open", "shelf"]
    assert emb.dtype == np.float32 and emb.shape == (6, 3)
    np.testing.assert_array_equal(emb[:2], 0)
    np.testing.assert_array_equal(emb[2], kv["door"])
    np.testing.assert_array_equal(emb[5], kv["Shelf"])
    assert stats["without_vector"] == 1 and stats["vocab_size"] == 6


def test_build_vocabulary_min_count():
    kv = _keyed_vectors(["door", "open", "the"])
    vocab, _, stats = text.build_vocabulary(["open the door", "the door"], kv, min_count=2)
    assert vocab.tokens == ["<pad>", "<unk>", "door", "the"]
    assert stats["below_min_count"] == 1
    with pytest.raises(ValueError, match="min_count"):
        text.build_vocabulary([], kv, min_count=0)
