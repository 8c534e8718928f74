"""Runtime adapters: a Keras model in, a zero-argument inference call out.

Each adapter prepares the model for one runtime (tracing, converting, compiling)
outside any timed region and returns ``call() -> np.ndarray`` that runs the
model on a fixed input batch and returns its (first) output, finished.

Example:

    call = prepare("tflite", model, x, threads=1)
    y = call()
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np

# Runtime names are the policy's target names (tf_reorder/policy.py).
TF_RUNTIMES = ("keras", "tf", "xla", "tflite", "onnx")
JAX_RUNTIMES = ("jax",)
RUNTIMES = TF_RUNTIMES + JAX_RUNTIMES
DESCRIPTIONS = {
    "keras": "Keras eager (TF backend), model(x)",
    "tf": "tf.function (Grappler on)",
    "xla": "tf.function(jit_compile=True)",
    "tflite": "TFLite converter + LiteRT interpreter (XNNPACK)",
    "onnx": "tf2onnx (opset 17) + ONNX Runtime CPU",
    "jax": "Keras on the JAX backend, jax.jit(stateless_call)",
}

Call = Callable[[], np.ndarray]


class Unavailable(Exception):
    """The runtime cannot run this model (e.g. an op its converter does not support)."""


def _first(outputs: Any) -> Any:
    while isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    if isinstance(outputs, dict):
        return _first(next(iter(outputs.values())))
    return outputs


def _concrete_function(model: Any, x: np.ndarray, *, jit_compile: bool = False) -> Any:
    import tensorflow as tf

    spec = tf.TensorSpec(x.shape, tf.as_dtype(x.dtype), name="x")
    function = tf.function(lambda t: model(t, training=False), jit_compile=jit_compile,
                           autograph=False)
    return function, function.get_concrete_function(spec), spec


def keras_eager(model: Any, x: np.ndarray, threads: int) -> Call:
    import tensorflow as tf

    del threads  # TF's pools are pinned once per process
    tensor = tf.constant(x)
    return lambda: _first(model(tensor, training=False)).numpy()


def tf_function(model: Any, x: np.ndarray, threads: int, *, jit_compile: bool = False) -> Call:
    import tensorflow as tf

    del threads
    _, concrete, _ = _concrete_function(model, x, jit_compile=jit_compile)
    tensor = tf.constant(x)
    return lambda: _first(concrete(tensor)).numpy()


def tflite_content(model: Any) -> bytes:
    """The model converted by the TFLite converter (weights frozen into the flatbuffer).

    `from_keras_model`, not `from_concrete_functions`: given a tf.function that
    captures the model's variables, the latter keeps them as resource variables
    that nothing initializes in the interpreter.
    """
    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the exported signature
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tflite(model: Any, x: np.ndarray, threads: int) -> Call:
    from ai_edge_litert.interpreter import Interpreter

    try:
        content = tflite_content(model)
        interpreter = Interpreter(model_content=content, num_threads=threads or None)
        (input_detail,) = interpreter.get_input_details()
        if tuple(input_detail["shape"]) != x.shape:
            interpreter.resize_tensor_input(input_detail["index"], x.shape)
        interpreter.allocate_tensors()
    except Exception as error:  # the converter raises many types; one line is enough
        select = [line.strip() for line in str(error).splitlines()
                  if line.strip().startswith("TF Select ops:")]
        reason = f"needs {select[0]} (not in the builtin op set)" if select else _one_line(error)
        raise Unavailable(f"TFLite: {reason}") from error
    input_index = input_detail["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def call() -> np.ndarray:
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)

    return call


def onnx_runtime(model: Any, x: np.ndarray, threads: int) -> Call:
    import onnxruntime
    import tf2onnx

    function, _, spec = _concrete_function(model, x)
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=17)
    except Exception as error:
        raise Unavailable(f"tf2onnx: {_one_line(error)}") from error
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # Spinning threads make timings on a shared 2-core machine swing by +-30%.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feeds)[0]


def jax_jit(model: Any, x: np.ndarray, threads: int) -> Call:
    import jax

    del threads  # set through XLA_FLAGS before JAX starts (see bench_runtimes)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def infer(trainable: Any, non_trainable: Any, inputs: Any) -> Any:
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
        return _first(outputs)

    inputs = jax.numpy.asarray(x)
    return lambda: np.asarray(infer(trainable, non_trainable, inputs))


def prepare(runtime: str, model: Any, x: np.ndarray, threads: int) -> Call:
    """The inference call of `model` on `x` in `runtime` (see RUNTIMES)."""
    if runtime == "keras":
        return keras_eager(model, x, threads)
    if runtime == "tf":
        return tf_function(model, x, threads)
    if runtime == "xla":
        return tf_function(model, x, threads, jit_compile=True)
    if runtime == "tflite":
        return tflite(model, x, threads)
    if runtime == "onnx":
        return onnx_runtime(model, x, threads)
    if runtime == "jax":
        return jax_jit(model, x, threads)
    raise ValueError(f"unknown runtime '{runtime}'; known: {', '.join(RUNTIMES)}")


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]
