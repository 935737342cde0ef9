"""Collection search: index -> query, adding videos, a resumed build, the model check,
two-stage vs exhaustive, the corpus recall, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests import export_testing, search_testing
from vlanet_tf.data import readers
from vlanet_tf.search import corpus
from vlanet_tf.search.index import Index, ModelMismatch, Proposals, build_index, read_manifest
from vlanet_tf.search.model import SearchModel, run_fingerprint
from vlanet_tf.search.retrieval import Searcher


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return search_testing.trained_run(tmp_path_factory.mktemp("search_run"))


@pytest.fixture(scope="module")
def model(run):
    return SearchModel.from_run(str(run.model_dir))


@pytest.fixture(scope="module")
def index_dir(run, model, tmp_path_factory):
    path = tmp_path_factory.mktemp("index") / "idx"
    report = build_index(
        model, str(run.features), str(path), str(run.test_durations), progress=False
    )
    # The features file holds train and test videos; only the test CSV gives durations.
    assert report.added == report.total == 40
    assert report.skipped == {"missing_duration": 160}
    return path


@pytest.fixture(scope="module")
def records(run):
    return readers.read_charades_sta(run.test_annotations, run.test_durations)[0]


WIDTHS = np.array([[0.0, 7.0], [0.0, 8.0], [0.0, 9.0]], np.float32)


def _by_video(data: Proposals) -> dict[str, tuple]:
    out = {}
    for i, vid in enumerate(data.video_ids.tolist()):
        a, b = data.group_offsets[i], data.group_offsets[i + 1]
        out[vid] = (data.durations[i], data.proposals[a:b], data.windows[a:b], data.mask[a:b])
    return out


def _assert_same_videos(a: Proposals, b: Proposals) -> None:
    x, y = _by_video(a), _by_video(b)
    assert sorted(x) == sorted(y)
    for vid in x:
        for u, v in zip(x[vid], y[vid]):
            np.testing.assert_array_equal(u, v)


def test_the_planted_video_comes_first(index_dir, model, records):
    """A video whose proposals are the query's own word vectors Q is found first."""
    base = Index.open(str(index_dir))
    d, scales = model.hidden_dim, model.num_scales
    first = {"two-stage": 0, "exhaustive": 0}
    queries = records[:12]
    for r in queries:
        q = model.encode_query(r.sentence)
        words = q["words"][q["mask"]]
        groups = 12
        planted = Proposals(
            np.array(["planted"]),
            np.array([30.0], np.float32),
            np.array([0, groups]),
            words[np.arange(groups * scales) % len(words)]
            .reshape(groups, scales, d)
            .astype(np.float16),
            np.tile(WIDTHS[:scales], (groups, 1, 1))
            + 2.5 * np.arange(groups, dtype=np.float32)[:, None, None],
            np.ones((groups, scales), bool),
        )
        index = Index(Proposals.concatenate([base.data, planted]), base.manifest)
        searcher = Searcher(index, model, candidates=8, stage1="selection")
        # Stage 1 alone: the planted video holds w_M itself, inner product 1.
        videos, _ = index.top_videos(q["last"], 1)
        assert index.data.video_ids[videos[0]] == "planted"
        for mode, exhaustive in (("two-stage", False), ("exhaustive", True)):
            result = searcher.search(r.sentence, top_videos=3, exhaustive=exhaustive)
            first[mode] += result.videos[0].video_id == "planted"
            assert result.videos[0].moments and result.videos[0].duration > 0
    assert first["two-stage"] >= 0.75 * len(queries), first
    assert first["exhaustive"] >= 0.75 * len(queries), first


def test_stage1_similarity_takes_the_probe(index_dir, model, records):
    """--stage1=similarity: stage 1 is the max of <u, p>; a video holding u is first."""
    base = Index.open(str(index_dir))
    d, scales = model.hidden_dim, model.num_scales
    r = records[0]
    q = model.encode_query(r.sentence)
    assert q["probe"].shape == (d,)
    np.testing.assert_allclose(np.linalg.norm(q["probe"]), 1.0, atol=1e-5)
    planted = Proposals(
        np.array(["planted"]), np.array([30.0], np.float32), np.array([0, 1]),
        np.tile(q["probe"].astype(np.float16), (1, scales, 1)),
        WIDTHS[None, :scales].copy(), np.ones((1, scales), bool),
    )
    index = Index(Proposals.concatenate([base.data, planted]), base.manifest)
    by_probe = Searcher(index, model, candidates=1, stage1="similarity")
    assert by_probe.search(r.sentence, top_videos=1).videos[0].video_id == "planted"
    stage1 = by_probe.search(r.sentence, top_videos=1).videos[0].stage1
    assert stage1 == pytest.approx(1.0, abs=2e-3)
    with pytest.raises(ValueError, match="stage1 must be one of"):
        Searcher(index, model, stage1="nearest")


def test_adding_videos_equals_one_build(run, model, index_dir, tmp_path):
    ids = Index.open(str(index_dir)).data.video_ids.tolist()
    path = str(tmp_path / "grown")
    csv = str(run.test_durations)
    first = build_index(model, str(run.features), path, csv, video_ids=ids[:15], progress=False)
    assert first.total == 15
    more = build_index(model, str(run.features), path, csv, progress=False)
    assert (more.added, more.total) == (25, 40)
    again = build_index(model, str(run.features), path, csv, progress=False)
    assert again.added == 0  # nothing new: nothing re-encoded
    assert len(read_manifest(path)["shards"]) == 2
    _assert_same_videos(Index.open(path).data, Index.open(str(index_dir)).data)


def test_the_stage1_index_is_kept_and_rebuilt_when_stale(run, model, tmp_path):
    """Opened once, the FAISS index is kept on disk and read back by the next open with
    the same answers; new videos, or a damaged file, make the next open rebuild it."""
    path = str(tmp_path / "kept")
    csv = str(run.test_durations)
    build_index(model, str(run.features), path, csv, shard_size=16, progress=False)
    queries = [r.normal(size=model.hidden_dim) for r in [np.random.default_rng(s) for s in range(5)]]
    queries = [(q / np.linalg.norm(q)).astype(np.float32) for q in queries]

    def answers(index):
        return [tuple(index.top_videos(q, 5)[0].tolist()) for q in queries]

    first = Index.open(path)
    assert not first.stage1_reused
    assert (tmp_path / "kept" / "stage1.faiss").is_file()
    second = Index.open(path)
    assert second.stage1_reused and second.faiss is not first.faiss
    assert answers(second) == answers(first)

    ids = first.data.video_ids.tolist()
    held = str(tmp_path / "grown")
    build_index(model, str(run.features), held, csv, video_ids=ids[:20], progress=False)
    assert Index.open(held).num_vectors < first.num_vectors
    build_index(model, str(run.features), held, csv, progress=False)  # 20 more videos
    grown = Index.open(held)
    assert not grown.stage1_reused and grown.faiss.ntotal == first.num_vectors

    (tmp_path / "kept" / "stage1.faiss").write_bytes(b"truncated")
    damaged = Index.open(path)
    assert not damaged.stage1_reused and answers(damaged) == answers(first)
    assert Index.open(path).stage1_reused


def test_a_killed_build_resumes_to_the_same_index(run, model, tmp_path):
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    kw = dict(durations_csv=str(run.test_durations), shard_size=8, progress=False)
    build_index(model, str(run.features), whole, **kw)

    class Killed(Exception):
        pass

    def kill(shard):
        if shard == 1:
            raise Killed

    with pytest.raises(Killed):
        build_index(model, str(run.features), killed, after_shard=kill, **kw)
    assert [s["videos"] for s in read_manifest(killed)["shards"]] == [8, 8]
    seen = []
    report = build_index(model, str(run.features), killed, after_shard=seen.append, **kw)
    assert report.added == 24 and seen == [2, 3, 4]
    a, b = read_manifest(whole), read_manifest(killed)
    assert a["shards"] == b["shards"] and a["skipped"] == b["skipped"]
    for shard in a["shards"]:
        _assert_same_videos(
            Proposals.load(f"{whole}/{shard['file']}"), Proposals.load(f"{killed}/{shard['file']}")
        )


def test_another_model_is_refused(run, model, index_dir, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run.model_dir, other)
    weights = other / "best.weights.h5"
    assert run_fingerprint(str(other / "config.json"), str(weights)) == model.fingerprint
    with open(weights, "ab") as f:
        f.write(b"\0")  # other bytes: another run as far as the index can tell
    changed = run_fingerprint(str(other / "config.json"), str(weights))
    assert changed != model.fingerprint
    impostor = SearchModel(model.network, model.vocabulary, changed, source=str(other))
    with pytest.raises(ModelMismatch, match="built with the run"):
        build_index(
            impostor, str(run.features), str(index_dir), str(run.test_durations), progress=False
        )
    with pytest.raises(ModelMismatch):
        Searcher(Index.open(str(index_dir)), impostor)
    with pytest.raises(ValueError, match="empty"):
        Searcher(Index.open(str(index_dir)), model).search("  ")


def test_two_stage_agrees_with_exhaustive_and_corpus_recall(index_dir, model, records):
    searcher = Searcher(Index.open(str(index_dir)), model, candidates=20)
    agree = 0
    for r in records[:30]:
        two = searcher.search(r.sentence, top_videos=5)
        full = searcher.search(r.sentence, top_videos=5, exhaustive=True)
        assert two.candidates == 20 and full.candidates == 40
        # Same videos get the same c whichever way they were batched.
        c = {v.video_id: v.similarity for v in full.videos}
        for v in two.videos:
            if v.video_id in c:
                assert v.similarity == pytest.approx(c[v.video_id], abs=1e-5)
        agree += two.videos[0].video_id == full.videos[0].video_id
    assert agree > 15, agree
    scores = corpus.evaluate(searcher, records[:30], ks=(1, 10))
    exhaustive = corpus.evaluate(searcher, records[:30], ks=(1, 10), exhaustive=True)
    assert scores["queries"] == 30
    for s in (scores, exhaustive):
        assert 0 <= s["moment_R@10@0.5"] <= s["video_R@10"] <= 100
        assert s["video_R@1"] <= s["video_R@10"]


@pytest.mark.slow  # two fresh processes load TensorFlow and the run: ~30 s
def test_the_cli_queries_an_index(run, index_dir):
    result = export_testing.run_module(
        ["-m", "vlanet_tf.search", "query", f"--index={index_dir}",
         "--query=a person opens the door", "--top_videos=4", "--json"]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(out["videos"]) == 4
    sims = [v["similarity"] for v in out["videos"]]
    assert sims == sorted(sims, reverse=True)
    missing = export_testing.run_module(
        ["-m", "vlanet_tf.search", "query", f"--index={index_dir}/nope", "--query=x"]
    )
    assert missing.returncode == 1 and "is not a search index" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_readme_table_is_the_committed_run():
    from benchmarks.search import table

    root = export_testing.REPO
    rows = json.loads((root / "benchmarks/results/search.json").read_text())["rows"]
    assert table(rows) in (root / "README.md").read_text()


def test_the_benchmarks_exact_stage1_equals_the_index(index_dir, model, records):
    """benchmarks.search_trained's NumPy stage 1 (its recall-by-N curve) ranks videos as
    the exact FAISS index does, with the same max inner products."""
    from benchmarks.search_trained import stage1_scores

    index = Index.open(str(index_dir))
    for key in ("last", "probe"):
        vector = model.encode_query(records[0].sentence)[key]
        scores = stage1_scores(index, vector)
        videos, best = index.top_videos(vector, index.num_videos)
        np.testing.assert_allclose(scores[videos], best, atol=1e-3)
        assert np.all(np.diff(scores[videos]) <= 1e-3)


def test_the_readme_trained_search_table_is_the_committed_run():
    from benchmarks.search_trained import curve_table, table

    root = export_testing.REPO
    rows = json.loads((root / "benchmarks/results/search_trained.json").read_text())["rows"]
    readme = (root / "README.md").read_text()
    assert table(rows) in readme
    assert curve_table(rows) in readme
    from benchmarks.search_corpus import table as corpus_table

    result = json.loads((root / "benchmarks/results/search_corpus.json").read_text())
    assert corpus_table(result) in readme
