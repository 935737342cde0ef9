"""Localisation on the harder synthetic benchmark: Random, TGA, VLANet and the oracle.

    python -m benchmarks.localisation [--quick] [--difficulties=easy,medium,hard]
        [--seeds=1,2,3] [--best_flagfile=FILE] [--best_flags=--flag=v,--flag=v]
        [--output=benchmarks/results/localisation.json] [--markdown=README.md]
    python -m benchmarks.localisation --report [--output=...] [--markdown=README.md]

For each difficulty (`data_prep.harder --difficulty`): the harder release (its shape
copied from the real Charades-STA files in `--stats_dir`), `data_prep.build`, then on
the test split, all scored by the one evaluator (`python -m vlanet_tf.evaluate`):

  Random              --baseline=random over the same candidate windows (5 seeds)
  TGA                 train --architecture=tga --negative_direction=both
                      --num_negatives=0 with the recipe, one run per seed
  VLANet (paper)      train with the recipe (configs/synthetic.flags: configs/
                      charades.flags scaled for two CPU cores, hidden 64)
  VLANet (best)       the recipe, then --best_flagfile and --best_flags; only when given
  Oracle              data_prep.harder --oracle_predictions: the planted directions known

Cells are mean ± sd over the seeds (sd of n - 1; one seed: no sd). `--quick` runs one
seed on easy and hard. `--keep_rows=random,tga,...` takes those rows from the JSON
already at `--output` instead of computing them (refused unless it was made with the
same data and model options, `SAME_OPTIONS`), so a new "best options" row costs its own
trainings only; the JSON lists the rows kept. Every step's output is kept under
`--root` and reused when the script is run again with the same options, so an
interrupted run resumes; the JSON is written atomically after every finished row.
`--markdown` rewrites the table between `<!-- table:localisation -->` and
`<!-- /table:localisation -->` of that file.

After the table it prints the targets (`targets`; also in the JSON): the "best
options" row at least `TGA_LEAD` points of R1@0.5 above TGA and above the paper recipe
at every level, its R5@0.3 / 0.5 / 0.7 above Random's, and each of its runs' val R1@0.5
falling at most `MAX_VAL_FALL` from its best epoch to its last (read from the run's
`history.csv`). `--report` prints the table and the targets of the JSON at `--output`
and trains nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from benchmarks.common import trained_and_tested
from vlanet_tf import files
from vlanet_tf.run_dir import RunDir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(REPO, "configs", "synthetic.flags")
DEFAULT_STATS = os.path.join(os.path.dirname(REPO), "shared", "data", "charades_sta")
KEYS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7")
ROWS = ("random", "tga", "vlanet", "vlanet_best", "oracle")
ROW_NAMES = {
    "random": "Random",
    "tga": "TGA (Mithun et al. 2019)",
    "vlanet": "VLANet (paper recipe)",
    "vlanet_best": "VLANet (best options)",
    "oracle": "Oracle (planted directions)",
}
MARKER = "localisation"
# What a kept row must share with this run: the data, the seeds and the recipe's size.
SAME_OPTIONS = (
    "difficulties", "seeds", "num_videos", "num_test_videos", "data_seed", "hidden_dim",
    "epochs", "quick",
)  # fmt: skip
# The targets printed after the table (`targets`): VLANet with the chosen defaults (the
# "best options" row) at least this far above TGA in R1@0.5 at every level ...
TGA_LEAD = 5.0
# ... and no run's val R1@0.5 falling more than this from its best epoch to its last.
MAX_VAL_FALL = 1.0
R5_KEYS = ("R5@0.3", "R5@0.5", "R5@0.7")
_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:7.0f} s] {message}", file=sys.stderr, flush=True)


def _run(args: Sequence[str], log_path: str) -> None:
    """`python -m ARGS` from the repo root, its output to `log_path`; a failure names
    the log and shows its tail."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as f:
        done = subprocess.run(
            [sys.executable, "-m", *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-2000:]
        raise RuntimeError(f"python -m {' '.join(args)} failed (log {log_path}):\n{tail}")


def _cached(path: str, args: Sequence[str], log_path: str) -> dict[str, Any]:
    """The metrics JSON at `path`, computed by `args` (which writes it) unless present."""
    if not os.path.isfile(path):
        _run(args, log_path)
    return files.read_json(path)


def prepare(level: str, root: str, options: argparse.Namespace) -> tuple[str, str]:
    """(release dir, data dir) of one difficulty."""
    release, data = os.path.join(root, "release"), os.path.join(root, "data")
    if not os.path.isfile(os.path.join(release, "features.h5")):
        log(f"{level}: synthesizing {options.num_videos} + {options.num_test_videos} videos")
        _run(
            [
                "data_prep.harder",
                f"--output_dir={release}",
                f"--stats_dir={options.stats_dir}",
                f"--difficulty={level}",
                f"--num_videos={options.num_videos}",
                f"--num_test_videos={options.num_test_videos}",
                f"--seed={options.data_seed}",
            ],
            os.path.join(root, "logs", "synthesize.log"),
        )
    if not os.path.isfile(os.path.join(data, "manifest.json")):
        log(f"{level}: building the data directory")
        _run(
            [
                "data_prep.build",
                "--dataset=charades_sta",
                f"--annotations_dir={release}",
                f"--features={os.path.join(release, 'features.h5')}",
                f"--word_vectors={os.path.join(release, 'glove.synthetic.50d.txt')}",
                f"--output_dir={data}",
            ],
            os.path.join(root, "logs", "build.log"),
        )
    return release, data


def model_flags(row: str, options: argparse.Namespace) -> list[str]:
    """The training flags of a model row, after the recipe's flagfile."""
    flags = [f"--hidden_dim={options.hidden_dim}"]
    if options.epochs:
        flags.append(f"--epochs={options.epochs}")
    if row == "tga":
        # Its bidirectional ranking loss: both directions, every in-batch negative.
        flags += ["--architecture=tga", "--negative_direction=both", "--num_negatives=0"]
    if row == "vlanet_best":
        if options.best_flagfile:
            flags.append(f"--flagfile={os.path.abspath(options.best_flagfile)}")
        flags += options.best_flags
    return flags


def train_and_test(
    row: str, seed: int, data: str, root: str, options: argparse.Namespace
) -> dict[str, Any]:
    model_dir = os.path.join(root, f"{row}-seed{seed}")
    train_args = [
        f"--flagfile={RECIPE}",
        *model_flags(row, options),
        f"--data_dir={data}",
        f"--seed={seed}",
    ]

    def run(args: Sequence[str]) -> None:  # logs/train-ROW-seedN.log, evaluate-...
        _run(args, os.path.join(root, "logs", f"{args[0].split('.')[-1]}-{row}-seed{seed}.log"))

    metrics, seconds = trained_and_tested(model_dir, train_args, run, "test_metrics.json")
    return {"seed": seed, "seconds": seconds, **metrics, **val_course(model_dir)}


def val_course(model_dir: str) -> dict[str, float]:
    """Val R1@0.5 at the run's best epoch and at its last, and the fall between them,
    from the run's history (`RunDir.read_history`: one row per epoch, a resumed epoch's
    row replacing the old one). {} (the fall target then reads n/a), with a logged
    line, when there is no val course to read: the run's test metrics are kept either
    way."""
    try:
        history = RunDir(model_dir).read_history()
    except (OSError, KeyError, ValueError) as error:
        log(f"{model_dir}: unreadable history ({error!r}); its fall is not recorded")
        return {}
    values = [row["val_R1@0.5"] for row in history if "val_R1@0.5" in row]
    if not values:
        log(f"{model_dir}: no val R1@0.5 in its history; its fall is not recorded")
        return {}
    return {"val_best": max(values), "val_last": values[-1], "val_fall": max(values) - values[-1]}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd (n - 1; None for one run) of every key over runs."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in KEYS:
        values = [r[key] for r in runs]
        out[key] = statistics.mean(values)
        out[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def kept_rows(options: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """{level: {row: summary}} of `options.keep_rows`, read from `options.output`.

    Raises ValueError unless that file was made with the same `SAME_OPTIONS` and holds
    every kept row at every difficulty of this run.
    """
    if not options.keep_rows:
        return {}
    if not os.path.isfile(options.output):
        raise ValueError(f"--keep_rows: no earlier result at --output={options.output}")
    earlier = files.read_json(options.output)
    for key in SAME_OPTIONS:
        theirs, ours = earlier.get("options", {}).get(key), getattr(options, key)
        if theirs != ours:
            raise ValueError(
                f"--keep_rows: {options.output} was made with {key}={theirs!r}, "
                f"this run has {key}={ours!r}"
            )
    kept: dict[str, dict[str, Any]] = {}
    for level in options.difficulties:
        for row in options.keep_rows:
            summary = earlier.get("levels", {}).get(level, {}).get(row)
            if summary is None:
                raise ValueError(f"--keep_rows: {options.output} has no {row} row on {level}")
            kept.setdefault(level, {})[row] = summary
    return kept


def run_level(
    level: str,
    options: argparse.Namespace,
    rows: Sequence[str],
    kept: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    root = os.path.join(options.root, level)
    release, data = prepare(level, root, options)
    result: dict[str, Any] = {}
    for row in rows:
        if kept and row in kept:
            result[row] = kept[row]
            log(f"{level}: {ROW_NAMES[row]:<28} R1@0.5 {result[row]['R1@0.5']:6.2f}  (kept)")
            continue
        start = time.perf_counter()
        if row == "random":
            metrics = _cached(
                os.path.join(root, "random.json"),
                [
                    "vlanet_tf.evaluate",
                    "--baseline=random",
                    f"--flagfile={RECIPE}",
                    f"--data_dir={data}",
                    "--split=test",
                    "--seeds=5",
                    f"--output={os.path.join(root, 'random.json')}",
                ],
                os.path.join(root, "logs", "random.log"),
            )
            result[row] = {"runs": 5, **{k: metrics[k] for k in KEYS}}
            result[row].update({f"{k}_sd": metrics.get(f"{k}_std") for k in KEYS})
        elif row == "oracle":
            predictions = os.path.join(root, "oracle.jsonl")
            if not os.path.isfile(predictions):
                _run(
                    [
                        "data_prep.harder",
                        f"--output_dir={release}",
                        f"--oracle_predictions={predictions}",
                        f"--seed={options.data_seed}",
                    ],
                    os.path.join(root, "logs", "oracle.log"),
                )
            metrics = _cached(
                os.path.join(root, "oracle.json"),
                [
                    "vlanet_tf.evaluate",
                    f"--predictions={predictions}",
                    f"--data_dir={data}",
                    "--split=test",
                    f"--output={os.path.join(root, 'oracle.json')}",
                ],
                os.path.join(root, "logs", "oracle_evaluate.log"),
            )
            result[row] = {"runs": 1, **{k: metrics[k] for k in KEYS}}
            result[row].update({f"{k}_sd": None for k in KEYS})
        else:
            runs = []
            for seed in options.seeds:
                log(f"{level}: training {ROW_NAMES[row]}, seed {seed}")
                runs.append(train_and_test(row, seed, data, root, options))
            result[row] = {**summarise(runs), "per_seed": runs}
        log(
            f"{level}: {ROW_NAMES[row]:<28} R1@0.5 {result[row]['R1@0.5']:6.2f}"
            f"  ({time.perf_counter() - start:.0f} s)"
        )
    manifest = files.read_json(os.path.join(data, "manifest.json"))
    result["sentences"] = {
        split: manifest["splits"][split]["sentences"] for split in manifest["splits"]
    }
    return result


# A target's check at one level: (met, the figure printed), or None without the figure.
Verdict = tuple[bool, str] | None


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets against `result`: each {"target", "met", "detail"}.

    A target is met when every level meets it. `met` is None where no level misses it
    but one lacks a row or a figure it needs (a row kept from a JSON written before the
    figure was recorded). Table 3's order is the ablation table's
    (`vlanet_tf.ablations`), not this script's.
    """
    levels = result["difficulties"]

    def row(level: str, name: str) -> dict[str, Any]:  # {} for a level not yet run
        return result["levels"].get(level, {}).get(name) or {}

    def lead_over(other: str, at_least: float, strict: bool) -> Callable[[str], Verdict]:
        def check(level: str) -> Verdict:
            best, base = row(level, "vlanet_best"), row(level, other)
            if "R1@0.5" not in best or "R1@0.5" not in base:
                return None
            gap = best["R1@0.5"] - base["R1@0.5"]
            return (gap > at_least if strict else gap >= at_least), f"{gap:+.2f}"

        return check

    def above_random(level: str) -> Verdict:
        best, random = row(level, "vlanet_best"), row(level, "random")
        if any(k not in best or k not in random for k in R5_KEYS):
            return None
        gaps = [best[k] - random[k] for k in R5_KEYS]
        return min(gaps) > 0, " / ".join(f"{g:+.2f}" for g in gaps)

    def val_falls(level: str) -> Verdict:
        falls = [r.get("val_fall") for r in row(level, "vlanet_best").get("per_seed", [])]
        if not falls or None in falls:
            return None
        return max(falls) <= MAX_VAL_FALL, " / ".join(f"{x:.2f}" for x in falls)

    checks = [
        (
            f"VLANet (best options) R1@0.5 at least {TGA_LEAD:g} above TGA",
            lead_over("tga", TGA_LEAD, strict=False),
        ),
        (
            "VLANet (best options) R1@0.5 above the paper recipe",
            lead_over("vlanet", 0.0, strict=True),
        ),
        ("VLANet (best options) R5@0.3 / 0.5 / 0.7 above Random", above_random),
        (
            f"val R1@0.5 falls at most {MAX_VAL_FALL:g} from each best-options run's best "
            "epoch to its last",
            val_falls,
        ),
    ]
    out = []
    for target, check in checks:
        verdicts, parts = [], []
        for level in levels:
            found = check(level)
            verdicts.append(None if found is None else found[0])
            parts.append(f"{level} " + ("n/a" if found is None else found[1]))
        met = False if False in verdicts else None if None in verdicts else True
        out.append({"target": target, "met": met, "detail": ", ".join(parts)})
    return out


def targets_text(found: Sequence[dict[str, Any]]) -> str:
    """`targets`' list, a line each."""
    verdict = {True: "met", False: "missed", None: "n/a"}
    return "\n".join(f"[{verdict[t['met']]:>6}] {t['target']}: {t['detail']}" for t in found)


def _cell(summary: dict[str, Any], key: str) -> str:
    sd = summary.get(f"{key}_sd")
    return f"{summary[key]:.2f}" + (f" ± {sd:.2f}" if sd is not None else "")


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per model, R1@0.5 and R1@0.7 per difficulty, then R5@0.5."""
    levels = result["difficulties"]
    header = ["method"] + [f"{lvl} R1@0.5" for lvl in levels] + [f"{lvl} R1@0.7" for lvl in levels]
    header += [f"{lvl} R5@0.5" for lvl in levels]
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    for row in result["rows"]:
        cells = [ROW_NAMES[row]]
        for key in ("R1@0.5", "R1@0.7", "R5@0.5"):
            cells += [_cell(result["levels"][lvl][row], key) for lvl in levels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rewrite_markdown(path: str, body: str) -> None:
    """Replaces what lies between this table's markers in `path`."""
    start, end = f"<!-- table:{MARKER} -->\n", f"<!-- /table:{MARKER} -->"
    with open(path, encoding="utf-8") as f:
        page = f.read()
    if page.count(start) != 1 or page.count(end) != 1 or page.index(start) > page.index(end):
        raise ValueError(f"{path}: expected one {start.strip()} ... {end} pair")
    head, rest = page.split(start)
    _, tail = rest.split(end)
    files.write_bytes(path, (head + start + body + "\n" + end + tail).encode("utf-8"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, easy and hard")
    parser.add_argument("--difficulties", default=None, help="default easy,medium,hard")
    parser.add_argument("--seeds", default=None, help="model seeds; default 1,2,3 (quick: 1)")
    parser.add_argument("--stats_dir", default=DEFAULT_STATS, help="real Charades-STA files")
    parser.add_argument("--num_videos", type=int, default=300)
    parser.add_argument("--num_test_videos", type=int, default=100)
    parser.add_argument("--data_seed", type=int, default=0)
    parser.add_argument("--hidden_dim", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--best_flagfile", default=None, help="VLANet (best options) row")
    parser.add_argument(
        "--best_flags", default="", help="comma-separated extra flags of that row"
    )
    parser.add_argument(
        "--keep_rows", default="", help="comma-separated rows kept from --output's JSON"
    )
    parser.add_argument("--root", default="/tmp/vlanet_localisation")
    parser.add_argument(
        "--output", default=os.path.join(REPO, "benchmarks", "results", "localisation.json")
    )
    parser.add_argument("--markdown", default=None, help="rewrite this file's table")
    parser.add_argument(
        "--report", action="store_true", help="print --output's table and targets; train nothing"
    )
    args = parser.parse_args(argv)
    if args.report:
        if not os.path.isfile(args.output):
            parser.error(f"--report: no result at --output={args.output}")
        return args
    levels = args.difficulties or ("easy,hard" if args.quick else "easy,medium,hard")
    args.difficulties = [lvl for lvl in levels.split(",") if lvl]
    args.seeds = [int(s) for s in (args.seeds or ("1" if args.quick else "1,2,3")).split(",")]
    args.best_flags = [f for f in args.best_flags.split(",") if f]
    args.keep_rows = [r for r in args.keep_rows.split(",") if r]
    keepable = [r for r in ROWS if r != "vlanet_best"]  # the row being measured is not
    unknown = sorted(set(args.keep_rows) - set(keepable))
    if unknown:
        parser.error(f"--keep_rows: {unknown} cannot be kept; choose from {keepable}")
    if args.best_flagfile and not os.path.isfile(args.best_flagfile):
        parser.error(f"--best_flagfile: {args.best_flagfile} does not exist")
    if not os.path.isdir(args.stats_dir):
        parser.error(f"--stats_dir: {args.stats_dir} is not a directory (the real Charades-STA files)")
    return args


def report(result: dict[str, Any], markdown: str | None) -> None:
    """Prints the table and `result["targets"]`; rewrites `markdown`'s table when given."""
    print(table(result))
    print(targets_text(result["targets"]))
    if markdown:
        rewrite_markdown(markdown, table(result))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.report:
        result = files.read_json(options.output)
        missing = [k for k in ("difficulties", "rows", "levels") if k not in result]
        if missing:
            raise ValueError(f"{options.output}: not a result of this script (no {missing})")
        # Judged again from the figures: an older JSON has none, or by older rules.
        result["targets"] = targets(result)
        report(result, options.markdown)
        return 0
    rows = [r for r in ROWS if r != "vlanet_best" or options.best_flagfile or options.best_flags]
    kept = kept_rows(options)
    result: dict[str, Any] = {
        "difficulties": options.difficulties,
        "rows": rows,
        "seeds": options.seeds,
        "options": {
            k: v
            for k, v in vars(options).items()
            if k not in ("root", "output", "markdown", "keep_rows")
        },
        "recipe": os.path.relpath(RECIPE, REPO),
        "kept_rows": options.keep_rows,
        "levels": {},
    }
    log(f"difficulties {options.difficulties}, seeds {options.seeds}, rows {rows}")
    for level in options.difficulties:
        result["levels"][level] = run_level(level, options, rows, kept.get(level))
        result["seconds"] = time.perf_counter() - _START
        result["targets"] = targets(result)  # n/a for the levels still to run
        files.write_json(options.output, result)
    report(result, options.markdown)
    log(f"done; {options.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
