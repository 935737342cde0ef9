"""Own videos end to end: encoded files -> extract_features -> build --dataset=custom ->
train -> export -> predict --video, on videos of a coloured shape appearing during known
seconds, with sentences naming the shape and colour.

The backbone is the randomly initialised tiny_cnn loaded through --weights=PATH. The
held-out videos' R1@0.5 (the evaluator's, and predict's own extraction) must be at least
twice the Random row's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import export_testing
from tests import video_testing as vt

NUM_TRAIN, NUM_TEST = 48, 16  # the learning check (slow)
SMOKE_TRAIN, SMOKE_TEST = 10, 4  # the default suite: the pipeline's plumbing


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    return _pipeline(tmp_path_factory.mktemp("own_videos"), NUM_TRAIN, NUM_TEST, epochs=8,
                     cli_extract=True)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return _pipeline(tmp_path_factory.mktemp("own_smoke"), SMOKE_TRAIN, SMOKE_TEST, epochs=1,
                     cli_extract=False)


def _pipeline(root, num_train: int, num_test: int, epochs: int, cli_extract: bool):
    from data_prep import build as build_lib
    from export import serving
    from vlanet_tf import experiment
    from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
    from vlanet_tf.data import prepared
    from vlanet_tf.evaluation import baselines, ground_truth

    rows = vt.own_videos(root, num_train + num_test, seed=0)
    annotations = root / "annotations"
    annotations.mkdir()
    # One sentence without a moment: it trains, its video stays out of val.
    train_rows = rows[:num_train] + [{"video": rows[0]["video"], "sentence": "a red shape"}]
    vt.write_jsonl(annotations / "train.jsonl", train_rows)
    vt.write_jsonl(annotations / "test.jsonl", rows[num_train:])
    vectors = vt.write_word_vectors(root / "vectors.txt")
    weights = vt.tiny_weights(root / "tiny.weights.h5")
    features = root / "features" / "features.h5"
    if cli_extract:
        extracted = export_testing.run_module([
            "-m", "data_prep.extract_features", f"--videos={root / 'videos'}",
            f"--output={features}", "--backbone=tiny_cnn", f"--weights={weights}",
            "--image_size=32",
        ])
        assert extracted.returncode == 0, extracted.stderr[-3000:]
        stderr = extracted.stderr
    else:
        import io

        from vlanet_tf.video import extract
        from vlanet_tf.video.extractor import Extractor

        stream = io.StringIO()
        extract.extract_store(extract.list_videos(str(root / "videos")),
                              Extractor("tiny_cnn", str(weights), image_size=32),
                              str(features), stream=stream)
        stderr = stream.getvalue()
    data_dir = root / "data"
    manifest = build_lib.build(build_lib.BuildOptions(
        dataset="custom", annotations_dir=str(annotations), features=str(features),
        word_vectors=str(vectors), output_dir=str(data_dir), val_fraction=0.3,
    ))
    props = prepared.data_properties(str(data_dir))
    model_config = ModelConfig(vocab_size=props["vocab_size"], word_dim=props["word_dim"],
                               feature_dim=props["feature_dim"], hidden_dim=32)
    run_config = RunConfig(data_dir=str(data_dir), model_dir=str(root / "model"),
                           deterministic=True, verbose=0)
    result = experiment.train_and_evaluate(
        model_config, TrainConfig(batch_size=16, epochs=epochs, learning_rate=0.003), run_config
    )
    dataset, queries = ground_truth.from_shards(str(data_dir), "test")
    random, _ = baselines.evaluate_baseline("random", dataset, queries, model_config.geometry)
    saved_model = serving.export_run(run_config.model_dir, str(root / "serve"))
    return {"root": root, "rows": rows, "weights": str(weights), "features": str(features),
            "manifest": manifest, "metrics": result["metrics"], "random": random,
            "saved_model": saved_model, "extract_stderr": stderr, "num_train": num_train}


def test_extractor_travels_with_data_run_and_export(smoke):
    own = smoke
    from export import serving
    from vlanet_tf.run_dir import RunDir
    from vlanet_tf.video import extract

    with open(extract.report_path(own["features"])) as f:
        recorded = json.load(f)["extractor"]
    assert recorded["backbone"] == "tiny_cnn" and recorded["feature_dim"] == 32
    assert own["manifest"]["extractor"] == recorded
    assert own["manifest"]["dataset"] == "charades_sta"  # scored like Charades-STA
    assert RunDir(str(own["root"] / "model")).extractor() == recorded
    assert serving.read_export_info(own["saved_model"])["extractor"] == recorded
    # predict --video's extraction is the offline one, value for value.
    import h5py

    from vlanet_tf import predict

    row = own["rows"][-1]
    features, duration = predict.extract_with(
        serving.read_export_info(own["saved_model"])["extractor"],
        str(own["root"] / "videos" / f"{row['video']}.mp4"), own["weights"],
    )
    with h5py.File(own["features"]) as f:
        np.testing.assert_array_equal(features, f[row["video"]][()])
        assert duration == f[row["video"]].attrs["duration"] == pytest.approx(20.0)
    # The progress display and the summary.
    n = len(own["rows"])
    assert f"[{n}/{n}]" in own["extract_stderr"]
    # The unannotated sentence trained; its video is in train, not val.
    assert own["manifest"]["splits"]["train"]["adjustments"] == {
        "no_moment_whole_video_placeholder": 1
    }
    assert "ETA" in own["extract_stderr"] and "frames/s" in own["extract_stderr"]


@pytest.mark.slow
def test_held_out_videos_beat_random_twice(own):
    print(f"\nRandom {own['random']['R1@0.5']:.1f}, VLANet {own['metrics']['R1@0.5']:.1f}")
    assert own["metrics"]["R1@0.5"] >= 2 * own["random"]["R1@0.5"]


@pytest.mark.slow
def test_predict_on_the_video_files(own):
    """predict's own extraction of the held-out files ranks them as well."""
    import tensorflow as tf

    from vlanet_tf import predict, serving_io, spans

    test_rows = own["rows"][own["num_train"]:]
    extracted = [
        predict.extract_with(serving_io.export_extractor(own["saved_model"]),
                             str(own["root"] / "videos" / f"{r['video']}.mp4"), own["weights"])
        for r in test_rows
    ]
    loaded = tf.saved_model.load(own["saved_model"])
    inputs = serving_io.batch_inputs([r["sentence"] for r in test_rows],
                                     [f for f, _ in extracted], [d for _, d in extracted])
    outputs = loaded.signatures["serving_default"](
        query=tf.constant(inputs["query"].tolist()),
        **{k: tf.constant(v) for k, v in inputs.items() if k != "query"},
    )
    outputs = {k: v.numpy() for k, v in outputs.items()}
    hits = 0
    for i, r in enumerate(test_rows):
        start, end, _ = serving_io.ranked_moments(outputs, i, 1)[0]
        iou = spans.temporal_iou(np.array([start, end]), np.array([r["start"], r["end"]]))
        hits += float(iou) >= 0.5
    assert 100.0 * hits / len(test_rows) >= 2 * own["random"]["R1@0.5"]


def test_predict_cli_video_plot_and_the_mismatch_refusal(smoke, tmp_path):
    own = smoke
    row = own["rows"][own["num_train"]]
    video = own["root"] / "videos" / f"{row['video']}.mp4"
    plot = tmp_path / "timeline.png"
    result = export_testing.run_module([
        "-m", "vlanet_tf.predict", f"--saved_model={own['saved_model']}", f"--video={video}",
        f"--query={row['sentence']}", f"--extractor_weights={own['weights']}", "--json",
        f"--plot={plot}", f"--ground_truth={row['start']},{row['end']}",
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["video_id"] == row["video"] and record["duration"] == pytest.approx(20.0)
    assert len(record["moments"]) == 5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Features of the same video from another backbone's weights: refused, both named.
    from vlanet_tf.video import backbones, extract
    from vlanet_tf.video.extractor import Extractor

    other_weights = str(tmp_path / "other.weights.h5")
    backbones.tiny_cnn(32, seed=1).save_weights(other_weights)
    other = Extractor("tiny_cnn", other_weights, image_size=32)
    other_features = str(tmp_path / "other.h5")
    extract.extract_store([(row["video"], str(video))], other, other_features)
    refused = export_testing.run_module([
        "-m", "vlanet_tf.predict", f"--saved_model={own['saved_model']}",
        f"--features={other_features}", f"--video_id={row['video']}", "--duration=20",
        f"--query={row['sentence']}",
    ])
    assert refused.returncode != 0
    assert "different extractor" in refused.stderr
    assert own["manifest"]["extractor"]["weights_sha256"][:12] in refused.stderr
    assert other.spec.weights_sha256[:12] in refused.stderr
