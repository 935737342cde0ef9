"""export.saved_model: layout, fresh-process equality, signatures, bad requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from export import serving
from tests import export_testing
from vlanet_tf.data import pipeline
from vlanet_tf.ranking import rank
from vlanet_tf.model import INPUT_KEYS
from vlanet_tf.run_dir import RunDir

F = 8  # data_testing.FEATURE_DIM


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(run):
    return tf.saved_model.load(str(run.saved_model))


def _inputs(query, features, length=None, duration=None):
    features = np.asarray(features, np.float32)
    b, t = features.shape[:2]
    return {
        "query": tf.constant(query, tf.string),
        "video_features": tf.constant(features),
        "video_length": tf.constant(length if length is not None else [t] * b, tf.int32),
        "duration": tf.constant(duration if duration is not None else [t * 0.7] * b, tf.float32),
    }


def test_version_folders_are_integers_and_written_atomically(run, tmp_path):
    info = serving.read_export_info(str(run.saved_model))
    assert run.saved_model.name == "1"
    assert info["top_k"] == serving.DEFAULT_TOP_K and info["feature_dim"] == F
    assert info["weights"].endswith("best.weights.h5")
    vocab = Path(serving.vocabulary_path(str(run.saved_model))).read_text()
    assert vocab == (run.data_dir / "vocab.txt").read_text()

    base = tmp_path / "serve"
    (base / "3").mkdir(parents=True)
    (base / "not_a_version").mkdir()
    assert serving.next_version(str(base)) == 4
    path = serving.export_run(str(run.model_dir), str(base), checkpoint="last", top_k=2)
    assert path == str(base / "4")
    assert sorted(os.listdir(base)) == ["3", "4", "not_a_version"]  # no staging left
    assert serving.read_export_info(path)["weights"].endswith(".weights.h5")
    assert "checkpoints" in serving.read_export_info(path)["weights"]
    with pytest.raises(ValueError, match="already exists"):
        serving.export_run(str(run.model_dir), str(base), version=4)
    with pytest.raises(ValueError, match="does not exist"):
        serving.export_run(str(run.model_dir), str(base), checkpoint=str(tmp_path / "x.h5"))


def test_fresh_process_without_the_project_gives_the_keras_outputs(run, tmp_path):
    batch = next(iter(pipeline.make_dataset(str(run.data_dir), "test", 4, training=False)))
    network = RunDir(str(run.model_dir)).load_model().network
    keras_out = {k: v.numpy() for k, v in network({k: batch[k] for k in INPUT_KEYS}).items()}
    ranked = [
        rank(keras_out["scores"][i], keras_out["moments"][i], keras_out["valid"][i], 5)
        for i in range(4)
    ]
    np.savez(
        tmp_path / "case.npz",
        query=batch["sentence"].numpy(),
        **{k: batch[k].numpy() for k in ("video_features", "video_length", "duration")},
        **{f"keras_{k}": v for k, v in keras_out.items()},
        ranked=np.asarray([[m for m in r] for r in ranked], np.float32),
    )
    script = textwrap.dedent(
        f"""
        import importlib.util, json, sys
        import numpy as np, tensorflow as tf
        assert importlib.util.find_spec("vlanet_tf") is None, "project importable"
        assert importlib.util.find_spec("export") is None, "project importable"
        case = np.load("case.npz", allow_pickle=True)
        model = tf.saved_model.load({str(run.saved_model)!r})
        inputs = dict(
            query=tf.constant(case["query"]),
            video_features=tf.constant(case["video_features"]),
            video_length=tf.constant(case["video_length"]),
            duration=tf.constant(case["duration"]),
        )
        every = model.signatures["proposals"](**inputs)
        diffs = {{}}
        for k in ("similarity", "scores", "moments", "attention_map"):
            diffs[k] = float(np.abs(every[k].numpy() - case["keras_" + k]).max())
        assert (every["valid"].numpy() == case["keras_valid"]).all()
        top = model.signatures["serving_default"](**inputs)
        got = np.concatenate([top["moments"].numpy(), top["scores"].numpy()[..., None]], -1)
        diffs["serving_default"] = float(np.abs(got - case["ranked"]).max())
        diffs["serving_similarity"] = float(
            np.abs(top["similarity"].numpy() - case["keras_similarity"]).max())
        print(json.dumps(diffs))
        """
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        env=export_testing.isolated_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    diffs = json.loads(result.stdout.strip().splitlines()[-1])
    print("SavedModel vs Keras, max abs diff:", diffs)
    assert max(diffs.values()) <= 1e-5, diffs


def test_saved_model_cli_lists_the_signatures(run):
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [str(cli), "show", "--dir", str(run.saved_model), "--all"],
        env=export_testing.isolated_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name in (
        "serving_default",
        "serve_examples",
        "serve_tokens",
        "serve_tokens_single",
        "proposals",
    ):
        assert f"signature_def['{name}']" in out
    serving = out.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    for text in (
        "inputs['query']",
        "inputs['video_features']",
        "shape: (-1, -1, 8)",
        "inputs['video_length']",
        "inputs['duration']",
        "outputs['moments']",
        "shape: (-1, 5, 2)",
        "outputs['scores']",
        "outputs['similarity']",
        "outputs['num_moments']",
    ):
        assert text in serving, text


def _example(query: str, features: np.ndarray, duration: float, feature_dim=None) -> bytes:
    feature = lambda **kw: tf.train.Feature(**kw)  # noqa: E731
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "query": feature(bytes_list=tf.train.BytesList(value=[query.encode()])),
                "features": feature(
                    bytes_list=tf.train.BytesList(value=[features.astype("<f4").tobytes()])
                ),
                "num_clips": feature(int64_list=tf.train.Int64List(value=[len(features)])),
                "feature_dim": feature(
                    int64_list=tf.train.Int64List(value=[feature_dim or features.shape[1]])
                ),
                "duration": feature(float_list=tf.train.FloatList(value=[duration])),
            }
        )
    ).SerializeToString()


def test_example_signature_equals_serving_default_on_padded_videos(loaded):
    short, long = export_testing.random_video(9, F, 1), export_testing.random_video(30, F, 2)
    examples = [
        _example("a person opens the door", short, 6.5),
        _example("someone is holding the sandwich", long, 21.0),
    ]
    got = loaded.signatures["serve_examples"](examples=tf.constant(examples))
    padded = np.zeros((2, 30, F), np.float32)
    padded[0, :9], padded[1] = short, long
    want = loaded.signatures["serving_default"](
        **_inputs(
            ["a person opens the door", "someone is holding the sandwich"],
            padded,
            [9, 30],
            [6.5, 21.0],
        )
    )
    for key in serving.RANKED_OUTPUTS:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature_dim must be 8"):
        loaded.signatures["serve_examples"](
            examples=tf.constant([_example("door", short[:, :4], 6.5)])
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="byte count"):
        loaded.signatures["serve_examples"](
            examples=tf.constant([_example("door", short[:, :4], 6.5, feature_dim=F)])
        )


def test_fewer_valid_moments_than_k_are_padded_as_documented(loaded):
    # 1 clip over 0.2 s: one segment group, so 1 valid surrogate and 4 padding rows.
    out = loaded.signatures["serving_default"](
        **_inputs(["a person opens the door"], export_testing.random_video(1, F)[None], [1], [0.2])
    )
    assert out["num_moments"].numpy().tolist() == [1]
    assert out["scores"].numpy()[0, 0] > serving.PADDED_SCORE
    np.testing.assert_array_equal(out["scores"].numpy()[0, 1:], serving.PADDED_SCORE)
    np.testing.assert_array_equal(out["moments"].numpy()[0, 1:], 0.0)
    np.testing.assert_allclose(out["moments"].numpy()[0, 0], [0.0, 0.2], atol=1e-6)


def test_unknown_words_are_served_as_unk_tokens(loaded):
    video = export_testing.random_video(12, F)[None]
    by_text = loaded.signatures["serving_default"](**_inputs(["zxqv blorpt quillax"], video))
    by_ids = loaded.signatures["serve_tokens"](
        query_tokens=tf.constant([[1, 1, 1]]),
        **{k: v for k, v in _inputs(["x"], video).items() if k != "query"},
    )
    for key in serving.RANKED_OUTPUTS:
        np.testing.assert_array_equal(by_text[key].numpy(), by_ids[key].numpy())
    assert by_text["num_moments"].numpy()[0] > 0


VIDEO = export_testing.random_video(20, F)[None]
NAN_VIDEO = VIDEO.copy()
NAN_VIDEO[0, 3, 2] = np.nan


@pytest.mark.parametrize(
    "inputs, error, message",
    [
        (_inputs([""], VIDEO), tf.errors.InvalidArgumentError, "needs at least one word"),
        (_inputs(["... !!"], VIDEO), tf.errors.InvalidArgumentError, "needs at least one word"),
        (
            _inputs(["door"], np.zeros((1, 0, F)), [0]),
            tf.errors.InvalidArgumentError,
            "T = 0 clips",
        ),
        (
            _inputs(["door"], VIDEO, [0]),
            tf.errors.InvalidArgumentError,
            "video_length must be >= 1",
        ),
        (_inputs(["door"], VIDEO, [21]), tf.errors.InvalidArgumentError, "larger than the clips"),
        (_inputs(["door"], NAN_VIDEO), tf.errors.InvalidArgumentError, "video_features holds NaN"),
        (
            _inputs(["door"], VIDEO, duration=[np.inf]),
            tf.errors.InvalidArgumentError,
            "duration holds NaN or Inf",
        ),
        (
            _inputs(["door"], VIDEO, duration=[0.0]),
            tf.errors.InvalidArgumentError,
            "duration must be > 0",
        ),
        (
            _inputs(["door", "cup"], VIDEO, [20, 20]),
            tf.errors.InvalidArgumentError,
            "batch sizes differ",
        ),
        (
            _inputs(["door"], VIDEO[..., :5]),
            (tf.errors.InvalidArgumentError, TypeError, ValueError),
            r"must have 8 features per clip|\(None, None, 8\)",
        ),
    ],
    ids=[
        "empty",
        "punctuation_only",
        "zero_clips",
        "zero_length",
        "length_over_T",
        "nan_features",
        "inf_duration",
        "zero_duration",
        "batch_mismatch",
        "wrong_feature_size",
    ],
)
def test_bad_requests_fail_with_a_clear_message(loaded, inputs, error, message):
    with pytest.raises(error, match=message):
        loaded.signatures["serving_default"](**inputs)


def test_tensorrt_exits_with_a_one_line_reason_without_tensorrt(run, tmp_path):
    result = export_testing.run_module(
        [
            "-m",
            "export.tensorrt",
            f"--saved_model={run.saved_model}",
            f"--output={tmp_path / 'trt'}",
        ]
    )
    from export import tensorrt

    reason = tensorrt.unavailable_reason()
    if reason is None:
        pytest.skip("TensorFlow here has TensorRT and a GPU")
    assert result.returncode == tensorrt.EXIT_UNAVAILABLE
    lines = [l for l in result.stderr.splitlines() if l.startswith("export.tensorrt:")]
    assert lines == [f"export.tensorrt: cannot convert: {reason}"]
    assert not (tmp_path / "trt").exists()


def test_the_runs_nms_is_exported_and_equals_the_numpy_ranking(run, tmp_path):
    import shutil

    from vlanet_tf import files

    model_dir = tmp_path / "model"
    shutil.copytree(run.model_dir, model_dir)
    config = files.read_json(str(model_dir / "config.json"))
    config["run"]["nms_iou"] = 0.3
    files.write_json(str(model_dir / "config.json"), config)
    path = serving.export_run(str(model_dir), str(tmp_path / "serve"))
    assert serving.read_export_info(path)["nms_iou"] == 0.3
    module = tf.saved_model.load(path)
    inputs = _inputs(["a person opens the door"], export_testing.random_video(40, F, 3)[None])
    got = module.signatures["serving_default"](**inputs)
    every = module.signatures["proposals"](**inputs)
    want = rank(
        every["scores"].numpy()[0], every["moments"].numpy()[0], every["valid"].numpy()[0],
        top_k=5, nms_threshold=0.3,
    )
    count = int(got["num_moments"][0])
    assert count == len(want) and count > 0
    np.testing.assert_allclose(got["moments"].numpy()[0, :count], [w[:2] for w in want], atol=1e-5)
    np.testing.assert_allclose(got["scores"].numpy()[0, :count], [w[2] for w in want], atol=1e-5)
    # No two kept moments overlap by 0.3 or more; without NMS some do.
    from vlanet_tf.spans import temporal_iou

    kept = got["moments"].numpy()[0, :count]
    iou = temporal_iou(kept[:, None], kept[None])
    assert (iou[~np.eye(count, dtype=bool)] < 0.3).all()
    plain = tf.saved_model.load(str(run.saved_model)).signatures["serving_default"](**inputs)
    plain_moments = plain["moments"].numpy()[0]
    plain_iou = temporal_iou(plain_moments[:, None], plain_moments[None])
    assert (plain_iou[~np.eye(len(plain_moments), dtype=bool)] >= 0.3).any()
