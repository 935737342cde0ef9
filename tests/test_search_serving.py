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
    probe = network.get_layer("cascaded_cross_modal_attention").similarity_probe(
        expected["words"], expected["mask"]
    )
    np.testing.assert_allclose(out["probe"].numpy(), probe.numpy(), atol=1e-6)
    assert out["last"].shape == (2, network.get_layer("query_encoder").hidden_dim)
    np.testing.assert_allclose(np.linalg.norm(out["last"].numpy(), axis=1), 1.0, atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no word"):
        loaded.signatures[serving.ENCODE_QUERY_SIGNATURE](query=tf.constant(["?!"]))


def test_an_index_from_the_saved_model_ranks_as_the_run(run, tmp_path):
    from vlanet_tf.search.index import Index, ModelMismatch, build_index
    from vlanet_tf.search.model import SavedModelSearch, SearchModel
    from vlanet_tf.search.retrieval import Searcher

    csv = str(run.release / "Charades_v1_test.csv")
    features = str(run.release / "features.h5")
    exported, keras_run = SavedModelSearch(str(run.saved_model)), SearchModel.from_run(
        str(run.model_dir)
    )
    build_index(exported, features, str(tmp_path / "sm"), csv, progress=False)
    build_index(keras_run, features, str(tmp_path / "run"), csv, progress=False)
    a = Index.open(str(tmp_path / "sm"))
    b = Index.open(str(tmp_path / "run"))
    np.testing.assert_array_equal(a.data.video_ids, b.data.video_ids)
    np.testing.assert_array_equal(a.data.group_offsets, b.data.group_offsets)
    np.testing.assert_allclose(
        a.data.proposals.astype(np.float32), b.data.proposals.astype(np.float32), atol=2e-3
    )
    with pytest.raises(ModelMismatch):  # the index names the SavedModel, not the run
        Searcher(a, keras_run)
    by_saved = Searcher.open(str(tmp_path / "sm"), candidates=4)  # the kind it names
    by_run = Searcher(b, keras_run, candidates=4)
    for sentence in ("a person opens the door", "someone is holding a cup"):
        x, y = by_saved.search(sentence, top_videos=4), by_run.search(sentence, top_videos=4)
        assert [v.video_id for v in x.videos] == [v.video_id for v in y.videos]
        np.testing.assert_allclose(
            [v.similarity for v in x.videos], [v.similarity for v in y.videos], atol=1e-4
        )
    with pytest.raises(ValueError, match="no word"):
        by_saved.search("?!")
