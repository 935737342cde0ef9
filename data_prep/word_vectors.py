"""Pre-trained word vectors through gensim: GloVe text, word2vec text or binary."""

from __future__ import annotations

import os

from gensim.models import KeyedVectors

FORMATS = ("auto", "glove", "word2vec", "word2vec_binary")


def detect_format(path: str | os.PathLike) -> str:
    """Guesses the format: `.bin` is word2vec binary; a first line of two integers is a
    word2vec text header; anything else is GloVe text (no header)."""
    path = os.fspath(path)
    if path.endswith(".bin") or path.endswith(".bin.gz"):
        return "word2vec_binary"
    with open(path, "rb") as f:
        first = f.readline().split()
    if len(first) == 2 and all(p.isdigit() for p in first):
        return "word2vec"
    return "glove"


def load_word_vectors(
    path: str | os.PathLike, fmt: str = "auto", limit: int | None = None
) -> tuple[KeyedVectors, str]:
    """Loads word vectors with gensim.

    Args:
      path: the vectors file.
      fmt: one of `FORMATS`.
      limit: read only the first `limit` vectors (the most frequent in public releases).

    Returns:
      (KeyedVectors, the format actually used).
    """
    if fmt not in FORMATS:
        raise ValueError(f"word vector format must be one of {FORMATS}, got {fmt!r}")
    if not os.path.isfile(path):
        raise ValueError(f"--word_vectors={os.fspath(path)!r} is not a file")
    if fmt == "auto":
        fmt = detect_format(path)
    vectors = KeyedVectors.load_word2vec_format(
        os.fspath(path),
        binary=fmt == "word2vec_binary",
        no_header=fmt == "glove",
        limit=limit,
    )
    return vectors, fmt
