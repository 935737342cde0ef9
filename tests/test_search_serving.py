"""The SavedModel's encode_query signature equals the Keras query encoder."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from export import serving
from tests import export_testing
from vlanet_tf import text
from vlanet_tf.run_dir import RunDir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


def test_encode_query_equals_the_keras_query_encoder(run):
    loaded = tf.saved_model.load(str(run.saved_model))
    sentences = ["a person opens the door", "someone is holding a zxqv cup then looks around"]
    out = loaded.signatures[serving.ENCODE_QUERY_SIGNATURE](query=tf.constant(sentences))
    network = RunDir(str(run.model_dir)).load_model().network
    vocabulary = text.Vocabulary.load(str(run.data_dir / "vocab.txt"))
    tokens = vocabulary.encode(tf.constant(sentences)).to_tensor(text.PAD_ID)
    expected = network.get_layer("query_encoder")(tokens, training=False)
    for key in ("last", "words"):
        np.testing.assert_allclose(out[key].numpy(), expected[key].numpy(), atol=1e-6)
    np.testing.assert_array_equal(out["mask"].numpy(), expected["mask"].numpy())
    assert out["last"].shape == (2, network.get_layer("query_encoder").hidden_dim)
    np.testing.assert_allclose(np.linalg.norm(out["last"].numpy(), axis=1), 1.0, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no word"):
        loaded.signatures[serving.ENCODE_QUERY_SIGNATURE](query=tf.constant(["?!"]))
