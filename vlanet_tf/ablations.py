"""The variants and ablations of SPEC §9 (the paper's Table 3), as a markdown table.

    python -m vlanet_tf.ablations --flagfile=configs/charades.flags \
        --ablation_dir=runs/ablations
    python -m vlanet_tf.ablations --flagfile=configs/synthetic.flags --quick

Every variant is the flagfile's configuration with one change: stride ∈ {4, 6, 8}
frames × windows ∈ {(176, 208, 240), (128, 256), (176, 240)} (sliding proposals only),
then the flagfile's stride and windows without cross-attention, without
self-attention and without surrogate selection. Each trains in
`ablation_dir/<variant>`, picks its best epoch on val and is scored on test. A variant
whose test metrics exist is not trained again, so an interrupted grid resumes.

Each variant also writes a TensorBoard HParams record (`ablation_dir/hparams/<variant>`:
its structural choices, its best validation epoch's metrics as `val_*` and its test
metrics as `test_*`): `tensorboard --logdir=<ablation_dir>/hparams`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

from absl import app, flags

from vlanet_tf import flags as vflags
from vlanet_tf.config import ModelConfig

FLAGS = flags.FLAGS
STRIDES = (4, 6, 8)
WINDOWS = ((176, 208, 240), (128, 256), (176, 240))
ABLATIONS = {
    "no_cross_attention": ("w/o cross-attention", {"use_cross_attention": False}),
    "no_self_attention": ("w/o self-attention", {"use_self_attention": False}),
    "no_surrogate_selection": (
        "w/o surrogate selection",
        {"use_surrogate_selection": False},
    ),
}
CHARADES_COLUMNS = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7")
DIDEMO_COLUMNS = ("R1", "R5", "mIoU")


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str  # Directory name.
    label: str  # Row label of the table.
    overrides: Mapping[str, Any]


def grid(base: ModelConfig) -> list[Variant]:
    """The SPEC §9 variants of `base`, in the order of the table."""
    variants = []
    if base.proposal_mode == "sliding":
        for stride in STRIDES:
            for windows in WINDOWS:
                name = _sliding_name(stride, windows)
                label = f"stride {stride}, windows ({', '.join(map(str, windows))})"
                variants.append(
                    Variant(name, label, {"stride_frames": stride, "window_frames": windows})
                )
    else:
        variants.append(Variant("full", "full model", {}))
    for name, (label, overrides) in ABLATIONS.items():
        variants.append(Variant(name, label, overrides))
    return variants


# The structural choices a variant changes: the columns of its HParams record.
HPARAMS = (
    "stride_frames",
    "window_frames",
    "use_cross_attention",
    "use_self_attention",
    "use_surrogate_selection",
)


def _hparam(variant: Variant, name: str, base: ModelConfig) -> Any:
    from vlanet_tf import tuning

    return tuning.hparam_value(variant.overrides.get(name, getattr(base, name)))


def table3(
    rows: Sequence[tuple[str, Mapping[str, float]]], columns: Sequence[str]
) -> str:
    """Markdown in the layout of the paper's Table 3: variants × R@n columns."""
    lines = [
        "| variant | " + " | ".join(columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for label, metrics in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines)


def _sliding_name(stride: int, windows: Sequence[int]) -> str:
    return f"stride{stride}_w" + "-".join(str(w) for w in windows)


def full_model_name(base: ModelConfig) -> str:
    """The variant of `grid(base)` that is the flagfile's own model."""
    if base.proposal_mode != "sliding":
        return "full"
    return _sliding_name(base.stride_frames, base.window_frames)


def table3_order(metrics: Mapping[str, Mapping[str, float]], full: str, key: str) -> str | None:
    """The paper's Table 3 order on `key`: the full model above the model without
    cross-attention, and the model without surrogate selection the lowest of the three.

    `metrics`: {variant name: test metrics}. None unless all three were run.
    """
    names = (full, "no_cross_attention", "no_surrogate_selection")
    if any(n not in metrics for n in names):
        return None
    f, ca, ss = (metrics[n][key] for n in names)
    above = "met" if f > ca else "missed"
    lowest = "met" if ss < min(f, ca) else "missed"
    return (
        f"Table 3's order on test {key}: full model {f:.2f} above w/o cross-attention "
        f"{ca:.2f}: {above}; w/o surrogate selection {ss:.2f} the lowest: {lowest}"
    )


def define_ablation_flags() -> None:
    if "ablation_dir" in FLAGS:
        return
    flags.DEFINE_string(
        "ablation_dir", None, "One model_dir per variant (default: <model_dir>_ablations)."
    )
    flags.DEFINE_list("variants", None, "Run only these variants (directory names).")
    flags.DEFINE_boolean(
        "quick", False, "Two epochs per variant: a smoke run of the grid on small data."
    )
    flags.DEFINE_string(
        "table", None, "Markdown output (default: <ablation_dir>/table3.md)."
    )


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    from vlanet_tf import experiment, strategy, tuning
    from vlanet_tf.data import prepared
    from vlanet_tf.evaluation.scoring import primary_metric
    from vlanet_tf.run_dir import RunDir

    strategy.configure_cpu_devices(FLAGS.num_cpu_devices)
    base = vflags.model_config_from_flags(FLAGS)
    train_config = vflags.train_config_from_flags(FLAGS)
    if FLAGS.quick:
        train_config = dataclasses.replace(train_config, epochs=min(train_config.epochs, 2))
    run_config = vflags.run_config_from_flags(FLAGS)
    ablation_dir = FLAGS.ablation_dir or f"{FLAGS.model_dir.rstrip('/')}_ablations"
    variants = grid(base)
    if FLAGS.variants:
        unknown = set(FLAGS.variants) - {v.name for v in variants}
        if unknown:
            raise app.UsageError(
                f"unknown --variants {sorted(unknown)}; expected some of "
                f"{[v.name for v in variants]}"
            )
        variants = [v for v in variants if v.name in FLAGS.variants]
    dataset = prepared.load_manifest(FLAGS.data_dir)["dataset"]
    columns = DIDEMO_COLUMNS if dataset == "didemo" else CHARADES_COLUMNS

    rows, by_name = [], {}
    hparams_dir = os.path.join(ablation_dir, "hparams")
    space = {name: sorted({_hparam(v, name, base) for v in variants}, key=str) for name in HPARAMS}
    tuning.write_hparams_config(
        hparams_dir,
        space,
        [f"{split}_{c}" for split in ("val", "test") for c in columns],
    )
    for variant in variants:
        print(f"=== {variant.label} ({variant.name})", flush=True)
        model_dir = os.path.join(ablation_dir, variant.name)
        summary = experiment.train_and_evaluate(
            dataclasses.replace(base, **variant.overrides),
            train_config,
            dataclasses.replace(run_config, model_dir=model_dir),
        )
        rows.append((variant.label, summary["metrics"]))
        by_name[variant.name] = summary["metrics"]
        best = RunDir(model_dir).read_best() or {"metrics": {}}
        tuning.write_hparams(
            os.path.join(hparams_dir, variant.name),
            {name: _hparam(variant, name, base) for name in HPARAMS},
            {
                **{f"val_{k}": v for k, v in best["metrics"].items() if k in columns},
                **{f"test_{k}": v for k, v in summary["metrics"].items() if k in columns},
            },
            trial_id=variant.name,
        )
    table = table3(rows, columns)
    order = table3_order(by_name, full_model_name(base), primary_metric(dataset))
    path = FLAGS.table or os.path.join(ablation_dir, "table3.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{dataset}, test split, best epoch on val:\n\n{table}\n")
        if order:
            f.write(f"\n{order}\n")
    print(table)
    if order:
        print(order)
    print(f"(written to {path})")


if __name__ == "__main__":
    vflags.define_all_flags()
    define_ablation_flags()
    app.run(vflags.one_line_errors(main))
