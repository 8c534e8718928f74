"""SavedModel -> SavedModel: rewrite the graphs, keep everything else byte for byte.

Every MetaGraphDef's GraphDef is rewritten by the GraphDef pass, its function
library included: the functions behind every signature and every restored
tf.function. Per-channel affine maps (a Keras BatchNormalization, traced as Mul and
Add) are decided on the values of the variables they read, where no function
writes them (`saved_variables`). Signatures, the object graph, variables/ and assets/ are kept; the
fingerprint is recomputed for the new saved_model.pb. The output is written to a
temporary directory beside `dst` and renamed into place at the end.

Example:

    report = tf_reorder.convert_saved_model("exported/", "exported_reordered/")
    print(report)
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Collection, Sequence
from typing import Any

from absl import logging
from tensorflow.core.protobuf import saved_model_pb2

from tf_reorder import graph_pass, interrupts
from tf_reorder.errors import OutputExistsError, ReorderError, require_bool, require_path
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report
from tf_reorder.saved_variables import FunctionVariables, function_variables
from tf_reorder.staging import make_staging_directory

SAVED_MODEL_PB = "saved_model.pb"
FINGERPRINT_PB = "fingerprint.pb"
# The output is built in <dst's directory>/.tf-reorder-XXXXXXXX.partial/ (hidden, never
# the output's name) and renamed into place; see `_staging_directory`.


def is_saved_model(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a directory holding a binary SavedModel."""
    return os.path.isfile(os.path.join(path, SAVED_MODEL_PB))


def read_saved_model(src: str | os.PathLike[str]) -> saved_model_pb2.SavedModel:
    """The SavedModel proto of `src`; a clear `ReorderError` if it is not one."""
    src = os.fspath(src)
    if not os.path.exists(src):
        raise ReorderError(f"{src}: no such directory")
    if not os.path.isdir(src):
        raise ReorderError(f"{src}: not a SavedModel directory (it is a file)")
    if not is_saved_model(src):
        hint = " (a text saved_model.pbtxt is not supported)" if os.path.isfile(
            os.path.join(src, "saved_model.pbtxt")) else ""
        raise ReorderError(f"{src}: is a directory but not a SavedModel (no {SAVED_MODEL_PB})"
                           f"{hint}")
    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(src, SAVED_MODEL_PB), "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as error:  # a protobuf DecodeError, or a read error
        raise ReorderError(f"{src}: {SAVED_MODEL_PB} is not a readable SavedModel proto: "
                           f"{error}") from error
    if not proto.meta_graphs:
        raise ReorderError(f"{src}: the SavedModel has no MetaGraph")
    return proto


def _fetched_names(meta_graph: Any) -> list[str]:
    """Top-level tensors that signatures and the saver refer to."""
    names = []
    for signature in meta_graph.signature_def.values():
        for tensor in list(signature.inputs.values()) + list(signature.outputs.values()):
            if tensor.name:
                names.append(tensor.name)
    saver = meta_graph.saver_def
    names.extend(n for n in (saver.filename_tensor_name, saver.save_tensor_name,
                             saver.restore_op_name) if n)
    return names


def rewrite_saved_model(proto: saved_model_pb2.SavedModel, subject: str, *,
                        target: str | Policy | None = "any",
                        variables: Sequence[FunctionVariables] = (),
                        ) -> tuple[saved_model_pb2.SavedModel, Report]:
    """The rewritten SavedModel proto (a copy) and the report over all its graphs.

    `target` is as for `graph_pass.reorder_graph_def`; `variables` (per MetaGraph,
    `saved_variables.function_variables`) are the variable values the functions'
    affine maps may be decided on.
    """
    policy = load_policy(target)
    new = saved_model_pb2.SavedModel()
    new.CopyFrom(proto)
    sites = []
    for index, meta_graph in enumerate(new.meta_graphs):
        graph_def, report = graph_pass.reorder_graph_def(
            meta_graph.graph_def, preserve=_fetched_names(meta_graph), target=policy,
            variables=variables[index] if index < len(variables) else None)
        meta_graph.graph_def.CopyFrom(graph_def)
        sites.extend(report.sites)
    return new, Report(subject, tuple(sites))


def _check_destination(src: str, dst: str, overwrite: bool) -> None:
    real_src, real_dst = os.path.realpath(src), os.path.realpath(dst)
    if real_dst == real_src or real_dst.startswith(real_src + os.sep):
        raise ReorderError(f"{dst}: the output is the input or inside it; choose another "
                           "directory (the input is never modified)")
    if real_src.startswith(real_dst + os.sep):
        raise ReorderError(f"{dst}: the output contains the input; choose another directory")
    if os.path.normpath(dst).endswith(".keras"):
        raise ReorderError(f"{dst}: the output of a SavedModel is a SavedModel directory; give "
                           "it a name that does not end in .keras (a .keras file is a Keras "
                           "model: convert the Keras model the SavedModel came from instead)")
    if os.path.lexists(dst) and not overwrite:
        raise OutputExistsError(dst)
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise ReorderError(f"{dst}: exists and is not a directory")
    if os.path.isdir(dst) and os.listdir(dst) and not is_saved_model(dst):
        raise ReorderError(f"{dst}: exists and is not a SavedModel; overwrite replaces only "
                           "a SavedModel or an empty directory")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        missing = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise ReorderError(f"{dst}: the parent directory {parent} {missing}")


def _staging_directory(dst: str) -> str:
    """`staging.make_staging_directory`, with `ReorderError` if it cannot be made."""
    try:
        return make_staging_directory(dst)
    except OSError as error:
        raise ReorderError(f"{dst}: cannot write to the directory "
                           f"{os.path.dirname(os.path.abspath(dst))}: "
                           f"{error.strerror or error}") from error


def _copy_tree(src: str, dst: str, skip: Collection[str] = ()) -> None:
    """Copies the directory `src` to a new `dst` (symlinks as symlinks), but `skip`.

    Unlike `shutil.copytree`, the first failure is raised as it is (an `OSError`
    with its errno), not gathered into a `shutil.Error`.
    """
    os.mkdir(dst)
    with os.scandir(src) as entries:
        for entry in entries:
            if entry.name in skip:
                continue
            target = os.path.join(dst, entry.name)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir():
                _copy_tree(entry.path, target)
            else:
                shutil.copy2(entry.path, target)
    shutil.copystat(src, dst)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps the paths `a` and `b` (Linux renameat2); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28, or not Linux
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the file system cannot
        return False
    raise OSError(code, os.strerror(code), b)


def _publish(staged: str, dst: str, old: str) -> None:
    """Moves the finished `staged` directory to `dst`; an existing `dst` ends up at `old`.

    Replacing is one atomic exchange where the kernel and file system support
    it; otherwise two renames, with a moment in which `dst` does not exist.
    """
    if not os.path.lexists(dst):
        os.rename(staged, dst)
    elif _exchange(staged, dst):
        os.rename(staged, old)
    else:
        os.rename(dst, old)
        try:
            os.rename(staged, dst)
        except OSError:
            os.rename(old, dst)
            raise


def _output_error(dst: str, error: OSError) -> OSError:
    """`error` (same type and errno) with a message about `dst`, not a temporary path."""
    new = type(error)(f"{dst}: cannot write the output: {error.strerror or error}; "
                      "nothing was written")
    new.errno = error.errno  # (not strerror: str(new) would become "[Errno N] strerror")
    return new


def _write_fingerprint(directory: str) -> None:
    from tensorflow.python.saved_model.pywrap_saved_model import (  # pylint: disable=g-import-not-at-top
        fingerprinting as fingerprinting_pywrap)

    fingerprint = fingerprinting_pywrap.CreateFingerprintDef(directory)
    with open(os.path.join(directory, FINGERPRINT_PB), "wb") as f:
        f.write(fingerprint)


def convert_saved_model(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                        overwrite: bool = False, target: str | Policy | None = "any") -> Report:
    """Writes a rewritten copy of the SavedModel `src` to `dst`.

    `src` is never modified. `dst` is written atomically (a temporary directory
    beside it, renamed at the end); an existing `dst` is replaced only with
    ``overwrite=True``. With a `target` other than ``"any"``, a move is made only
    where the runtime policy measured it faster (see `tf_reorder.policy`).

    Raises:
      ReorderError: `src` is not a readable SavedModel; `dst` is refused (it exists
        and ``overwrite`` is False: `OutputExistsError`; it is `src` or inside it,
        it contains `src`, its name ends in ``.keras``, its directory is missing or
        cannot be written); an argument has the wrong type.
      KeyboardInterrupt: a Ctrl-C arrived while `interrupts.watch()` was active
        (the CLI); nothing was published.
      OSError: writing failed part way (e.g. the disk is full); the message names
        `dst`, and nothing is left at `dst` or beside it.

    Example:

        model.export("exported")                 # a Keras model's serving SavedModel
        report = tf_reorder.convert_saved_model("exported", "exported_reordered",
                                                target="tflite")
    """
    src, dst = require_path("src", src), require_path("dst", dst)
    require_bool("overwrite", overwrite)
    policy = load_policy(target)
    proto = read_saved_model(src)
    _check_destination(src, dst, overwrite)
    staging = _staging_directory(dst)
    try:
        new, report = rewrite_saved_model(proto, subject=src, target=policy,
                                          variables=function_variables(proto, src))
        staged = os.path.join(staging, "model")
        _copy_tree(src, staged, skip=(SAVED_MODEL_PB, FINGERPRINT_PB))
        with open(os.path.join(staged, SAVED_MODEL_PB), "wb") as f:
            f.write(new.SerializeToString(deterministic=True))
        if os.path.exists(os.path.join(src, FINGERPRINT_PB)):
            _write_fingerprint(staged)
        interrupts.check()  # a Ctrl-C TensorFlow swallowed: publish nothing
        _publish(staged, dst, os.path.join(staging, "old"))
    except OSError as error:  # disk full, I/O error: report it as the output's problem
        raise _output_error(dst, error) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logging.info("converted %s -> %s: %d of %d sites moved", src, dst, len(report.moved),
                 len(report.sites))
    return report
