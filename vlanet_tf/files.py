"""Writing files so that a crash never leaves half of one: temporary name, fsync, rename."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path in `path`'s directory that replaces `path` on success.

    Whatever is written to the yielded path appears at `path` whole or not at all: the
    file is fsynced and renamed over `path` when the block ends without an error, and
    removed when it raises. Suits writers that want a file name (Keras, h5py).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    # Keep the suffix: Keras and h5py pick the format from it.
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{_suffix(base)}", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _suffix(name: str) -> str:
    for suffix in (".weights.h5", ".h5", ".json", ".csv", ".png", ".npz"):
        if name.endswith(suffix):
            return suffix
    return ""


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_json(path: str, obj: Any, sort_keys: bool = True) -> None:
    """Writes `obj` as indented JSON (keys sorted unless told not to) atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8"))


def update_digest(digest: Any, path: str) -> Any:
    """Feeds the bytes of the file at `path` to a hashlib object, in 4 MiB blocks."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest


def sha256(path: str) -> str:
    """SHA-256 (hex) of a file's bytes."""
    return update_digest(hashlib.sha256(), path).hexdigest()


def read_json(path: str) -> Any:
    """The JSON object in `path`; a clear error naming the file when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
