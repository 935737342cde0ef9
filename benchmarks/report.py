"""Targets, the printed table and the generated tables of the Performance page.

The page (`docs/PERFORMANCE.md`) is prose written by hand around generated tables.
Each table sits between two marker comments,

    <!-- table:NAME -->
    | ... |
    <!-- /table:NAME -->

and `render` rewrites only what is between them, from a benchmark JSON (`TABLES` maps
each NAME to the function that builds it); everything outside the markers is kept
byte for byte. From a saved run:

    python -m benchmarks.report benchmarks/results/bench.json docs/PERFORMANCE.md [--check]

`--check` rewrites nothing and exits 1 if the page's tables differ from the JSON's.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Any, Callable, Sequence

from benchmarks.scaling import LARGE_T

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
    if isinstance(value, bool):
        return "yes" if value else "no"
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


def _pct(share: float, digits: int = 0) -> str:
    return f"{100 * share:.{digits}f}%"


def _by_f(entries: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(entries.items(), key=lambda kv: int(kv[0]))


def reference_range(result: dict[str, Any]) -> tuple[float, float]:
    """(lowest, highest) matmul GFLOP/s any section measured beside its work."""
    s = result["sections"]
    rates = [r for tr in s["train"].values() for r in tr["matmul_gflops_per_s_per_round"]]
    rates += [p["reference_matmul_gflops_per_s"] for p in s["pipeline"].values()]
    rates += list(s["data_prep"]["reference_matmul_gflops_per_s"])
    rates += list(s["inference"]["reference_matmul_gflops_per_s"])
    rates += list(s["scaling"]["reference_matmul_gflops_per_s"])
    return min(rates), max(rates)


# ------------------------------------------------------------------------------ tables
#
# A table is (header, rows): header cells end in ":" for a right-aligned column.

Table = tuple[list[str], list[list[str]]]


def _run_table(result: dict[str, Any]) -> Table:
    m = result["machine"]
    low, high = reference_range(result)
    gpus = m.get("gpus") or 0
    return ["", "this run"], [
        ["command", f"`python -m benchmarks.run{' --quick' if result['quick'] else ''}`"],
        ["started", result["started"]],
        ["duration", f"{_fmt(result['seconds'])} s"],
        ["CPU", f"{m['cpu']}, {m['cores']} logical cores"],
        ["SIMD", ", ".join(m.get("simd") or []) or "unknown"],
        ["memory", f"{m.get('memory_gib')} GiB"],
        ["GPU", "none" if not gpus else f"{gpus}, unused"],
        [
            "software",
            f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
            f"NumPy {m['numpy']}",
        ],
        ["1-minute load average at the start", _fmt(m.get("load_average_1min_at_start"))],
        ["matmul reference over the run", f"{_fmt(low)} to {_fmt(high)} GFLOP/s"],
    ]


def _status(met: bool) -> str:
    return "**met**" if met else "**missed**"


def _target_rows(result: dict[str, Any]) -> list[list[str]]:
    """(target, what it measures, value, required, status) rows."""
    t = result["targets"]
    rows = []
    for name in ("roofline", "pipeline"):
        e = t[name]
        rows.append(
            [name, e["meaning"], _fmt(e["value"]), f"{e['comparison']} {e['threshold']}",
             _status(e["met"])]
        )
    e = t["scaling"]
    required = f"{e['comparison']} {e['threshold']}"
    rows.append(
        [
            "scaling",
            f"{e['meaning']}: all T; T >= {LARGE_T}; load-normalised, T >= {LARGE_T}",
            f"{_fmt(e['value'])}; {_fmt(e.get('exponent_large_T'))}; "
            f"{_fmt(e.get('exponent_large_T_load_normalised'))}",
            required,
            _status(e["met"]),
        ]
    )
    if "banded" in e:
        b = e["banded"]
        rows.append(
            [
                f"scaling, `--video_self_attention_window={b['window']}`",
                "the same three fits for the banded model",
                f"{_fmt(b['value'])}; {_fmt(b.get('exponent_large_T'))}; "
                f"{_fmt(b.get('exponent_large_T_load_normalised'))}",
                required,
                _status(b["met"]),
            ]
        )
    return rows


def _targets_table(result: dict[str, Any]) -> Table:
    return ["target", "measures", "value:", "required", "status"], _target_rows(result)


def _figure_rows(result: dict[str, Any]) -> list[list[str]]:
    """(figure, value, beside it) rows of the headline figures, at the largest F."""
    s = result["sections"]
    f = result["feature_dim"]
    train = s["train"][str(f)]
    pipe = s["pipeline"][str(f)]
    dp = s["data_prep"]
    rows = [
        [
            f"train samples/s (F={f}, batch {train['batch_size']})",
            _fmt(result["train_samples_per_s"]),
            f"step {_fmt(train['step_ms'])} ms, {_fmt(train['mflops_per_sample'])} MFLOP/sample",
        ],
        ["train GFLOP/s (analytic)", _fmt(result["train_gflops_per_s"]), ""],
        [
            "matmul GFLOP/s (tf.matmul, step's shapes)",
            _fmt(result["matmul_gflops_per_s"]),
            "same run, just before and after the step",
        ],
        ["roofline_ratio", _fmt(result["roofline_ratio"]), "train GFLOP/s over matmul GFLOP/s"],
        [
            f"pipeline records/s (F={f})",
            _fmt(result["pipeline_records_per_s"]),
            f"{_fmt(pipe['mb_per_s'])} MB/s",
        ],
        [
            "pipeline_to_train_ratio",
            _fmt(result["pipeline_to_train_ratio"]),
            "pipeline records/s over train samples/s",
        ],
        [
            "data_prep videos/s",
            _fmt(result["data_prep_videos_per_s"]),
            f"{dp['videos']:,} videos, F={dp['feature_dim']}, {_fmt(dp['seconds'])} s",
        ],
    ]
    for name, entry in result["serving"].items():
        if isinstance(entry, str):
            rows.append([f"serve {name}", "-", entry])
        else:
            batch = entry.get("batch")
            rows.append(
                [
                    f"serve {name}: p50 / p99 ms",
                    f"{_fmt(entry['ms_p50'])} / {_fmt(entry['ms_p99'])}",
                    f"{_fmt(entry['queries_per_s_batched'])} queries/s"
                    + (" (a batch-1 model)" if batch == 1 else f" at batch {batch}"),
                ]
            )
    sc = s["scaling"]
    rows.append(
        [
            f"scaling exponent (all T; T >= {LARGE_T}; load-normalised T >= {LARGE_T})",
            f"{_fmt(sc['exponent'])}; {_fmt(sc.get('exponent_large_T'))}; "
            f"{_fmt(sc.get('exponent_large_T_load_normalised'))}",
            f"T from {sc['T'][0]:,} to {sc['T'][-1]:,} clips",
        ]
    )
    banded = sc.get("banded")
    if banded:
        rows.append(
            [
                f"banded, w={banded['window']} (same fits)",
                f"{_fmt(banded['exponent'])}; {_fmt(banded.get('exponent_large_T'))}; "
                f"{_fmt(banded.get('exponent_large_T_load_normalised'))}",
                f"`--video_self_attention_window={banded['window']}`",
            ]
        )
    co = s["corpus"]
    rows.append(
        [
            f"corpus ms/video (N={co['videos']:,})",
            _fmt(result["corpus_ms_per_video"]),
            f"full model per video {_fmt(co['naive_ms_per_video'])} ms "
            f"({_fmt(co['speedup'])}x)",
        ]
    )
    return rows


def _figures_table(result: dict[str, Any]) -> Table:
    return ["figure", "value:", "beside it"], _figure_rows(result)


def _train_table(result: dict[str, Any]) -> Table:
    header = ["F:", "samples/s:", "step ms:", "MFLOP/sample:", "GFLOP/s:", "matmul GFLOP/s:",
              "ratio:", "ratio per round"]
    rows = []
    for key, tr in _by_f(result["sections"]["train"]):
        rows.append(
            [key, _fmt(tr["samples_per_s"]), _fmt(tr["step_ms"]), _fmt(tr["mflops_per_sample"]),
             _fmt(tr["train_gflops_per_s"]), _fmt(tr["matmul_gflops_per_s"]),
             _fmt(tr["roofline_ratio"]),
             ", ".join(_fmt(r) for r in tr["roofline_ratio_per_round"])]
        )
    return header, rows


def _head_train(result: dict[str, Any]) -> dict[str, Any]:
    return result["sections"]["train"][str(result["feature_dim"])]


def _train_setup_table(result: dict[str, Any]) -> Table:
    h = _head_train(result)
    header = ["batch:", "clips:", "words:", "K groups:", "L windows:", "D:",
              "negative passes per sample:", "optimizer"]
    return header, [
        [_fmt(h["batch_size"]), _fmt(h["clips"]), _fmt(h["words"]), _fmt(h["groups"]),
         _fmt(h["scales"]), _fmt(h["hidden_dim"]), _fmt(h["num_negatives"]), h["optimizer"]]
    ]


ATTENTION_TERMS = ("self_", "cross_", "similarity")


def _train_flops_table(result: dict[str, Any]) -> Table:
    h = _head_train(result)
    breakdown = h["flops_breakdown"]
    header = ["term", "forward MFLOP:", "backward MFLOP:", f"share at F = {h['feature_dim']}:"]
    rows = [
        [f"`{name}`", _fmt(v["forward"] / 1e6), _fmt(v["backward"] / 1e6), _pct(v["share"], 1)]
        for name, v in sorted(breakdown.items(), key=lambda kv: -kv[1]["share"])
    ]
    attention = sum(v["share"] for k, v in breakdown.items() if k.startswith(ATTENTION_TERMS))
    total = sum(v["forward"] + v["backward"] for v in breakdown.values())
    rows.append(
        ["all Dense Attention (`self_*`, `cross_*`, `similarity`)", "", "", _pct(attention)]
    )
    rows.append(["the whole step", "", "", f"{_fmt(total / 1e6)} MFLOP"])
    return header, rows


def _train_matmul_table(result: dict[str, Any]) -> Table:
    rows = []
    for key, tr in _by_f(result["sections"]["train"]):
        for shape in tr["matmul_shapes"]:
            rows.append(
                [key, f"[{shape['m']}, {shape['k']}] x [{shape['k']}, {shape['n']}]",
                 _fmt(shape["gflops_per_s"])]
            )
    return ["F:", "product", "GFLOP/s (reported round):"], rows


def _scaling_setup_table(result: dict[str, Any]) -> Table:
    sc = result["sections"]["scaling"]
    rows = [
        ["query", f"{sc['words']} words"],
        ["F", _fmt(sc["feature_dim"])],
        ["clip", f"{sc['clip_frames']} frames"],
        ["memory", sc["memory_method"]],
    ]
    if sc.get("banded"):
        rows.append(["banded model", f"`--video_self_attention_window={sc['banded']['window']}`"])
    return ["", "scaling points"], rows


def _scaling_table(result: dict[str, Any]) -> Table:
    sc = result["sections"]["scaling"]
    header = ["T:", "K:", "ms:", "ms without self-attention:", "peak MB:", "input MB:",
              "one K x K float32 matrix MB:", "analytic MFLOP:", "A(V, V) share of FLOPs:",
              "matmul GFLOP/s beside it:", "matmul-equivalent MFLOP:"]
    rows = []
    for i, clips in enumerate(sc["T"]):
        rows.append(
            [_fmt(clips), _fmt(sc["K"][i]), _fmt(sc["ms"][i]),
             _fmt(sc["ms_without_self_attention"][i]), _fmt(sc["peak_mb"][i]),
             _fmt(sc["input_mb"][i]), _fmt(4.0 * sc["K"][i] ** 2 / 2**20),
             _fmt(sc["mflops"][i]), _pct(sc["self_video_flop_share"][i]),
             _fmt(sc["reference_matmul_gflops_per_s"][i]),
             _fmt(sc["matmul_equivalent_mflop"][i])]
        )
    return header, rows


def _scaling_banded_table(result: dict[str, Any]) -> Table:
    banded = result["sections"]["scaling"].get("banded")
    header = ["T:", "K:", "ms:", "peak MB:", "analytic MFLOP:", "A(V, V) share of FLOPs:",
              "matmul-equivalent MFLOP:"]
    if not banded:
        return header, []
    return header, [
        [_fmt(clips), _fmt(banded["K"][i]), _fmt(banded["ms"][i]), _fmt(banded["peak_mb"][i]),
         _fmt(banded["mflops"][i]), _pct(banded["self_video_flop_share"][i]),
         _fmt(banded["matmul_equivalent_mflop"][i])]
        for i, clips in enumerate(banded["T"])
    ]


def _scaling_fits_table(result: dict[str, Any]) -> Table:
    sc = result["sections"]["scaling"]
    header = ["model", "all T:", f"T >= {LARGE_T}:", "load-normalised, all T:",
              f"load-normalised, T >= {LARGE_T}:", "between consecutive points"]

    def row(name: str, fits: dict[str, Any], suffix: str = "") -> list[str]:
        local = fits.get("local_exponents" + suffix)
        return [
            name,
            _fmt(fits.get("exponent" + suffix)),
            _fmt(fits.get("exponent_large_T" + suffix)),
            _fmt(fits.get("exponent_load_normalised" + suffix)),
            _fmt(fits.get("exponent_large_T_load_normalised" + suffix)),
            ", ".join(_fmt(e) for e in local) if local else "-",
        ]

    rows = [row("the paper's", sc), row("without self-attention", sc, "_without_self_attention")]
    if sc.get("banded"):
        rows.append(row(f"banded, w = {sc['banded']['window']}", sc["banded"]))
    return header, rows


def _data_prep_table(result: dict[str, Any]) -> Table:
    dp = result["sections"]["data_prep"]
    return ["", "data_prep.build"], [
        ["videos", _fmt(dp["videos"])],
        ["sentences", _fmt(dp["sentences"])],
        ["F", _fmt(dp["feature_dim"])],
        ["TFRecord shards written", f"{dp['bytes_written'] / 2**30:.2f} GiB"],
        ["build", f"{_fmt(dp['seconds'])} s"],
        ["videos/s", _fmt(dp["videos_per_s"])],
        ["synthesising the release (not counted)", f"{_fmt(dp['synthesize_s'])} s"],
    ]


def _pipeline_table(result: dict[str, Any]) -> Table:
    header = ["F:", "pipeline records/s:", "MB/s:", "training samples/s:", "ratio:"]
    return header, [
        [key, _fmt(p["records_per_s"]), _fmt(p["mb_per_s"]), _fmt(p["train_samples_per_s"]),
         _fmt(p["pipeline_to_train_ratio"])]
        for key, p in _by_f(result["sections"]["pipeline"])
    ]


def _serving_setup_table(result: dict[str, Any]) -> Table:
    inf = result["sections"]["inference"]
    return ["clips:", "F:", "words:", "pairs per batched call:"], [
        [_fmt(inf["clips"]), _fmt(inf["feature_dim"]), _fmt(inf["words"]), _fmt(inf["batch"])]
    ]


def _serving_table(result: dict[str, Any]) -> Table:
    inf = result["sections"]["inference"]
    rows = []
    for name in ("keras", "saved_model", "tflite"):
        if name in inf["engines"]:
            e = inf["engines"][name]
            qps = e.get("batched_queries_per_s")
            shown = _fmt(qps) if qps else f"{_fmt(1000.0 / e['ms_p50'])} (batch 1)"
            rows.append([name, _fmt(e["ms_p50"]), _fmt(e["ms_p99"]), shown, e["what"]])
        else:
            rows.append([name, "-", "-", "-", inf["not_measured"][name]])
    return ["engine", "p50 ms:", "p99 ms:", "queries/s batched:", "what is timed"], rows


def _corpus_table(result: dict[str, Any]) -> Table:
    co = result["sections"]["corpus"]
    rows = [
        ["videos", _fmt(co["videos"])],
        ["clips per video", _fmt(co["clips"])],
        ["F", _fmt(co["feature_dim"])],
        ["queries timed", _fmt(co["queries"])],
        ["ms per video and query, proposal features cached", _fmt(co["ms_per_video"])],
        ["ms per video and query, full model on every video", _fmt(co["naive_ms_per_video"])],
        ["speedup", f"{_fmt(co['speedup'])}x"],
        ["proposal cache for the corpus", f"{_fmt(co['proposal_cache_mb'])} MB"],
        ["computing the cache, ms per video", _fmt(co["precompute_ms_per_video"])],
        ["computing the cache, first call (tracing included)",
         f"{_fmt(co['precompute_first_call_s'])} s"],
    ]
    if "rankings_match" in co:
        rows.append(["queries whose cached top-10 equals the full model's",
                     _pct(co["rankings_match"])])
    return ["", "corpus ranking"], rows


def _precision(result: dict[str, Any]) -> dict[str, Any] | None:
    return result.get("sections", {}).get("precision")


def _precision_train_table(result: dict[str, Any]) -> Table:
    header = ["variant", "compute", "XLA", "samples/s:", "× float32 (same rounds):",
              "step ms:", "GFLOP/s:", "matmul GFLOP/s, same format:", "roofline ratio:",
              "trace s:"]
    pr = _precision(result)
    if pr is None:
        return header, [["not measured"] + ["-"] * (len(header) - 1)]
    rows = []
    for name, v in pr["training"]["variants"].items():
        rows.append([
            name, v["compute_dtype"], _fmt(v["jit_compile"]), _fmt(v["samples_per_s"]),
            f"{v['speedup_over_float32']:.2f}", _fmt(v["step_ms"]),
            _fmt(v["train_gflops_per_s"]), _fmt(v["matmul_gflops_per_s"]),
            _fmt(v["roofline_ratio"]), _fmt(v["trace_s"]),
        ])
    return header, rows


def _precision_serving_table(result: dict[str, Any]) -> Table:
    header = ["engine / variant", "p50 ms:", "p99 ms:", "queries/s batched:"]
    pr = _precision(result)
    if pr is None:
        return header, [["not measured", "-", "-", "-"]]
    batch = pr["serving"]["batch"]
    header[-1] = f"queries/s at batch {batch}:"
    return header, [
        [name, _fmt(e["ms_p50"]), _fmt(e["ms_p99"]), _fmt(e["batched_queries_per_s"])]
        for name, e in pr["serving"]["engines"].items()
    ]


def _precision_memory_table(result: dict[str, Any]) -> Table:
    header = ["variant", "first training step, MiB:", "first batched forward, MiB:"]
    pr = _precision(result)
    if pr is None:
        return header, [["not measured", "-", "-"]]
    return header, [
        [name, _fmt(m.get("train_step_peak_mb")), _fmt(m.get("forward_peak_mb"))]
        for name, m in pr["memory"].items()
    ]


def _precision_layers_table(result: dict[str, Any]) -> Table:
    header = ["part of a training pass (forward + backward)", "float32 ms:",
              "mixed_bfloat16 ms:", "bfloat16 / float32:"]
    pr = _precision(result)
    if pr is None or "layers" not in pr:
        return header, [["not measured", "-", "-", "-"]]
    ms = pr["layers"]["ms"]
    return header, [
        [name, _fmt(ms["float32"][name]), _fmt(ms["mixed_bfloat16"][name]),
         f"{pr['layers']['bfloat16_over_float32'][name]:.2f}"]
        for name in ms["float32"]
    ]


TABLES: dict[str, Callable[[dict[str, Any]], Table]] = {
    "run": _run_table,
    "targets": _targets_table,
    "figures": _figures_table,
    "train": _train_table,
    "train_setup": _train_setup_table,
    "train_flops": _train_flops_table,
    "train_matmul": _train_matmul_table,
    "scaling_setup": _scaling_setup_table,
    "scaling": _scaling_table,
    "scaling_banded": _scaling_banded_table,
    "scaling_fits": _scaling_fits_table,
    "data_prep": _data_prep_table,
    "pipeline": _pipeline_table,
    "serving_setup": _serving_setup_table,
    "serving": _serving_table,
    "corpus": _corpus_table,
    "precision_train": _precision_train_table,
    "precision_serving": _precision_serving_table,
    "precision_memory": _precision_memory_table,
    "precision_layers": _precision_layers_table,
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> str:
    """A GitHub markdown table; a header cell ending in ":" is a right-aligned column."""
    header, rows = table
    names = [h[:-1] if h.endswith(":") else h for h in header]
    align = ["---:" if h.endswith(":") else "---" for h in header]
    lines = ["| " + " | ".join(names) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- page

_MARKED = re.compile(
    r"(<!-- table:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S
)


def table_names(page: str) -> list[str]:
    """The names of the marked tables of `page`, in order."""
    return [m.group("name") for m in _MARKED.finditer(page)]


def render(page: str, result: dict[str, Any]) -> str:
    """`page` with the body of every marked table rebuilt from `result`."""
    opened = re.findall(r"<!-- table:([a-z_]+) -->", page)
    if sorted(opened) != sorted(table_names(page)):
        raise ValueError(f"unclosed or nested table markers in the page: {opened}")
    unknown = sorted(set(opened) - set(TABLES))
    if unknown:
        raise ValueError(f"the page marks unknown tables {unknown}; known: {sorted(TABLES)}")

    def body(match: re.Match[str]) -> str:
        table = markdown_table(TABLES[match.group("name")](result))
        return match.group(1) + table + "\n" + match.group(4)

    return _MARKED.sub(body, page)


def without_tables(page: str) -> str:
    """`page` with every marked table emptied: the part written by hand."""
    return _MARKED.sub(lambda m: m.group(1) + m.group(4), page)


def skeleton() -> str:
    """A page with every table and no prose, for a --markdown path that does not exist."""
    parts = ["# Performance", ""]
    for name in TABLES:
        parts += [f"<!-- table:{name} -->", f"<!-- /table:{name} -->", ""]
    return "\n".join(parts)


def write_page(result: dict[str, Any], path: str) -> None:
    """Rewrites the tables of the page at `path` (a bare page of tables if there is none)."""
    page = skeleton()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            page = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(page, result))


def table(result: dict[str, Any]) -> str:
    """The headline figures and the targets as an aligned text table (for a terminal)."""
    rows = [["figure", "value", "beside it"]] + _figure_rows(result)
    rows += [[f"target {r[0]}", r[2], f"{r[3]}: {r[4].strip('*')}"] for r in _target_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, "-" * (sum(widths) + 4 + max(len(r[2]) for r in rows)))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Rewrites the Performance page's tables.")
    parser.add_argument("json", help="a benchmark JSON (benchmarks/results/bench.json)")
    parser.add_argument("page", nargs="?", default="docs/PERFORMANCE.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    with open(args.json, encoding="utf-8") as f:
        result = json.load(f)
    if not args.check:
        write_page(result, args.page)
        return 0
    with open(args.page, encoding="utf-8") as f:
        page = f.read()
    if render(page, result) != page:
        print(f"{args.page}: tables differ from {args.json}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
