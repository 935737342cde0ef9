"""Input pipeline: shards -> interleave -> parse -> sentences -> shuffle -> padded batch.

A shard holds one record per video; the pipeline expands each video into one element
per sentence, so a batch is a batch of (video, sentence) pairs in the format of
docs/ARCHITECTURE.md. Tokenisation and vocabulary lookup run on whole batches.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from vlanet_tf.data import schema
from vlanet_tf.data.prepared import load_manifest, load_vocabulary, shard_files
from vlanet_tf.text import Vocabulary

MOMENT_PADDING = -1.0
# Sentence-level shuffle buffer, in elements. Elements share their video's feature
# tensor, so the buffer costs about buffer / sentences-per-video feature arrays.
DEFAULT_SHUFFLE_BUFFER = 2048


def _to_sentences(video: dict[str, Any]) -> tf.data.Dataset:
    """One video record -> a dataset of its sentences, each carrying the video."""
    per_sentence = tf.data.Dataset.from_tensor_slices(
        {
            "query_id": video["query_ids"],
            "sentence": video["sentences"],
            "moments": video["moments"].to_tensor(MOMENT_PADDING),
            "num_annotations": video["num_annotations"],
        }
    )
    shared = tf.data.Dataset.from_tensors(
        {
            "video_id": video["video_id"],
            "video_features": video["features"],
            "video_length": video["num_clips"],
            "duration": video["duration"],
        }
    ).repeat()
    return tf.data.Dataset.zip(per_sentence, shared)


def _merge(sentence: dict[str, tf.Tensor], video: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {**video, **sentence}


def _padding_values() -> dict[str, tf.Tensor]:
    # Built on call, not at import: creating a tensor initialises TensorFlow, after
    # which logical devices and multi-worker collectives can no longer be configured.
    return {
        "video_id": tf.constant(b""),
        "video_features": tf.constant(0.0, tf.float32),
        "video_length": tf.constant(0, tf.int32),
        "duration": tf.constant(0.0, tf.float32),
        "query_id": tf.constant(b""),
        "sentence": tf.constant(b""),
        "moments": tf.constant(MOMENT_PADDING, tf.float32),
        "num_annotations": tf.constant(0, tf.int32),
    }


def make_dataset(
    data_dir: str | os.PathLike,
    split: str,
    batch_size: int,
    *,
    training: bool,
    vocabulary: Vocabulary | None = None,
    deterministic: bool = False,
    seed: int = 0,
    repeat: bool = False,
    max_query_length: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    drop_remainder: bool | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> tf.data.Dataset:
    """Batches of (video, sentence) pairs from a prepared data directory.

    Args:
      data_dir: output of `python -m data_prep.build`.
      split: "train", "val" or "test".
      batch_size: B, per input pipeline (per replica when called through
        `strategy.distribute_datasets_from_function`).
      training: shuffle files and sentences; otherwise keep file order.
      vocabulary: token lookup; by default the data directory's vocab.txt.
      deterministic: fixed element order and seeded shuffles (same batches every run).
      seed: seed of the shuffles when `deterministic`.
      repeat: repeat forever (after the shuffle, so every epoch reshuffles; with
        `deterministic`, pass p is shuffled with seed + p, so the stream depends only
        on the position and `skip` resumes it exactly).
      max_query_length: keep at most this many tokens; by default the manifest's
        `max_query_length` (None: no truncation).
      input_context: from `tf.distribute`; the files (or, with fewer files than input
        pipelines, the records) are sharded across pipelines.
      drop_remainder: drop a final smaller batch; by default only when training (the
        loss draws negatives from the batch, so it must hold more than one video).
      shuffle_buffer: sentences held for shuffling.

    Returns:
      A dataset of dicts: query_tokens int32 [B, M], video_features float32 [B, T, F],
      video_length int32 [B], duration float32 [B], video_id / query_id / sentence
      string [B], moments float32 [B, A, 2] (padded with -1), num_annotations int32 [B].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data_dir = os.fspath(data_dir)
    files = shard_files(data_dir, split)
    if vocabulary is None:
        vocabulary, _ = load_vocabulary(data_dir)
    if max_query_length is None:
        max_query_length = load_manifest(data_dir).get("max_query_length")
    if drop_remainder is None:
        drop_remainder = training
    shuffle_seed = seed if deterministic else None

    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        shard_records = len(files) < input_context.num_input_pipelines

    def one_pass(pass_seed: Any) -> tf.data.Dataset:
        """The sentences of one pass over the split, shuffled by `pass_seed`."""
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if input_context is not None and input_context.num_input_pipelines > 1:
            if not shard_records:
                dataset = dataset.shard(
                    input_context.num_input_pipelines, input_context.input_pipeline_id
                )
        if training:
            dataset = dataset.shuffle(len(files), seed=pass_seed)
        dataset = dataset.interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(files), 8),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic or not training,
        )
        if shard_records:
            dataset = dataset.shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        dataset = dataset.map(
            schema.decode,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic or not training,
        )
        dataset = dataset.flat_map(_to_sentences).map(_merge)
        if training:
            dataset = dataset.shuffle(shuffle_buffer, seed=pass_seed)
        return dataset

    if repeat and training and deterministic:
        # Pass p is shuffled with seed + p, built afresh for each pass: the stream is a
        # function of the position alone, however many iterators Keras opens on it,
        # so a resumed run can skip to where it stopped and read the same batches.
        dataset = tf.data.Dataset.range(2**62).flat_map(
            lambda p: one_pass(tf.cast(seed, tf.int64) + p)
        )
    else:
        dataset = one_pass(shuffle_seed)
        if repeat:
            dataset = dataset.repeat()
    dataset = dataset.padded_batch(
        batch_size, padding_values=_padding_values(), drop_remainder=drop_remainder
    )

    def add_tokens(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        ids = vocabulary.encode(batch["sentence"], max_length=max_query_length)
        return {"query_tokens": ids.to_tensor(0), **batch}

    dataset = dataset.map(add_tokens, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    dataset = dataset.with_options(options)
    return dataset.prefetch(tf.data.AUTOTUNE)
