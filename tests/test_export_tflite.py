"""export.tflite: builtin-op conversion from the SavedModel, equal outputs for T 1..300."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from export import serving, tflite
from tests import export_testing

pytest.importorskip("ai_edge_litert")

F = 8
CLIPS = (1, 2, 17, 300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return export_testing.exported_run(tmp_path_factory)


@pytest.fixture(scope="module")
def ranker(run):
    model = tflite.convert(str(run.saved_model))
    return tflite.TFLiteRanker(model, serving.vocabulary_path(str(run.saved_model)))


def _case(num_clips: int) -> dict[str, np.ndarray]:
    return {
        "query_tokens": np.asarray([[3, 7, 1, 12]], np.int32),
        "video_features": export_testing.random_video(num_clips, F, num_clips)[None],
        "video_length": np.asarray([num_clips], np.int32),
        "duration": np.asarray([num_clips * 0.7], np.float32),
    }


def test_tflite_matches_the_saved_model_for_1_to_300_clips(run, ranker):
    signature = tf.saved_model.load(str(run.saved_model)).signatures["serve_tokens_single"]
    for num_clips in CLIPS:
        case = _case(num_clips)
        want = signature(**{k: tf.constant(v) for k, v in case.items()})
        got = ranker(**case)
        assert sorted(got) == sorted(serving.RANKED_OUTPUTS)
        export_testing.assert_same_ranking(
            got, {k: v.numpy() for k, v in want.items()}, 1e-4, f"T={num_clips}"
        )


def test_tflite_tokenises_like_the_saved_model(run, ranker):
    serving = tf.saved_model.load(str(run.saved_model)).signatures["serving_default"]
    features = export_testing.random_video(23, F, 5)
    sentence = "Someone is HOLDING the sandwich, zxqv!"
    got = ranker.rank(sentence, features, 16.0)
    want = serving(
        query=tf.constant([sentence]),
        video_features=tf.constant(features[None]),
        video_length=tf.constant([23]),
        duration=tf.constant([16.0]),
    )
    np.testing.assert_allclose(got["scores"], want["scores"].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="no word left"):
        ranker.rank("...", features, 16.0)


@pytest.mark.slow
def test_quantised_variants_report_size_and_r1(run, tmp_path):
    paths = tflite.write_models(str(run.saved_model), str(tmp_path), tflite.VARIANTS)
    report = tflite.compare_variants(str(run.saved_model), paths, str(run.data_dir))
    print(tflite.format_report(report))
    assert (tmp_path / "vocab.txt").is_file()
    # The reported R1 is the evaluator's on the variant's own rankings, recomputed here.
    from vlanet_tf.evaluation import ground_truth, predictions, scoring

    dataset, queries = ground_truth.from_shards(str(run.data_dir), "test")
    examples = list(tflite.split_examples(str(run.data_dir), "test"))
    vocab = serving.vocabulary_path(str(run.saved_model))
    for variant in tflite.VARIANTS:
        records = tflite.rank_split(tflite.TFLiteRanker(paths[variant], vocab), examples)
        rankings = predictions.from_records(records, queries, variant)
        expected = scoring.score(dataset, queries, rankings)["R1@0.5"]
        assert report[variant]["R1@0.5"] == expected, variant
        assert report[variant]["R1@0.5_change"] == expected - report["saved_model"]["R1@0.5"]
    # float32 is the SavedModel's graph converted as is: same rankings, same R1.
    assert report["float32"]["R1@0.5_change"] == 0.0
    assert report["float32"]["max_score_diff"] < 1e-4
    # Halving the weights makes the file smaller (this tiny model's file is mostly
    # graph, so by less than half). Dynamic-range quantisation leaves tensors under
    # 1024 elements alone, which at hidden_dim 16 is all of them: no size claim here.
    assert report["float16"]["bytes"] < report["float32"]["bytes"]
    assert report["dynamic_range"]["bytes"] <= report["float32"]["bytes"]


# About 15 s; the default model's conversion stays in the default suite.
@pytest.mark.slow
def test_banded_video_self_attention_converts_to_builtins(tmp_path):
    """The band is built from gather, batched matmul and select: still builtin ops."""
    from vlanet_tf.config import ModelConfig
    from vlanet_tf.model import build_vlanet
    from vlanet_tf.text import PAD_TOKEN, UNK_TOKEN, Vocabulary

    vocab_path = tmp_path / "vocab.txt"
    Vocabulary([PAD_TOKEN, UNK_TOKEN] + [f"w{i}" for i in range(18)]).save(vocab_path)
    network = build_vlanet(
        ModelConfig(
            vocab_size=20, word_dim=4, hidden_dim=16, feature_dim=F, video_self_attention_window=3
        )
    )
    path = serving.save(
        serving.VLANetServing(network, str(vocab_path)), str(tmp_path / "serve")
    )
    ranker = tflite.TFLiteRanker(tflite.convert(path), str(vocab_path))
    signature = tf.saved_model.load(path).signatures["serve_tokens_single"]
    for num_clips in CLIPS:
        case = _case(num_clips)
        want = signature(**{k: tf.constant(v) for k, v in case.items()})
        got = ranker(**case)
        for key in serving.RANKED_OUTPUTS:
            np.testing.assert_allclose(
                got[key], want[key].numpy(), atol=1e-4, err_msg=f"T={num_clips} {key}"
            )
