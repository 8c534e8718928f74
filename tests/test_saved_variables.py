"""A SavedModel's variables as the constants of affine maps: what is read, and conversions.

Keras traces BatchNormalization as ``x * (rsqrt(variance + eps) * gamma) + (beta - mean
* ...)`` on variable reads; `convert_saved_model` decides it on the checkpoint's values,
where no function of the SavedModel writes them.
"""

import hashlib
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import tf_reorder
from tf_reorder import saved_model, saved_variables

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 16, 16, 3)).astype("float32")
NEGATIVE_CHANNEL = 2


def files_digest(path):
    """Every file under `path` -> (sha256, mtime), to show the source is untouched."""
    digest = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                digest[os.path.relpath(full, path)] = (hashlib.sha256(f.read()).hexdigest(),
                                                       os.stat(full).st_mtime_ns)
    return digest


def bn_model(negative_channel=None):
    """Conv2D(relu) -> BatchNormalization (random statistics) -> MaxPooling2D -> Dense."""
    model = keras.Sequential([keras.Input((16, 16, 3)),
                              layers.Conv2D(6, 3, padding="same", activation="relu"),
                              layers.BatchNormalization(), layers.MaxPooling2D(),
                              layers.Flatten(), layers.Dense(3)])
    gamma = RNG.uniform(0.5, 2.0, 6).astype("float32")
    if negative_channel is not None:
        gamma[negative_channel] = -0.5
    model.layers[1].set_weights([gamma, RNG.standard_normal(6).astype("float32"),
                                 RNG.standard_normal(6).astype("float32"),
                                 RNG.uniform(0.5, 2.0, 6).astype("float32")])
    return model


def save(model, path, how):
    if how == "export":
        model.export(path, verbose=False)
    else:
        tf.saved_model.save(model, path)
    return path


def convert(src, dst):
    before = files_digest(src)
    report = tf_reorder.convert_saved_model(src, dst)
    assert files_digest(src) == before, "the source SavedModel was changed"
    return report


def serving_outputs(path, x=X):
    loaded = tf.saved_model.load(path)
    outputs = loaded.signatures["serving_default"](tf.constant(x))
    return {key: value.numpy() for key, value in outputs.items()}


def assert_same_outputs(src, dst):
    a, b = serving_outputs(src), serving_outputs(dst)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.fixture(scope="module")
def positive(tmp_path_factory):
    model = bn_model()
    directory = tmp_path_factory.mktemp("positive")
    converted = {}
    for how in ("export", "save"):
        src = save(model, str(directory / how), how)
        converted[how] = (src, str(directory / f"{how}_reordered"))
        converted[how] += (convert(*converted[how]),)
    return model, converted


def _by_function(report):
    return {site.function.split("(")[0]: site for site in report.sites}


@pytest.mark.parametrize("how", ["export", "save"])
def test_batch_norm_on_variables_moves_with_the_relu(positive, how):
    model, converted = positive
    src, dst, report = converted[how]
    moved = {site.function.split("(")[0] for site in report.moved}
    assert moved == {"Relu", "Mul", "AddV2"}, report
    assert len(report.moved) == len(report.sites)
    assert all(site.elements_after * 4 == site.elements_before for site in report.moved)
    notes = [note for site in report.moved for note in site.notes
             if "variable values" in note]
    assert len(notes) == 2 * len(report.moved) // 3, notes  # the Mul and the AddV2 sites
    assert_same_outputs(src, dst)
    np.testing.assert_allclose(serving_outputs(dst)["output_0"], np.asarray(model(X)),
                               rtol=1e-5, atol=1e-6)


def test_function_variables_are_the_checkpoint_values(positive):
    model, converted = positive
    src = converted["export"][0]
    values = saved_variables.function_variables(saved_model.read_saved_model(src), src)
    assert len(values) == 1
    read = [value for arguments in values[0].values() for value in arguments.values()]
    for weight in model.weights:
        assert any(value.shape == weight.shape and np.array_equal(value, weight.numpy())
                   for value in read), weight.path


def test_a_negative_scale_in_one_channel_is_refused_with_the_channel(tmp_path):
    src = save(bn_model(negative_channel=NEGATIVE_CHANNEL), str(tmp_path / "src"), "export")
    dst = str(tmp_path / "dst")
    report = convert(src, dst)
    sites = _by_function(report)
    assert not sites["Mul"].moved and f"channel {NEGATIVE_CHANNEL} is scaled by -" in \
        sites["Mul"].reason
    assert not sites["Relu"].moved and "stays before it" in sites["Relu"].reason
    assert sites["AddV2"].moved  # the shift alone is monotone in every channel
    assert_same_outputs(src, dst)


class _Scaled(tf.Module):
    """relu(x) * scale -> max pool, where `scale` is a variable; `flip` negates it."""

    def __init__(self, with_flip=False, with_argument_writer=False):
        super().__init__()
        self.scale = tf.Variable(np.array([0.5, 2.0, 1.0], "float32"))
        self.counter = tf.Variable(np.zeros(3, "float32"))
        if with_flip:
            self.flip = tf.function(lambda: self.scale.assign(-self.scale),
                                    input_signature=[])
        if with_argument_writer:
            self.bump = tf.function(lambda v: v.assign_add(tf.ones(3)))
            self.bump(self.counter)  # traced on a variable argument: not bound to one

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3])])
    def serve(self, x):
        return tf.nn.max_pool2d(tf.nn.relu(x) * self.scale, 2, 2, "VALID")


def _converted_module(tmp_path, **kinds):
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    tf.saved_model.save(_Scaled(**kinds), src)
    return src, dst, convert(src, dst)


X8 = RNG.standard_normal((2, 8, 8, 3)).astype("float32")


def test_a_read_only_variable_is_a_constant(tmp_path):
    src, dst, report = _converted_module(tmp_path)
    assert {site.function.split("(")[0] for site in report.moved} == {"Relu", "Mul"}
    a, b = tf.saved_model.load(src), tf.saved_model.load(dst)
    np.testing.assert_array_equal(a.serve(X8).numpy(), b.serve(X8).numpy())


def test_a_variable_a_function_writes_is_not_read(tmp_path):
    src, dst, report = _converted_module(tmp_path, with_flip=True)
    assert not report.moved
    (site,) = report.sites
    assert "Mul 'mul'" in site.reason and "a variable that may change" in site.reason
    a, b = tf.saved_model.load(src), tf.saved_model.load(dst)
    for loaded in (a, b):
        loaded.flip()  # now every channel is scaled by a negative number
    np.testing.assert_array_equal(a.serve(X8).numpy(), b.serve(X8).numpy())


def test_a_write_not_traced_to_its_variable_reads_none(tmp_path):
    src, _, report = _converted_module(tmp_path, with_argument_writer=True)
    assert not report.moved
    proto = saved_model.read_saved_model(src)
    assert saved_variables.function_variables(proto, src) == [{}]


def test_no_variables_directory_reads_nothing(tmp_path):
    module = tf.Module()
    module.serve = tf.function(lambda x: tf.nn.max_pool2d(tf.nn.relu(x), 2, 2, "VALID"),
                               input_signature=[tf.TensorSpec([None, 8, 8, 3])])
    src = str(tmp_path / "src")
    tf.saved_model.save(module, src)
    proto = saved_model.read_saved_model(src)
    assert saved_variables.function_variables(proto, src) == [{}]
    report = convert(src, str(tmp_path / "dst"))
    assert [site.function for site in report.moved] == ["Relu"]
