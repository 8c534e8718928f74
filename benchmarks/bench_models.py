"""The models that benchmarks/bench_runtimes.py times, and their activation-free twins.

Every builder takes the activation name (the VGG-style net is rebuilt with each;
the others keep their own activation, relu) and the image size, seeds Keras so
that the same call builds the same weights, and returns a built Keras model.

The models in `INFERENCE_MODELS` (`cifar_bn`, `xception_bn`) are reordered with
`inference=True`, where a BatchNormalization before a max pool moves too; their
batch norms get seeded, trained-looking statistics (every scale positive). Their
cells measure the family that moves, "batch_normalization" (`cell_activations`),
and the twin and the element count take the cell's mode: a BatchNormalization
counts as one of "the layers that move" where `reorder` may move it under that
mode (every one with `inference=True`, a frozen one always), so in the default
mode the batch norms of resnet50 and inception_v3 stay in the twin and out of the
count, as before.

Example:

    model = build("vgg_style", "sigmoid", image_size=64)
    twin = linearized(model)          # same weights, every activation the identity
    activation_elements(model)        # activation evaluations per sample
    bn = build("cifar_bn", "relu", image_size=32)
    linearized(bn, inference=True)    # relus and batch norms the identity
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import layers

from tf_reorder.keras_vocabulary import describe_activation

# keras.applications models and our own; the value says what --activations does to them.
MODELS = ("vgg_style", "resnet50", "inception_v3", "text_cnn", "conv3d", "cifar_bn",
          "xception_bn")
REBUILT_WITH_EACH_ACTIVATION = frozenset({"vgg_style"})
# Reordered with inference=True; their cells are keyed by the family that moves.
INFERENCE_MODELS = frozenset({"cifar_bn", "xception_bn"})
BATCH_NORM_FAMILY = "batch_normalization"  # the Keras pass's policy family for the layer
TEXT_VOCABULARY, TEXT_LENGTH = 5_000, 400
BATCH_NORM_SEED = 4321


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


def cifar_bn(activation: str, image_size: int) -> keras.Model:
    """The Keras CIFAR tutorial net with batch norms: three blocks of
    [Conv2D(relu) -> BatchNormalization] x 2 -> MaxPooling2D, then a classifier.

    With inference=True each block's second relu and batch norm move after the pool
    together (3 batch norm sites and 3 relu sites).
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    h = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        for i in (1, 2):
            h = layers.Conv2D(filters, 3, padding="same", activation=activation,
                              name=f"block{block}_conv{i}")(h)
            h = layers.BatchNormalization(name=f"block{block}_bn{i}")(h)
        h = layers.MaxPooling2D(name=f"block{block}_pool")(h)
    h = layers.Flatten()(h)
    outputs = layers.Dense(10, name="predictions")(h)
    return _with_trained_looking_batch_norms(keras.Model(inputs, outputs, name="cifar_bn"))


def xception_bn(activation: str, image_size: int) -> keras.Model:
    """Xception's entry flow without its residual branches: a strided stem
    (Conv2D -> BatchNormalization -> relu), then four blocks of
    [relu ->] SeparableConv2D -> BatchNormalization -> MaxPooling2D(3, 2, "same"),
    filters 64/128/256/512, a relu, global average pool and a classifier.

    With inference=True the four batch norms move after their pools alone (the
    relu follows the pool already); the last relu feeds the average pool and stays.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    h = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False,
                      name="stem_conv")(inputs)
    h = layers.BatchNormalization(name="stem_bn")(h)
    h = layers.Activation(activation, name="stem_act")(h)
    for block, filters in enumerate((64, 128, 256, 512), start=1):
        if block > 1:
            h = layers.Activation(activation, name=f"block{block}_act")(h)
        h = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False,
                                   name=f"block{block}_sepconv")(h)
        h = layers.BatchNormalization(name=f"block{block}_bn")(h)
        h = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(h)
    h = layers.Activation(activation, name="exit_act")(h)
    h = layers.GlobalAveragePooling2D(name="avg_pool")(h)
    outputs = layers.Dense(10, name="predictions")(h)
    return _with_trained_looking_batch_norms(keras.Model(inputs, outputs, name="xception_bn"))


def _with_trained_looking_batch_norms(model: keras.Model,
                                      seed: int = BATCH_NORM_SEED) -> keras.Model:
    """Sets every BatchNormalization's statistics to seeded random values, all scales > 0.

    A fresh layer is the identity at inference (up to epsilon); these make it a real
    per-channel affine map: gamma ~ U(0.5, 1.5), beta and moving_mean ~ N(0, 0.5),
    moving_variance ~ U(0.5, 2).
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
    return model


BUILDERS: dict[str, Callable[[str, int], keras.Model]] = {
    "vgg_style": vgg_style,
    "resnet50": resnet50,
    "inception_v3": inception_v3,
    "text_cnn": text_cnn,
    "conv3d": conv3d,
    "cifar_bn": cifar_bn,
    "xception_bn": xception_bn,
}


def build(name: str, activation: str, image_size: int) -> keras.Model:
    """The model `name`, with `activation` where the model takes one; seeded."""
    keras.utils.set_random_seed(1234)
    return BUILDERS[name](model_activation(name, activation), image_size)


def model_activation(name: str, activation: str) -> str:
    """The activation the model is built with: the requested one, or the model's own."""
    return activation if name in REBUILT_WITH_EACH_ACTIVATION else "relu"


def cell_activations(name: str, activations: Sequence[str]) -> list[str]:
    """The activation keys of the model's cells: the family whose move each measures.

    Example:

        cell_activations("vgg_style", ["relu", "elu"])   # ["relu", "elu"]
        cell_activations("resnet50", ["relu", "elu"])    # ["relu"]
        cell_activations("cifar_bn", ["relu", "elu"])    # ["batch_normalization"]
    """
    if name in REBUILT_WITH_EACH_ACTIVATION:
        return list(activations)
    if name in INFERENCE_MODELS:
        return [BATCH_NORM_FAMILY]
    return ["relu"]


def reorders_for_inference(name: str) -> bool:
    """Whether the model's cells call `tf_reorder.reorder(..., inference=True)`.

    Example:

        reorders_for_inference("xception_bn")   # True
    """
    return name in INFERENCE_MODELS


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


def _movable_batch_norm(layer: keras.layers.Layer, inference: bool) -> bool:
    """A BatchNormalization `reorder` may move in this mode: any one for inference, a
    frozen one (it uses its moving statistics in training too) always."""
    return isinstance(layer, layers.BatchNormalization) and (inference or not layer.trainable)


def linearized(model: keras.Model, *, inference: bool = False) -> keras.Model:
    """The same model and weights with every layer that may move the identity: every
    activation (fused or a layer), and the batch norms `reorder` may move in the mode.

    Timing it next to the model gives the moving layers' share of run time.

    Example:

        linearized(build("cifar_bn", "relu", 32), inference=True)  # no relu, no batch norm
    """
    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        if _movable_batch_norm(layer, inference):
            return layers.Identity(name=layer.name)
        if not _applies_activation(layer):
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, _ACTIVATION_LAYERS):
            return layers.Activation("linear", name=layer.name)
        config = layer.get_config()
        config["activation"] = "linear"
        return layer.__class__.from_config(config)

    def call(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if isinstance(layer, layers.Identity):  # takes no training= or mask=
            return layer(args[0])
        return layer(*args, **kwargs)

    twin = keras.models.clone_model(model, clone_function=clone, call_function=call)
    # Layer by layer: a dropped batch norm (or PReLU) has no weights in the twin.
    for layer in model.layers:
        copy = twin.get_layer(layer.name) if layer.weights else None  # inputs are renamed
        if copy is not None and copy.weights:
            copy.set_weights(layer.get_weights())
    return twin


def activation_elements(model: keras.Model, *, inference: bool = False) -> int:
    """Evaluations per sample of the layers that may move, over the whole model (every
    call of every layer): activations, and the batch norms `reorder` may move in the mode.

    Example:

        activation_elements(build("cifar_bn", "relu", 32), inference=True)  # relus + BNs
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += activation_elements(layer, inference=inference)
        elif _applies_activation(layer) or _movable_batch_norm(layer, inference):
            for node in layer._inbound_nodes:  # pylint: disable=protected-access
                for tensor in keras.tree.flatten(node.outputs):
                    total += math.prod(d for d in tensor.shape[1:])
    return total
