"""Accuracy of the synthetic demo trained in each precision, mean of several seeds.

    python -m benchmarks.precision_accuracy [--precisions=float32,mixed_bfloat16]
        [--seeds=1,2,3] [--epochs=N] [--root=/tmp/vlanet_precision_accuracy]
        [--output=results.json]

Each (precision, seed) is `python -m vlanet_tf.train --flagfile=configs/synthetic.flags
--precision=P --seed=S` on the demo's synthetic data (`data_prep.synthesize` defaults,
built as `vlanet_tf.demo` builds it), then `python -m vlanet_tf.evaluate --model_dir`
on the test split, which rebuilds the model in the run's saved precision. Runs are
interleaved by seed (float32 then bfloat16, bfloat16 then float32, ...) so that load
from other processes falls on both. Prints the per-seed and mean R1@0.5 / R5@0.5 and
the difference of each precision's mean from the first one's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any, Sequence

from benchmarks.common import trained_and_tested

FLAGFILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synthetic.flags")
KEYS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5")
TARGET_POINTS = 1.5  # |mean R1@0.5 difference| the precision may cost


def _run(args: Sequence[str]) -> None:
    print("$ " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", *args], check=True, stdout=subprocess.DEVNULL)


def prepare(root: str) -> str:
    """The demo's synthetic release and data directory under `root`; the data dir."""
    raw, data = os.path.join(root, "raw"), os.path.join(root, "data")
    if not os.path.isfile(os.path.join(raw, "features.h5")):
        _run(["data_prep.synthesize", f"--output_dir={raw}"])
    if not os.path.isfile(os.path.join(data, "manifest.json")):
        vectors = [f for f in os.listdir(raw) if f.startswith("glove")]
        _run(
            [
                "data_prep.build",
                "--dataset=charades_sta",
                f"--annotations_dir={raw}",
                f"--features={os.path.join(raw, 'features.h5')}",
                f"--word_vectors={os.path.join(raw, vectors[0])}",
                f"--output_dir={data}",
            ]
        )
    return data


def train_and_test(
    data: str, root: str, precision: str, seed: int, epochs: int | None
) -> dict[str, Any]:
    model_dir = os.path.join(root, f"{precision}-seed{seed}")
    train_args = [
        f"--flagfile={FLAGFILE}",
        f"--data_dir={data}",
        f"--precision={precision}",
        f"--seed={seed}",
        *([f"--epochs={epochs}"] if epochs else []),
    ]
    metrics, seconds = trained_and_tested(model_dir, train_args, _run)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        saved_precision = json.load(f)["model"]["precision"]
    return {
        "precision": precision,
        "saved_precision": saved_precision,
        "seed": seed,
        "seconds": seconds,
        **{k: metrics[k] for k in KEYS},
    }


def summary(runs: list[dict[str, Any]], precisions: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in precisions:
        mine = [r for r in runs if r["precision"] == p]
        out[p] = {
            k: statistics.mean(r[k] for r in mine) for k in KEYS
        } | {"R1@0.5_std": statistics.pstdev(r["R1@0.5"] for r in mine), "seeds": len(mine)}
    base = precisions[0]
    for p in precisions[1:]:
        out[p]["R1@0.5_minus_" + base] = out[p]["R1@0.5"] - out[base]["R1@0.5"]
        out[p]["within_target"] = abs(out[p]["R1@0.5_minus_" + base]) <= TARGET_POINTS
    return out


def table(runs: list[dict[str, Any]], result: dict[str, Any], precisions: Sequence[str]) -> str:
    lines = ["| precision | seed | " + " | ".join(KEYS) + " | train + test s |",
             "| --- | ---: |" + " ---: |" * (len(KEYS) + 1)]
    for r in runs:
        lines.append(
            f"| {r['precision']} | {r['seed']} | "
            + " | ".join(f"{r[k]:.2f}" for k in KEYS)
            + f" | {r['seconds']:.0f} |"
        )
    for p in precisions:
        s = result[p]
        lines.append(
            f"| **{p}, mean of {s['seeds']}** | | "
            + " | ".join(f"{s[k]:.2f}" for k in KEYS)
            + " | |"
        )
    for p in precisions[1:]:
        d = result[p][f"R1@0.5_minus_{precisions[0]}"]
        spread = max(result[q]["R1@0.5_std"] for q in (precisions[0], p))
        lines.append(
            f"\n{p} − {precisions[0]}: R1@0.5 {d:+.2f} points "
            f"(target |Δ| ≤ {TARGET_POINTS}: {'met' if result[p]['within_target'] else 'missed'}; "
            f"seed-to-seed std of R1@0.5 up to {spread:.2f} points)"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=None, help="default: the flagfile's")
    parser.add_argument("--root", default="/tmp/vlanet_precision_accuracy")
    parser.add_argument("--output", default=None, help="JSON of every run and the means")
    args = parser.parse_args(argv)
    precisions = [p for p in args.precisions.split(",") if p]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    os.makedirs(args.root, exist_ok=True)
    data = prepare(args.root)
    runs = []
    for i, seed in enumerate(seeds):
        order = precisions if i % 2 == 0 else list(reversed(precisions))
        for p in order:
            runs.append(train_and_test(data, args.root, p, seed, args.epochs))
    runs.sort(key=lambda r: (precisions.index(r["precision"]), r["seed"]))
    result = summary(runs, precisions)
    print(table(runs, result, precisions))
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"epochs": args.epochs, "runs": runs, "means": result}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
