"""From nothing to an R@n table on synthetic data, on a laptop CPU in a few minutes.

    python -m vlanet_tf.demo --flagfile=configs/synthetic.flags

1. `data_prep.synthesize` writes a synthetic release in the Charades-STA formats;
2. `data_prep.build` turns it into shards (train / val carved by video / test);
3. VLANet trains with the flagfile's settings, the best epoch picked on val;
4. the best checkpoint ranks the test split, beside the Random row (SPEC §8) and,
   unless --noablation, the model trained without surrogate selection (SPEC §9).

Every step skips what a previous run already finished, so rerunning is cheap.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

from absl import app, flags

from vlanet_tf import flags as vflags

FLAGS = flags.FLAGS
METRIC_KEYS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7")


def define_demo_flags() -> None:
    if "raw_dir" in FLAGS:
        return
    flags.DEFINE_string("raw_dir", "demo/raw", "Where the synthetic release is written.")
    flags.DEFINE_boolean(
        "ablation", True, "Also train and test the model without surrogate selection."
    )
    flags.DEFINE_integer("random_seeds", 5, "Seeds averaged by the Random row.")
    flags.DEFINE_string("results", "demo/results.md", "Markdown table written here.")


def _run(args: Sequence[str]) -> None:
    print("$ " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", *args], check=True)


def prepare_data(raw_dir: str, data_dir: str) -> None:
    """Synthesize and build, each skipped when its output exists."""
    if not os.path.isfile(os.path.join(raw_dir, "features.h5")):
        _run(["data_prep.synthesize", f"--output_dir={raw_dir}"])
    if not os.path.isfile(os.path.join(data_dir, "manifest.json")):
        vectors = [f for f in os.listdir(raw_dir) if f.startswith("glove")]
        if len(vectors) != 1:
            raise ValueError(f"expected one glove*.txt in {raw_dir!r}, found {vectors}")
        _run(
            [
                "data_prep.build",
                "--dataset=charades_sta",
                f"--annotations_dir={raw_dir}",
                f"--features={os.path.join(raw_dir, 'features.h5')}",
                f"--word_vectors={os.path.join(raw_dir, vectors[0])}",
                f"--output_dir={data_dir}",
            ]
        )


def results_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown: one row per method, R@n columns; `±std` where the row has one."""
    lines = [
        "| method | " + " | ".join(METRIC_KEYS) + " |",
        "| --- |" + " ---: |" * len(METRIC_KEYS),
    ]
    for name, metrics in rows.items():
        cells = []
        for key in METRIC_KEYS:
            cell = f"{metrics[key]:.2f}"
            if f"{key}_std" in metrics:
                cell += f" ± {metrics[f'{key}_std']:.2f}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    from vlanet_tf import experiment, strategy
    from vlanet_tf.evaluation import baselines, ground_truth

    start = time.time()
    prepare_data(FLAGS.raw_dir, FLAGS.data_dir)
    strategy.configure_cpu_devices(FLAGS.num_cpu_devices)
    model_config = vflags.model_config_from_flags(FLAGS)
    train_config = vflags.train_config_from_flags(FLAGS)
    run_config = vflags.run_config_from_flags(FLAGS)

    rows: dict[str, dict[str, Any]] = {}
    dataset_name, queries = ground_truth.from_shards(FLAGS.data_dir, "test")
    random, _ = baselines.evaluate_baseline(
        "random", dataset_name, queries, model_config.geometry, seeds=FLAGS.random_seeds
    )
    rows[f"Random ({FLAGS.random_seeds} seeds)"] = random
    full = experiment.train_and_evaluate(model_config, train_config, run_config)
    rows["VLANet"] = full["metrics"]
    if FLAGS.ablation:
        ablated = experiment.train_and_evaluate(
            dataclasses.replace(model_config, use_surrogate_selection=False),
            train_config,
            dataclasses.replace(run_config, model_dir=run_config.model_dir + "_no_surrogate"),
        )
        rows["VLANet w/o surrogate selection"] = ablated["metrics"]

    table = results_table(rows)
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.results)), exist_ok=True)
    with open(FLAGS.results, "w", encoding="utf-8") as f:
        f.write(f"Synthetic data, test split ({FLAGS.data_dir}):\n\n{table}\n")
    print(f"\nSynthetic test split, {time.time() - start:.0f} s in all:\n\n{table}\n")
    print(f"(written to {FLAGS.results}; TensorBoard: tensorboard --logdir={FLAGS.model_dir})")


if __name__ == "__main__":
    vflags.define_all_flags()
    define_demo_flags()
    app.run(vflags.one_line_errors(main))
