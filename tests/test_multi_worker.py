"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 train like one machine.

Each worker is `python -m vlanet_tf.train --strategy=multi_worker` in a subprocess with
its own TF_CONFIG, and dumps its final weights through an injected callback
(`training_testing.DumpFinalWeights`, via `python -m tests.hooked_train`).
The reference is the same loop in one process under a MirroredStrategy over two
logical CPU devices with one input pipeline per replica: replica i then reads exactly
the batches worker i reads (the train split is one shard, so pipeline i keeps records
i, i + 2, ... and shuffles them with the run's seed). Negatives are gathered across
replicas, so the contrastive batch is the global one; clipping is off because Keras
clips each replica's partial gradient.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import tensorflow as tf

from tests import data_testing, training_testing
from vlanet_tf import custom_loop, strategy
from vlanet_tf.run_dir import RunDir

EPOCHS = 2
STEPS = 2
RUN_FLAGS = (
    *training_testing.TINY_FLAGS,
    "--gather_negatives",
    f"--epochs={EPOCHS}",
    f"--steps_per_epoch={STEPS}",
)
TIMEOUT = 240


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(
    data_dir: str,
    model_dir: str,
    log_prefix: str,
    kill_after_steps: dict[int, int] | None = None,
) -> list[subprocess.Popen]:
    """Two workers running the same train command, each with its TF_CONFIG.

    Output goes to files (a full pipe would block a worker and, through the collective
    ops, the other one).
    """
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    workers = []
    for index in range(2):
        env = data_testing.env_with_repo_on_path()
        task = {"type": "worker", "index": index}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
        with open(f"{log_prefix}-{index}.log", "w") as log:
            workers.append(
                training_testing.run_hooked_train(
                    [
                        f"--data_dir={data_dir}",
                        f"--model_dir={model_dir}",
                        "--strategy=multi_worker",
                        *RUN_FLAGS,
                    ],
                    kill_after_steps=(kill_after_steps or {}).get(index),
                    final_weights_dir=os.path.join(model_dir, "final"),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return workers


def wait_all(workers: Sequence[subprocess.Popen], timeout: float) -> list[int]:
    """Return codes; every worker still running at the deadline is killed (then -9)."""
    deadline = time.monotonic() + timeout
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes


def read_log(log_prefix: str, index: int) -> str:
    with open(f"{log_prefix}-{index}.log") as f:
        return f.read()


def final_weights(model_dir: str, index: int) -> dict[str, np.ndarray]:
    with np.load(os.path.join(model_dir, "final", f"worker-{index}.npz")) as f:
        return {k: f[k] for k in f.files}


def train_reference(argv: Sequence[str]) -> None:
    """The one-process reference run (see the module docstring); argv: train flags,
    then the directory for its final weights."""
    from absl import flags

    from vlanet_tf import flags as vflags

    vflags.define_all_flags()
    flags.FLAGS(["reference", *argv[:-1]])
    strategy.configure_cpu_devices(2)
    run_config = vflags.run_config_from_flags(flags.FLAGS)
    run_config.verbose = 0
    custom_loop.train(
        vflags.model_config_from_flags(flags.FLAGS),
        vflags.train_config_from_flags(flags.FLAGS),
        run_config,
        strategy.build_strategy("mirrored"),
        callbacks=[training_testing.DumpFinalWeights(argv[-1])],
        per_replica_pipelines=True,
    )


class MultiWorkerTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.root = Path(cls.tmp.name)
        cls.data_dir = str(training_testing.make_data_dir(cls.root))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def assertSameWeights(
        self, a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float
    ) -> None:
        self.assertEqual(set(a), set(b))
        for name in a:
            self.assertAllClose(a[name], b[name], atol=atol, rtol=0, msg=name)

    def test_two_workers_match_two_replicas_in_one_process(self):
        model_dir = str(self.root / "two_workers")
        reference_dir = str(self.root / "reference")
        log = str(self.root / "two_workers")
        workers = start_workers(self.data_dir, model_dir, log)
        env = data_testing.env_with_repo_on_path()
        reference = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tests.test_multi_worker import train_reference; "
                "train_reference(sys.argv[1:])",
                f"--data_dir={self.data_dir}",
                f"--model_dir={reference_dir}",
                *RUN_FLAGS,
                os.path.join(reference_dir, "final"),
            ],
            cwd=training_testing.REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        codes = wait_all(workers, TIMEOUT)
        self.assertEqual(reference.returncode, 0, reference.stderr[-3000:])
        for index, code in enumerate(codes):
            self.assertEqual(code, 0, read_log(log, index)[-3000:])

        chief, other = final_weights(model_dir, 0), final_weights(model_dir, 1)
        self.assertEqual(int(chief["iterations"]), EPOCHS * STEPS)
        self.assertSameWeights(chief, other, atol=0)
        self.assertSameWeights(chief, final_weights(reference_dir, 0), atol=1e-5)

        # The chief alone wrote what a single-machine run writes.
        names = sorted(os.listdir(os.path.join(model_dir, "checkpoints")))
        self.assertEqual(names, [f"epoch-{e:03d}.weights.h5" for e in range(1, EPOCHS + 1)])
        run_dir = RunDir(model_dir)
        for path in (run_dir.best_weights_path, run_dir.best_json_path, run_dir.similarity_curve_path):
            self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(os.listdir(os.path.join(model_dir, "tensorboard", "train")))
        # The chief's checkpoint to resume from; the other worker's copy is deleted.
        backup = sorted(os.listdir(run_dir.backup_dir))
        self.assertEqual(
            backup,
            ["checkpoint", f"ckpt-{EPOCHS}.data-00000-of-00001", f"ckpt-{EPOCHS}.index"],
        )
        history = run_dir.read_history()
        expected = RunDir(reference_dir).read_history()
        self.assertLen(history, EPOCHS)
        for row, want in zip(history, expected):
            for key in ("loss", "pos_sim", "neg_sim", "val_R1@0.5"):
                self.assertAllClose(row[key], want[key], atol=1e-5, msg=key)

    # About 45 s; resuming is also covered by test_resume and test_robust_training.
    @pytest.mark.slow
    def test_killing_a_worker_then_restarting_both_resumes(self):
        model_dir = str(self.root / "killed")
        log = str(self.root / "killed")
        # Worker 1 dies after the first step of epoch 2, once epoch 1 is checkpointed.
        workers = start_workers(self.data_dir, model_dir, log, {1: STEPS + 1})
        self.assertEqual(
            workers[1].wait(timeout=TIMEOUT), -signal.SIGKILL, read_log(log, 1)[-3000:]
        )
        # Worker 0 now waits in a collective op for a peer that is gone.
        code = wait_all(workers[:1], timeout=5)[0]
        self.assertNotEqual(code, 0)
        history = RunDir(model_dir).read_history()
        self.assertLen(history, 1)
        written = os.path.join(model_dir, "checkpoints", "epoch-001.weights.h5")
        first_write = os.path.getmtime(written)

        restart = str(self.root / "restarted")
        codes = wait_all(start_workers(self.data_dir, model_dir, restart), TIMEOUT)
        for index, code in enumerate(codes):
            self.assertEqual(code, 0, read_log(restart, index)[-3000:])
        output = read_log(restart, 0)
        self.assertIn(f"1 epochs done, step {STEPS}", output)
        self.assertNotIn(f"Epoch 1/{EPOCHS}", output)
        self.assertIn(f"Epoch 2/{EPOCHS}", output)
        self.assertEqual(os.path.getmtime(written), first_write)
        chief, other = final_weights(model_dir, 0), final_weights(model_dir, 1)
        self.assertEqual(int(chief["iterations"]), EPOCHS * STEPS)
        self.assertEqual(int(chief["epoch"]), EPOCHS)
        self.assertSameWeights(chief, other, atol=0)
        history = RunDir(model_dir).read_history()
        self.assertEqual([int(r["epoch"]) for r in history], list(range(EPOCHS)))


if __name__ == "__main__":
    tf.test.main()
