"""export.onnx: tf2onnx conversion whose onnxruntime outputs equal the SavedModel's."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from export import onnx as onnx_export
from export import serving
from tests import export_testing

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")

F = 8


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


@pytest.fixture(scope="module")
def onnx_path(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "vlanet.onnx"
    return onnx_export.convert(str(run.saved_model), str(out))


def test_provider_preference_puts_tensorrt_and_cuda_first():
    assert onnx_export.PREFERRED_PROVIDERS[:2] == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
    )
    providers = onnx_export.available_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert providers == [p for p in onnx_export.PREFERRED_PROVIDERS if p in providers]


def test_onnx_matches_the_saved_model_for_1_to_300_clips(run, onnx_path):
    signature = tf.saved_model.load(str(run.saved_model)).signatures["serve_tokens"]
    session = onnx_export.session(onnx_path, ["CPUExecutionProvider"])
    for num_clips in (1, 2, 17, 300):
        # Two rows: a padded query and a video shorter than the batch's T.
        features = np.stack(
            [export_testing.random_video(num_clips, F, s) for s in (num_clips, num_clips + 1)]
        )
        case = {
            "query_tokens": np.asarray([[3, 7, 1, 12], [5, 9, 0, 0]], np.int32),
            "video_features": features,
            "video_length": np.asarray([num_clips, max(1, num_clips // 2)], np.int32),
            "duration": np.asarray([num_clips * 0.7, num_clips * 0.4], np.float32),
        }
        want = signature(**{k: tf.constant(v) for k, v in case.items()})
        got = onnx_export.run(session, case)
        assert sorted(got) == sorted(serving.RANKED_OUTPUTS)
        export_testing.assert_same_ranking(
            got, {k: v.numpy() for k, v in want.items()}, 1e-4, f"T={num_clips}"
        )
