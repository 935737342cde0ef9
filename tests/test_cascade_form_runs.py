"""Both cascade forms through training, SavedModel and TFLite; Fig. 4's points.

The runs are `export_testing.exported_run`'s (2 steps, then the export), one per form;
the project form's is the one the export tests share. The paper form's are slow tests
(README lists them).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from export import serving
from tests import export_testing
from vlanet_tf import validation
from vlanet_tf.data import pipeline
from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.run_dir import RunDir

# The project form's run is the export tests' own; the paper form's is a run of its own
# (about 40 s on two cores), so its tests are in the slow set.
FORMS = ("project", pytest.param("paper", marks=pytest.mark.slow))


@pytest.fixture(scope="module", params=FORMS)
def run(request, tmp_path_factory):
    return request.param, export_testing.exported_run(tmp_path_factory, request.param)


def _case(num_clips: int) -> dict[str, np.ndarray]:
    return {
        "query_tokens": np.asarray([[3, 7, 1, 12]], np.int32),
        "video_features": export_testing.random_video(num_clips, 8, num_clips)[None],
        "video_length": np.asarray([num_clips], np.int32),
        "duration": np.asarray([num_clips * 0.7], np.float32),
    }


def test_the_form_is_trained_saved_and_exported_as_such(run):
    form, exported = run
    run_dir = RunDir(str(exported.model_dir))
    assert run_dir.load_options().model.cascade_form == form
    history = run_dir.read_history()
    assert history and all(np.isfinite(r["loss"]) for r in history)
    model = run_dir.load_model()
    assert model.network.get_layer("cascaded_cross_modal_attention").form == form
    signature = tf.saved_model.load(str(exported.saved_model)).signatures[
        "serve_tokens_single"
    ]
    for num_clips in (5, 90):
        case = _case(num_clips)
        got = signature(**{k: tf.constant(v) for k, v in case.items()})
        want = model(case)
        np.testing.assert_allclose(
            got["similarity"].numpy(), want["similarity"].numpy(), rtol=1e-4, atol=1e-7
        )
        assert np.isfinite(got["scores"].numpy()).all()


@pytest.mark.slow
def test_the_paper_form_converts_to_tflite(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    from export import tflite

    exported = export_testing.exported_run(tmp_path_factory, "paper")
    ranker = tflite.TFLiteRanker(
        tflite.convert(str(exported.saved_model)),
        serving.vocabulary_path(str(exported.saved_model)),
    )
    signature = tf.saved_model.load(str(exported.saved_model)).signatures[
        "serve_tokens_single"
    ]
    for num_clips in (1, 17, 300):
        case = _case(num_clips)
        want = signature(**{k: tf.constant(v) for k, v in case.items()})
        export_testing.assert_same_ranking(
            ranker(**case), {k: v.numpy() for k, v in want.items()}, 1e-4, f"T={num_clips}"
        )


def test_fixed_negatives_pair_each_sentence_with_the_next_of_another_video():
    assert validation.fixed_negatives(["a", "a", "b", "c", "c"]).tolist() == [2, 2, 3, 0, 0]
    assert validation.fixed_negatives(["a", "a"]).tolist() == [-1, -1]


def _tensorboard_scalars(directory: str, tag: str) -> dict[int, float]:
    values = {}
    for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_fig_4_points_are_the_mean_c_of_the_fixed_val_pairs(run):
    """Every epoch's logged and plotted val_pos_sim / val_neg_sim equal the mean c
    of the val split's pairs, computed here one pair at a time with that epoch's
    weights: (video, its sentence), and (video, the next sentence in file order,
    round the end, that belongs to another video)."""
    _, exported = run
    run_dir = RunDir(str(exported.model_dir))
    history = run_dir.read_history()
    examples = [
        ({k: batch[k] for k in INPUT_KEYS}, batch["video_id"][0].numpy())
        for batch in pipeline.make_dataset(str(exported.data_dir), "val", 1, training=False)
    ]
    videos = {video for _, video in examples}
    assert len(videos) >= 2
    logged = {
        key: _tensorboard_scalars(
            os.path.join(run_dir.tensorboard_dir, "validation"), f"epoch_{key}"
        )
        for key in ("pos_sim", "neg_sim")
    }
    for row in history:
        epoch = int(row["epoch"]) + 1
        model = run_dir.load_model(run_dir.checkpoint_path(epoch))
        positive, negative = [], []
        for i, (inputs, video) in enumerate(examples):
            positive.append(float(model(inputs)["similarity"][0]))
            j = next(
                (i + s) % len(examples)
                for s in range(1, len(examples))
                if examples[(i + s) % len(examples)][1] != video
            )
            paired = {**inputs, "query_tokens": examples[j][0]["query_tokens"]}
            negative.append(float(model(paired)["similarity"][0]))
        for key, values in (("pos_sim", positive), ("neg_sim", negative)):
            want = np.mean(values)
            tol = 1e-4 * np.mean(np.abs(values))
            assert row[f"val_{key}"] == pytest.approx(want, rel=1e-4, abs=tol), key
            assert logged[key][epoch - 1] == pytest.approx(want, rel=1e-4, abs=tol), key
        assert row["val_sim_gap"] == pytest.approx(row["val_pos_sim"] - row["val_neg_sim"])
    curve = tf.image.decode_png(open(run_dir.similarity_curve_path, "rb").read())
    assert len(np.unique(curve.numpy().reshape(-1, curve.shape[-1]), axis=0)) > 20
