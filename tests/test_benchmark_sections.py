"""Each benchmark section's measure() on tiny inputs: its figures follow from its timings.

No time is compared with a fixed bound (the machines are shared); every assertion is a
relation between the figures a section returns and the raw timings or counts it returns
beside them, or a count fixed by the inputs. The whole benchmark is
`test_quick_run_end_to_end`, marked slow: `pytest -m slow tests/test_benchmark_sections.py`.
"""

import dataclasses
import json
import pathlib
import statistics

import numpy as np
import pytest

from benchmarks import (
    common,
    corpus,
    data_build,
    flops,
    pipeline,
    report,
    run,
    scaling,
    serving,
    train,
)
from benchmarks.common import BenchOptions

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH_JSON, PAGE = ROOT / "benchmarks/results/bench.json", ROOT / "docs/PERFORMANCE.md"
F = 16
TINY = dataclasses.replace(
    BenchOptions.quick_options(),
    batch_size=2,
    clips=4,
    words=3,
    feature_dims=(F,),
    train_rounds=3,
    train_steps_per_round=2,
    matmul_seconds=0.01,
    pipeline_videos=8,
    pipeline_batches=3,
    data_prep_videos=10,
    data_prep_feature_dim=F,
    infer_rounds=2,
    infer_calls=6,
    infer_batch=3,
    infer_batch_calls=4,
    corpus_videos=5,
    corpus_queries=2,
    corpus_rounds=2,
)
# Synthetic videos of MIN_DURATION-MAX_DURATION s hold this many 16-frame clips at 24 fps.
MIN_CLIPS = int(common.MIN_DURATION * 24 / common.CLIP_FRAMES)
MAX_CLIPS = int(np.ceil(common.MAX_DURATION * 24 / common.CLIP_FRAMES))


def test_train_figures_follow_from_the_step_times():
    r = train.measure(F, TINY)
    b = TINY.batch_size
    rounds = r["step_s_per_round"]
    assert len(rounds) == TINY.train_rounds
    assert all(len(times) == TINY.train_steps_per_round for times in rounds)
    config = common.model_config(F)
    shape = flops.StepShape.charades(TINY.clips, TINY.words, config)
    assert r["groups"] == shape.groups
    expected = flops.step_flops(config, shape, True, 1, b) / 1e6
    assert r["mflops_per_sample"] == pytest.approx(expected)
    for i, times in enumerate(rounds):
        samples = b / statistics.median(times)  # a round's rate is that of its median step
        assert r["samples_per_s_per_round"][i] == pytest.approx(samples)
        achieved = r["mflops_per_sample"] * 1e6 * samples / 1e9
        ratio = achieved / r["matmul_gflops_per_s_per_round"][i]
        assert r["roofline_ratio_per_round"][i] == pytest.approx(ratio)
    # The reported round is the one with the median ratio, reported whole.
    ratios = r["roofline_ratio_per_round"]
    j = ratios.index(sorted(ratios)[(len(ratios) - 1) // 2])
    assert r["roofline_ratio"] == ratios[j]
    assert r["samples_per_s"] == r["samples_per_s_per_round"][j]
    assert r["matmul_gflops_per_s"] == r["matmul_gflops_per_s_per_round"][j]
    assert r["step_ms"] == pytest.approx(1000.0 * statistics.median(rounds[j]))
    assert r["train_gflops_per_s"] == pytest.approx(
        r["mflops_per_sample"] * 1e6 * r["samples_per_s"] / 1e9
    )
    assert r["roofline_ratio"] == pytest.approx(r["train_gflops_per_s"] / r["matmul_gflops_per_s"])
    # The reference is the best of the step's own product shapes.
    d, t = r["hidden_dim"], TINY.clips
    assert [(s["m"], s["k"], s["n"]) for s in r["matmul_shapes"]] == [
        (b * t, F, d),
        (F, b * t, d),
        (2 * b * shape.groups, d, d),
    ]
    assert r["matmul_gflops_per_s"] == max(s["gflops_per_s"] for s in r["matmul_shapes"])
    assert sum(v["share"] for v in r["flops_breakdown"].values()) == pytest.approx(1.0)


def test_round_figures():
    probe = {"gflops_per_s": 50.0, "shapes": []}
    out = train.round_figures([0.3, 0.1, 0.2], batch=4, flops_per_sample=1e9, matmul=probe)
    assert out["step_s"] == 0.2 and out["samples_per_s"] == pytest.approx(20.0)
    assert out["train_gflops_per_s"] == pytest.approx(20.0)
    assert out["roofline_ratio"] == pytest.approx(0.4)


def test_pipeline_rates_follow_from_records_and_seconds(tmp_path):
    r = pipeline.measure(F, TINY, str(tmp_path), train_samples_per_s=10.0)
    # Training batches drop the remainder: every timed batch is full.
    assert r["records"] == TINY.pipeline_batches * TINY.batch_size
    assert r["records_per_s"] == pytest.approx(r["records"] / r["seconds"])
    assert r["pipeline_to_train_ratio"] == pytest.approx(r["records_per_s"] / 10.0)
    # The bytes delivered per record are dominated by its clip features.
    per_record = r["mb_per_s"] * 2**20 * r["seconds"] / r["records"]
    assert 4 * F * MIN_CLIPS <= per_record <= 2 * 4 * F * MAX_CLIPS


def test_data_prep_counts_every_video(tmp_path):
    r = data_build.measure(TINY, str(tmp_path))
    assert r["videos"] == TINY.data_prep_videos
    assert r["sentences"] >= r["videos"]
    assert r["videos_per_s"] == pytest.approx(r["videos"] / r["seconds"])
    assert r["bytes_written"] >= r["videos"] * 4 * F * MIN_CLIPS
    assert len(r["reference_matmul_gflops_per_s"]) == 2


def test_serving_figures_follow_from_the_latencies(tmp_path):
    r = serving.measure(F, TINY, str(tmp_path), engines=("keras",))
    assert set(r["engines"]) == {"keras"} and r["not_measured"] == {}
    e = r["engines"]["keras"]
    lat = e["latencies_ms"]
    assert e["calls"] == len(lat) == TINY.infer_rounds * (TINY.infer_calls // TINY.infer_rounds)
    assert e["ms_p50"] == pytest.approx(np.percentile(lat, 50))
    assert min(lat) <= e["ms_p50"] <= e["ms_p99"] <= max(lat)
    assert e["single_queries_per_s"] == pytest.approx(1000.0 / e["ms_p50"])
    batches = e["batch_times_s"]
    assert len(batches) == TINY.infer_rounds * (TINY.infer_batch_calls // TINY.infer_rounds)
    assert e["batched_queries_per_s"] == pytest.approx(TINY.infer_batch / np.median(batches))
    assert len(r["reference_matmul_gflops_per_s"]) == TINY.infer_rounds


def test_a_batch_one_engine_has_no_batched_rate():
    e = serving.engine_figures("tflite", [0.002, 0.004, 0.003], [], batch=64)
    assert e["ms_p50"] == pytest.approx(3.0) and "batched_queries_per_s" not in e
    assert e["batched_queries_per_s_not_measured"]


def test_corpus_ranking_matches_the_full_model():
    r = corpus.measure(F, TINY)
    n = TINY.corpus_videos
    assert r["rankings_match"] == 1.0
    assert r["queries"] == len(r["reused_s"]) == TINY.corpus_rounds * TINY.corpus_queries
    assert r["ms_per_video"] == pytest.approx(1000.0 * np.median(r["reused_s"]) / n)
    assert r["naive_ms_per_video"] == pytest.approx(1000.0 * np.median(r["naive_s"]) / n)
    assert r["speedup"] == pytest.approx(r["naive_ms_per_video"] / r["ms_per_video"])
    assert r["proposal_cache_mb"] > 0


def test_scaling_points_carry_their_analytic_counts():
    clips = [8, 16]
    points = scaling.run_points(clips, F, min_seconds=0.01)
    config = common.model_config(F)
    for p, t in zip(points, clips):
        shape = flops.StepShape.charades(t, scaling.WORDS, config)
        assert (p["T"], p["K"]) == (t, shape.groups)
        assert p["mflops"] == pytest.approx(flops.step_flops(config, shape, False) / 1e6)
        assert p["input_mb"] == 4.0 * t * F / 2**20
        assert p["ms"] > 0 and p["ms_without_self_attention"] > 0 and p["ms_banded"] > 0
        assert p["peak_mb"] >= 0
    with pytest.raises(ValueError, match="increasing"):
        scaling.run_points([16, 8], F, 0.01)


def test_run_assembles_the_committed_json_keys(monkeypatch):
    """run.run with every section replaced by its committed result: the same JSON."""
    committed = json.loads(BENCH_JSON.read_text(encoding="utf-8"))
    fake = {
        name: (lambda o, root, done, name=name: committed["sections"][name])
        for name in run.SECTIONS
    }
    monkeypatch.setattr(run, "SECTIONS", fake)
    result = json.loads(
        json.dumps(run.run(BenchOptions(), log=lambda line: None), default=common.json_default)
    )
    assert set(result) == set(committed)
    assert set(result["options"]) == set(committed["options"])
    for key in set(committed) - {"machine", "started", "seconds", "section_seconds"}:
        assert result[key] == committed[key], key
    assert run._with_needs(["pipeline"]) == ["train", "pipeline"]
    with pytest.raises(ValueError, match="unknown sections"):
        run._with_needs(["trian"])


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, capsys):
    """The whole benchmark with --quick sizes (minutes): the JSON has the committed
    run's keys and the page's prose comes back unchanged around new tables."""
    page_before = PAGE.read_text(encoding="utf-8")
    committed = json.loads(BENCH_JSON.read_text(encoding="utf-8"))
    output, page = tmp_path / "bench.json", tmp_path / "PERFORMANCE.md"
    page.write_text(page_before)
    assert run.main(["--quick", f"--output={output}", f"--markdown={page}"]) == 0
    result = json.loads(output.read_text())
    assert set(committed) <= set(result)
    for name, section in committed["sections"].items():
        if name in ("train", "pipeline"):  # one entry per F
            measured = next(iter(result["sections"][name].values()))
            assert set(next(iter(section.values()))) <= set(measured), name
        else:
            # A section merged in from a run of its own carries that run's options,
            # start and machine beside its figures; a whole run has them at the top.
            figures = set(section) - {"options", "started", "machine"}
            assert figures <= set(result["sections"][name]), name
    assert report.render(page.read_text(), result) == page.read_text()
    assert report.without_tables(page.read_text()) == report.without_tables(page_before)
    assert "roofline" in capsys.readouterr().out
