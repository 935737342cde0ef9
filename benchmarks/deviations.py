"""The project's cascade against the paper's equations as printed, on the synthetic data.

    python -m benchmarks.deviations [--seeds=1,2,3] [--forms=project,paper]
        [--epochs=N] [--root=/tmp/vlanet_deviations]
        [--output=benchmarks/results/deviations.json] [--readme=README.md]
    python -m benchmarks.deviations --render_only   # README table from the JSON
    python -m benchmarks.deviations --check          # exit 1 if the README is stale

Each (form, seed) is `python -m vlanet_tf.train --flagfile=configs/synthetic.flags
--cascade_form=F --seed=S` on the demo's synthetic data (`data_prep.synthesize`
defaults, built as `vlanet_tf.demo` builds it), then `python -m vlanet_tf.evaluate
--model_dir` on the test split. Beside R@n it records, at the best epoch (the one
tested) and at the last, the paper's Fig. 4 figures the run logged on its val split:
the mean similarity c of the positive pairs, of the fixed negative pairs and their gap
(`vlanet_tf.validation.similarity_curve_point`). Runs are interleaved by seed so load
from other processes falls on both forms. A finished run is reused, the JSON is
rewritten (atomically) after every run, and the README's table between
`<!-- table:deviations -->` markers is rebuilt from it.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any, Sequence

from benchmarks.common import trained_and_tested
from benchmarks.precision_accuracy import prepare
from vlanet_tf import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILE = os.path.join(REPO, "configs", "synthetic.flags")
RESULT = os.path.join(REPO, "benchmarks", "results", "deviations.json")
README = os.path.join(REPO, "README.md")
KEYS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5")
SIM_KEYS = ("val_pos_sim", "val_neg_sim", "val_sim_gap")
MARKED = re.compile(r"(<!-- table:deviations -->\n)(.*?)(<!-- /table:deviations -->)", re.S)


def _run(args: Sequence[str]) -> None:
    print("$ " + " ".join(args), file=sys.stderr, flush=True)
    # The runs' own progress (one line per epoch) goes to stderr with ours.
    subprocess.run([sys.executable, "-m", *args], check=True, stdout=sys.stderr)


def _history(model_dir: str) -> dict[int, dict[str, float]]:
    """history.csv rows by epoch (1-based), the last row of an epoch winning."""
    rows: dict[int, dict[str, float]] = {}
    with open(os.path.join(model_dir, "history.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v not in ("", "NA", None)}
            rows[int(values["epoch"]) + 1] = values
    return rows


def train_and_test(
    data: str, root: str, form: str, seed: int, epochs: int | None
) -> dict[str, Any]:
    model_dir = os.path.join(root, f"{form}-seed{seed}")
    train_args = [
        f"--flagfile={FLAGFILE}",
        f"--data_dir={data}",
        f"--cascade_form={form}",
        f"--seed={seed}",
        *([f"--epochs={epochs}"] if epochs else []),
    ]
    metrics, seconds = trained_and_tested(model_dir, train_args, _run)
    best_epoch = int(files.read_json(os.path.join(model_dir, "best.json"))["epoch"])
    history = _history(model_dir)
    last_epoch = max(history)
    return {
        "form": form,
        "seed": seed,
        "seconds": seconds,
        "best_epoch": best_epoch,
        "epochs": last_epoch,
        **{k: metrics[k] for k in KEYS},
        **{k: history[best_epoch][k] for k in SIM_KEYS},
        **{f"last_{k}": history[last_epoch][k] for k in SIM_KEYS},
    }


def summary(runs: list[dict[str, Any]], forms: Sequence[str]) -> dict[str, Any]:
    """Mean and population std over the seeds of every figure, per form."""
    out: dict[str, Any] = {}
    for form in forms:
        mine = [r for r in runs if r["form"] == form]
        if not mine:
            continue
        out[form] = {"seeds": len(mine)}
        for key in KEYS + SIM_KEYS + tuple(f"last_{k}" for k in SIM_KEYS):
            values = [r[key] for r in mine]
            out[form][key] = statistics.mean(values)
            out[form][f"{key}_std"] = statistics.pstdev(values)
    return out


def _sim(value: float) -> str:
    return f"{value:.3g}"


def table(result: dict[str, Any]) -> str:
    """The README table: one row per run, then each form's mean ± std over its seeds."""
    header = ["form", "seed", *KEYS, "val c+", "val c−", "val gap", "gap, last epoch"]
    header.append("best epoch")
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for r in result["runs"]:
        cells = [r["form"], str(r["seed"]), *(f"{r[k]:.2f}" for k in KEYS)]
        cells += [_sim(r[k]) for k in SIM_KEYS] + [_sim(r["last_val_sim_gap"])]
        cells.append(f"{r['best_epoch']}/{r['epochs']}")
        lines.append("| " + " | ".join(cells) + " |")
    for form, s in result["means"].items():
        cells = [f"**{form}, mean ± std of {s['seeds']}**", ""]
        cells += [f"{s[k]:.2f} ± {s[f'{k}_std']:.2f}" for k in KEYS]
        cells += [f"{_sim(s[k])} ± {_sim(s[f'{k}_std'])}" for k in SIM_KEYS]
        cells += [f"{_sim(s['last_val_sim_gap'])} ± {_sim(s['last_val_sim_gap_std'])}", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(page: str, result: dict[str, Any]) -> str:
    """`page` with the body between the deviations markers rebuilt from `result`."""
    if len(MARKED.findall(page)) != 1:
        raise ValueError("the page needs exactly one <!-- table:deviations --> block")
    return MARKED.sub(lambda m: m.group(1) + table(result) + "\n" + m.group(3), page)


def _write_readme(result: dict[str, Any], path: str) -> None:
    with open(path, encoding="utf-8") as f:
        page = f.read()
    files.write_bytes(path, render(page, result).encode("utf-8"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", default="project,paper")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--epochs", type=int, default=None, help="default: the flagfile's")
    parser.add_argument("--root", default="/tmp/vlanet_deviations")
    parser.add_argument("--output", default=RESULT, help="JSON of every run and the means")
    parser.add_argument("--readme", default=README, help="page whose table is rewritten")
    parser.add_argument("--render_only", action="store_true", help="README from --output")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args(argv)
    if args.render_only or args.check:
        try:
            result = files.read_json(args.output)
            with open(args.readme, encoding="utf-8") as f:
                page = f.read()
            rendered = render(page, result)
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if args.check:
            if rendered != page:
                print(f"{args.readme}: table differs from {args.output}", file=sys.stderr)
                return 1
            return 0
        files.write_bytes(args.readme, rendered.encode("utf-8"))
        return 0
    forms = [f for f in args.forms.split(",") if f]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    os.makedirs(args.root, exist_ok=True)
    data = prepare(args.root)
    runs: list[dict[str, Any]] = []
    total, start = len(forms) * len(seeds), time.perf_counter()
    for i, seed in enumerate(seeds):
        for form in forms if i % 2 == 0 else list(reversed(forms)):
            print(
                f"[{len(runs) + 1}/{total}] {form} seed {seed} "
                f"({time.perf_counter() - start:.0f} s so far)",
                file=sys.stderr,
                flush=True,
            )
            runs.append(train_and_test(data, args.root, form, seed, args.epochs))
            runs.sort(key=lambda r: (forms.index(r["form"]), r["seed"]))
            result = {
                "command": "python -m benchmarks.deviations",
                "flagfile": "configs/synthetic.flags",
                "epochs": args.epochs,
                "runs": runs,
                "means": summary(runs, forms),
            }
            os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
            files.write_json(args.output, result, sort_keys=False)
    print(table(result))
    if args.readme:
        _write_readme(result, args.readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
