"""`--score_mix` λ chosen on validation: trained runs re-ranked at several λ.

    python -m benchmarks.score_mix --runs=DIR[,DIR...] [--mixes=0,0.3,1,3,10,100]
        [--output=benchmarks/results/score_mix.json]

A surrogate's score is log a_k + λ·cos(s_k, w_M) (`ModelConfig.score_mix`); λ changes
no weight and neither c nor the loss, so every run is trained once and each of its best
checkpoints is re-ranked at every λ on its val and test splits (its own NMS and top k).
Prints, per λ, val R1@0.5 pooled over the runs (every run's val queries counted once;
the choice is made on this column), and the mean test R1@0.5 and R5@0.5 for the
record. The JSON keeps every run's figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any, Sequence

from vlanet_tf import files


def measure(run_dir: str, mixes: Sequence[float]) -> list[dict[str, Any]]:
    """Val and test R1@0.5 / R5@0.5 of one run's best checkpoint at every λ."""
    from vlanet_tf import validation
    from vlanet_tf.run_dir import RunDir

    run = RunDir(run_dir)
    options = run.load_options()
    out = []
    for mix in mixes:
        model = run.load_model("best", options.with_model(score_mix=float(mix)))
        row: dict[str, Any] = {"run": run_dir, "score_mix": float(mix)}
        for split in ("val", "test"):
            metrics, _, queries, _ = validation.evaluate_split(
                model,
                options.run.data_dir,
                split,
                top_k=options.run.eval_top_k,
                nms_threshold=options.run.nms_iou,
                max_query_length=options.run.max_query_length,
            )
            row[split] = {
                "queries": len(queries),
                "R1@0.5": metrics["R1@0.5"],
                "R5@0.5": metrics["R5@0.5"],
            }
        print(
            f"{run_dir} λ={mix:g}: val R1@0.5 {row['val']['R1@0.5']:.2f}, "
            f"test R1@0.5 {row['test']['R1@0.5']:.2f}",
            file=sys.stderr,
            flush=True,
        )
        out.append(row)
    return out


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per λ: val R1@0.5 pooled over the runs' val queries; mean test figures."""
    table = []
    for mix in sorted({r["score_mix"] for r in rows}):
        at = [r for r in rows if r["score_mix"] == mix]
        hits = sum(r["val"]["R1@0.5"] * r["val"]["queries"] / 100.0 for r in at)
        queries = sum(r["val"]["queries"] for r in at)
        table.append(
            {
                "score_mix": mix,
                "runs": len(at),
                "val_queries": queries,
                "val_R1@0.5": 100.0 * hits / queries,
                "test_R1@0.5": statistics.mean(r["test"]["R1@0.5"] for r in at),
                "test_R5@0.5": statistics.mean(r["test"]["R5@0.5"] for r in at),
            }
        )
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    lines = [
        "| λ | val R1@0.5 (pooled) | test R1@0.5 (mean) | test R5@0.5 (mean) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for t in table:
        lines.append(
            f"| {t['score_mix']:g} | {t['val_R1@0.5']:.2f} | {t['test_R1@0.5']:.2f} "
            f"| {t['test_R5@0.5']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", required=True, help="comma-separated trained run dirs")
    parser.add_argument("--mixes", default="0,0.3,1,3,10,100")
    parser.add_argument("--output", default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    from vlanet_tf.run_dir import RunDir

    runs = [r for r in args.runs.split(",") if r]
    missing = [r for r in runs if not RunDir(r).has_options()]
    if missing:
        parser.error(f"--runs: no trained run (config.json) in {', '.join(missing)}")
    try:
        mixes = [float(m) for m in args.mixes.split(",") if m]
    except ValueError:
        parser.error(f"--mixes: numbers separated by commas, got {args.mixes!r}")
    if any(m < 0 for m in mixes):
        parser.error("--mixes: λ must be >= 0")
    rows = [row for run in runs for row in measure(run, mixes)]
    table = summarise(rows)
    print(markdown(table))
    if args.output:
        files.write_json(args.output, {"runs": runs, "table": table, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
