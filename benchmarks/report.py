"""Targets, the printed table and the Performance page of a benchmark JSON.

Everything here reads the JSON that `benchmarks.run` writes, so the page can be
regenerated from a saved run: `python -m benchmarks.report bench.json > PERFORMANCE.md`.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

# name -> (key path in the JSON, comparison, threshold, what it means)
TARGETS = {
    "roofline": (("roofline_ratio",), ">=", 0.3, "training step GFLOP/s over matmul GFLOP/s"),
    "pipeline": (("pipeline_to_train_ratio",), ">=", 5.0, "input records/s over step samples/s"),
    "scaling": (("scaling", "exponent"), "<=", 1.1, "power-law exponent of query time in T"),
}


def _get(result: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = result
    for key in path:
        value = value[key]
    return value


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """{name: {value, comparison, threshold, met, meaning}} for the three targets.

    The scaling target is judged on the fit over every T *and* on the load-normalised
    fit over large T: at small T a query's time is mostly fixed per-call overhead,
    which flattens a fit over all points and would hide growth faster than linear, and
    the points run minutes apart on a shared machine, which normalising by the matmul
    rate measured beside each point corrects for. The target is the paper's model's;
    the same judgement of the banded video self-attention is under its `banded` key.
    """
    out = {}
    for name, (path, op, threshold, meaning) in TARGETS.items():
        value = float(_get(result, path))
        met = value >= threshold if op == ">=" else value <= threshold
        entry = {
            "value": value,
            "comparison": op,
            "threshold": threshold,
            "met": bool(met),
            "meaning": meaning,
        }
        if name == "scaling":
            sc = result["sections"]["scaling"]
            entry["exponent_large_T"] = sc.get("exponent_large_T")
            large = sc.get("exponent_large_T_load_normalised")
            entry["exponent_large_T_load_normalised"] = large
            if large is not None and large > threshold:
                entry["met"] = False
            if "banded" in sc:
                entry["banded"] = _banded_target(sc["banded"], threshold)
        out[name] = entry
    return out


def _banded_target(banded: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The scaling target's judgement applied to the banded model's fits."""
    large = banded.get("exponent_large_T_load_normalised")
    met = banded["exponent"] <= threshold and (large is None or large <= threshold)
    return {
        "window": banded["window"],
        "value": banded["exponent"],
        "exponent_large_T": banded.get("exponent_large_T"),
        "exponent_large_T_load_normalised": large,
        "met": bool(met),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.{digits}f}"


def _rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, measured beside it / target) rows of the headline table."""
    s = result["sections"]
    f = result["feature_dim"]
    train = s["train"][str(f)]
    t = result["targets"]
    mark = {True: "met", False: "MISSED"}
    rows = [
        (
            f"train samples/s (F={f}, batch {train['batch_size']})",
            _fmt(result["train_samples_per_s"]),
            f"step {_fmt(train['step_ms'])} ms, {_fmt(train['mflops_per_sample'])} MFLOP/sample",
        ),
        ("train GFLOP/s (analytic)", _fmt(result["train_gflops_per_s"]), ""),
        (
            "matmul GFLOP/s (tf.matmul, step's shapes)",
            _fmt(result["matmul_gflops_per_s"]),
            "same run, just before and after the step",
        ),
        (
            "roofline_ratio",
            _fmt(result["roofline_ratio"]),
            f"target >= 0.3: {mark[t['roofline']['met']]}",
        ),
    ]
    for key, other in sorted(s["train"].items(), key=lambda kv: int(kv[0])):
        if int(key) != f:
            rows.append(
                (
                    f"  at F={key}: samples/s, roofline",
                    f"{_fmt(other['samples_per_s'])}, {_fmt(other['roofline_ratio'])}",
                    f"matmul {_fmt(other['matmul_gflops_per_s'])} GFLOP/s",
                )
            )
    pipe = s["pipeline"][str(f)]
    rows += [
        (
            f"pipeline records/s (F={f})",
            _fmt(result["pipeline_records_per_s"]),
            f"{_fmt(pipe['mb_per_s'])} MB/s",
        ),
        (
            "pipeline_to_train_ratio",
            _fmt(result["pipeline_to_train_ratio"]),
            f"target >= 5: {mark[t['pipeline']['met']]}",
        ),
    ]
    for key, other in sorted(s["pipeline"].items(), key=lambda kv: int(kv[0])):
        if int(key) != f:
            rows.append(
                (
                    f"  at F={key}: records/s, ratio",
                    f"{_fmt(other['records_per_s'])}, {_fmt(other['pipeline_to_train_ratio'])}",
                    "",
                )
            )
    dp = s["data_prep"]
    rows.append(
        (
            "data_prep videos/s",
            _fmt(result["data_prep_videos_per_s"]),
            f"{dp['videos']:,} videos, F={dp['feature_dim']}, {_fmt(dp['seconds'])} s",
        )
    )
    for name, entry in result["serving"].items():
        if isinstance(entry, str):
            rows.append((f"serve {name}", "-", entry))
        else:
            batch = entry.get("batch")
            rows.append(
                (
                    f"serve {name}: p50 / p99 ms, queries/s batched",
                    f"{_fmt(entry['ms_p50'])} / {_fmt(entry['ms_p99'])}",
                    f"{_fmt(entry['queries_per_s_batched'])} q/s"
                    + (" (a batch-1 model)" if batch == 1 else f" at batch {batch}"),
                )
            )
    sc = s["scaling"]
    rows.append(
        (
            "scaling exponent (all T; T >= 256; load-normalised T >= 256)",
            f"{_fmt(sc['exponent'])}; {_fmt(sc.get('exponent_large_T'))}; "
            f"{_fmt(sc.get('exponent_large_T_load_normalised'))}",
            f"target <= 1.1: {mark[t['scaling']['met']]}",
        )
    )
    banded = sc.get("banded")
    if banded:
        bt = t["scaling"]["banded"]
        rows.append(
            (
                f"  banded, w={banded['window']} (all T; T >= 256; load-normalised T >= 256)",
                f"{_fmt(banded['exponent'])}; {_fmt(banded.get('exponent_large_T'))}; "
                f"{_fmt(banded.get('exponent_large_T_load_normalised'))}",
                f"target <= 1.1: {mark[bt['met']]}",
            )
        )
    for i, clips in enumerate(sc["T"]):
        beside = f"without self-attention {_fmt(sc['ms_without_self_attention'][i])} ms"
        if banded:
            beside += (
                f"; banded {_fmt(banded['ms'][i])} ms, {_fmt(banded['peak_mb'][i])} MB"
            )
        rows.append(
            (
                f"  T={clips} (K={sc['K'][i]}): ms, peak MB",
                f"{_fmt(sc['ms'][i])}, {_fmt(sc['peak_mb'][i])}",
                beside,
            )
        )
    co = s["corpus"]
    rows.append(
        (
            f"corpus ms/video (N={co['videos']:,})",
            _fmt(result["corpus_ms_per_video"]),
            f"full model per video {_fmt(co['naive_ms_per_video'])} ms "
            f"({_fmt(co['speedup'])}x)",
        )
    )
    return rows


def table(result: dict[str, Any]) -> str:
    """The headline figures as an aligned text table."""
    rows = [("figure", "value", "beside it / target")] + _rows(result)
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 4 + max(len(r[2]) for r in rows)))
    return "\n".join(lines)


def _machine_line(m: dict[str, Any]) -> str:
    simd = ", ".join(m.get("simd") or []) or "unknown"
    load = m.get("load_average_1min_at_start")
    gpus = m.get("gpus") or 0
    return (
        f"{m['cpu']}, {m['cores']} logical cores ({simd}), {m.get('memory_gib')} GiB, "
        f"{'no GPU' if not gpus else f'{gpus} GPU(s), unused'}; Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']}; 1-minute load average "
        f"{_fmt(load)} at the start (the machine is shared)"
    )


def _explain_roofline(result: dict[str, Any], met: bool) -> str:
    s = result["sections"]
    f = str(result["feature_dim"])
    breakdown = s["train"][f]["flops_breakdown"]
    attention = sum(
        v["share"] for k, v in breakdown.items() if k.startswith(("self_", "cross_", "similarity"))
    )
    gemm = max(s["train"][f]["matmul_shapes"], key=lambda r: r["gflops_per_s"])
    text = (
        f"The step's work is {100 * attention:.0f}% Dense Attention (eqs. 7-8: the W1/W2 "
        f"products over every surrogate, and the pairwise energies), "
        f"{100 * breakdown['projection']['share']:.0f}% the clip projection and "
        f"{100 * breakdown['query_gru']['share']:.0f}% the query GRU. The reference is "
        f"the best rate `tf.matmul` reached on the step's own product shapes "
        f"([{gemm['m']}, {gemm['k']}] x [{gemm['k']}, {gemm['n']}] was fastest), so the "
        "ratio is a strict one: everything that is not a large product (the GRU's "
        f"{s['train'][f]['words']} sequential steps, softmax, tanh, gathers, AdamW's "
        "elementwise update) counts against it."
    )
    per_round = s["train"][f]["roofline_ratio_per_round"]
    text += (
        f" Across rounds the ratio ranged from {_fmt(min(per_round))} to "
        f"{_fmt(max(per_round))}; the round with the median ratio is reported."
    )
    if max(per_round) > 1.0:
        text += (
            " A round above 1 is not the step beating the machine: other processes "
            "loaded the machine while the reference ran and left it while the step did."
        )
    if met:
        return text
    return text + (
        " What would close the gap: run the GRU with fewer sequential kernel launches "
        "(a fused GRU op, or XLA via `jit_compile=True` on the training step), batch the "
        "positive and negative passes' attention products into one product each "
        "(today they run as separate matches), and keep the D x D products large by "
        "concatenating the passes along the batch."
    )


def _explain_pipeline(result: dict[str, Any], met: bool) -> str:
    f = str(result["feature_dim"])
    pipe = result["sections"]["pipeline"][f]
    text = (
        f"Every record carries its video's {pipe['feature_dim']}-d clip features "
        f"(about {4 * 45 * pipe['feature_dim'] / 2**20:.2f} MB per record at 45 clips), "
        f"so the pipeline moves {_fmt(pipe['mb_per_s'])} MB/s; parsing and padding are "
        "the cost, the step's arithmetic is not involved. Both rates are measured on the "
        "same two cores, and during real training the pipeline shares them with the step, "
        "so the ratio is the headroom the step leaves the pipeline."
    )
    if met:
        return text
    return text + (
        " What would close the gap: store features as float16 (half the bytes to parse), "
        "cache the decoded videos (`dataset.cache()` before the sentence expansion, "
        "which fits in memory for Charades-STA at F = 1024), and batch the parse "
        "(`parse_example` on batches of serialized records rather than one at a time)."
    )


def _explain_scaling(result: dict[str, Any], met: bool) -> str:
    sc = result["sections"]["scaling"]
    last = len(sc["T"]) - 1
    share = sc["self_video_flop_share"][last]
    quadratic = sc.get("exponent_large_T_load_normalised")
    text = (
        "The default (the paper's model) is quadratic in K because of A(V, V): its "
        f"measured exponent is {_fmt(sc['exponent'])} over every T and {_fmt(quadratic)} "
        "load-normalised over T >= 256, the K² term taking over as T grows. The "
        "proposal side is linear in T: the projection is T·F·D and pooling uses prefix "
        "sums, and K (segment groups) = 2T at stride 8 with 16-frame clips. "
        "The cross-attention and surrogate selection are O(K·M) and O(K·L). Self-attention "
        "on the video, A(V, V) of eq. 9, is not: its energies E(v_n, V) pair every "
        f"surrogate with every other one, K² tanh terms of a D-dimensional product. At "
        f"T = {sc['T'][last]} (K = {sc['K'][last]}) it is {100 * share:.0f}% of the "
        f"analytic FLOPs; the query takes {_fmt(sc['ms'][last])} ms with it and "
        f"{_fmt(sc['ms_without_self_attention'][last])} ms without it (measured in "
        f"alternating rounds), and the load-normalised exponent over T >= 256 is "
        f"{_fmt(quadratic)} with it and "
        f"{_fmt(sc.get('exponent_large_T_load_normalised_without_self_attention'))} "
        "without it. The peak "
        f"memory of {_fmt(sc['peak_mb'][last])} MB at that T is dominated by the same "
        f"K x K energy matrix (one float32 K x K matrix is "
        f"{4 * sc['K'][last] ** 2 / 2**20:.0f} MB; the inputs, "
        f"{_fmt(sc['input_mb'][last])} MB, are not counted). The fit over all T looks "
        "flatter because small T is per-call overhead."
    )
    banded = sc.get("banded")
    if banded:
        w = banded["window"]
        status = "met" if result["targets"]["scaling"]["banded"]["met"] else "missed"
        text += (
            f" With `--video_self_attention_window={w}` (E(v_n, V) over the groups within "
            f"±{w} of n, ±{_fmt(w * 8 / 24)} s at the Charades-STA stride; O(K·w)) it is "
            f"linear: exponent {_fmt(banded['exponent'])} over every T and "
            f"{_fmt(banded.get('exponent_large_T_load_normalised'))} load-normalised over "
            f"T >= 256 (target <= 1.1 {status}); at T = {banded['T'][last]} the query "
            f"takes {_fmt(banded['ms'][last])} ms and {_fmt(banded['peak_mb'][last])} MB, "
            f"and A(V, V) is {100 * banded['self_video_flop_share'][last]:.0f}% of its "
            "FLOPs. The band is an option, not the default: the default keeps the "
            "paper's full self-attention and its outputs."
        )
    text += (
        " Charades-STA videos (about 45 clips, K ≈ 90) are far from the quadratic "
        "regime; the growth matters for long videos and for the corpus setting."
    )
    if met or banded:
        return text
    return text + (
        " What would close it is a model decision, not an implementation one: restrict "
        "A(V, V) to a local band of groups (O(K·w)), compute it on a fixed number of "
        "pooled groups for long videos, or drop the tanh in the video self-energy so that "
        "mean_m (W1 v_n)·(W2 v_m) = (W1 v_n)·mean_m(W2 v_m) costs O(K·D)."
    )


def reference_range(result: dict[str, Any]) -> tuple[float, float]:
    """(lowest, highest) matmul GFLOP/s any section measured beside its work."""
    s = result["sections"]
    rates = [r for tr in s["train"].values() for r in tr["matmul_gflops_per_s_per_round"]]
    rates += [p["reference_matmul_gflops_per_s"] for p in s["pipeline"].values()]
    rates += list(s["data_prep"]["reference_matmul_gflops_per_s"])
    rates += list(s["inference"]["reference_matmul_gflops_per_s"])
    rates += list(s["scaling"]["reference_matmul_gflops_per_s"])
    return min(rates), max(rates)


def markdown(result: dict[str, Any], json_path: str = "bench.json") -> str:
    """The Performance page: machine, figures, targets and why each is where it is."""
    m = result["machine"]
    t = result["targets"]
    s = result["sections"]
    low, high = reference_range(result)
    lines = [
        "# Performance",
        "",
        f"Generated by `python -m benchmarks.run{' --quick' if result['quick'] else ''} "
        f"--output={json_path} --markdown=...` on {result['started']}, in "
        f"{_fmt(result['seconds'])} s.",
        "",
        f"**Machine:** {_machine_line(m)}.",
        "",
        "**How to read these numbers.** The machine was shared with other TensorFlow "
        "jobs while this ran: the dense matmul reference, measured beside every "
        f"section, ranged from {_fmt(low)} to {_fmt(high)} GFLOP/s over the run. "
        "Absolute rates (samples/s, ms, records/s) move with that load from run to run "
        "and even between sections of one run. The ratios were measured side by side "
        "(the step against the matmul rate just before and after it, with and without "
        "self-attention in alternating rounds, cached against full-model corpus "
        "ranking) and are the figures to compare across runs and machines.",
        "",
        "Every rate is measured in the same run as a reference for it: the training step "
        "beside the dense float32 `tf.matmul` rate of its own product shapes (timed just "
        "before and just after the step in each of several rounds), the pipeline beside "
        "the training step's consumption, the three serving engines against each other "
        "in alternating rounds, the corpus ranking beside the "
        "full model. FLOPs are analytic (`benchmarks/flops.py`, formula in its docstring): "
        "2 per multiply-add, the backward pass 2x the forward for products whose both "
        "operands need a gradient and 1x for the clip projection and the frozen-embedding "
        "GRU input product.",
        "",
        "## Figures",
        "",
        "| figure | value | beside it / target |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {a.strip()} | {b} | {c} |" for a, b, c in _rows(result)]
    lines += ["", "## Targets", ""]
    explain = {
        "roofline": _explain_roofline,
        "pipeline": _explain_pipeline,
        "scaling": _explain_scaling,
    }
    for name in TARGETS:
        entry = t[name]
        status = "met" if entry["met"] else "missed"
        extra = ""
        if name == "scaling":
            extra = (
                f" (over T >= 256: {_fmt(entry.get('exponent_large_T'))}; load-normalised "
                f"over T >= 256: {_fmt(entry.get('exponent_large_T_load_normalised'))})"
            )

        if name == "scaling" and "banded" in entry:
            b = entry["banded"]
            status += (
                f"** for the paper's model; with `--video_self_attention_window="
                f"{b['window']}`: {_fmt(b['value'])} (load-normalised over T >= 256: "
                f"{_fmt(b.get('exponent_large_T_load_normalised'))}), "
                f"**{'met' if b['met'] else 'missed'}"
            )
        lines += [
            f"- **{name}** ({entry['meaning']}): {_fmt(entry['value'])}{extra}, target "
            f"{entry['comparison']} {entry['threshold']}: **{status}**.",
            "",
            "  " + explain[name](result, entry["met"]),
            "",
        ]
    lines += [
        "## Training step",
        "",
        "| F | samples/s | step ms | MFLOP/sample | GFLOP/s | matmul GFLOP/s | ratio | "
        "ratio per round |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, tr in sorted(s["train"].items(), key=lambda kv: int(kv[0])):
        rounds = ", ".join(_fmt(r) for r in tr["roofline_ratio_per_round"])
        lines.append(
            f"| {key} | {_fmt(tr['samples_per_s'])} | {_fmt(tr['step_ms'])} | "
            f"{_fmt(tr['mflops_per_sample'])} | {_fmt(tr['train_gflops_per_s'])} | "
            f"{_fmt(tr['matmul_gflops_per_s'])} | {_fmt(tr['roofline_ratio'])} | {rounds} |"
        )
    head = s["train"][str(result["feature_dim"])]
    shares = sorted(head["flops_breakdown"].items(), key=lambda kv: -kv[1]["share"])
    lines += [
        "",
        f"Batch {head['batch_size']}, {head['clips']} clips, {head['words']} words, "
        f"K = {head['groups']} groups x L = {head['scales']} windows, D = "
        f"{head['hidden_dim']}, {head['num_negatives']} negative pass per sample, "
        f"{head['optimizer']}. Where the FLOPs go at F = {head['feature_dim']}: "
        + ", ".join(f"{name} {100 * v['share']:.1f}%" for name, v in shares if v["share"] >= 0.005)
        + ".",
        "",
    ]
    sc = s["scaling"]
    lines += [
        "## Scaling with video length",
        "",
        f"One query of {sc['words']} words against one video of T clips at F = "
        f"{sc['feature_dim']}; K = 2T segment groups. Memory: {sc['memory_method']}.",
        "",
        "| T | K | ms | ms without self-attention | peak MB | input MB | analytic MFLOP | "
        "A(V, V) share of FLOPs | matmul GFLOP/s beside it | matmul-equivalent MFLOP |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, clips in enumerate(sc["T"]):
        lines.append(
            f"| {clips:,} | {sc['K'][i]:,} | {_fmt(sc['ms'][i])} | "
            f"{_fmt(sc['ms_without_self_attention'][i])} | {_fmt(sc['peak_mb'][i])} | "
            f"{_fmt(sc['input_mb'][i])} | {_fmt(sc['mflops'][i])} | "
            f"{100 * sc['self_video_flop_share'][i]:.0f}% | "
            f"{_fmt(sc['reference_matmul_gflops_per_s'][i])} | "
            f"{_fmt(sc['matmul_equivalent_mflop'][i])} |"
        )
    banded = sc.get("banded")
    if banded:
        lines += [
            "",
            f"The same points with `--video_self_attention_window={banded['window']}` "
            "(timed in the same rounds as the two models above; memory read in a process "
            "that runs only the banded model, so that the full model's freed buffers "
            "cannot hide its growth):",
            "",
            "| T | K | ms | peak MB | analytic MFLOP | A(V, V) share of FLOPs | "
            "matmul-equivalent MFLOP |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for i, clips in enumerate(banded["T"]):
            lines.append(
                f"| {clips:,} | {banded['K'][i]:,} | {_fmt(banded['ms'][i])} | "
                f"{_fmt(banded['peak_mb'][i])} | {_fmt(banded['mflops'][i])} | "
                f"{100 * banded['self_video_flop_share'][i]:.0f}% | "
                f"{_fmt(banded['matmul_equivalent_mflop'][i])} |"
            )
    lines += [
        "",
        f"Power-law exponent of time in T: {_fmt(sc['exponent'])} over every T, "
        f"{_fmt(sc.get('exponent_large_T'))} over T >= 256, "
        f"{_fmt(sc.get('exponent_large_T_load_normalised'))} over T >= 256 on the "
        "matmul-equivalent cost (time x the matmul rate measured beside it, which "
        "removes the load other processes put on the machine between points). Without "
        f"self-attention: {_fmt(sc['exponent_without_self_attention'])}, "
        f"{_fmt(sc.get('exponent_large_T_without_self_attention'))} and "
        f"{_fmt(sc.get('exponent_large_T_load_normalised_without_self_attention'))}. "
        "Between consecutive points: "
        + ", ".join(_fmt(e) for e in sc["local_exponents"])
        + "."
        + (
            f" Banded (w = {banded['window']}): {_fmt(banded['exponent'])}, "
            f"{_fmt(banded.get('exponent_large_T'))} and "
            f"{_fmt(banded.get('exponent_large_T_load_normalised'))}; between consecutive "
            "points: " + ", ".join(_fmt(e) for e in banded["local_exponents"]) + "."
            if banded
            else ""
        ),
        "",
    ]
    dp = s["data_prep"]
    lines += [
        "## Data",
        "",
        f"data_prep: {dp['videos']:,} synthetic videos ({dp['sentences']:,} sentences, "
        f"F = {dp['feature_dim']}, 20-40 s each) from the Charades-STA release formats "
        f"to {dp['bytes_written'] / 2**30:.2f} GiB of TFRecord shards in "
        f"{_fmt(dp['seconds'])} s: {_fmt(dp['videos_per_s'])} videos/s (synthesising "
        f"the release took {_fmt(dp['synthesize_s'])} s and is not counted). The "
        f"features are {dp['feature_dim']}-d rather than C3D's 4096 to keep the set "
        "at a size the run can write and delete each time.",
        "",
        "| F | pipeline records/s | MB/s | training samples/s | ratio |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, pipe in sorted(s["pipeline"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {key} | {_fmt(pipe['records_per_s'])} | {_fmt(pipe['mb_per_s'])} | "
            f"{_fmt(pipe['train_samples_per_s'])} | {_fmt(pipe['pipeline_to_train_ratio'])} |"
        )
    lines.append("")
    inf = s["inference"]
    lines += [
        "## Serving",
        "",
        f"One (video, query) at {inf['clips']} clips, F = {inf['feature_dim']}, "
        f"{inf['words']} words; batched = {inf['batch']} pairs a call.",
        "",
        "| engine | p50 ms | p99 ms | queries/s batched | what is timed |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name in ("keras", "saved_model", "tflite"):
        if name in inf["engines"]:
            e = inf["engines"][name]
            qps = e.get("batched_queries_per_s")
            shown = _fmt(qps) if qps else f"{_fmt(1000.0 / e['ms_p50'])} (batch 1)"
            lines.append(
                f"| {name} | {_fmt(e['ms_p50'])} | {_fmt(e['ms_p99'])} | {shown} | "
                f"{e['what']} |"
            )
        else:
            lines.append(f"| {name} | - | - | - | {inf['not_measured'][name]} |")
    co = s["corpus"]
    lines += [
        "",
        "## Corpus ranking",
        "",
        f"{co['videos']:,} videos of {co['clips']} clips at F = {co['feature_dim']}: "
        f"{_fmt(co['ms_per_video'])} ms per video and query with the proposal features "
        f"cached ({_fmt(co['proposal_cache_mb'])} MB for the corpus, computed once at "
        f"{_fmt(co['precompute_ms_per_video'])} ms per video), against "
        f"{_fmt(co['naive_ms_per_video'])} ms running the full model on every video "
        f"({_fmt(co['speedup'])}x). What remains per video is query-dependent by "
        "construction: surrogate selection needs w_M, and the cascade attends the "
        "surrogates with the query.",
        "",
        "## Raw data",
        "",
        f"Every figure above, per round and per term, is in `{json_path}`.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        sys.stdout.write(markdown(json.load(fh), json_path=sys.argv[1]))
