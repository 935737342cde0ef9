"""benchmarks.val_fall: the per-epoch figures it derives, on hand-made inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks import val_fall


class _Weights:
    """A model stand-in that returns fixed surrogate weights for every batch, as the
    model does: each one's log (SPEC §7), the masked rows at -1e9."""

    def __init__(self, weights, valid):
        weights, valid = np.asarray(weights, np.float64), np.asarray(valid)
        log = np.where(valid, np.log(np.clip(weights, 1e-300, None)), -1e9)
        # A constant per row changes no share: the log scales need not be normalised.
        log = log - 7.0 * np.arange(len(log))[:, None]
        self.out = {"scores": log.astype(np.float32), "valid": valid}

    def __call__(self, inputs, training=False):
        return self.out


BATCH = [{k: None for k in ("query_tokens", "video_features", "video_length", "duration")}]


def test_uniform_weights_have_entropy_one_and_top1_one_over_n():
    model = _Weights([[0.25, 0.25, 0.25, 0.25, 0.0]], [[True, True, True, True, False]])
    h, top1 = val_fall.entropy_and_top1(model, BATCH)
    assert h == pytest.approx(1.0)
    assert top1 == pytest.approx(0.25)


def test_one_hot_weights_have_entropy_zero_and_a_skewed_row_in_between():
    model = _Weights([[1.0, 1e-12, 1e-12], [0.5, 0.25, 0.25]], [[True] * 3, [True] * 3])
    h, top1 = val_fall.entropy_and_top1(model, BATCH)
    skewed = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)) / math.log(3)
    assert h == pytest.approx((0.0 + skewed) / 2, abs=1e-6)
    assert top1 == pytest.approx(0.75)


def test_summary_reads_the_fall_from_best_to_last_epoch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    val = [30.0, 42.5, 40.0, 37.0]
    (run / "history.csv").write_text(
        "epoch,loss,val_R1@0.5\n" + "".join(f"{e},0.5,{v}\n" for e, v in enumerate(val))
    )
    rows = [{"epoch": e, "train_R1@0.5": 10.0 * e} for e in (1, 2, 4)]
    s = val_fall.summary(str(run), rows)
    assert (s["best_epoch"], s["epochs"]) == (2, 4)
    assert (s["val_best"], s["val_last"]) == (42.5, 37.0)
    assert s["fall"] == pytest.approx(5.5)
    assert (s["train_at_best"], s["train_last"]) == (20.0, 40.0)


def test_cut_top1_counts_end_windows_shorter_than_the_shortest_and_scores_each_part(tmp_path):
    from vlanet_tf.evaluation.ground_truth import GroundTruth

    def truth(query_id, duration, start, end):
        return GroundTruth(query_id, query_id, duration, np.array([[start, end]]), None)

    queries = {
        # Top-1 cut at the end (2 s < 7 s) and wrong: IoU 0 with [3, 10].
        "a": truth("a", 30.0, 3.0, 10.0),
        # Cut at the end and right: [26, 30] against [25.5, 30], IoU 4 / 4.5.
        "b": truth("b", 30.0, 25.5, 30.0),
        # Ends at the video's end but is a whole window (7.5 s): not cut; right.
        "c": truth("c", 20.0, 12.0, 20.0),
        # Short but not at the end: not cut; wrong.
        "d": truth("d", 20.0, 0.0, 8.0),
    }
    tops = {"a": [28.0, 30.0], "b": [26.0, 30.0], "c": [12.5, 20.0], "d": [10.0, 14.0]}
    path = tmp_path / "val.jsonl"

    def cut_top1(*lower):  # `lower`: moments ranked after each top-1
        lines = []
        for q, top in tops.items():
            moments = [[*top, 1.0]] + [[*m, 0.5] for m in lower]
            lines.append(json.dumps({"query_id": q, "video_id": q, "moments": moments}) + "\n")
        path.write_text("".join(lines))
        return val_fall.cut_top1(str(path), queries, shortest=7.0)

    got = cut_top1((0.0, 1.0))
    assert got["cut"] == pytest.approx(50.0)
    assert got["R1_cut"] == pytest.approx(50.0)
    assert got["R1_rest"] == pytest.approx(50.0)
    tops["b"] = [0.0, 7.0]  # now wrong and not cut
    got = cut_top1()
    assert got["cut"] == pytest.approx(25.0)
    assert got["R1_cut"] == pytest.approx(0.0)
    assert got["R1_rest"] == pytest.approx(100.0 / 3)
