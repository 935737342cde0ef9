"""Issue 16, training side: non-finite stops, atomic and verified run state, and a
run directory that refuses another experiment (one test per reproduced case)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from data_prep import build as build_lib
from tests import data_testing, training_testing
from vlanet_tf import experiment, ranking
from vlanet_tf.callbacks import NonFiniteLoss
from vlanet_tf.config import ModelConfig, RunConfig, TrainConfig
from vlanet_tf.data import prepared
from vlanet_tf.run_dir import RunDir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return training_testing.make_data_dir(tmp_path_factory.mktemp("robust"))


def configs(data_dir, model_dir, epochs=2, **train):
    props = prepared.data_properties(str(data_dir))
    model = ModelConfig(
        vocab_size=props["vocab_size"],
        word_dim=props["word_dim"],
        feature_dim=props["feature_dim"],
        hidden_dim=8,
    )
    train_config = TrainConfig(batch_size=8, epochs=epochs, **{"learning_rate": 0.01, "clipnorm": 0.0, **train})
    run = RunConfig(
        data_dir=str(data_dir),
        model_dir=str(model_dir),
        strategy="one_device",
        steps_per_epoch=2,
        deterministic=True,
        verbose=0,
    )
    return model, train_config, run


def train(model, train_config, run):
    RunDir(run.model_dir).save_options(model, train_config, run)
    try:
        return experiment.run_experiment(model, train_config, run)
    finally:
        tf.keras.backend.clear_session()


# ------------------------------------------------------------------ 1. non-finite


def test_case1_nan_loss_stops_the_run_before_any_checkpoint(data_dir, tmp_path):
    model, train_config, run = configs(
        data_dir, tmp_path / "run", epochs=3, optimizer="sgd", learning_rate=1e30
    )
    with pytest.raises(NonFiniteLoss, match="NaN or infinite"):
        train(model, train_config, run)
    run_dir = RunDir(run.model_dir)
    assert run_dir.checkpoints() == []
    assert not os.path.exists(run_dir.best_weights_path)
    assert not os.path.exists(run_dir.best_json_path)
    assert not os.path.exists(os.path.join(run_dir.backup_dir, "latest.weights.h5"))


def test_case1_ranking_refuses_non_finite_scores():
    moments = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]])
    valid = np.ones(3, bool)
    assert ranking.rank(np.array([0.1, 0.3, 0.2]), moments, valid)[0][:2] == [1.0, 2.0]
    with pytest.raises(ValueError, match="non-finite"):
        ranking.rank(np.array([np.nan, np.nan, np.nan]), moments, valid)
    # An invalid row may hold anything: it is never ranked.
    assert len(ranking.rank(np.array([np.nan, 0.3, 0.2]), moments, valid & [False, True, True])) == 2


def test_case1_build_refuses_non_finite_word_vectors(tmp_path):
    release = tmp_path / "release"
    data_testing.make_charades_release(release, num_videos=8, num_test=2)
    options = data_testing.charades_options(release, tmp_path / "data")
    with open(options.word_vectors, encoding="utf-8") as f:
        lines = f.readlines()
    word = lines[3].split()[0]
    lines[3] = word + " nan" + " 0.5" * (data_testing.WORD_DIM - 1) + "\n"
    with open(options.word_vectors, "w", encoding="utf-8") as f:
        f.writelines(lines)
    with pytest.raises(ValueError, match=rf"NaN or infinite.*{word}"):
        build_lib.build(options)
    assert not os.path.exists(tmp_path / "data" / prepared.MANIFEST_FILE)


# ------------------------------------------------------------ 2. atomic, verified


def test_case2_truncated_state_is_named_and_the_run_falls_back(data_dir, tmp_path, capsys):
    model, train_config, run = configs(data_dir, tmp_path / "run", epochs=1)
    train(model, train_config, run)
    run_dir = RunDir(run.model_dir)
    latest = os.path.join(run_dir.backup_dir, "latest.weights.h5")
    # What a kill during a non-atomic write leaves.
    open(latest, "wb").close()
    capsys.readouterr()
    train(model, dataclasses.replace(train_config, epochs=2), run)
    out = capsys.readouterr().out
    assert latest in out
    assert f"resuming after epoch 1 from {run_dir.checkpoint_path(1)}" in out
    assert [int(r["epoch"]) for r in run_dir.read_history()] == [0, 1]
    assert os.path.getsize(latest) > 0
    # A truncated best.weights.h5 is reported by path, not by h5py's anonymous error.
    open(run_dir.best_weights_path, "wb").close()
    with pytest.raises(ValueError, match=re.escape(run_dir.best_weights_path)):
        run_dir.load_model("best")
    assert run_dir.read_best(verify=True) is None


# ---------------------------------------------------------------- 3, 4. fingerprints


def test_case3_rerun_with_another_model_or_data_is_refused_before_writing(data_dir, tmp_path):
    model, train_config, run = configs(data_dir, tmp_path / "run")
    run_dir = RunDir(run.model_dir)
    run_dir.save_options(model, train_config, run)
    with open(run_dir.config_path, "rb") as f:
        saved = f.read()
    # More epochs is the same experiment, continued.
    run_dir.save_options(model, dataclasses.replace(train_config, epochs=9), run)
    with pytest.raises(ValueError) as error:
        run_dir.save_options(
            dataclasses.replace(model, hidden_dim=16, window_frames=(176,)), train_config, run
        )
    message = str(error.value)
    assert "\n" not in message
    assert "model.hidden_dim (saved 8, now 16)" in message
    assert "model.window_frames" in message
    # A rebuilt data directory (token ids permuted) is another experiment too.
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(data_dir, rebuilt)
    vocab = (rebuilt / prepared.VOCAB_FILE).read_text(encoding="utf-8").splitlines()
    vocab[2], vocab[3] = vocab[3], vocab[2]
    (rebuilt / prepared.VOCAB_FILE).write_text("\n".join(vocab) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"data\.vocabulary_sha256"):
        run_dir.save_options(model, train_config, dataclasses.replace(run, data_dir=str(rebuilt)))
    with open(run_dir.config_path, "rb") as f:
        assert f.read() != saved  # the epochs=9 rewrite, and only that one
    assert RunDir(run.model_dir).load_options().train.epochs == 9


def test_case4_evaluate_and_export_refuse_another_vocabulary(data_dir, tmp_path):
    model, train_config, run = configs(data_dir, tmp_path / "run")
    run_dir = RunDir(run.model_dir)
    run_dir.save_options(model, train_config, run)
    other = tmp_path / "other"
    shutil.copytree(data_dir, other)
    with open(other / prepared.VOCAB_FILE, "a", encoding="utf-8") as f:
        f.write("zebra\n")
    assert run_dir.load_options(data_dir=str(data_dir)).run.data_dir == str(data_dir)
    with pytest.raises(ValueError, match=rf"{re.escape(str(other))} is not the data .*vocabulary_sha256"):
        run_dir.load_options(data_dir=str(other))


# ------------------------------------------- a kill at every checkpoint stage in turn

STAGES = (
    "config.json",
    "best.weights.h5",
    "best.json",
    "epoch-001.weights.h5",
    "latest.weights.h5",
    "training_metadata.json",
)


def _weights(path):
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


@pytest.mark.slow
def test_killed_at_every_checkpoint_stage_ends_like_an_uninterrupted_run(data_dir, tmp_path):
    def args(model_dir):
        return [
            f"--data_dir={data_dir}",
            f"--model_dir={model_dir}",
            "--epochs=3",
            "--steps_per_epoch=2",
            *training_testing.TINY_FLAGS,
        ]

    straight = tmp_path / "straight"
    done = training_testing.run_train(args(straight))
    assert done.returncode == 0, done.stderr[-3000:]
    killed = tmp_path / "killed"
    for stage in STAGES:
        run = training_testing.run_hooked_train(args(killed) + [f"--kill_at_write={stage}"])
        assert run.returncode == -9, (stage, run.stderr[-3000:])
        assert "killed while writing" in run.stdout, stage
    finished = training_testing.run_train(args(killed))
    assert finished.returncode == 0, finished.stderr[-3000:]
    want = _weights(RunDir(str(straight)).checkpoint_path(3))
    got = _weights(RunDir(str(killed)).checkpoint_path(3))
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    # Nothing half-written is left under a real name.
    for root, _, names in os.walk(killed):
        for name in names:
            assert os.path.getsize(os.path.join(root, name)) > 0 or name.endswith(".csv"), name
