"""DiDeMo end to end on a synthetic release in the public format: synthesize -> build ->
train -> evaluate -> export.

The release has 6 segments of 5 s (some videos 5), 4 annotators per sentence who
sometimes disagree by a segment, and planted (verb, object) concepts. The trained model
must beat the Random row on R@1 and R@5, and every ranking it gives (the predictions
file, `predict_dataset`, the SavedModel) must hold each valid candidate moment of the
query's video exactly once: 21, or 15 for a 5-segment video (SPEC §8).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data_prep import build as build_lib
from data_prep import synthesize
from export import serving
from vlanet_tf import experiment
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared
from vlanet_tf.evaluation import baselines, ground_truth, predictions
from vlanet_tf.inference import predict_dataset
from vlanet_tf.run_dir import RunDir
from vlanet_tf.validation import split_dataset


def didemo_candidates(num_segments: int) -> set[tuple[float, float]]:
    """The protocol's candidate moments in seconds, written from SPEC §8: every
    inclusive segment pair (s, e), s <= e, inside the video, as (5 s, 5 (e + 1))."""
    return {
        (5.0 * s, 5.0 * (e + 1))
        for s, e in itertools.combinations_with_replacement(range(num_segments), 2)
    }


def assert_complete(moments, duration: float) -> None:
    got = [tuple(float(v) for v in m[:2]) for m in moments]
    expected = didemo_candidates(round(duration / 5.0))
    assert len(got) == len(set(got)) == len(expected), (duration, len(got))
    assert set(got) == expected


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("didemo")
    release, data_dir = root / "release", root / "data"
    paths = synthesize.synthesize(
        synthesize.SynthesisOptions(
            output_dir=str(release),
            dataset="didemo",
            num_videos=160,
            num_test_videos=60,
            feature_dim=32,
            word_dim=24,
            signal_strength=0.9,
            short_video_fraction=0.25,
        )
    )
    build_lib.build(
        build_lib.BuildOptions(
            dataset="didemo",
            annotations_dir=str(release),
            features=paths["features"],
            word_vectors=paths["word_vectors"],
            output_dir=str(data_dir),
            num_shards=1,
        )
    )
    props = prepared.data_properties(str(data_dir))
    model_config = ModelConfig(
        vocab_size=props["vocab_size"],
        word_dim=props["word_dim"],
        feature_dim=props["feature_dim"],
        hidden_dim=64,
        proposal_mode="didemo",
    )
    run_config = RunConfig(
        data_dir=str(data_dir),
        model_dir=str(root / "run"),
        strategy="one_device",
        deterministic=True,
        verbose=0,
    )
    summary = experiment.train_and_evaluate(
        model_config, TrainConfig(batch_size=32, epochs=5, learning_rate=0.003), run_config
    )
    return {
        "root": root,
        "release": release,
        "data_dir": str(data_dir),
        "run_config": run_config,
        "model_config": model_config,
        "metrics": summary["metrics"],
    }


def ranked_test_split(trained) -> list[dict]:
    """predict_dataset's records of the trained run over the test split, all ranks."""
    if "records" not in trained:
        model = RunDir(trained["run_config"].model_dir).load_model()
        dataset = split_dataset(trained["data_dir"], "test")
        trained["records"] = list(predict_dataset(model, dataset, top_k=None))
    return trained["records"]


def exported(trained) -> str:
    """The run as a SavedModel with k = 21 (exported once for the module)."""
    if "saved_model" not in trained:
        trained["saved_model"] = serving.export_run(
            trained["run_config"].model_dir, str(trained["root"] / "serve"), top_k=21
        )
    return trained["saved_model"]


def test_release_is_didemo_shaped(trained):
    records = json.loads((trained["release"] / "test_data.json").read_text())
    assert {r["num_segments"] for r in records} == {5, 6}
    assert all(len(r["times"]) == 4 for r in records)
    assert all(0 <= s <= e < r["num_segments"] for r in records for s, e in r["times"])
    disagree = sum(len({tuple(t) for t in r["times"]}) > 1 for r in records)
    assert 0 < disagree < len(records)


def test_vlanet_beats_random_on_r1_and_r5(trained):
    dataset, queries = ground_truth.from_shards(trained["data_dir"], "test")
    assert dataset == "didemo"
    random, _ = baselines.evaluate_baseline(
        "random", dataset, queries, trained["model_config"].geometry
    )
    model = trained["metrics"]
    print(
        f"\nsynthetic DiDeMo test ({len(queries)} sentences), R@1 / R@5 / mIoU:"
        f"\n  Random  {random['R1']:6.2f} {random['R5']:6.2f} {random['mIoU']:6.2f}"
        f"  (std over {random['seeds']} seeds: {random['R1_std']:.2f} {random['R5_std']:.2f})"
        f"\n  VLANet  {model['R1']:6.2f} {model['R5']:6.2f} {model['mIoU']:6.2f}"
    )
    assert model["R1"] > random["R1"] + 2 * random["R1_std"]
    assert model["R5"] > random["R5"] + 2 * random["R5_std"]


def test_every_ranking_holds_each_valid_candidate_once(trained):
    data_dir, model_dir = trained["data_dir"], trained["run_config"].model_dir
    # The val predictions file training wrote, read by the evaluator's reader.
    files = sorted((Path(model_dir) / "predictions").glob("val-epoch-*.jsonl"))
    assert files
    _, val_queries = ground_truth.from_shards(data_dir, "val")
    written = predictions.read(str(files[-1]), val_queries)
    assert set(written) == set(val_queries)
    for query_id, ranked in written.items():
        assert_complete(ranked, val_queries[query_id].duration)
    assert any(q.duration == 25.0 for q in val_queries.values())

    # predict_dataset over the test split (what evaluate and the metrics above read).
    _, test_queries = ground_truth.from_shards(data_dir, "test")
    records = ranked_test_split(trained)
    assert {r["query_id"] for r in records} == set(test_queries)
    for record in records:
        assert_complete(record["moments"], test_queries[record["query_id"]].duration)
    assert sum(r["duration"] == 25.0 for r in records) > 0


def test_saved_model_ranks_each_valid_candidate_once(trained):
    data_dir = trained["data_dir"]
    records = ranked_test_split(trained)
    loaded = tf.saved_model.load(exported(trained))
    batch = next(iter(split_dataset(data_dir, "test", batch_size=64)))
    inputs = {
        "query": batch["sentence"],
        "video_features": batch["video_features"],
        "video_length": batch["video_length"],
        "duration": batch["duration"],
    }
    served = {k: v.numpy() for k, v in loaded.signatures["serving_default"](**inputs).items()}
    every = {k: v.numpy() for k, v in loaded.signatures["proposals"](**inputs).items()}
    durations = batch["duration"].numpy()
    assert {25.0, 30.0} <= set(durations.tolist())
    by_id = {r["query_id"]: r["moments"] for r in records}
    for i, duration in enumerate(durations):
        count = int(served["num_moments"][i])
        assert count == (15 if duration == 25.0 else 21)
        assert_complete(served["moments"][i, :count], duration)
        assert every["valid"][i].sum() == count
        assert every["surrogate"][i].sum() == round(duration / 5.0)
        # The same ranking as predict_dataset's (tied scores may swap).
        query_id = batch["query_id"].numpy()[i].decode()
        np.testing.assert_allclose(
            served["scores"][i, :count], [m[2] for m in by_id[query_id]], atol=1e-4
        )


# About 20 s: the TFLite conversion.
@pytest.mark.slow
def test_tflite_ranks_each_valid_candidate_once(trained):
    tflite = pytest.importorskip("export.tflite")
    pytest.importorskip("ai_edge_litert")
    path = exported(trained)
    ranker = tflite.TFLiteRanker(tflite.convert(path), serving.vocabulary_path(path))
    signature = tf.saved_model.load(path).signatures["serve_tokens_single"]
    batch = next(iter(split_dataset(trained["data_dir"], "test", batch_size=64)))
    seen = set()
    for i in range(len(batch["duration"])):
        length = int(batch["video_length"][i])
        duration = float(batch["duration"][i])
        sentence = batch["sentence"][i].numpy().decode()
        case = {
            "query_tokens": ranker.tokens(sentence),
            "video_features": batch["video_features"][i : i + 1, :length].numpy(),
            "video_length": np.asarray([length], np.int32),
            "duration": np.asarray([duration], np.float32),
        }
        got = ranker(**case)
        want = {k: v.numpy() for k, v in signature(**case).items()}
        count = int(got["num_moments"][0])
        assert count == int(want["num_moments"][0]) == (15 if duration == 25.0 else 21)
        assert_complete(got["moments"][0, :count], duration)
        np.testing.assert_allclose(got["scores"][0, :count], want["scores"][0, :count], atol=1e-4)
        seen.add(duration)
    assert seen == {25.0, 30.0}
