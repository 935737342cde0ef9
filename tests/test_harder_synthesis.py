"""data_prep.harder: builds unchanged, follows the real statistics, difficulty bites."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from data_prep import build as build_lib
from data_prep import harder, synthesize
from vlanet_tf.data import prepared, readers
from vlanet_tf.evaluation import scoring
from vlanet_tf.geometry import ProposalGeometry
from tests import data_testing
from tests.data_testing import SHARED_DATA
from tests.training_testing import REPO

STATS = SHARED_DATA / "charades_sta"
pytestmark = pytest.mark.skipif(
    not STATS.is_dir(), reason=f"real Charades-STA annotations not present at {STATS}"
)


def _release(path, difficulty, **kw):
    options = harder.HarderOptions(
        output_dir=str(path), stats_dir=str(STATS), difficulty=difficulty, **kw
    )
    harder.synthesize_harder(options)
    return path


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return {
        d: _release(tmp_path_factory.mktemp(d), d, num_videos=60, num_test_videos=100)
        for d in ("easy", "medium", "hard")
    }


def _records(path, split):
    records, counter = readers.read_charades_sta(
        path / f"charades_sta_{split}.txt", path / f"Charades_v1_{split}.csv"
    )
    return records, counter


def _relative_lengths(records):
    return np.array([(r.moments[0][1] - r.moments[0][0]) / r.duration for r in records])


def _ks(a, b):
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap of the two CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf = lambda x: np.searchsorted(np.sort(x), grid, side="right") / len(x)  # noqa: E731
    return float(np.abs(cdf(a) - cdf(b)).max())


def test_tiny_release_goes_through_build_unchanged(tmp_path):
    release = _release(tmp_path / "r", "hard", num_videos=24, num_test_videos=8, seed=2)
    manifest = build_lib.build(
        build_lib.BuildOptions(
            dataset="charades_sta",
            annotations_dir=str(release),
            features=str(release / "features.h5"),
            word_vectors=str(release / "glove.synthetic.50d.txt"),
            output_dir=str(tmp_path / "data"),
            val_fraction=0.25,
        )
    )
    assert manifest["skips"] == {} and manifest["adjustments"] == {}
    assert manifest["feature_dim"] == 64
    records, _ = _records(release, "test")
    assert prepared.split_size(manifest, "test") == len(records) > 0


def test_default_release_is_seeded(tmp_path):
    a = _release(tmp_path / "a", "medium", num_videos=10, num_test_videos=5)
    b = _release(tmp_path / "b", "medium", num_videos=10, num_test_videos=5)
    for name in ("charades_sta_train.txt", "Charades_v1_test.csv", "glove.synthetic.50d.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_statistics_follow_the_real_annotations(releases):
    real, _ = _records(STATS, "test")
    ours, counter = _records(releases["medium"], "test")
    assert counter.num_skipped == 0 and not counter.adjustments
    # Moment length relative to the duration, and the start: close to the real
    # distribution. The demo release (4-12 s moments in 15-45 s videos) is not.
    assert _ks(_relative_lengths(ours), _relative_lengths(real)) < 0.1
    starts = lambda rs: np.array([r.moments[0][0] / r.duration for r in rs])  # noqa: E731
    assert _ks(starts(ours), starts(real)) < 0.1
    durations = lambda rs: np.array([r.duration for r in rs])  # noqa: E731
    assert _ks(durations(ours), durations(real)) < 0.1
    per_video = lambda rs: np.mean([len(g) for g in readers.group_by_video(rs).values()])  # noqa: E731
    assert abs(per_video(ours) - per_video(real)) < 0.4
    words = lambda rs: np.mean([len(r.sentence.split()) for r in rs])  # noqa: E731
    assert abs(words(ours) - words(real)) < 1.5
    demo = synthesize.synthesize(
        synthesize.SynthesisOptions(output_dir=str(releases["medium"].parent / "demo"))
    )
    demo_records, _ = readers.read_charades_sta(demo["test_annotations"], demo["test_durations"])
    assert _ks(_relative_lengths(demo_records), _relative_lengths(real)) > 0.2


def test_sentences_are_compositional_and_concepts_recur_elsewhere(releases):
    path = releases["hard"]
    records, _ = _records(path, "train")
    concepts = [harder.sentence_concepts(r.sentence) for r in records]
    assert all(len(c) >= 2 for c in concepts)
    assert np.mean([len(c) == 3 for c in concepts]) > 0.3  # an adjective too
    # Partial distractors: a sentence's object is planted outside its moment too.
    directions = harder.concept_directions(0, 64)
    outside_hits = 0
    with h5py.File(path / "features.h5") as h5:
        for r, c in zip(records, concepts):
            x = h5[r.video_id][()]
            times = (np.arange(len(x)) + 0.5) * r.duration / len(x)
            s, e = r.moments[0]
            outside = (times < s - 2) | (times > e + 2)
            projection = x[outside] @ directions[c[1]]
            outside_hits += bool(outside.any() and projection.max() > 0.3)
    assert outside_hits > 40


def test_oracle_falls_as_difficulty_rises(releases):
    r1 = {}
    for name, path in releases.items():
        queries, rankings = harder.oracle_rankings(str(path), "test", 0, 64, ProposalGeometry())
        assert set(rankings) == set(queries)
        r1[name] = scoring.score("charades_sta", queries, rankings)["R1@0.5"]
    assert r1["easy"] > r1["medium"] + 5 > r1["hard"] + 10
    assert r1["hard"] > 30.0  # still well above Random (~16 on these windows)


def test_bad_difficulty_is_one_clear_error():
    with pytest.raises(ValueError, match="--difficulty"):
        harder.parse_difficulty("extreme")
    assert harder.parse_difficulty("0.25") == 0.25


@pytest.mark.slow
def test_cli_reports_a_bad_difficulty_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.harder", f"--output_dir={tmp_path}",
         "--difficulty=extreme", f"--stats_dir={STATS}"],
        cwd=REPO, env=data_testing.env_with_repo_on_path(), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--difficulty" in lines[0]


def test_missing_stats_dir_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--stats_dir"):
        harder.synthesize_harder(
            harder.HarderOptions(output_dir=str(tmp_path), stats_dir=str(tmp_path / "none"))
        )
