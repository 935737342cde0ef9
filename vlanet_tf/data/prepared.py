"""A prepared data directory (the output of `python -m data_prep.build`): one reader.

```
manifest.json     counts per split, skips per reason, feature_dim, vocab size, dataset,
                  max_query_length, the build's flags and input hashes; written last
vocab.txt         one token a line; line 0 "<pad>", line 1 "<unk>"
embeddings.npy    float32 [vocab_size, word_dim]
{split}-{i:05d}-of-{n:05d}.tfrecord
```
Training, evaluation, export and the offline tools read the directory only through
this module. The manifest lists every file's size and SHA-256 (`files`): the sizes of
the vocabulary, the embeddings and a split's shards are checked whenever they are read
(cheap); `verify(data_dir, hashes=True)` checks the hashes too, when asked (it reads
every byte). Directories built before `files` existed are read unchecked.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from vlanet_tf import files
from vlanet_tf.text import Vocabulary

MANIFEST_FILE = "manifest.json"
VOCAB_FILE = "vocab.txt"
EMBEDDINGS_FILE = "embeddings.npy"


def load_manifest(data_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest.json of a prepared data directory."""
    path = os.path.join(data_dir, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"{os.fspath(data_dir)!r} is not a prepared data directory: expected "
            f"{MANIFEST_FILE} there (written last by `python -m data_prep.build`)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a valid manifest ({error})") from error


def _check_sizes(data_dir: str | os.PathLike, manifest: Mapping[str, Any], names) -> None:
    listed = manifest.get("files", {})
    for name in names:
        if name not in listed:
            continue
        path = os.path.join(data_dir, name)
        size = os.path.getsize(path) if os.path.isfile(path) else None
        if size != listed[name]["bytes"]:
            raise ValueError(
                f"{path}: {size} bytes, the manifest lists {listed[name]['bytes']}: the "
                "directory was changed or half rebuilt; rebuild it (python -m data_prep.build)"
            )


def verify(data_dir: str | os.PathLike, hashes: bool = False) -> int:
    """Checks every file the manifest lists: sizes, and SHA-256 when `hashes`.

    Returns how many files were checked; raises ValueError naming the first bad one.
    """
    manifest = load_manifest(data_dir)
    listed = manifest.get("files", {})
    _check_sizes(data_dir, manifest, listed)
    if hashes:
        for name, entry in sorted(listed.items()):
            path = os.path.join(data_dir, name)
            if files.sha256(path) != entry["sha256"]:
                raise ValueError(
                    f"{path}: its SHA-256 is not the manifest's: the file is corrupted or "
                    "from another build; rebuild the directory"
                )
    return len(listed)


def load_vocabulary(data_dir: str | os.PathLike) -> tuple[Vocabulary, np.ndarray]:
    """(Vocabulary, embeddings float32 [V, word_dim]) of a prepared data directory."""
    vocab_path = os.path.join(data_dir, VOCAB_FILE)
    emb_path = os.path.join(data_dir, EMBEDDINGS_FILE)
    for path in (vocab_path, emb_path):
        if not os.path.isfile(path):
            raise ValueError(
                f"expected {os.path.basename(path)} in {os.fspath(data_dir)!r} "
                "(written by `python -m data_prep.build`), found none"
            )
    if os.path.isfile(os.path.join(data_dir, MANIFEST_FILE)):
        _check_sizes(data_dir, load_manifest(data_dir), (VOCAB_FILE, EMBEDDINGS_FILE))
    vocabulary = Vocabulary.load(vocab_path)
    embeddings = np.load(emb_path, allow_pickle=False)
    if embeddings.shape[0] != vocabulary.size:
        raise ValueError(
            f"{emb_path} has {embeddings.shape[0]} rows, expected one per vocabulary "
            f"entry ({vocabulary.size})"
        )
    return vocabulary, embeddings


def shard_files(data_dir: str | os.PathLike, split: str) -> list[str]:
    """The split's shard paths, sorted, as listed in the manifest."""
    manifest = load_manifest(data_dir)
    info = manifest.get("splits", {}).get(split)
    if info is None or not info.get("shards"):
        raise ValueError(
            f"{os.fspath(data_dir)!r} has no shards for split {split!r}; the manifest "
            f"lists splits {sorted(manifest.get('splits', {}))}"
        )
    paths = [os.path.join(data_dir, name) for name in info["shards"]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(paths)} {split} shards listed in the manifest "
            f"are missing, e.g. {missing[0]!r}"
        )
    _check_sizes(data_dir, manifest, info["shards"])
    return paths


def split_size(manifest: Mapping[str, Any], split: str) -> int:
    """Sentences of `split` according to the manifest (0 when the split is absent)."""
    return int(manifest.get("splits", {}).get(split, {}).get("sentences", 0))


def data_properties(data_dir: str) -> dict[str, Any]:
    """What a prepared directory fixes about the model: dataset, vocab, feature sizes.

    Returns {"dataset", "vocab_size", "word_dim", "feature_dim"}; the embedding matrix
    fixes vocab_size and word_dim together (mmap reads the header only).
    """
    manifest = load_manifest(data_dir)
    embeddings_path = os.path.join(data_dir, EMBEDDINGS_FILE)
    if not os.path.isfile(embeddings_path):
        raise ValueError(
            f"{data_dir!r} is not a prepared data directory: expected {EMBEDDINGS_FILE} "
            "there (python -m data_prep.build)"
        )
    vocab_size, word_dim = np.load(embeddings_path, mmap_mode="r").shape
    return {
        "dataset": manifest["dataset"],
        "vocab_size": int(vocab_size),
        "word_dim": int(word_dim),
        "feature_dim": int(manifest["feature_dim"]),
    }


def corrupted_record_error(data_dir: str | os.PathLike, error: Exception) -> ValueError:
    """A ValueError naming the shard behind TensorFlow's `DataLossError: corrupted
    record at N` (which names none), found by the manifest's hashes."""
    detail = " ".join(str(error).split())[:200]
    try:
        verify(data_dir, hashes=True)
    except ValueError as found:
        return ValueError(f"{found} (reading it: {detail})")
    return ValueError(f"{os.fspath(data_dir)}: a shard is corrupted ({detail}); rebuild it")
