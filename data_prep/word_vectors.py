"""Pre-trained word vectors through gensim: GloVe text, word2vec text or binary."""

from __future__ import annotations

import os

import numpy as np
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
    try:
        vectors = KeyedVectors.load_word2vec_format(
            os.fspath(path),
            binary=fmt == "word2vec_binary",
            no_header=fmt == "glove",
            limit=limit,
        )
    except (ValueError, UnicodeDecodeError, EOFError) as error:
        # gensim reports malformed lines as numpy broadcast or decode errors.
        raise ValueError(
            f"--word_vectors={os.fspath(path)!r} is not valid {fmt} vectors "
            f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
        ) from error
    bad = np.flatnonzero(~np.all(np.isfinite(vectors.vectors), axis=1))
    if bad.size:
        raise ValueError(
            f"--word_vectors={os.fspath(path)!r}: {bad.size} vectors hold NaN or infinite "
            f"values, e.g. {vectors.index_to_key[int(bad[0])]!r} (vector {int(bad[0]) + 1})"
        )
    return vectors, fmt
