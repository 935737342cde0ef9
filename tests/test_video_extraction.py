"""vlanet_tf.video and data_prep.extract_features on real encoded files (PyAV)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from tests import data_testing
from tests import video_testing as vt
from vlanet_tf.data import readers
from vlanet_tf.video import backbones, decode, extract
from vlanet_tf.video.extractor import Extractor, ExtractorSpec, check_same

REPO = data_testing.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return str(vt.tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.weights.h5"))


@pytest.fixture(scope="module")
def extractor(weights):
    return Extractor("tiny_cnn", weights, image_size=32)


def _changed(features: np.ndarray) -> list[int]:
    """Clips whose features differ from the first (blank) clip's."""
    return [i for i, row in enumerate(features) if np.abs(row - features[0]).max() > 1e-4]


def test_charades_clips_follow_the_shape(tmp_path, extractor):
    path = vt.write_video(tmp_path / "v.mp4", 10, fps=24, shape="square", colour="red",
                          appear=(4.0, 6.0), codec="libx264")
    features, duration = extract.extract_video(str(path), extractor)
    # 240 frames at 24 fps -> 15 clips of 16 frames (2/3 s); 4.0-6.0 s is clips 6-8.
    assert features.shape == (15, 32) and duration == pytest.approx(10.0)
    assert _changed(features) == [6, 7, 8]


def test_resampling_to_the_clip_rate(tmp_path, extractor):
    # Encoded at 12 fps: each frame stands for two frames at 24 fps.
    path = vt.write_video(tmp_path / "v.mp4", 10, fps=12, shape="circle", colour="blue",
                          appear=(4.0, 6.0))
    features, duration = extract.extract_video(str(path), extractor)
    assert features.shape == (15, 32) and duration == pytest.approx(10.0)
    assert _changed(features) == [6, 7, 8]


def test_didemo_segments_average_five_seconds(tmp_path, weights):
    didemo = Extractor("tiny_cnn", weights, style="didemo", image_size=32)
    assert didemo.spec.clip_seconds == 5.0 and didemo.spec.frames_per_clip == 5
    # 14 s: two full segments and a 4-s tail (kept: at least half a segment).
    path = vt.write_video(tmp_path / "v.mp4", 14, fps=24, shape="square", colour="green",
                          appear=(5.0, 7.0))
    features, _ = extract.extract_video(str(path), didemo)
    assert features.shape == (3, 32) and _changed(features) == [1]
    # The shape is in 2 of the segment's 5 sampled frames (5.5 s, 6.5 s): the mean.
    frames = np.stack([vt.frame_image(32, "square", "green")] * 2
                      + [vt.frame_image(32, None, None)] * 3)
    np.testing.assert_allclose(features[1], didemo.embed(frames).mean(0), atol=0.05)


def test_bad_videos_are_counted_listed_and_strict_fails(tmp_path, extractor):
    folder = tmp_path / "videos"
    folder.mkdir()
    vt.write_video(folder / "good.mp4", 3, shape="square", colour="red", appear=(1, 2))
    (folder / "garbage.mp4").write_bytes(os.urandom(2000))
    vt.write_audio_only(folder / "audio.avi")
    vt.write_zero_frames(folder / "empty.avi")
    vt.write_video(folder / "short.mp4", 0.25)  # 6 frames: under half a 16-frame clip
    output = str(tmp_path / "out" / "features.h5")
    report = extract.extract_store(extract.list_videos(str(folder)), extractor, output)
    assert report["extracted"] == 1
    assert report["failed"] == {
        decode.UNREADABLE: 1, decode.NO_VIDEO_STREAM: 1, decode.ZERO_FRAMES: 1,
        decode.SHORTER_THAN_CLIP: 1,
    }
    with open(extract.report_path(output)) as f:
        on_disk = json.load(f)
    assert {x["video"]: x["reason"] for x in on_disk["failures"]} == {
        "garbage": decode.UNREADABLE, "audio": decode.NO_VIDEO_STREAM,
        "empty": decode.ZERO_FRAMES, "short": decode.SHORTER_THAN_CLIP,
    }
    with h5py.File(output) as f:
        # 72 frames: 4 clips and a half one (kept: at least half a clip).
        assert list(f) == ["good"] and f["good"].shape == (5, 32)
    # --strict: each of them alone is an error naming its reason (a list file of one).
    cases = (("garbage.mp4", decode.UNREADABLE), ("audio.avi", decode.NO_VIDEO_STREAM),
             ("empty.avi", decode.ZERO_FRAMES), ("short.mp4", decode.SHORTER_THAN_CLIP))
    for name, reason in cases:
        listing = tmp_path / f"{name}.txt"
        listing.write_text(f"videos/good.mp4\nvideos/{name}\n")
        with pytest.raises(extract.ExtractionError, match=reason):
            extract.extract_store(extract.list_videos(str(listing)), extractor,
                                  str(tmp_path / f"strict-{name}.h5"), strict=True)


def _store(path: str) -> dict[str, tuple[np.ndarray, float]]:
    with h5py.File(path) as f:
        return {k: (f[k][()], float(f[k].attrs["duration"])) for k in f}


def _assert_same_store(a: str, b: str) -> None:
    sa, sb = _store(a), _store(b)
    assert sorted(sa) == sorted(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k][0], sb[k][0])
        assert sa[k][1] == sb[k][1]
    with open(extract.durations_path(a)) as fa, open(extract.durations_path(b)) as fb:
        assert fa.read() == fb.read()


def test_killed_extraction_resumes_to_the_same_output(tmp_path, weights, extractor):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(4):
        vt.write_video(folder / f"v{i}.mp4", 4, shape="circle", colour="red",
                       appear=(i * 0.5, i * 0.5 + 2))
    reference = str(tmp_path / "reference" / "features.h5")
    extract.extract_store(extract.list_videos(str(folder)), extractor, reference)

    output = str(tmp_path / "resumed" / "features.h5")
    # 6 clips a video and 4 frames a clip: batch_size=4 writes one clip per call, so the
    # 9th write is in the middle of the second video.
    args = [f"--videos={folder}", f"--output={output}", "--backbone=tiny_cnn",
            f"--weights={weights}", "--image_size=32", "--batch_size=4"]
    killed = subprocess.run(
        [sys.executable, "-m", "tests.hooked_extract", *args, "--kill_after_rows=9"],
        cwd=REPO, env=data_testing.env_with_repo_on_path(), capture_output=True, text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    parts = output + ".parts"
    assert not os.path.exists(output)
    assert sorted(os.listdir(parts)) == ["extractor.json", "v0.f32", "v0.json", "v1.f32.tmp"]

    report = extract.extract_store(extract.list_videos(str(folder)), extractor, output)
    assert report["done_in_earlier_runs"] == 1 and report["extracted"] == 3
    assert not os.path.exists(parts)
    _assert_same_store(reference, output)
    # Once more: everything is kept, nothing changes.
    again = extract.extract_store(extract.list_videos(str(folder)), extractor, output)
    assert again["done_in_earlier_runs"] == 4 and again["extracted"] == 0
    _assert_same_store(reference, output)


def test_shards_merge_to_the_single_run(tmp_path, extractor):
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(5):
        vt.write_video(folder / f"v{i}.mp4", 2, shape="square", colour="blue",
                       appear=(0.5, 1.5 + i * 0.1))
    videos = extract.list_videos(str(folder))
    single = str(tmp_path / "single.h5")
    extract.extract_store(videos, extractor, single)
    merged = str(tmp_path / "merged.h5")
    for i in range(2):
        extract.extract_store(extract.shard(videos, i, 2), extractor,
                              extract.shard_output(merged, i, 2))
    report = extract.merge_shards(merged, 2)
    assert report["videos"] == 5 and report["extracted"] == 5
    _assert_same_store(single, merged)
    with pytest.raises(ValueError, match="missing shards"):
        extract.merge_shards(str(tmp_path / "other.h5"), 2)


def test_another_extractor_is_refused_naming_both(tmp_path, weights, extractor):
    other_weights = str(tmp_path / "other.weights.h5")
    backbones.tiny_cnn(32, seed=1).save_weights(other_weights)
    other = Extractor("tiny_cnn", other_weights, image_size=32)
    assert other.spec.weights_sha256 != extractor.spec.weights_sha256
    with pytest.raises(ValueError) as error:
        check_same(extractor.spec, other.spec, "the features")
    message = str(error.value)
    assert extractor.spec.weights_sha256[:12] in message
    assert other.spec.weights_sha256[:12] in message
    # Same weights under another file name: the same features.
    copy = str(tmp_path / "copy.weights.h5")
    backbones.tiny_cnn(32).save_weights(copy)
    check_same(extractor.spec, Extractor("tiny_cnn", copy, image_size=32).spec, "x")
    # An existing store of another extractor is not extended with different features.
    folder = tmp_path / "videos"
    folder.mkdir()
    vt.write_video(folder / "v.mp4", 2)
    output = str(tmp_path / "features.h5")
    extract.extract_store(extract.list_videos(str(folder)), extractor, output)
    with pytest.raises(ValueError, match="different extractor"):
        extract.extract_store(extract.list_videos(str(folder)), other, output)
    # The spec named for loading rejects weights with another hash.
    with pytest.raises(ValueError, match="different extractor"):
        Extractor.from_spec(extractor.spec.to_dict(), other_weights)
    assert ExtractorSpec.from_dict(json.loads(extractor.spec.to_json())) == extractor.spec


@pytest.mark.parametrize(
    "name,dim",
    [("mobilenet_v3_small", 576), pytest.param("vgg16_fc7", 4096, marks=pytest.mark.slow)],
)
def test_keras_applications_backbone_loads_weights_from_a_file(tmp_path, name, dim):
    """The keras.applications path with weights=PATH, at a tiny input (ImageNet weights
    cannot be downloaded here)."""
    import keras

    keras.utils.set_random_seed(0)
    saved = backbones._application(name, 32, None)
    path = str(tmp_path / f"{name}.weights.h5")
    saved.save_weights(path)
    loaded, _ = backbones.build(name, path, image_size=32)
    assert loaded.output_shape[-1] == dim
    assert backbones.weights_sha256(loaded) == backbones.weights_sha256(saved)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(saved(images), loaded(images), rtol=1e-5, atol=1e-5)


def test_weights_file_that_does_not_fit_is_refused(tmp_path, weights):
    with pytest.raises(ValueError, match="could not load"):
        backbones.build("tiny_cnn", str(tmp_path / "missing.weights.h5"), image_size=32)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        backbones.build("tiny_cnn", backbones.IMAGENET, image_size=32)


def test_custom_annotations_jsonl_and_csv(tmp_path):
    durations = {"a": 20.0, "b": 10.0}
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(
        '{"video": "a", "sentence": "the red square appears", "start": 2, "end": 25}\n'
        '{"video": "b", "sentence": "a blue circle"}\n'
        '{"video": "zz", "sentence": "no such video", "start": 1, "end": 2}\n'
        "not json\n"
        '{"video": "a", "sentence": "backwards", "start": 5, "end": 3}\n'
    )
    records, counter = readers.read_custom(jsonl, durations)
    assert [(r.query_id, r.moments, r.annotated) for r in records] == [
        ("a_1", [(2.0, 20.0)], True), ("b_2", [(0.0, 10.0)], False),
    ]
    assert dict(counter.skips) == {readers.MISSING_DURATION: 1, readers.MALFORMED_LINE: 1,
                                   readers.START_AFTER_END: 1}
    assert dict(counter.adjustments) == {readers.END_CLIPPED: 1,
                                         readers.WHOLE_VIDEO_PLACEHOLDER: 1}
    csv_file = tmp_path / "test.csv"
    csv_file.write_text("video,sentence,start,end\nb,the green circle,1.5,4\na,no moment,,\n")
    records, _ = readers.read_custom(csv_file, durations)
    assert [(r.query_id, r.moments, r.annotated) for r in records] == [
        ("b_2", [(1.5, 4.0)], True), ("a_3", [(0.0, 20.0)], False),
    ]
