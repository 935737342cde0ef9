"""Why validation R1@0.5 falls after its best epoch: per-epoch measurements of a run.

For each run directory (trained here with `--variant NAME=FLAGS` when it has no
history yet, as `python -m vlanet_tf.train --flagfile=FLAGFILE FLAGS --epochs=N`), every
epoch checkpoint is reloaded and measured on the same data:

  train R1@0.5, val R1@0.5   the training split (its own sentences and videos) and the
                             val split (other videos), ranked the same way (top 5, the
                             run's NMS), so a widening gap is overfitting
  train gap, val gap         Fig. 4's pos_sim - neg_sim (mean c of the positive pairs
                             minus the fixed negative pairs), on each split: whether the
                             video-level objective keeps improving where localisation
                             does not
  (val R1@0.5 and val gap are the run's own per-epoch validation, history.csv)
  val H, val top1            the surrogate weights' normalised entropy (1 = uniform over
                             the video's valid groups, 0 = one group) and the largest
                             weight: how sharp the ranking attention is
  |W|                        root of the summed squared Frobenius norms of the
                             attention kernels W1, W2 (every Dense Attention)
  val cut, R1 cut, R1 rest   the share of val queries whose top-ranked moment is a
                             window the video's end cut below the shortest window
                             length, and val R1@0.5 among those queries and among the
                             others (from the epoch's val predictions file): whether
                             the ranking drifts onto the few-clip windows at the end
  loss, lr                   from history.csv

    python -m benchmarks.val_fall --data_dir=runs/vf/data --root=runs/vf \
        --variant=recipe= --variant=dropout='--dropout=0.2' --epochs=20

prints one table per run and the summary (best val epoch, val at the best and at the
last epoch, the fall), and writes `ROOT/val_fall.json`. Measured figures are cached per
run in `RUN/val_fall.json` (delete it to remeasure).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(message: str) -> None:
    print(f"[val_fall {time.strftime('%H:%M:%S')}] {message}", flush=True)


def train(run: str, flags: list[str], options: argparse.Namespace) -> None:
    command = [
        sys.executable,
        "-m",
        "vlanet_tf.train",
        f"--flagfile={options.flagfile}",
        f"--data_dir={options.data_dir}",
        f"--model_dir={run}",
        f"--epochs={options.epochs}",
        *flags,
    ]
    log(" ".join(command[2:]))
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "train.log"), "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, cwd=REPO)


def entropy_and_top1(model, dataset) -> tuple[float, float]:
    """Mean normalised entropy and mean largest weight of the surrogate weights.

    The model's `scores` are each surrogate's log weight (SPEC §7; the cascade's log
    scales), so the weights are their softmax over the valid rows, the shares that
    make up v_comp.
    """
    import numpy as np

    keys = ("query_tokens", "video_features", "video_length", "duration")
    entropies, tops = [], []
    for batch in dataset:
        out = model({k: batch[k] for k in keys}, training=False)
        scores = np.asarray(out["scores"], np.float64)
        valid = np.asarray(out["valid"], bool)
        for s, v in zip(scores, valid):
            w = s[v]
            n = w.size
            if n < 2:
                continue
            p = np.exp(w - w.max())
            p /= p.sum()
            h = -np.sum(p * np.log(np.clip(p, 1e-30, None))) / np.log(n)
            entropies.append(h)
            tops.append(p.max())
    return float(np.mean(entropies)), float(np.mean(tops))


def cut_top1(predictions_path: str, queries: dict, shortest: float) -> dict[str, float]:
    """How many val top-1 moments are windows cut short by the video's end.

    A top-ranked moment counts as cut when it ends at the video's end and is shorter
    than `shortest` (the smallest window, seconds): only clipping makes a sliding
    window shorter than that. Returns `cut` (% of the queries), and R1@0.5 (%) over
    the cut ones (`R1_cut`, NaN without any) and over the others (`R1_rest`).
    """
    import numpy as np

    from vlanet_tf.evaluation import predictions
    from vlanet_tf.spans import temporal_iou

    hits = {True: [], False: []}
    for query_id, ranked in predictions.read(predictions_path, queries).items():
        truth = queries[query_id]
        start, end = (float(x) for x in ranked[0][:2])
        cut = end >= truth.duration - 1e-3 and end - start < shortest - 1e-3
        best = temporal_iou(np.asarray(truth.moments, float), [start, end]).max()
        hits[cut].append(bool(best >= 0.5))
    total = len(hits[True]) + len(hits[False])
    if not total:
        raise ValueError(f"{predictions_path}: no prediction")
    share = lambda h: 100.0 * float(np.mean(h)) if h else float("nan")  # noqa: E731
    return {
        "cut": 100.0 * len(hits[True]) / total,
        "R1_cut": share(hits[True]),
        "R1_rest": share(hits[False]),
    }


def attention_norm(model) -> float:
    import numpy as np

    total = 0.0
    for w in model.weights:
        if "cascaded_cross_modal_attention" in w.path and w.path.endswith("kernel"):
            total += float(np.sum(np.square(w.numpy())))
    return total**0.5


def measure(run: str, options: argparse.Namespace) -> list[dict]:
    cache = os.path.join(run, "val_fall.json")
    if os.path.isfile(cache):
        with open(cache) as f:
            return json.load(f)
    from vlanet_tf import validation
    from vlanet_tf.evaluation import ground_truth
    from vlanet_tf.inference import predict_dataset
    from vlanet_tf.run_dir import RunDir

    run_dir = RunDir(run)
    run_options = run_dir.load_options()
    nms = run_options.run.nms_iou or None
    top_k = run_options.run.eval_top_k or None
    history = {int(row["epoch"]): row for row in run_dir.read_history()}
    rows = []
    checkpoints = run_dir.checkpoints()
    val = [float(history[e]["val_R1@0.5"]) for e in sorted(history)]
    best = max(range(len(val)), key=lambda i: val[i]) + 1
    chosen = {1, best, len(checkpoints)} | set(range(options.every, len(checkpoints) + 1, options.every))
    train_set = validation.split_dataset(options.data_dir, "train")
    val_set = validation.split_dataset(options.data_dir, "val")
    dataset_name, train_queries = ground_truth.from_shards(options.data_dir, "train")
    _, val_queries = ground_truth.from_shards(options.data_dir, "val")
    shortest = min(run_options.model.geometry.window_seconds)
    for epoch, path in enumerate(checkpoints, start=1):
        if epoch not in chosen:
            continue
        model = run_dir.load_model(path, run_options)
        h = history[epoch - 1]
        row = {"epoch": epoch}
        records = list(predict_dataset(model, train_set, top_k=top_k, nms_threshold=nms))
        metrics, _ = validation.score_records(records, dataset_name, train_queries, "train")
        row["train_R1@0.5"] = float(metrics["R1@0.5"])
        point = validation.similarity_curve_point(
            model, train_set, positive=[r["similarity"] for r in records]
        )
        row["train_gap"] = point["sim_gap"]
        row["train_pos_sim"] = point["pos_sim"]
        # Val: the training run's own per-epoch validation (history.csv).
        row["val_R1@0.5"] = float(h["val_R1@0.5"])
        row["val_gap"] = float(h["val_sim_gap"])
        row["val_pos_sim"] = float(h["val_pos_sim"])
        row["val_entropy"], row["val_top1"] = entropy_and_top1(model, val_set)
        row["attention_norm"] = attention_norm(model)
        cut = cut_top1(run_dir.predictions_path("val", epoch), val_queries, shortest)
        row.update({f"val_{k}": v for k, v in cut.items()})
        row["loss"] = float(h["loss"])
        row["train_pos_sim_during_training"] = float(h["pos_sim"])
        rows.append(row)
        log(f"{os.path.basename(run)} epoch {epoch}: " + format_row(row))
    if not rows:
        raise ValueError(f"{run}: no epoch checkpoint to measure")
    with open(cache, "w") as f:
        json.dump(rows, f, indent=1)
    return rows


def format_row(row: dict) -> str:
    return (
        f"train {row['train_R1@0.5']:5.1f}  val {row['val_R1@0.5']:5.1f}  "
        f"train gap {row['train_gap']:.3f}  val gap {row['val_gap']:.3f}  "
        f"H {row['val_entropy']:.3f}  top1 {row['val_top1']:.3f}  "
        f"|W| {row['attention_norm']:.1f}  loss {row['loss']:.4f}  "
        f"cut {row.get('val_cut', float('nan')):4.1f}%  "
        f"R1 cut {row.get('val_R1_cut', float('nan')):5.1f}  "
        f"R1 rest {row.get('val_R1_rest', float('nan')):5.1f}"
    )


def summary(run: str, rows: list[dict]) -> dict:
    from vlanet_tf.run_dir import RunDir

    val = [float(h["val_R1@0.5"]) for h in RunDir(run).read_history()]
    best = max(range(len(val)), key=lambda i: val[i])
    return {
        "best_epoch": best + 1,
        "epochs": len(val),
        "val_best": val[best],
        "val_last": val[-1],
        "fall": val[best] - val[-1],
        "train_last": rows[-1]["train_R1@0.5"],
        "train_at_best": next(r["train_R1@0.5"] for r in rows if r["epoch"] == best + 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", required=True, help="prepared data directory")
    parser.add_argument("--root", required=True, help="run directories go under it")
    parser.add_argument("--flagfile", default=os.path.join(REPO, "configs", "synthetic.flags"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument(
        "--every", type=int, default=2,
        help="measure every Nth epoch's checkpoint (and the first, the best and the last)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=FLAGS (space-separated training flags after the flagfile); repeatable",
    )
    options = parser.parse_args(argv)
    if not options.variant:
        parser.error("--variant: give at least one NAME=FLAGS (e.g. --variant=recipe=)")
    if not os.path.isdir(options.data_dir):
        parser.error(f"--data_dir: {options.data_dir} is not a directory")
    results = {}
    for spec in options.variant:
        name, _, flags = spec.partition("=")
        run = os.path.join(options.root, name)
        if not os.path.isfile(os.path.join(run, "history.csv")) or len(
            open(os.path.join(run, "history.csv")).readlines()
        ) < options.epochs + 1:
            train(run, flags.split(), options)
        rows = measure(run, options)
        results[name] = {"flags": flags, "rows": rows, "summary": summary(run, rows)}
        print(f"\n== {name} ({flags or 'the recipe'})")
        for row in rows:
            print(f"epoch {row['epoch']:2d}: {format_row(row)}")
    print("\nrun | flags | best val epoch | val best | val last | fall | train at best | train last")
    for name, result in results.items():
        s = result["summary"]
        print(
            f"{name} | {result['flags'] or '-'} | {s['best_epoch']}/{s['epochs']} | "
            f"{s['val_best']:.2f} | {s['val_last']:.2f} | {s['fall']:.2f} | "
            f"{s['train_at_best']:.2f} | {s['train_last']:.2f}"
        )
    with open(os.path.join(options.root, "val_fall.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
