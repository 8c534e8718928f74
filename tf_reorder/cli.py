"""tf-reorder: move monotone activations after max pooling in Keras models.

For a monotone non-decreasing activation f, maxpool(f(x)) == f(maxpool(x)), so f
can run after the pool, on fewer elements, with the same outputs.

Usage:
  tf-reorder inspect MODEL.keras|SAVED_MODEL_DIR [--json] [--target=RUNTIME] [--inference]
      Print the plan: every candidate site (an activation that feeds a max
      pool), whether it would move and why, and the activation evaluations
      per sample before and after. Nothing is written.

  tf-reorder convert IN.keras OUT.keras [--overwrite] [--json] [--target=RUNTIME]
                     [--inference]
  tf-reorder convert SAVED_MODEL_DIR OUT_DIR [--overwrite] [--json] [--target=RUNTIME]
      Rewrite IN and save the result to OUT (a plain Keras model made of
      stock layers, with the original weights). IN is never modified. OUT is
      written atomically (in a hidden .tf-reorder-*.partial directory beside
      it, then renamed; a run killed meanwhile leaves only that directory),
      and an existing OUT is replaced only with --overwrite. OUT must end in
      .keras, must not be IN, and its directory must exist and be writable.
      A SavedModel directory (e.g. from model.export()) is converted to another
      directory (--overwrite replaces only a SavedModel or an empty directory):
      every signature's and restored function's graph is rewritten,
      variables/ and assets/ are copied byte for byte, and the fingerprint is
      recomputed.

  tf-reorder demo [--model=VGG16] [--batch=1] [--seed=0] [--out=PATH.keras]
                  [--target=RUNTIME]
      Build a keras.applications model with random weights (nothing is
      downloaded), rewrite it, check both give equal outputs on a random batch
      (bitwise for the relu family), save the result (to --out; without it to
      a temporary file, removed at the end), load it back and check it again.

  --target=RUNTIME decides for the runtime the model will run on: a move the
  rules allow is made only where tf-reorder's runtime policy (measured by
  benchmarks/bench_runtimes.py, shipped in the package) found it faster there;
  the report names the policy and gives the measurement for every site it kept.
  RUNTIME is keras, tf, xla, tflite, onnx or jax (those in the policy), all
  (faster on every one), or any (the default: no policy, move wherever valid).

  --inference (inspect, convert of a .keras model): the result is for inference
  only, so an activation may also cross the layers that are the identity there
  (Dropout, SpatialDropout, GaussianNoise, GaussianDropout, AlphaDropout,
  ActivityRegularization); each such site says "inference only". Without it the
  result equals the model in training too. A SavedModel's graphs are inference
  graphs already: the flag changes nothing for them.

Output: the report and what was written on stdout; nothing else on stderr but
the one error line (TensorFlow's and Keras' own logs and warnings are hidden;
--verbose shows them, logs progress and the traceback of an error).

Exit status: 0 on success; 1 on an error (one line on stderr starting with
"tf-reorder: error:"); 2 on a usage error (no command, unknown command, wrong
arguments, bad flags); 130 if interrupted (Ctrl-C: nothing is written, and an
output that existed is left as it was); 141 if stdout was closed early (as by
`| head`; nothing more is printed).

Examples:
  tf-reorder inspect model.keras
  tf-reorder inspect model.keras --json | jq .elements_saved
  tf-reorder convert model.keras model_reordered.keras
  tf-reorder convert exported/ exported_tflite/ --target=tflite
  tf-reorder demo --model=VGG16 --out=/tmp/vgg16_reordered.keras
"""

from __future__ import annotations

import os

# Before anything imports TensorFlow: keep its C++ logging off stderr (--verbose turns it
# back on unless the caller set the variable).
_TF_LOG_LEVEL_GIVEN = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import contextlib  # noqa: E402
import difflib  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

from absl import app, flags, logging  # noqa: E402

import tf_reorder  # noqa: E402
from tf_reorder import interrupts, quiet  # noqa: E402
from tf_reorder.errors import OutputExistsError  # noqa: E402
from tf_reorder.flags_parsing import flags_parser  # noqa: E402  (light: Keras is imported only when a command needs it)
from tf_reorder.policy import RUNTIMES  # noqa: E402
from tf_reorder.staging import make_staging_directory  # noqa: E402

PROG = "tf-reorder"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `yes | head`
MAX_MESSAGE = 300  # characters of an error message that reach the user
DEMO_IMAGE_SHAPE = (224, 224, 3)  # demo: for models that take images of any size
# Outputs are written in <OUT's directory>/.tf-reorder-XXXXXXXX.partial/, then renamed.

_JSON = flags.DEFINE_bool(
    "json", False, "inspect, convert: print the report as JSON instead of a table.")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "convert, demo: replace the output file if it exists.")
_MODEL = flags.DEFINE_string(
    "model", "VGG16", "demo: the keras.applications model to build (weights=None).")
_BATCH = flags.DEFINE_integer(
    "batch", 1, "demo: the batch size of the random inputs.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "demo: the seed of the random inputs.")
_OUT = flags.DEFINE_string(
    "out", None, "demo: where to save the reordered model (must end in .keras); "
    "default: a temporary file, removed at the end.")
_TARGET = flags.DEFINE_string(
    "target", "any", "inspect, convert, demo: the runtime to decide for: a move is made "
    "only where the runtime policy measured it faster there. One of the runtimes in the "
    f"policy ({', '.join(RUNTIMES)}), 'all' (faster on every one) or 'any' "
    "(no policy: move wherever valid).")
_INFERENCE = flags.DEFINE_bool(
    "inference", False, "inspect, convert: the result is for inference only: an "
    "activation may also cross the layers that are the identity there (Dropout, noise).")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Log progress, and the traceback of an error.")

_COMMAND_FLAGS = {
    "inspect": {"json", "target", "inference"},
    "convert": {"json", "overwrite", "target", "inference"},
    "demo": {"model", "batch", "seed", "out", "overwrite", "target"},
}
_ALL_COMMAND_FLAGS = set().union(*_COMMAND_FLAGS.values())


class CliError(Exception):
    """A problem the user can fix; reported as one line on stderr, exit status 1."""

    exit_code = 1


class CliUsageError(CliError):
    """The command line itself is wrong; exit status 2."""

    exit_code = 2


# ---------------------------------------------------------------------------
# Messages.


def one_line(error: BaseException) -> str:
    """The first non-empty line of ``error``'s message, stripped and truncated.

    Exceptions whose type does not already say what kind of problem it is (not
    ours, not a flags.Error/OSError/ValueError/TypeError) get their type name in front.
    """
    text = str(error)
    if isinstance(error, KeyError) and error.args:  # str(KeyError) is a repr
        text = str(error.args[0])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    message = lines[0] if lines else type(error).__name__
    if not isinstance(error, (CliError, tf_reorder.ReorderError, flags.Error, OSError,
                              ValueError, TypeError)) and lines:
        message = f"{type(error).__name__}: {message}"
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3].rstrip() + "..."
    return message


def _describe_load_error(error: BaseException) -> str:
    """What Keras's load failure means, naming a missing custom class if Keras does."""
    chain = []
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in chain:
        text = str(item)
        if "deserialization of a `Lambda` layer" in text:
            return ("it has a Lambda layer (Python code), which Keras loads only with "
                    "safe_mode=False; if you trust the file, load it in Python that way and "
                    "call tf_reorder.reorder")
        match = re.search(r"Could not (?:locate|deserialize) (?:(\w+) )?'([^']+)'", text)
        if match:
            kind, name = match.groups()
            kind = kind or "class"
            return (f"the model uses the {kind} '{name}', which Keras cannot find: a custom "
                    f"{kind} must be registered with "
                    "@keras.saving.register_keras_serializable and imported before loading")
    # Keras wraps the real reason in "... could not be deserialized properly";
    # prefer the first message in the chain that is not that wrapper.
    for item in chain:
        if "could not be deserialized properly" not in str(item):
            return one_line(item)
    return one_line(error)


# ---------------------------------------------------------------------------
# Files.


def check_input(path: str) -> None:
    """Raises `CliError` unless ``path`` looks like a readable ``.keras`` file."""
    if not path:
        raise CliError("the input path is empty")
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory, not a .keras file")
    if not os.access(path, os.R_OK):
        raise CliError(f"{path}: permission denied")
    if not path.endswith(".keras"):
        raise CliError(f"{path}: not a .keras file (the name must end in .keras; "
                       "Keras 3 saves models with model.save('name.keras'))")
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError as error:
        raise CliError(f"{path}: cannot read it: {one_line(error)}") from error
    if not is_zip:
        raise CliError(f"{path}: not a .keras file (not a zip archive; "
                       "is it truncated or corrupt?)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile) as error:
        raise CliError(f"{path}: not a readable .keras file: {one_line(error)}") from error
    if "config.json" not in names:
        raise CliError(f"{path}: not a .keras file (the zip archive has no config.json)")
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, zipfile.BadZipFile, ValueError) as error:  # JSON and UTF-8 errors
        raise CliError(f"{path}: not a .keras file (its config.json is not readable JSON: "
                       f"{one_line(error)})") from error
    if not isinstance(config, dict) or "class_name" not in config:
        raise CliError(f"{path}: not a .keras file (its config.json is not a Keras object "
                       "config: no class_name)")


def check_output(path: str, *, overwrite: bool, source: str | None = None) -> None:
    """Raises `CliError` if the model cannot (or must not) be written to ``path``."""
    if not path:
        raise CliError("the output path is empty")
    if not path.endswith(".keras"):
        raise CliError(f"{path}: the output must end in .keras")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        missing = "is not a directory" if os.path.exists(directory) else "does not exist"
        raise CliError(f"{path}: the output directory {directory} {missing}")
    if os.path.isdir(path):
        raise CliError(f"{path}: is a directory")
    if source is not None and os.path.exists(path) and os.path.samefile(path, source):
        raise CliError(f"{path}: the output is the input file; choose another output "
                       "(the input is never modified, even with --overwrite)")
    if os.path.lexists(path) and not overwrite:
        raise CliError(f"{path}: already exists (use --overwrite to replace it)")
    # Try, rather than ask os.access: root passes access checks on a read-only mount.
    os.rmdir(_staging_directory(path))


def _staging_directory(path: str) -> str:
    """`staging.make_staging_directory`, with `CliError` if it cannot be made."""
    try:
        return make_staging_directory(path)
    except OSError as error:
        raise CliError(f"{path}: cannot write to the output directory "
                       f"{os.path.dirname(os.path.abspath(path))}: "
                       f"{error.strerror or one_line(error)}") from error


def load_tensorflow() -> None:
    """Imports TensorFlow and Keras, hiding what they print as they load unless --verbose."""
    quiet.load_tensorflow(verbose=_VERBOSE.value)


def load_model(path: str) -> Any:
    """Loads a ``.keras`` model without compiling it; bad files raise `CliError`."""
    check_input(path)
    load_tensorflow()
    import keras  # pylint: disable=g-import-not-at-top

    logging.info("loading %s", path)
    start = time.perf_counter()
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad file
        raise CliError(f"{path}: cannot load the model: {_describe_load_error(error)}") \
            from error
    # Keras' loading catches everything while it reads the weights (a bare except that
    # falls back to a slower read), a Ctrl-C included: stop here all the same.
    interrupts.check()
    logging.info("loaded '%s' in %.2f s", getattr(model, "name", "?"),
                 time.perf_counter() - start)
    return model


def save_model_atomically(model: Any, path: str, *, overwrite: bool) -> None:
    """Saves ``model`` to ``path`` via a hidden directory beside it, then a rename.

    Nothing is left at ``path`` (or in its directory) if saving fails. Without
    ``overwrite`` an output that appeared meanwhile is not replaced either.
    """
    staging = _staging_directory(path)
    temp = os.path.join(staging, os.path.basename(path))
    try:
        logging.info("saving to %s (via %s)", path, temp)
        start = time.perf_counter()
        try:
            model.save(temp, overwrite=True)
        except Exception as error:  # disk full, I/O error, or Keras refusing the model
            reason = error.strerror if isinstance(error, OSError) and error.strerror \
                else one_line(error)
            raise CliError(f"{path}: cannot save the model: {reason}") from error
        # A Ctrl-C Python ignored (raised in a __del__ while Keras saved): publish nothing.
        interrupts.check()
        if overwrite:
            os.replace(temp, path)
        else:
            _link_no_clobber(temp, path)
        logging.info("saved in %.2f s", time.perf_counter() - start)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link_no_clobber(temp: str, path: str) -> None:
    """Publishes ``temp`` as ``path`` unless ``path`` exists; ``temp`` is left to delete."""
    try:
        os.link(temp, path)  # atomic, and fails if path exists
    except FileExistsError as error:
        raise CliError(f"{path}: already exists (use --overwrite to replace it)") from error
    except OSError:  # no hard links on this file system
        if os.path.lexists(path):
            raise CliError(f"{path}: already exists (use --overwrite to replace it)") from None
        os.replace(temp, path)


def _size(path: str) -> str:
    """The size of the file at ``path``, for people."""
    size = os.path.getsize(path)
    return f"{size / 1e6:,.1f} MB" if size >= 1e6 else f"{size / 1e3:,.1f} kB"


def load_target() -> tf_reorder.Policy | None:
    """The runtime policy ``--target`` names (None for 'any'); a bad target is a `CliError`."""
    try:
        return tf_reorder.load_policy(_TARGET.value)
    except tf_reorder.ReorderError as error:
        raise CliError(f"--target={_TARGET.value}: {one_line(error)}") from error


# ---------------------------------------------------------------------------
# Commands.


def inspect_model(path: str) -> int:
    """``inspect MODEL.keras|SAVED_MODEL_DIR``: prints what the rewrite would do."""
    policy = load_target()
    if os.path.isdir(path):
        load_tensorflow()
        from tf_reorder import saved_model  # pylint: disable=g-import-not-at-top

        _, report = saved_model.rewrite_saved_model(saved_model.read_saved_model(path), path,
                                                    target=policy)
    else:
        model = load_model(path)
        try:
            report = tf_reorder.plan(model, target=policy, inference=_INFERENCE.value)
        except tf_reorder.ReorderError as error:
            raise CliError(f"{path}: {one_line(error)}") from error
    print(report.to_json() if _JSON.value else str(report))
    return 0


def convert_saved_model(source: str, output: str) -> int:
    """``convert SRC_DIR DST_DIR``: writes the rewritten SavedModel to DST_DIR."""
    policy = load_target()
    load_tensorflow()
    try:
        report = tf_reorder.convert_saved_model(source, output, overwrite=_OVERWRITE.value,
                                                target=policy)
    except OutputExistsError as error:
        raise CliError(f"{error.path}: already exists (use --overwrite to replace it)") \
            from error
    return _print_converted(report, f"wrote {output}")


def _print_converted(report: tf_reorder.Report, wrote: str) -> int:
    """The report (as JSON with --json) and, in text mode, what was written."""
    if _JSON.value:
        print(report.to_json())
    else:
        print(report)
        print(wrote)
    return 0


def convert_model(source: str, output: str) -> int:
    """``convert IN.keras OUT.keras`` (or two SavedModel directories)."""
    if os.path.isdir(source):
        return convert_saved_model(source, output)
    policy = load_target()
    check_input(source)
    check_output(output, overwrite=_OVERWRITE.value, source=source)
    model = load_model(source)
    try:
        new, report = tf_reorder.reorder(model, return_report=True, target=policy,
                                         inference=_INFERENCE.value)
    except tf_reorder.ReorderError as error:
        raise CliError(f"{source}: {one_line(error)}") from error
    save_model_atomically(new, output, overwrite=_OVERWRITE.value)
    return _print_converted(report, f"wrote {output} ({_size(output)})")


def _application(name: str) -> Callable[..., Any]:
    """The ``keras.applications`` builder called ``name``."""
    load_tensorflow()
    import keras  # pylint: disable=g-import-not-at-top

    available = sorted(n for n in dir(keras.applications)
                       if n[:1].isupper() and callable(getattr(keras.applications, n)))
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = (f"did you mean {', '.join(close)}?" if close
                else f"choose one of {', '.join(available)}")
        raise CliError(f"--model={name}: not a keras.applications model; {hint}")
    return getattr(keras.applications, name)


def _needs_bitwise(report: tf_reorder.Report) -> bool:
    """Whether every moved activation is exact (relu family), so outputs must be bitwise."""
    return all(site.exact for site in report.moved)


def _equal(comparison: Any, bitwise: bool) -> bool:
    """Whether a `verify.Comparison` passes: bitwise, or within tolerance."""
    return comparison.bitwise if bitwise else comparison.close


def _describe(comparison: Any) -> str:
    """A `verify.Comparison` in a few words."""
    diff = max(comparison.max_abs_diff.values(), default=0.0)
    if comparison.bitwise:
        return "bitwise equal"
    return f"{'close' if comparison.close else 'DIFFERENT'} (max abs diff {diff:.3g})"


def run_demo() -> int:
    """``demo``: rewrite a keras.applications model and check it end to end."""
    out = _OUT.value
    if out is not None:
        check_output(out, overwrite=_OVERWRITE.value)
    policy = load_target()
    builder = _application(_MODEL.value)
    from tf_reorder import verify  # pylint: disable=g-import-not-at-top

    start = time.perf_counter()
    model = builder(weights=None)
    if None in model.input_shape[1:]:  # e.g. MobileNetV3: any image size; fix one to count
        model = builder(weights=None, input_shape=DEMO_IMAGE_SHAPE)
    print(f"built {_MODEL.value} (weights=None, {model.count_params():,} parameters, input "
          f"{model.input_shape[1:]}) "
          f"in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    new, report = tf_reorder.reorder(model, return_report=True, target=policy)
    print(f"reordered in {time.perf_counter() - start:.2f} s")
    print(report)

    bitwise = _needs_bitwise(report)
    required = "bitwise equal" if bitwise else f"within rtol {verify.RTOL:g}"
    inputs = verify.random_inputs(model, batch=_BATCH.value, seed=_SEED.value)
    comparison = verify.compare_models(model, new, inputs)
    print(f"outputs on a random batch of {_BATCH.value}: {_describe(comparison)} "
          f"(required: {required})")
    before, after = report.elements_before, report.elements_after
    fraction = f"{report.elements_saved / before:.1%}" if before else "n/a"
    print(f"activation elements per sample at the {len(report.sites)} candidate sites: "
          f"{before:,} -> {after:,} (saved {report.elements_saved:,}, {fraction})")
    if not _equal(comparison, bitwise):
        raise CliError(f"the reordered {_MODEL.value} gives different outputs: "
                       f"{_describe(comparison)}, required {required}")

    with contextlib.ExitStack() as stack:
        if out is None:  # a scratch file (VGG16's is 550 MB): removed once checked
            directory = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="tf-reorder-demo-"))
            out = os.path.join(directory, f"{_MODEL.value.lower()}_reordered.keras")
            where = f"{out}, removed at the end; pass --out=PATH.keras to keep it"
        else:
            where = out
        save_model_atomically(new, out, overwrite=_OVERWRITE.value)
        print(f"saved the reordered model to {where} ({_size(out)})")

        import keras  # pylint: disable=g-import-not-at-top

        loaded = keras.saving.load_model(out, compile=False)
        reloaded = verify.compare_models(model, loaded, inputs)
    print(f"reloaded model vs original: {_describe(reloaded)}")
    if not _equal(reloaded, bitwise):
        raise CliError(f"the reloaded {where} gives different outputs: "
                       f"{_describe(reloaded)}, required {required}")
    print("ok")
    return 0


_COMMANDS: dict[str, tuple[Callable[..., int], tuple[str, ...]]] = {
    "inspect": (inspect_model, ("MODEL.keras",)),
    "convert": (convert_model, ("IN.keras", "OUT.keras")),
    "demo": (run_demo, ()),
}


# ---------------------------------------------------------------------------
# Entry points.


def _dispatch(args: Sequence[str]) -> tuple[Callable[..., int], list[str]]:
    """The command function and its arguments; raises `CliUsageError`."""
    names = ", ".join(_COMMANDS)
    if not args:
        raise CliUsageError(f"no command given; expected one of: {names} "
                            f"(see {PROG} --help)")
    command, *rest = args
    if command not in _COMMANDS:
        raise CliUsageError(f"unknown command '{command}'; expected one of: {names}")
    function, params = _COMMANDS[command]
    if len(rest) != len(params):
        usage = " ".join((command,) + params)
        raise CliUsageError(f"{command} takes {len(params)} argument"
                            f"{'' if len(params) == 1 else 's'} ({usage}), got {len(rest)}")
    unused = sorted(name for name in _ALL_COMMAND_FLAGS - _COMMAND_FLAGS[command]
                    if flags.FLAGS[name].present)
    if unused:
        raise CliUsageError(f"{', '.join('--' + n for n in unused)} does not apply to "
                            f"{command}")
    return function, rest


def _configure_logging() -> None:
    """Quiet (warnings only) unless --verbose or an explicit --verbosity."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.INFO if _VERBOSE.value else logging.WARNING)
    if _VERBOSE.value and not _TF_LOG_LEVEL_GIVEN:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # read when TensorFlow loads, if it has not


def _fail(message: str, code: int) -> int:
    """Reports ``message`` as the one error line on stderr; returns ``code``."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str]) -> int:
    """Runs the command in ``argv`` (program name first, flags already parsed).

    Returns the exit status; errors are reported on stderr as one line.
    """
    _configure_logging()
    try:
        function, args = _dispatch(list(argv[1:]))
        with interrupts.watch(), quiet.library_output_hidden(verbose=_VERBOSE.value):
            code = function(*args)
            interrupts.check()  # one that a library swallowed on the way
            return code
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        raise  # not an error to report (there is no one reading): see `run`
    except Exception as error:  # pylint: disable=broad-except  # the CLI's last line
        if _VERBOSE.value:
            logging.exception("%s failed", " ".join(argv[1:2]) or PROG)
        code = error.exit_code if isinstance(error, CliError) else 1
        return _fail(one_line(error), code)


parse_flags = flags_parser(PROG)


def _prepare_help() -> None:
    """Makes ``--help`` show this docstring and these flags under the console script.

    absl prints ``sys.modules['__main__'].__doc__`` and the flags defined by
    ``sys.argv[0]``; the console-script wrapper has neither.
    """
    main_module = sys.modules.get("__main__")
    if main_module is not None and not getattr(main_module, "__doc__", None):
        main_module.__doc__ = __doc__
    for name in sorted(_ALL_COMMAND_FLAGS | {"verbose"}):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])


def run() -> None:
    """Console entry point of ``tf-reorder``."""
    _prepare_help()
    try:
        try:
            app.run(main, flags_parser=parse_flags)
        finally:
            sys.stdout.flush()  # now, not at exit, so that a closed pipe is caught here
    except KeyboardInterrupt:  # before or after `main` (while flags are parsed, say)
        sys.exit(_fail("interrupted", EXIT_INTERRUPTED))
    except BrokenPipeError:
        # The reader of stdout is gone (`tf-reorder --help | head -3`): stop quietly, and
        # keep Python from failing again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)


if __name__ == "__main__":
    run()
