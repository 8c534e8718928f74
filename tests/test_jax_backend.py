"""The Keras pass under the JAX backend (and TensorFlow), run in a fresh process each.

The backend is chosen when Keras is first imported, so each run is a subprocess
of `tests/jax_cases.py` with KERAS_BACKEND set; it prints one line per case.
"""

import os
import subprocess
import sys

import pytest

import jax_cases

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_cases.py")


def _run(backend: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(SCRIPT)))


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_cases_pass(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    result = _run(backend)
    detail = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, detail
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"backend {backend},"), detail
    ok = {line.split()[1] for line in lines if line.startswith("OK ")}
    assert ok == set(jax_cases.CASES), detail
    assert not [line for line in lines if line.startswith("FAIL")], detail
