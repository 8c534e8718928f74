"""Upstream (Keras fuzzing): AdaptiveMaxPooling with output size 1 on the last axis kills TF.

Found on fresh 2-core machines with AVX-512 (an AMD EPYC, an Intel Xeon Sapphire
Rapids): fuzz seeds 1, 11, 27, 58, ... killed pytest with ``Fatal Python error:
Floating point exception``, with no summary line; CI's earlier machine ran them green.
It is not tf_reorder's doing: plain Keras crashes, before any rewrite.

Keras 3.15 computes ``AdaptiveMaxPooling{1,2,3}D`` on TensorFlow axis by axis, each
as two VALID max pools with windows ``ceil(n / k)`` and ``ceil(n / k) + 1`` whose
outputs it gathers. With ``k == 1`` on the last spatial axis the second window is one
wider than the axis, so that pool's output is empty along it. TensorFlow 2.21 with
oneDNN on (its default on x86-64) dies of SIGFPE on such a pool on these CPUs; with
``TF_ENABLE_ONEDNN_OPTS=0`` it returns the empty tensor and the layer works. An empty
output along an earlier axis is fine either way.

What the suite does about it: the fuzz generator never draws the shape
(`fuzz_keras_models.crashes_onednn`), and this module covers it instead, in child
processes: each case runs the plain Keras model first, then tf_reorder's rewrite. A
child that dies before the original model ran is the upstream crash, and the test
skips with that reason; a crash or a difference after it is a failure. On the JAX
backend and with oneDNN off the cases must always pass.

Run the child by hand: ``python tests/regressions/test_keras_adaptive_max_pool_onednn_crash.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
EMPTY_LAST_AXIS = ("import tensorflow as tf\n"
                   "x = tf.random.uniform((2, 10, 12, 5))\n"
                   "print(tuple(tf.nn.max_pool2d(x, {window}, 1, 'VALID').shape))\n")


def _cases():
    """name -> (model builder, exact): one conv, its activation, the pool that crashes."""
    from keras import Input, Sequential, layers  # pylint: disable=g-import-not-at-top

    def model(shape, *rest):
        return Sequential([Input(shape), *rest])

    return {
        "2d_sigmoid": (lambda: model((12, 14, 3), layers.Conv2D(5, 3, activation="sigmoid"),
                                     layers.AdaptiveMaxPooling2D((6, 1))), False),
        "2d_relu_channels_first": (lambda: model(
            (12, 14, 3), layers.Conv2D(5, 3, activation="relu"), layers.Permute((3, 1, 2)),
            layers.AdaptiveMaxPooling2D((6, 1), data_format="channels_first")), True),
        "2d_last_axis_of_one": (lambda: model(
            (10, 1, 3), layers.Conv2D(4, (3, 1), activation="elu"),
            layers.AdaptiveMaxPooling2D((4, 1))), False),
        "1d_tanh": (lambda: model((12, 3), layers.Conv1D(4, 3, activation="tanh"),
                                  layers.AdaptiveMaxPooling1D(1)), False),
        "3d_relu": (lambda: model((6, 6, 6, 2), layers.Conv3D(3, 3, activation="relu"),
                                  layers.AdaptiveMaxPooling3D((2, 2, 1))), True),
    }


def child_main() -> int:
    """Runs every case; one line each: ORIGINAL_OK before the rewrite, then OK or FAIL."""
    import keras  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top

    import tf_reorder  # pylint: disable=g-import-not-at-top
    from tf_reorder import verify  # pylint: disable=g-import-not-at-top

    print(f"backend {keras.backend.backend()}", flush=True)
    keras.utils.set_random_seed(0)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, exact) in _cases().items():
            model = build()
            inputs = verify.random_inputs(model, batch=2, seed=1)
            np.asarray(model(inputs))  # the upstream crash, if any, happens here
            print(f"ORIGINAL_OK {name}", flush=True)
            try:
                new, report = tf_reorder.reorder(model, return_report=True)
                assert len(report.moved) == 1, str(report)
                comparison = verify.compare_models(model, new, inputs)
                assert comparison.bitwise if exact else comparison.close, comparison
                path = os.path.join(tmp, f"{name}.keras")
                new.save(path)
                loaded = keras.saving.load_model(path, compile=False)
                assert np.asarray(loaded(inputs)).tobytes() == \
                    np.asarray(new(inputs)).tobytes(), "the loaded model differs"
            except Exception as error:  # report every case, then fail
                failures += 1
                print(f"FAIL {name}: {type(error).__name__}: {error}".splitlines()[0],
                      flush=True)
            else:
                print(f"OK {name}", flush=True)
    return 1 if failures else 0


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    environment.update(TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.run([sys.executable, *args], env=environment, capture_output=True,
                          text=True, timeout=600, cwd=TESTS)


def _upstream_crash(what: str) -> str:
    return (f"upstream: TensorFlow 2.21 with oneDNN on dies of SIGFPE on this CPU ({what}), "
            "before tf_reorder does anything; see this module's docstring")


def _check_cases(done: subprocess.CompletedProcess, *, may_crash_upstream: bool) -> None:
    detail = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    lines = done.stdout.splitlines()
    names = list(_cases())
    if done.returncode == -signal.SIGFPE and may_crash_upstream:
        ran = [line for line in lines if line.startswith("ORIGINAL_OK ")]
        finished = [line for line in lines if line.startswith(("OK ", "FAIL "))]
        # The plain Keras model of the next case died: upstream. A death after its
        # ORIGINAL_OK line would be in the rewrite, and fails below.
        if len(ran) == len(finished):
            assert not [line for line in lines if line.startswith("FAIL")], detail
            pytest.skip(_upstream_crash("the plain Keras model"))
    assert done.returncode == 0, detail
    assert {line.split()[1] for line in lines if line.startswith("OK ")} == set(names), detail


def test_an_empty_pool_output_along_the_last_axis_crashes_only_with_onednn():
    # The kernel itself: with oneDNN off TF returns the empty tensor; with it on (the
    # default) TF returns it too, or dies of SIGFPE (recorded, skipped).
    script = EMPTY_LAST_AXIS.format(window=(1, 13))
    off = _run(["-c", script], TF_ENABLE_ONEDNN_OPTS="0")
    assert off.returncode == 0 and off.stdout.strip() == "(2, 10, 0, 5)", off.stderr[-3000:]
    on = _run(["-c", script])
    if on.returncode == -signal.SIGFPE:
        pytest.skip(_upstream_crash("a max pool with an empty last axis"))
    assert on.returncode == 0 and on.stdout.strip() == "(2, 10, 0, 5)", on.stderr[-3000:]


def test_an_empty_pool_output_along_an_earlier_axis_never_crashes():
    # Why the generator may still draw output size 1 on the other axes.
    done = _run(["-c", EMPTY_LAST_AXIS.format(window=(11, 1))])
    assert done.returncode == 0, (done.returncode, done.stderr[-3000:])
    assert done.stdout.strip() == "(2, 0, 12, 5)"


def test_reorder_with_onednn_on():
    _check_cases(_run([__file__]), may_crash_upstream=True)


def test_reorder_with_onednn_off():
    _check_cases(_run([__file__], TF_ENABLE_ONEDNN_OPTS="0"), may_crash_upstream=False)


def test_reorder_on_jax():
    pytest.importorskip("jax")
    done = _run([__file__], KERAS_BACKEND="jax")
    assert done.stdout.startswith("backend jax"), done.stderr[-3000:]
    _check_cases(done, may_crash_upstream=False)


def test_the_fuzzer_never_draws_the_shape_but_keeps_adaptive_max_pools():
    import fuzz_keras_models  # pylint: disable=g-import-not-at-top

    def layers_of(graph):
        for layer in graph.layers:
            yield from layers_of(layer.sub) if layer.sub is not None else (layer,)

    drawn = [layer for seed in range(1000)
             for layer in layers_of(fuzz_keras_models.random_spec(seed).root)
             if layer.cls.startswith("AdaptiveMaxPooling")]
    assert not [layer for layer in drawn
                if fuzz_keras_models.crashes_onednn(layer.cls, layer.kwargs)]
    assert {layer.cls for layer in drawn} == {f"AdaptiveMaxPooling{r}D" for r in (1, 2, 3)}
    sizes = [layer.kwargs["output_size"] for layer in drawn]
    assert any(isinstance(s, tuple) and 1 in s[:-1] for s in sizes)  # still drawn elsewhere
    assert fuzz_keras_models.crashes_onednn("AdaptiveMaxPooling2D", {"output_size": (6, 1)})
    assert fuzz_keras_models.crashes_onednn("AdaptiveMaxPooling1D", {"output_size": 1})
    assert not fuzz_keras_models.crashes_onednn("AdaptiveMaxPooling2D", {"output_size": (1, 6)})
    assert not fuzz_keras_models.crashes_onednn("AdaptiveAveragePooling2D",
                                                {"output_size": (6, 1)})


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(TESTS))
    sys.exit(child_main())
