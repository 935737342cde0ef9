"""data_prep.synthesize: public formats, seeded, planted concepts, optional defects."""

import h5py
import numpy as np
import pytest

from data_prep import build as build_lib
from vlanet_tf.data import features as feature_lib
from data_prep import synthesize
from vlanet_tf.data import readers
from data_prep.word_vectors import load_word_vectors
from tests import data_testing


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic")
    synthesize.synthesize(synthesize.SynthesisOptions(output_dir=str(path), seed=5))
    return path


def test_seeded(release, tmp_path):
    path = release
    synthesize.synthesize(synthesize.SynthesisOptions(output_dir=str(tmp_path), seed=5))
    assert data_testing.read_files(tmp_path) == data_testing.read_files(path)


def test_files_parse_as_the_public_formats_without_defects(release):
    path = release
    by_video = {}
    for split, n in (("train", 300), ("test", 100)):
        records, counter = readers.read_charades_sta(
            path / f"charades_sta_{split}.txt", path / f"Charades_v1_{split}.csv"
        )
        assert counter.num_skipped == 0 and not counter.adjustments
        videos = readers.group_by_video(records)
        assert len(videos) == n
        by_video.update(videos)
        for group in videos.values():
            assert 2 <= len(group) <= 4
            assert all(15.0 <= r.duration <= 45.0 for r in group)
            assert all(4.0 <= e - s <= 12.0 for r in group for s, e in r.moments)
    kv, fmt = load_word_vectors(path / "glove.synthetic.50d.txt")
    assert fmt == "glove" and kv.vector_size == 50
    assert all(w in kv.key_to_index for r in records for w in r.sentence.rstrip(".").split())
    with h5py.File(path / "features.h5") as h5:
        assert set(h5) == set(by_video)
        for vid, group in list(by_video.items())[:20]:
            t, f = h5[vid].shape
            assert f == 64 and abs(t - group[0].duration * 24 / 16) <= 1


def _concepts(sentence):
    """(indices of the verbs, indices of the objects) a sentence names."""
    padded = f" {sentence.rstrip('.')} "
    verbs = [
        i
        for i, (_, third, ing) in enumerate(synthesize.VERBS)
        if f" {third} " in padded or f" {ing} " in padded
    ]
    objects = [i for i, o in enumerate(synthesize.OBJECTS) if f" {o} " in padded]
    return verbs, objects


def test_sentences_of_a_video_name_different_concepts(release):
    path = release
    records, _ = readers.read_charades_sta(
        path / "charades_sta_train.txt", path / "Charades_v1_train.csv"
    )
    for group in readers.group_by_video(records).values():
        concepts = [_concepts(r.sentence) for r in group]
        assert all(len(v) == 1 and len(o) == 1 for v, o in concepts), [r.sentence for r in group]
        assert len({v[0] for v, _ in concepts}) == len(group)
        assert len({o[0] for _, o in concepts}) == len(group)
        moments = sorted(r.moments[0] for r in group)
        assert all(a[1] <= b[0] for a, b in zip(moments, moments[1:]))  # no overlap


def test_concepts_are_planted_at_the_true_moments(release):
    """Features projected on a sentence's concept are higher inside its moment."""
    path = release
    records, _ = readers.read_charades_sta(
        path / "charades_sta_train.txt", path / "Charades_v1_train.csv"
    )
    groups = readers.group_by_video(records)
    # The planted direction of a (verb, object) pair is recovered as the mean feature
    # inside its moments minus the mean outside, over the whole training set.
    inside_sum, outside_sum, counts = {}, {}, {}
    with h5py.File(path / "features.h5") as h5:
        feats = {vid: h5[vid][()] for vid in groups}
    for vid, group in groups.items():
        x = feats[vid]
        times = (np.arange(len(x)) + 0.5) * group[0].duration / len(x)
        for r in group:
            (s, e), key = r.moments[0], _concepts(r.sentence)[0][0]
            inside = (times >= s) & (times <= e)
            inside_sum[key] = inside_sum.get(key, 0) + x[inside].mean(0)
            outside_sum[key] = outside_sum.get(key, 0) + x[~inside].mean(0)
            counts[key] = counts.get(key, 0) + 1
    wins = 0
    total = 0
    for vid, group in list(groups.items())[:100]:
        x = feats[vid]
        times = (np.arange(len(x)) + 0.5) * group[0].duration / len(x)
        for r in group:
            key = _concepts(r.sentence)[0][0]
            direction = (inside_sum[key] - outside_sum[key]) / counts[key]
            score = x @ direction
            (s, e) = r.moments[0]
            inside = (times >= s) & (times <= e)
            wins += score[inside].mean() > score[~inside].mean()
            total += 1
    assert wins / total > 0.9


def test_inject_defects_gives_one_of_each(tmp_path):
    data_testing.make_charades_release(tmp_path / "r", inject_defects=True)
    manifest = build_lib.build(data_testing.charades_options(tmp_path / "r", tmp_path / "out"))
    skips = {r: e["count"] for r, e in manifest["skips"].items()}
    for reason in (
        readers.START_AFTER_END,
        readers.START_AFTER_DURATION,
        readers.EMPTY_SENTENCE,
        readers.MALFORMED_LINE,
        build_lib.ALL_OOV_SENTENCE,
    ):
        assert skips.pop(reason) == 1, reason
    for reason in (
        feature_lib.NONFINITE_FEATURES,
        feature_lib.EMPTY_FEATURES,
        feature_lib.MISSING_FEATURES,
    ):
        assert skips.pop(reason) >= 2, reason  # every sentence of the video
    assert skips == {}
    assert manifest["adjustments"][readers.END_CLIPPED]["count"] == 1
