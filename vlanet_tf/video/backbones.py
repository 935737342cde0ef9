"""The image backbones an extractor can use, from keras.applications.

| name | output | input | why |
| --- | --- | --- | --- |
| vgg16_fc7 | 4096 (fc7 = "fc2", after ReLU) | 224 | the paper's DiDeMo extractor |
| efficientnet_b0 | 1280 (global average pool) | 224 | strong ImageNet features per FLOP |
| mobilenet_v3_small | 576 (global average pool) | 224 | fast enough for a CPU |
| tiny_cnn | 32 (global average pool) | any | tests and smoke runs only; no ImageNet weights |

C3D and I3D (the Charades-STA extractors of the literature) are not in Keras. Weights
are "imagenet" (downloaded by keras.applications) or a file written by `save_weights`
of the same backbone (`weights=PATH`).
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

BACKBONES = ("vgg16_fc7", "efficientnet_b0", "mobilenet_v3_small", "tiny_cnn")
IMAGENET = "imagenet"
DEFAULT_IMAGE_SIZE = {"vgg16_fc7": 224, "efficientnet_b0": 224, "mobilenet_v3_small": 224,
                      "tiny_cnn": 64}


def _application(name: str, image_size: int, weights: str | None):
    import keras

    shape = (image_size, image_size, 3)
    if name == "vgg16_fc7":
        if weights == IMAGENET and image_size != 224:
            raise ValueError("vgg16_fc7 with ImageNet weights takes 224 x 224 images")
        full = keras.applications.VGG16(include_top=True, weights=weights, input_shape=shape)
        return keras.Model(full.input, full.get_layer("fc2").output, name="vgg16_fc7")
    if name == "efficientnet_b0":
        return keras.applications.EfficientNetB0(
            include_top=False, weights=weights, input_shape=shape, pooling="avg"
        )
    if name == "mobilenet_v3_small":
        return keras.applications.MobileNetV3Small(
            include_top=False, weights=weights, input_shape=shape, pooling="avg",
            include_preprocessing=True,
        )
    if name == "tiny_cnn":
        return tiny_cnn(image_size)
    raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


def tiny_cnn(image_size: int, seed: int = 0):
    """A 3-layer CNN (32-d) for tests: randomly initialised, loaded with weights=PATH."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    for filters in (8, 16, 32):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="tiny_cnn")


def _preprocess(name: str) -> Callable:
    if name == "vgg16_fc7":
        import keras

        return keras.applications.vgg16.preprocess_input
    return lambda x: x  # EfficientNet, MobileNetV3 and tiny_cnn rescale inside.


def build(name: str, weights: str, image_size: int | None = None):
    """(keras.Model images float [B, S, S, 3] in 0..255 -> [B, F], preprocess function).

    `weights` is "imagenet" or the path of a file saved with `save_weights`.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
    size = image_size or DEFAULT_IMAGE_SIZE[name]
    if weights == IMAGENET:
        if name == "tiny_cnn":
            raise ValueError("tiny_cnn has no ImageNet weights; pass weights=PATH")
        model = _application(name, size, IMAGENET)
    else:
        model = _application(name, size, None)
        try:
            model.load_weights(weights)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"could not load {name} weights from {weights!r} ({error}); expected a "
                f"file written by save_weights of the same backbone at image size {size}"
            ) from error
    return model, _preprocess(name)


def weights_sha256(model) -> str:
    """sha256 over the backbone's weight values, in order: the same for the same weights,
    wherever they were loaded from."""
    digest = hashlib.sha256()
    for variable in model.weights:
        value = np.ascontiguousarray(np.asarray(variable), dtype=np.float32)
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()
