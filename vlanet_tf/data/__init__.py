"""The TFRecord schema and the tf.data input pipeline."""

from vlanet_tf.data.pipeline import load_manifest, load_vocabulary, make_dataset
from vlanet_tf.data.schema import VideoExample, decode, encode

__all__ = [
    "VideoExample",
    "decode",
    "encode",
    "load_manifest",
    "load_vocabulary",
    "make_dataset",
]
