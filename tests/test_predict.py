"""vlanet_tf.predict: the CLI's table, JSON and timeline; plots.render_timeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests import export_testing
from vlanet_tf import plots, predict

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


def test_cli_prints_json_and_draws_the_timeline(run, tmp_path):
    video_id, duration = next(iter(export_testing.durations(run.release).items()))
    plot = tmp_path / "timeline.png"
    result = export_testing.run_module(
        [
            "-m",
            "vlanet_tf.predict",
            f"--saved_model={run.saved_model}",
            f"--features={run.release / 'features.h5'}",
            f"--video_id={video_id}",
            f"--duration={duration}",
            "--query=someone is holding the sandwich",
            "--top_k=3",
            "--json",
            f"--plot={plot}",
            "--ground_truth=1.5,9.0",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["video_id"] == video_id and len(record["moments"]) == 3
    scores = [m[2] for m in record["moments"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= m[0] < m[1] <= duration + 1e-4 for m in record["moments"])
    assert plot.read_bytes().startswith(PNG)


def test_predict_table_and_top_k_limit(run):
    features = export_testing.random_video(15, 8)
    result = predict.predict(str(run.saved_model), features, 10.0, "a person opens the door", 2)
    assert len(result["moments"]) == 2
    table = predict.format_moments(result["moments"], result["similarity"])
    assert table.splitlines()[0].split() == ["rank", "start", "end", "score"]
    with pytest.raises(ValueError, match="exported with top_k=5"):
        predict.predict(str(run.saved_model), features, 10.0, "door", 6)
    with pytest.raises(ValueError, match=r"features \[T, 8\], got shape \(15, 3\)"):
        predict.predict(str(run.saved_model), features[:, :3], 10.0, "door")


def test_load_features_reads_npy_files_and_names_missing_videos(run, tmp_path):
    array = export_testing.random_video(4, 8)
    np.save(tmp_path / "one.npy", array)
    np.testing.assert_array_equal(predict.load_features(str(tmp_path / "one.npy"), None), array)
    np.testing.assert_array_equal(predict.load_features(str(tmp_path), "one"), array)
    with pytest.raises(ValueError, match="no features for video 'nope'"):
        predict.load_features(str(run.release / "features.h5"), "nope")


def test_timeline_renders_with_and_without_truth():
    moments = np.asarray([[0.0, 4.0], [2.0, 6.0], [0.0, 0.0]])
    scores = np.asarray([-1.0, -0.5, -1e9])
    valid = np.asarray([True, True, False])
    weights = plots.attention_weights(scores, valid)
    np.testing.assert_allclose(weights.sum(), 1.0)
    assert weights[2] == 0.0 and weights[1] > weights[0]
    for truth in ([], [[1.0, 5.0]]):
        png = plots.render_timeline(moments, scores, valid, 8.0, [[2.0, 6.0, -0.5]], truth, "q")
        assert png.startswith(PNG)
