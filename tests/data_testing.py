"""Small releases on disk for the data tests (Charades-STA via the synthesizer, DiDeMo
written here), and a build wrapper."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from data_prep import build as build_lib
from data_prep import synthesize

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FEATURE_DIM = 8
WORD_DIM = 6


def make_charades_release(directory: Path, num_videos: int = 24, num_test: int = 8, **kw):
    """A tiny synthetic Charades-STA release; returns synthesize()'s {role: path}."""
    options = synthesize.SynthesisOptions(
        output_dir=str(directory),
        num_videos=num_videos,
        num_test_videos=num_test,
        feature_dim=FEATURE_DIM,
        word_dim=WORD_DIM,
        seed=kw.pop("seed", 3),
        **kw,
    )
    return synthesize.synthesize(options)


def charades_options(release: Path, output: Path, **kw) -> build_lib.BuildOptions:
    args = dict(
        dataset="charades_sta",
        annotations_dir=str(release),
        features=str(release / "features.h5"),
        word_vectors=str(release / f"glove.synthetic.{WORD_DIM}d.txt"),
        output_dir=str(output),
    )
    return build_lib.BuildOptions(**{**args, **kw})


DIDEMO_WORDS = ["the", "a", "man", "dog", "runs", "jumps", "car", "red", "left", "turns"]


def make_didemo_release(directory: Path, npy_features: bool = False) -> dict[str, str]:
    """val/test DiDeMo json (no train file), fc7-style features keyed by file name.

    Holds the real files' quirks: a name ending in a bare "." whose features are stored
    without the dot, and sentences with 5 and 7 annotators.
    """
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    features = {}
    annotation_id = 100
    for split, n in (("val", 12), ("test", 4)):
        records = []
        for i in range(n):
            name = f"{split}{i:02d}@N00_{i}_abc.mp4"
            stored = name
            if i == 0:
                name = f"{split}00@N00_0_abc."  # As spelled in the real annotations.
                stored = name[:-1]
            features[stored] = rng.normal(size=(6, FEATURE_DIM)).astype(np.float32)
            for j in range(2):
                annotators = {0: 4, 1: 5, 2: 7}.get(i, 4) if j == 0 else 4
                starts = rng.integers(0, 5, annotators)
                times = [[int(s), int(s) + int(rng.integers(0, 2))] for s in starts]
                words = rng.choice(DIDEMO_WORDS, 5)
                records.append(
                    {
                        "annotation_id": annotation_id,
                        "description": " ".join(words),
                        "dl_link": "",
                        "num_segments": 6 if i % 3 else 5,
                        "times": [[s, min(e, 5)] for s, e in times],
                        "video": name,
                    }
                )
                annotation_id += 1
        with open(directory / f"{split}_data.json", "w") as f:
            json.dump(records, f)
    if npy_features:
        feature_path = directory / "fc7"
        feature_path.mkdir()
        for key, value in features.items():
            np.save(feature_path / f"{key}.npy", value)
    else:
        feature_path = directory / "average_fc7.h5"
        with h5py.File(feature_path, "w") as h5:
            for key, value in features.items():
                h5.create_dataset(key, data=value)
    vectors = directory / "glove.txt"
    with open(vectors, "w") as f:
        f.write(f"{len(DIDEMO_WORDS)} {WORD_DIM}\n")  # word2vec text header
        for k, word in enumerate(DIDEMO_WORDS):
            f.write(word + " " + " ".join(str(k + d / 10) for d in range(WORD_DIM)) + "\n")
    return {"features": str(feature_path), "word_vectors": str(vectors)}


def didemo_options(release: Path, output: Path, npy: bool = False, **kw) -> build_lib.BuildOptions:
    return build_lib.BuildOptions(
        dataset="didemo",
        annotations_dir=str(release),
        features=str(release / ("fc7" if npy else "average_fc7.h5")),
        word_vectors=str(release / "glove.txt"),
        output_dir=str(output),
        **kw,
    )


def read_files(directory: Path) -> dict[str, bytes]:
    """{file name: bytes} of every file in a folder (hidden files included)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def env_with_repo_on_path() -> dict[str, str]:
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
