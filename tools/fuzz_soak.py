"""Soak run of the differential fuzzers: check many random models, print failing seeds.

    python tools/fuzz_soak.py --kind=keras --count=2000 --seed=1000 --time_budget_s=1200

Checks seeds --seed, --seed + 1, ... until --count models are done or
--time_budget_s seconds have passed (a model already started is finished). Each
failure prints one line ``FAIL seed=<n>: <what failed>`` on stdout (the traceback
and the model's description go to stderr); a summary line ends the run, and the
exit status is 1 if any seed failed. Reproduce a failure with ``--seed=<n>
--count=1``, or in Python with ``fuzz_keras_checks.check_seed(n)``.

The Keras backend is the one Keras picks up (``KERAS_BACKEND=jax python
tools/fuzz_soak.py ...`` soaks the JAX backend).

Kinds (`KINDS`): ``keras`` checks `tests/fuzz_keras_models.random_model(seed)`
with `tests/fuzz_keras_checks.check_model`; ``graph`` checks the tf.function
`tests/fuzz_graphs.random_graph(seed)` with `tests/fuzz_graph_checks.check_graph`
(`reorder_graph_def` and `reorder_function`). Add a kind by adding a callable
``(seed) -> None`` that raises on a failure.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable

from absl import app, flags, logging

_TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_KERAS_MODELS_PER_SESSION = 50  # clear Keras' global state this often (memory)
_keras_checked = 0


def _keras(seed: int) -> None:
    """Builds the random Keras model `seed` and checks the Keras pass on it."""
    global _keras_checked
    if _TESTS not in sys.path:
        sys.path.insert(0, _TESTS)
    import fuzz_keras_checks
    import keras

    _keras_checked += 1
    if _keras_checked % _KERAS_MODELS_PER_SESSION == 0:
        keras.backend.clear_session()
    fuzz_keras_checks.check_seed(seed)


def _graph(seed: int) -> None:
    """Builds the random tf.function `seed` and checks the graph pass on it."""
    if _TESTS not in sys.path:
        sys.path.insert(0, _TESTS)
    import fuzz_graph_checks
    import fuzz_graphs

    fuzz_graph_checks.check_graph(fuzz_graphs.random_graph(seed))


KINDS: dict[str, Callable[[int], None]] = {
    "keras": _keras,
    "graph": _graph,
}


def _define_flags() -> None:
    """The command's flags; defined only when run as a program, so that importing
    `soak` and `KINDS` (e.g. in a test that also imports the CLI) defines no flags."""
    flags.DEFINE_enum("kind", "keras", sorted(KINDS), "Which fuzzer to run.")
    flags.DEFINE_integer("count", 1000, "How many models (seeds) to check.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "The first seed.", lower_bound=0)
    flags.DEFINE_float("time_budget_s", None,
                       "Start no new model after this many seconds (default: no limit).",
                       lower_bound=0.0)


def one_line(error: BaseException) -> str:
    """The error's type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def soak(check: Callable[[int], None], seeds: Iterable[int], time_budget_s: float | None,
         write: Callable[[str], None] = print) -> tuple[int, float, list[int]]:
    """Runs `check` on each seed until the seeds or the time run out.

    Returns ``(models checked, seconds, failing seeds)``; writes one line per failure.

    Example:

        models, seconds, failed = soak(KINDS["keras"], range(100), 600.0)
    """
    start = time.monotonic()
    models = 0
    failed: list[int] = []
    for seed in seeds:
        if time_budget_s is not None and time.monotonic() - start >= time_budget_s:
            break
        models += 1
        try:
            check(seed)
        except Exception as error:  # every failure is reported, then the run goes on
            failed.append(seed)
            write(f"FAIL seed={seed}: {one_line(error)}")
            print(f"--- seed={seed}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
    return models, time.monotonic() - start, failed


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # not the pass's line per model
    FLAGS = flags.FLAGS
    seeds = range(FLAGS.seed, FLAGS.seed + FLAGS.count)
    models, seconds, failed = soak(KINDS[FLAGS.kind], seeds, FLAGS.time_budget_s,
                                   write=lambda line: print(line, flush=True))
    last = FLAGS.seed + models - 1
    print(f"kind={FLAGS.kind} models={models} seconds={seconds:.1f} failures={len(failed)} "
          f"seeds={FLAGS.seed}..{last}" + (f" failing={failed}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
