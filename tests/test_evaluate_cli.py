"""vlanet_tf.evaluate: predictions-file rules in process, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vlanet_tf.evaluation import baselines, ground_truth, predictions, scoring
from vlanet_tf.geometry import ProposalGeometry, sliding

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the release annotation files are not at {DATA}"
)
CHARADES_KEYS = ["R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7"]


@pytest.fixture
def charades_files(tmp_path):
    """A three-sentence Charades-STA release (one end past the video's length)."""
    txt = tmp_path / "charades_sta_test.txt"
    txt.write_text(
        "AAAAA 0.0 10.0##a person opens a door.\n"
        "AAAAA 10.0 20.0##a person sits down.\n"
        "BBBBB 2.0 9.0##someone drinks from a cup.\n"
    )
    csv = tmp_path / "Charades_v1_test.csv"
    csv.write_text("id,subject,length\nAAAAA,X,30.0\nBBBBB,Y,8.0\n")
    return txt, csv


@pytest.fixture
def charades_queries(charades_files):
    txt, csv = charades_files
    queries, summary = ground_truth.from_annotations("charades_sta", str(txt), str(csv))
    assert list(queries) == ["AAAAA_1", "AAAAA_2", "BBBBB_3"]
    assert summary["skips"] == {}
    np.testing.assert_allclose(queries["BBBBB_3"].moments, [[2.0, 8.0]])  # clipped
    return queries


def _line(query_id, video_id, moments):
    return json.dumps({"query_id": query_id, "video_id": video_id, "moments": moments})


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "expected a JSON object, got list"),
        (
            '{"query_id": "AAAAA_1", "moments": [[0, 1, 1]]}',
            r"missing key\(s\) \['video_id'\]",
        ),
        (
            _line("ZZZ_9", "ZZZ", [[0, 1, 1]]),
            "query_id 'ZZZ_9' is not in the ground truth",
        ),
        (_line("AAAAA_1", "BBBBB", [[0, 1, 1]]), "the ground truth says 'AAAAA'"),
        (_line("AAAAA_1", "AAAAA", []), "query 'AAAAA_1' has no moments"),
        (_line("AAAAA_1", "AAAAA", [[0, 1]]), r"shape \[n, 3\].*got \[1, 2\]"),
        (
            _line("AAAAA_1", "AAAAA", [[5, 1, 1]]),
            r"moment 0 starts after it ends: \[5.0, 1.0\]",
        ),
        (
            _line("AAAAA_1", "AAAAA", [["x", 1, 1]]),
            "list of \\[start, end, score\\] numbers",
        ),
    ],
)
def test_bad_prediction_lines_name_the_line(
    tmp_path, charades_queries, bad_line, message
):
    path = _write(
        tmp_path / "p.jsonl", [_line("AAAAA_2", "AAAAA", [[10, 20, 1]]), "", bad_line]
    )
    with pytest.raises(ValueError, match=message) as raised:
        predictions.read(path, charades_queries)
    assert f"{path}:3:" in str(raised.value)


def test_duplicate_query_is_an_error(tmp_path, charades_queries):
    line = _line("AAAAA_1", "AAAAA", [[0, 10, 1]])
    path = _write(tmp_path / "p.jsonl", [line, line])
    with pytest.raises(
        ValueError, match=r"p.jsonl:2: query_id 'AAAAA_1' already predicted at .*:1"
    ):
        predictions.read(path, charades_queries)


def test_rerank_keeps_file_order_and_applies_nms():
    # The file's order is the ranking even where its score column disagrees.
    ranked = np.array([[0.0, 10.0, 0.1], [0.0, 9.0, 0.9], [20.0, 30.0, 0.5]])
    assert predictions.rerank({"q": ranked}, None, None)["q"] is ranked
    np.testing.assert_array_equal(
        predictions.rerank({"q": ranked}, 0.5, None)["q"], ranked[[0, 2]]
    )
    np.testing.assert_array_equal(
        predictions.rerank({"q": ranked}, None, 2)["q"], ranked[:2]
    )


def test_random_rankings_written_score_like_reported(charades_queries):
    result, rankings = baselines.evaluate_baseline(
        "random", "charades_sta", charades_queries, sliding(), 1
    )
    assert scoring.score("charades_sta", charades_queries, rankings) == {
        k: result[k] for k in CHARADES_KEYS
    }
    assert all(
        r.shape[1] == 3 and (np.diff(r[:, 2]) < 0).all() for r in rankings.values()
    )


def _run(*args):
    completed = subprocess.run(
        [sys.executable, "-m", "vlanet_tf.evaluate", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_cli_predictions_mode(tmp_path, charades_files):
    txt, csv = charades_files
    predictions = _write(
        tmp_path / "p.jsonl",
        [
            _line("AAAAA_1", "AAAAA", [[0, 10, 0.9], [0, 9, 0.8]]),  # IoU 1 at rank 1
            _line(
                "AAAAA_2", "AAAAA", [[0, 10, 0.9], [14, 20, 0.5]]
            ),  # IoU 0.6 at rank 2
        ],  # BBBBB_3 has no prediction: a miss
    )
    metrics_path = tmp_path / "out" / "metrics.json"
    written = tmp_path / "out" / "ranked.jsonl"
    stdout = _run(
        f"--predictions={predictions}",
        "--dataset=charades_sta",
        f"--annotations={txt}",
        f"--durations={csv}",
        f"--output={metrics_path}",
        f"--output_predictions={written}",
        "--nms_threshold=0.5",
    )
    result = json.loads(metrics_path.read_text())
    assert list(result) == CHARADES_KEYS
    assert result == pytest.approx(
        {
            "R1@0.3": 100 / 3,
            "R1@0.5": 100 / 3,
            "R1@0.7": 100 / 3,
            "R5@0.3": 200 / 3,
            "R5@0.5": 200 / 3,
            "R5@0.7": 100 / 3,
        }
    )
    assert "1 without a prediction (counted as misses)" in stdout
    assert "R5@0.5    66.67" in stdout
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    # NMS at 0.5 removed (0, 9), IoU 0.9 with the kept (0, 10).
    assert lines[0] == {
        "query_id": "AAAAA_1",
        "video_id": "AAAAA",
        "moments": [[0, 10, 0.9]],
    }
    assert len(lines) == 2


@needs_data
def test_cli_baselines_on_the_release(tmp_path):
    didemo = DATA / "didemo" / "test_data.json"
    upper = tmp_path / "upper.json"
    ranked = tmp_path / "upper.jsonl"
    stdout = _run(
        "--baseline=upper_bound",
        "--dataset=didemo",
        f"--annotations={didemo}",
        f"--output={upper}",
        f"--output_predictions={ranked}",
    )
    print(stdout)
    result = json.loads(upper.read_text())
    assert list(result) == ["R1", "R5", "mIoU"]
    assert result == pytest.approx({"R1": 74.76, "R5": 100.0, "mIoU": 96.05}, abs=0.01)
    assert "R5       100.00" in stdout

    # The written agreement rankings, scored as a predictions file, give the same.
    again = tmp_path / "again.json"
    _run(
        f"--predictions={ranked}",
        "--dataset=didemo",
        f"--annotations={didemo}",
        f"--output={again}",
    )
    assert json.loads(again.read_text()) == pytest.approx(result)

    charades = tmp_path / "random.json"
    stdout = _run(
        "--baseline=random",
        "--dataset=charades_sta",
        f"--annotations={DATA / 'charades_sta' / 'charades_sta_test.txt'}",
        f"--durations={DATA / 'charades_sta' / 'Charades_v1_test.csv'}",
        "--seeds=3",
        f"--output={charades}",
    )
    print(stdout)
    result = json.loads(charades.read_text())
    assert list(result) == (
        CHARADES_KEYS + [f"{k}_std" for k in CHARADES_KEYS] + ["seeds"]
    )
    assert result["seeds"] == 3
    assert "mean" in stdout and "std" in stdout
    # Windows of 7.3-10 s against ~8 s moments in ~30 s videos: far above 1/#windows.
    assert 10.0 < result["R1@0.5"] < 25.0
    assert result["R1@0.3"] > result["R1@0.5"] > result["R1@0.7"]
    assert result["R5@0.5"] > result["R1@0.5"]


def test_cli_refuses_two_modes(tmp_path, charades_files):
    txt, csv = charades_files
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlanet_tf.evaluate",
            "--baseline=random",
            f"--predictions={tmp_path / 'p.jsonl'}",
            "--dataset=charades_sta",
            f"--annotations={txt}",
            f"--durations={csv}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert completed.returncode != 0
    assert "give one of --predictions and --baseline, not both" in completed.stderr


def test_ground_truth_from_a_prepared_data_dir(tmp_path):
    """The prepared split holds the same queries and DiDeMo segments as the json."""
    from data_prep import build as build_lib
    from tests import data_testing

    release = tmp_path / "release"
    data_testing.make_didemo_release(release)
    build_lib.build(data_testing.didemo_options(release, tmp_path / "prepared"))
    dataset, queries = ground_truth.from_shards(str(tmp_path / "prepared"), "test")
    expected, _ = ground_truth.from_annotations("didemo", str(release / "test_data.json"))
    assert dataset == "didemo"
    assert sorted(queries) == sorted(expected)
    for query_id, query in queries.items():
        raw = expected[query_id]
        assert query.num_segments == raw.num_segments
        # The prepared moments are clipped to the video, so a synthetic annotation
        # running past the last segment (never the case in the release) comes back
        # clipped to it.
        np.testing.assert_array_equal(
            query.segments, np.minimum(raw.segments, raw.num_segments - 1)
        )
    # Scoring the agreement rankings through the prepared ground truth.
    result, rankings = baselines.evaluate_baseline(
        "upper_bound", dataset, queries, ProposalGeometry.didemo()
    )
    assert scoring.score(dataset, queries, rankings)["R5"] == result["R5"] == 100.0
