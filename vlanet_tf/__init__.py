"""vlanet_tf: VLANet (weakly-supervised video moment retrieval) in TensorFlow / Keras."""

__version__ = "0.1.0"
