"""vlanet_tf: VLANet (weakly-supervised video moment retrieval) in TensorFlow / Keras."""

__version__ = "0.1.0"

# Importing the layers and the model registers them with Keras, so that
# keras.saving.load_model reads a VLANet .keras file after only `import vlanet_tf`.
from vlanet_tf import layers, model  # noqa: E402, F401
