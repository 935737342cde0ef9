"""data_prep.build on Charades-STA's I3D features in the layout of the LGI release.

The files are written here as the public releases lay them out, not with project code:
LGI (JonghwanMun/LGI4temporalgrounding) ships `i3d_finetuned/{video id}.npy` of shape
[T, 1, 1, 1024] (piergiaj/pytorch-i3d's extract_features.py: the 1x1 spatial axes of its
average pool are kept); CPL (minghangz/cpl, data/convert_npy_to_hdf5.py) squeezes each
into a gzip dataset [T, 1024] named by the video id at the top of `i3d_features.hdf5`,
the file CPL and PPS read with `h5py.File(path)[vid]`. The extractor keeps about one row
per 8 of the 24 fps RGB frames, so T is about 3 rows per second.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_prep import build as build_lib
from vlanet_tf.data import schema

DIM = 1024
WORD_DIM = 4
WORDS = ["a", "person", "opens", "the", "door", "sits", "on", "chair", "drinks", "water"]
# Charades ids, durations (Charades_v1_*.csv `length`) and STA lines (start end##text).
VIDEOS = {
    "train": {
        "3MSZA": (30.96, [(24.3, 30.4, "a person opens the door."),
                          (0.0, 6.1, "the person sits on a chair.")]),
        "AMT7R": (30.08, [(4.3, 12.5, "a person drinks water.")]),
        # An end past the duration is clipped to it (the release has such lines).
        "YVKIV": (11.5, [(4.4, 12.0, "person opens the door")]),
    },
    "test": {
        "0A8CF": (21.0, [(2.0, 9.5, "a person sits on the chair.")]),
        "Z9BDM": (8.33, [(0.0, 3.2, "the person drinks the water.")]),
    },
}


def _rows(duration: float) -> int:
    """I3D rows of a video: ceil(frames / 8) - 1 at 24 fps (temporal stride 8, then the
    2-wide, stride-1 average pool)."""
    return math.ceil(round(duration * 24) / 8) - 1


def _write_release(root: Path, layout: str) -> tuple[Path, dict[str, np.ndarray]]:
    """Annotations, word vectors and I3D features; returns (features path, {vid: [T, 1024]})."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(5)
    arrays = {}
    for split, videos in VIDEOS.items():
        with open(root / f"Charades_v1_{split}.csv", "w") as f:
            f.write("id,subject,scene,length\n")
            for vid, (duration, _) in videos.items():
                f.write(f"{vid},S1,Kitchen,{duration}\n")
        with open(root / f"charades_sta_{split}.txt", "w") as f:
            for vid, (_, moments) in videos.items():
                for start, end, sentence in moments:
                    f.write(f"{vid} {start} {end}##{sentence}\n")
        for vid, (duration, _) in videos.items():
            arrays[vid] = rng.standard_normal((_rows(duration), 1, 1, DIM)).astype(np.float32)
    with open(root / "glove.txt", "w") as f:
        for word in WORDS:
            vector = " ".join(f"{v:.3f}" for v in rng.standard_normal(WORD_DIM))
            f.write(f"{word} {vector}\n")
    if layout == "lgi_npy":
        path = root / "i3d_finetuned"
        path.mkdir()
        for vid, array in arrays.items():
            np.save(path / f"{vid}.npy", array)
    else:
        path = root / "i3d_features.hdf5"
        with h5py.File(path, "w") as h5:
            for vid, array in arrays.items():
                h5.create_dataset(vid, data=array.squeeze(), compression="gzip")
    return path, {vid: a.reshape(a.shape[0], DIM) for vid, a in arrays.items()}


def _options(root: Path, features: Path, out: Path, **kw) -> build_lib.BuildOptions:
    return build_lib.BuildOptions(
        dataset="charades_sta",
        annotations_dir=str(root),
        features=str(features),
        word_vectors=str(root / "glove.txt"),
        output_dir=str(out),
        feature_layout="i3d_lgi",
        **kw,
    )


def _records(out: Path) -> dict[str, tuple[str, schema.VideoExample]]:
    """{video id: (split, example)} of every shard."""
    import tensorflow as tf

    records = {}
    for path in sorted(out.glob("*.tfrecord")):
        split = path.name.split("-")[0]
        for serialized in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            example = schema.decode_to_example(serialized)
            records[example.video_id] = (split, example)
    return records


@pytest.mark.parametrize("layout", ["cpl_hdf5", "lgi_npy"])
def test_build_reads_the_i3d_release_layout(layout, tmp_path):
    features, arrays = _write_release(tmp_path / "release", layout)
    manifest = build_lib.build(_options(tmp_path / "release", features, tmp_path / "out"))
    assert manifest["feature_dim"] == DIM
    assert manifest["flags"]["feature_layout"] == "i3d_lgi"
    assert manifest["skips"] == {}
    clipped = {"end_after_duration_clipped": {"count": 1, "examples": ["YVKIV_4"]}}
    assert manifest["adjustments"] == clipped
    by_video = _records(tmp_path / "out")
    assert set(by_video) == set(arrays)
    for split, videos in VIDEOS.items():
        n = 0  # Line number in charades_sta_{split}.txt: the query id's suffix.
        for vid, (duration, moments) in videos.items():
            split_of, ex = by_video[vid]
            assert split_of in (("test",) if split == "test" else ("train", "val"))
            # The feature rows, unchanged, one per I3D step: about 3 per second.
            assert ex.features.shape == (_rows(duration), DIM)
            np.testing.assert_array_equal(ex.features, arrays[vid])
            assert abs(ex.features.shape[0] / duration - 3.0) < 0.2
            assert ex.duration == pytest.approx(duration, abs=1e-5)
            want_ids, want_spans, want_text = [], [], []
            for start, end, sentence in moments:
                n += 1
                want_ids.append(f"{vid}_{n}")
                span = (start, min(end, duration))
                want_spans.append([tuple(pytest.approx(t, abs=1e-5) for t in span)])
                want_text.append(sentence)
            assert list(ex.query_ids) == want_ids
            assert list(ex.sentences) == want_text
            assert list(ex.moments) == want_spans
    assert sum(s["sentences"] for s in manifest["splits"].values()) == 6
    assert any("I3D/LGI" in note for note in manifest["notes"])


def test_a_file_of_another_layout_is_refused_in_one_line(tmp_path):
    root = tmp_path / "release"
    _, arrays = _write_release(root, "cpl_hdf5")
    c3d = root / "c3d.h5"
    with h5py.File(c3d, "w") as h5:  # C3D fc6/fc7 width: the file of the VLANet paper.
        for vid, array in arrays.items():
            h5.create_dataset(vid, data=np.zeros((array.shape[0] // 2, 4096), np.float32))
    refused = r"not the I3D/LGI layout .* '0A8CF' is of shape \[\d+, 4096\]"
    with pytest.raises(ValueError, match=refused) as error:
        build_lib.build(_options(root, c3d, tmp_path / "out"))
    # One line, naming the file and the flag (the mains print it without a traceback).
    assert "\n" not in str(error.value)
    assert str(c3d) in str(error.value) and "--feature_layout=i3d_lgi" in str(error.value)
    # The same file is fine as "auto" (any [T, F]): the check is the layout's alone.
    auto = dataclasses.replace(_options(root, c3d, tmp_path / "auto"), feature_layout="auto")
    manifest = build_lib.build(auto)
    assert manifest["feature_dim"] == 4096
