"""The absl flags shared by the mains (train, evaluate, export, predict, ablations, demo).

Only `python -m` mains import this module (an import-linter contract checks it): library
code takes the typed configs the functions below build from parsed flags.

Each `define_*` function is idempotent, so several mains (and tests) can call them in
any order. Every main defines all shared flags, so the training flagfile
(`--flagfile=configs/charades.flags`) parses in each of them; flags given after it on
the command line override the file.

`vocab_size`, `word_dim` and `feature_dim` are not flags: they are properties of the
prepared data directory (manifest.json and embeddings.npy), read from `--data_dir`.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Callable

from absl import flags

from vlanet_tf.config import PRECISIONS, STRATEGIES, ModelConfig, RunConfig, TrainConfig
from vlanet_tf.config import ARCHITECTURES
from vlanet_tf.data import prepared
from vlanet_tf.run_dir import RunDir, RunOptions

# ModelConfig fields fixed by the prepared data rather than by a flag.
DATA_DERIVED_FIELDS = ("vocab_size", "word_dim", "feature_dim")


def _defined(name: str) -> bool:
    return name in flags.FLAGS


def define_data_flags() -> None:
    """--data_dir, --model_dir, --split, --max_query_length."""
    if _defined("data_dir"):
        return
    flags.DEFINE_string("data_dir", None, "Prepared data directory (data_prep.build).")
    flags.DEFINE_string(
        "model_dir", None, "Checkpoints, config.json, TensorBoard logs and results."
    )
    flags.DEFINE_string(
        "split", "test", "Split that evaluate / predict read (train uses train and val)."
    )
    flags.DEFINE_integer(
        "max_query_length",
        None,
        "Keep at most this many tokens per query (default: the manifest's setting).",
    )
    flags.DEFINE_integer(
        "expect_feature_dim",
        0,
        "Refuse a --data_dir whose clip features are not this wide (0: any). A flagfile "
        "written for one feature set (configs/charades_i3d.flags: 1024) sets it.",
    )


def define_model_flags() -> None:
    """One flag per ModelConfig field except the data-derived ones (SPEC §1-9)."""
    if _defined("hidden_dim"):
        return
    d = ModelConfig()
    flags.DEFINE_integer("hidden_dim", d.hidden_dim, "D: GRU and proposal feature size.")
    flags.DEFINE_integer("gru_layers", d.gru_layers, "Stacked GRU layers of eq. 1.")
    flags.DEFINE_boolean(
        "train_embeddings", d.train_embeddings, "Fine-tune the word vectors (else frozen)."
    )
    flags.DEFINE_enum(
        "proposal_mode",
        None,
        ["sliding", "didemo"],
        "Proposal layout (SPEC §2); default: from the data's dataset "
        "(charades_sta -> sliding, didemo -> didemo).",
    )
    flags.DEFINE_float("fps", d.fps, "Frame rate that turns frame counts into seconds.")
    flags.DEFINE_integer(
        "stride_frames", d.stride_frames, "Segment-group stride in frames (SPEC §9)."
    )
    flags.DEFINE_list(
        "window_frames",
        [str(w) for w in d.window_frames],
        "Window lengths of a segment group, in frames (SPEC §9), e.g. 176,208,240.",
    )
    flags.DEFINE_integer(
        "didemo_segments", d.didemo_segments, "DiDeMo: segments per video."
    )
    flags.DEFINE_float(
        "segment_seconds", d.segment_seconds, "DiDeMo: seconds per segment."
    )
    flags.DEFINE_float(
        "min_window_fraction",
        d.min_window_fraction,
        "Sliding windows clipped by the video's end to less than this fraction of their "
        "length are not candidates (outside the first group); 0 keeps them all.",
        lower_bound=0.0,
        upper_bound=1.0,
    )
    flags.DEFINE_boolean(
        "use_surrogate_selection",
        d.use_surrogate_selection,
        "Surrogate proposal selection (eqs. 3-6); off attends all K*L proposals.",
    )
    flags.DEFINE_boolean(
        "use_self_attention", d.use_self_attention, "Self-attention step of the cascade."
    )
    flags.DEFINE_boolean(
        "use_cross_attention", d.use_cross_attention, "Cross-attention steps of the cascade."
    )
    flags.DEFINE_integer("cross_steps", d.cross_steps, "Cross-attention steps (Q2V, V2Q, ...).")
    flags.DEFINE_boolean(
        "share_cross_weights", d.share_cross_weights, "One W1, W2 for every cross step."
    )
    flags.DEFINE_enum(
        "vla_reduction", d.vla_reduction, ["mean", "sum"], "VLA function over words."
    )
    flags.DEFINE_float(
        "attention_init_scale",
        d.attention_init_scale,
        "Stddev of the W1, W2 init in units of 1/sqrt(D) (SPEC §5).",
    )
    flags.DEFINE_integer(
        "video_self_attention_window",
        d.video_self_attention_window,
        "Band of the video self-attention A(V, V), in segment groups: 0 = the paper's "
        "full self-attention, O(K^2); w > 0 = a band of ±w segment groups, O(K·w), "
        "for long videos.",
        lower_bound=0,
    )
    flags.DEFINE_enum(
        "cascade_form",
        d.cascade_form,
        ["project", "paper"],
        "Reading of eqs. 7-13: project = E on the rows' directions, Y mixed by its "
        "weights, --vla_reduction, unit v_comp (README, Deviations from the paper); "
        "paper = the equations as printed (E on the re-weighted rows, sum over words, "
        "v_comp = sum of V's rows; --vla_reduction is not read).",
    )
    flags.DEFINE_float(
        "score_mix",
        d.score_mix,
        "λ >= 0: rank a surrogate by its log weight in v_comp plus λ times its eq. 3 "
        "selection cosine cos(s_k, w_M); 0 = the log weight alone (SPEC §7). Changes "
        "rankings only, not c or the loss; evaluate --score_mix tries another λ on a "
        "trained run.",
        lower_bound=0.0,
    )
    flags.DEFINE_float(
        "attention_temperature",
        d.attention_temperature,
        "τ > 0 of the cascade's attentions: each re-weights rows by softmax_n(E / τ) "
        "instead of softmax_n(E) (eqs. 8-12); c is unchanged. E is bounded, so τ = 1 "
        "(the paper) keeps the weights near uniform; τ < 1 lets them peak.",
        lower_bound=1e-6,
    )
    flags.DEFINE_bool(
        "share_similarity_head",
        d.share_similarity_head,
        "c = E(v_comp, Q) with the last Q2V cross step's W1, W2 instead of a head of "
        "its own (eq. 13): the function that weights the surrogates is the one the "
        "loss scores the pair by. Without cross-attention c keeps its own pair.",
    )
    flags.DEFINE_enum(
        "precision",
        d.precision,
        list(PRECISIONS),
        "Keras dtype policy of every layer: float32, mixed_bfloat16 (bfloat16 compute) "
        "or mixed_float16 (float16 compute, trained with loss scaling). Saved with the "
        "run; evaluate and export rebuild the model in it.",
    )
    flags.DEFINE_enum(
        "architecture",
        d.architecture,
        list(ARCHITECTURES),
        "Scoring network: vlanet, or tga (the text-guided-attention baseline of Mithun "
        "et al., CVPR 2019, trained with its bidirectional ranking loss).",
    )
    flags.DEFINE_float(
        "tga_temperature",
        d.tga_temperature,
        "--architecture=tga: temperature of the softmax over clips.",
        lower_bound=1e-6,
    )


def define_train_flags() -> None:
    """One flag per TrainConfig field, plus how and where the run executes."""
    if _defined("margin"):
        return
    d = TrainConfig()
    flags.DEFINE_float("margin", d.margin, "Δ of the margin loss (eq. 14).")
    flags.DEFINE_integer(
        "num_negatives",
        d.num_negatives,
        "Negatives per positive and direction; 0: every valid in-batch negative "
        "(B x (G-1) cascade passes per direction).",
        lower_bound=0,
    )
    flags.DEFINE_boolean(
        "gather_negatives",
        d.gather_negatives,
        "Draw negatives from the global batch across replicas.",
    )
    flags.DEFINE_enum(
        "negative_direction",
        d.negative_direction,
        ["sentence", "video", "both"],
        "Negatives: other videos' sentences for each video (eq. 14), other videos for "
        "each sentence (this replica's batch), or both.",
    )
    flags.DEFINE_enum(
        "loss",
        d.loss,
        ["hinge", "hinge_hardest", "infonce"],
        "Margin hinge per negative (eq. 14), hinge on the hardest negative (VSE++), or "
        "InfoNCE over the positive and its negatives.",
    )
    flags.DEFINE_float("temperature", d.temperature, "τ of --loss=infonce.")
    flags.DEFINE_float(
        "dropout", d.dropout, "Dropout on query words and proposal features in training."
    )
    flags.DEFINE_enum("optimizer", d.optimizer, ["adamw", "adam", "sgd"], "Optimizer.")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Peak learning rate.")
    flags.DEFINE_float("weight_decay", d.weight_decay, "AdamW decoupled weight decay.")
    flags.DEFINE_integer("warmup_steps", d.warmup_steps, "Linear warmup steps.")
    flags.DEFINE_enum(
        "lr_schedule",
        d.lr_schedule,
        ["constant", "cosine"],
        "Learning rate after the warmup: held, or a half cosine to 0 at the last step.",
    )
    flags.DEFINE_integer(
        "early_stopping_patience",
        d.early_stopping_patience,
        "Stop after this many epochs without a better validation metric (R1@0.5 on "
        "Charades-STA); 0: never.",
        lower_bound=0,
    )
    flags.DEFINE_float(
        "ema_momentum",
        d.ema_momentum,
        "Validate, checkpoint and keep the moving average of the weights (Keras' "
        "use_ema), updated every step with this momentum; 0: off, the weights as trained.",
        lower_bound=0.0,
        upper_bound=0.9999,
    )
    flags.DEFINE_float(
        "clipnorm", d.clipnorm, "Clip the global norm of the all-replica gradient; <= 0: off."
    )
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size (all replicas).")
    flags.DEFINE_integer("epochs", d.epochs, "Training epochs.")
    flags.DEFINE_integer("seed", d.seed, "Seed of the weights and of the data order.")
    flags.DEFINE_enum(
        "strategy",
        "mirrored",
        list(STRATEGIES),
        "mirrored: all local GPUs (the CPU devices when there are none); "
        "one_device: the first GPU or the CPU; multi_worker: TF_CONFIG cluster.",
    )
    flags.DEFINE_integer(
        "num_cpu_devices",
        0,
        "Split the CPU into N logical devices (to exercise MirroredStrategy without "
        "GPUs); 0 leaves it alone.",
    )
    flags.DEFINE_integer(
        "steps_per_epoch",
        None,
        "Training steps per epoch (default: one pass, train sentences // batch_size).",
    )
    flags.DEFINE_boolean(
        "deterministic", False, "Fixed data order and deterministic TF ops (slower)."
    )
    flags.DEFINE_integer(
        "eval_top_k",
        0,
        "Moments kept per query when ranking val/test; 0 keeps all (DiDeMo needs all).",
    )
    flags.DEFINE_float(
        "nms_iou",
        0.0,
        "Temporal NMS on the ranked moments: drop a moment whose IoU with a better kept "
        "one is >= this; 0: off. Saved with the run: val, evaluate and export use it.",
        lower_bound=0.0,
    )
    flags.DEFINE_integer(
        "attention_example",
        0,
        "Index of the val query whose attention map is drawn to TensorBoard.",
    )
    flags.DEFINE_boolean(
        "jit_compile",
        False,
        "XLA-compile the training step and the inference forward pass.",
    )


def define_all_flags() -> None:
    define_data_flags()
    define_model_flags()
    define_train_flags()


def model_config_from_flags(
    flag_values: flags.FlagValues, data_properties: dict[str, Any] | None = None
) -> ModelConfig:
    """ModelConfig from the model flags and the data directory's properties.

    Args:
      flag_values: parsed flags (normally `absl.flags.FLAGS`).
      data_properties: `prepared.data_properties(...)`; read from `--data_dir` if None.
    """
    if data_properties is None:
        if not flag_values.data_dir:
            raise ValueError("--data_dir is required to size the model, got none")
        data_properties = prepared.data_properties(flag_values.data_dir)
    proposal_mode = flag_values.proposal_mode
    if proposal_mode is None:
        proposal_mode = "didemo" if data_properties["dataset"] == "didemo" else "sliding"
    values = {
        field.name: flag_values[field.name].value
        for field in dataclasses.fields(ModelConfig)
        if field.name not in DATA_DERIVED_FIELDS
    }
    expected = flag_values.expect_feature_dim
    if expected and data_properties["feature_dim"] != expected:
        raise ValueError(
            f"--expect_feature_dim={expected}, but --data_dir={flag_values.data_dir!r} "
            f"holds {data_properties['feature_dim']}-d clip features (manifest.json); "
            "prepare it from the feature set the flagfile names, or drop the flag"
        )
    values.update({k: data_properties[k] for k in DATA_DERIVED_FIELDS})
    values["proposal_mode"] = proposal_mode
    values["window_frames"] = tuple(int(w) for w in flag_values.window_frames)
    return ModelConfig(**values)


def train_config_from_flags(flag_values: flags.FlagValues) -> TrainConfig:
    """TrainConfig from the train flags (one flag per field, same names)."""
    return TrainConfig(
        **{f.name: flag_values[f.name].value for f in dataclasses.fields(TrainConfig)}
    )


def flag_dict(flag_values: flags.FlagValues) -> dict[str, Any]:
    """Every flag defined by this module, by name, JSON-safe (saved with the run)."""
    names = [
        name
        for name in flag_values
        if flag_values[name].help is not None
        and flag_values.find_module_defining_flag(name) == __name__
    ]
    return {name: flag_values[name].value for name in sorted(names)}


def run_config_from_flags(flag_values: flags.FlagValues) -> RunConfig:
    """RunConfig (where and how the run executes) from the data and train flags."""
    return RunConfig(
        data_dir=flag_values.data_dir,
        model_dir=flag_values.model_dir,
        strategy=flag_values.strategy,
        steps_per_epoch=flag_values.steps_per_epoch,
        deterministic=flag_values.deterministic,
        eval_top_k=flag_values.eval_top_k,
        nms_iou=flag_values.nms_iou,
        max_query_length=flag_values.max_query_length,
        attention_example=flag_values.attention_example,
        jit_compile=flag_values.jit_compile,
    )


def given(flag_values: flags.FlagValues, name: str) -> Any:
    """The flag's value when it was given (command line or flagfile), else None."""
    return flag_values[name].value if flag_values[name].present else None


def saved_run_options(flag_values: flags.FlagValues, model_dir: str) -> RunOptions:
    """A trained run's options from its directory; given --data_dir and
    --max_query_length override the saved ones. The model flags are not applied: a
    trained model's structure is the one it was trained with."""
    return RunDir(model_dir).load_options(
        data_dir=given(flag_values, "data_dir"),
        max_query_length=given(flag_values, "max_query_length"),
    )



# Raised by the library for a user's mistake besides ValueError and OSError; matched by
# name so that this module imports neither training nor TensorFlow (no import cycle).
USER_ERROR_NAMES = ("NonFiniteLoss", "SkipError", "DataLossError", "InvalidArgumentError")


def _is_user_error(error: BaseException) -> bool:
    """A bad file or line, a mismatch, a refused request or a non-finite loss: the
    library raises these with the file (and line or shard) in the message."""
    if isinstance(error, (ValueError, OSError)):
        return True
    return any(c.__name__ in USER_ERROR_NAMES for c in type(error).__mro__)


def one_line_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a main: a user's mistake is printed as one line on stderr, exit status 1,
    no traceback; anything else (a bug) propagates with its traceback."""

    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - filtered just below
            if not _is_user_error(error):
                raise
            message = " ".join(str(error).split()) or type(error).__name__
            print(f"error: {message}", file=sys.stderr, flush=True)
            sys.exit(1)

    return wrapped
