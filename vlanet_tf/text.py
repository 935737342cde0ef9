"""In-graph text processing: sentence -> tokens -> vocabulary ids.

Tokenisation and lookup are pure TensorFlow ops, so the same code runs inside tf.data,
inside the exported SavedModel and (through `words`) in the offline data preparation.
The Python `words` mirrors `tokenize` for code that must not depend on a TF graph (the
annotation readers); a test keeps the two in agreement.
"""

from __future__ import annotations

import collections
import os
import re
from typing import Iterable, Mapping, Sequence

import numpy as np
import tensorflow as tf

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1

# Everything outside this class becomes a word boundary. Apostrophes stay so that
# GloVe's "person's"-style entries and contractions keep matching.
_DROP_PATTERN = r"[^a-z0-9']+"


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    """Splits sentences into lower-case word tokens.

    Args:
      text: string tensor of any shape [...].

    Returns:
      string RaggedTensor [..., (M)]: lower-cased tokens made of [a-z0-9'].
    """
    text = tf.convert_to_tensor(text, dtype=tf.string)
    cleaned = tf.strings.regex_replace(tf.strings.lower(text), _DROP_PATTERN, " ")
    return tf.strings.split(cleaned)


def words(text: str) -> list[str]:
    """Python twin of `tokenize` for one sentence (same output, no TF graph)."""
    # tf.strings.lower only folds ASCII; folding more here would keep letters that the
    # graph version drops, so fold ASCII only.
    lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    return re.sub(_DROP_PATTERN, " ", lowered).split()


class Vocabulary(tf.Module):
    """Token <-> id mapping backed by a `tf.lookup.StaticHashTable`.

    Id 0 is "<pad>", id 1 is "<unk>"; unknown tokens map to 1. The object is a
    `tf.Module`, so attaching it to a model or module tracks the table into a SavedModel.

    Args:
      tokens: the full token list in id order; must start with "<pad>", "<unk>".
    """

    def __init__(self, tokens: Sequence[str], name: str | None = "vocabulary"):
        super().__init__(name=name)
        tokens = list(tokens)
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(
                f"a vocabulary must start with {[PAD_TOKEN, UNK_TOKEN]}, got {tokens[:2]}"
            )
        if len(set(tokens)) != len(tokens):
            dupes = [t for t, n in collections.Counter(tokens).items() if n > 1]
            raise ValueError(f"vocabulary has duplicate tokens, e.g. {dupes[:5]}")
        self._tokens = tokens
        init = tf.lookup.KeyValueTensorInitializer(
            keys=tf.constant(tokens, tf.string),
            values=tf.range(len(tokens), dtype=tf.int64),
        )
        self.table = tf.lookup.StaticHashTable(init, default_value=UNK_ID)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def size(self) -> int:
        return len(self._tokens)

    def lookup(self, tokens: tf.Tensor | tf.RaggedTensor) -> tf.Tensor | tf.RaggedTensor:
        """Maps string tokens [...] (dense or ragged) to int32 ids of the same shape."""
        if isinstance(tokens, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self.lookup, tokens)
        return tf.cast(self.table.lookup(tokens), tf.int32)

    def encode(
        self, text: tf.Tensor, max_length: int | None = None
    ) -> tf.RaggedTensor:
        """Sentences [...] -> ids [..., (M)], truncated to `max_length` tokens if given."""
        ids = self.lookup(tokenize(text))
        if max_length is not None:
            ids = ids[..., :max_length]
        return ids

    def save(self, path: str | os.PathLike) -> None:
        """Writes vocab.txt (one token a line, id order) atomically."""
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(self._tokens) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        with open(path, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls(tokens)


def _vector_for(word: str, keyed_vectors) -> np.ndarray | None:
    """The word's vector; falls back to title case for case-sensitive word2vec sets."""
    for key in (word, word.capitalize()):
        if key in keyed_vectors.key_to_index:
            return keyed_vectors[key]
    return None


def build_vocabulary(
    sentences: Iterable[str],
    keyed_vectors,
    min_count: int = 1,
) -> tuple[Vocabulary, np.ndarray, dict[str, int]]:
    """Vocabulary of the training sentences' words that have a pre-trained vector.

    Words seen fewer than `min_count` times or without a vector map to "<unk>". Tokens
    are ordered by descending count, then alphabetically, so the result is deterministic.

    Args:
      sentences: training sentences (raw text).
      keyed_vectors: a gensim `KeyedVectors` (or anything with `key_to_index`,
        `__getitem__` and `vector_size`).
      min_count: minimum number of occurrences for a word to get its own id.

    Returns:
      (vocabulary, embeddings float32 [V, word_dim] with rows 0 and 1 zero, stats) where
      stats counts distinct words, words below min_count and words without a vector.
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts: collections.Counter[str] = collections.Counter()
    for sentence in sentences:
        counts.update(words(sentence))
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    tokens = [PAD_TOKEN, UNK_TOKEN]
    rows = []
    rare = no_vector = 0
    for word, count in ordered:
        if count < min_count:
            rare += 1
            continue
        vector = _vector_for(word, keyed_vectors)
        if vector is None:
            no_vector += 1
            continue
        tokens.append(word)
        rows.append(np.asarray(vector, np.float32))
    dim = int(keyed_vectors.vector_size)
    embeddings = np.zeros((len(tokens), dim), np.float32)
    if rows:
        embeddings[2:] = np.stack(rows)
    stats = {
        "distinct_words": len(counts),
        "below_min_count": rare,
        "without_vector": no_vector,
        "vocab_size": len(tokens),
    }
    return Vocabulary(tokens), embeddings, stats


def known_word_count(sentence: str, vocabulary_tokens: Mapping[str, int]) -> int:
    """Number of the sentence's words that have their own id (not "<unk>")."""
    return sum(1 for w in words(sentence) if vocabulary_tokens.get(w, UNK_ID) > UNK_ID)
