"""The models that benchmarks/bench_runtimes.py times, and their activation-free twins.

Every builder takes the activation name (the VGG-style net is rebuilt with each;
the others keep their own activation, relu) and the image size, seeds Keras so
that the same call builds the same weights, and returns a built Keras model.

Example:

    model = build("vgg_style", "sigmoid", image_size=64)
    twin = linearized(model)          # same weights, every activation the identity
    activation_elements(model)        # activation evaluations per sample
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np
from keras import layers

from tf_reorder.keras_vocabulary import describe_activation

# keras.applications models and our own; the value says what --activations does to them.
MODELS = ("vgg_style", "resnet50", "inception_v3", "text_cnn", "conv3d")
REBUILT_WITH_EACH_ACTIVATION = frozenset({"vgg_style"})
TEXT_VOCABULARY, TEXT_LENGTH = 5_000, 400


def vgg_style(activation: str, image_size: int) -> keras.Model:
    """Four blocks of two 3x3 convolutions and a 2x2 max pool, then a classifier."""
    inputs = keras.Input((image_size, image_size, 3), name="image")
    h = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        for i in (1, 2):
            h = layers.Conv2D(filters, 3, padding="same", activation=activation,
                              name=f"block{block}_conv{i}")(h)
        h = layers.MaxPooling2D(name=f"block{block}_pool")(h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(10, name="predictions")(h)
    return keras.Model(inputs, outputs, name="vgg_style")


def resnet50(activation: str, image_size: int) -> keras.Model:
    del activation  # its own relus
    return keras.applications.ResNet50(weights=None, input_shape=(image_size, image_size, 3))


def inception_v3(activation: str, image_size: int) -> keras.Model:
    del activation
    return keras.applications.InceptionV3(weights=None,
                                          input_shape=(max(image_size, 75),) * 2 + (3,))


def text_cnn(activation: str, image_size: int) -> keras.Model:
    """Keras' classic IMDB CNN: embeddings, one 1D convolution, a global max, a classifier."""
    del image_size
    inputs = keras.Input((TEXT_LENGTH,), dtype="int32", name="tokens")
    h = layers.Embedding(TEXT_VOCABULARY, 50)(inputs)
    h = layers.Conv1D(250, 3, activation=activation, name="conv")(h)
    h = layers.GlobalMaxPooling1D(name="global_max")(h)
    h = layers.Dense(250, activation=activation, name="hidden")(h)
    outputs = layers.Dense(1, name="score")(h)
    return keras.Model(inputs, outputs, name="text_cnn")


def conv3d(activation: str, image_size: int) -> keras.Model:
    """A small video net: 16 frames of image_size / 4 squared, two Conv3D + MaxPool3D."""
    side = max(image_size // 4, 8)
    inputs = keras.Input((16, side, side, 3), name="clip")
    h = layers.Conv3D(16, 3, padding="same", activation=activation, name="conv1")(inputs)
    h = layers.MaxPooling3D(name="pool1")(h)
    h = layers.Conv3D(32, 3, padding="same", activation=activation, name="conv2")(h)
    h = layers.MaxPooling3D(name="pool2")(h)
    h = layers.GlobalAveragePooling3D()(h)
    outputs = layers.Dense(10, name="predictions")(h)
    return keras.Model(inputs, outputs, name="conv3d")


BUILDERS: dict[str, Callable[[str, int], keras.Model]] = {
    "vgg_style": vgg_style,
    "resnet50": resnet50,
    "inception_v3": inception_v3,
    "text_cnn": text_cnn,
    "conv3d": conv3d,
}


def build(name: str, activation: str, image_size: int) -> keras.Model:
    """The model `name`, with `activation` where the model takes one; seeded."""
    keras.utils.set_random_seed(1234)
    return BUILDERS[name](model_activation(name, activation), image_size)


def model_activation(name: str, activation: str) -> str:
    """The activation a cell measures: the requested one, or the model's own."""
    return activation if name in REBUILT_WITH_EACH_ACTIVATION else "relu"


def sample_input(model: keras.Model, batch: int, seed: int = 0) -> np.ndarray:
    """A random batch for the model's single input (token ids for integer inputs)."""
    rng = np.random.default_rng(seed)
    shape = (batch, *model.input_shape[1:])
    if "int" in str(model.inputs[0].dtype):
        return rng.integers(0, TEXT_VOCABULARY, size=shape, dtype=np.int32)
    return rng.standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# The activation-free twin, and the count of activation evaluations.

_ACTIVATION_LAYERS = (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU,
                      layers.PReLU)


def _applies_activation(layer: keras.layers.Layer) -> bool:
    """Whether the layer applies a non-identity activation (a softmax head does not count)."""
    function = describe_activation(layer)
    return function is not None and function.name != "softmax"


def linearized(model: keras.Model) -> keras.Model:
    """The same model and weights with every activation (fused or a layer) the identity.

    Timing it next to the model gives the activations' share of run time.
    """
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if not _applies_activation(layer):
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, _ACTIVATION_LAYERS):
            return layers.Activation("linear", name=layer.name)
        config = layer.get_config()
        config["activation"] = "linear"
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def activation_elements(model: keras.Model) -> int:
    """Activation evaluations per sample over the whole model (every call of every layer)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += activation_elements(layer)
        elif _applies_activation(layer):
            for node in layer._inbound_nodes:  # pylint: disable=protected-access
                for tensor in keras.tree.flatten(node.outputs):
                    total += math.prod(d for d in tensor.shape[1:])
    return total
