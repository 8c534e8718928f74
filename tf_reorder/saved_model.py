"""SavedModel -> SavedModel: rewrite the graphs, keep everything else byte for byte.

Every MetaGraphDef's GraphDef is rewritten by the GraphDef pass, its function
library included: the functions behind every signature and every restored
tf.function. Signatures, the object graph, variables/ and assets/ are kept; the
fingerprint is recomputed for the new saved_model.pb. The output is written to a
temporary directory beside `dst` and renamed into place at the end.

Example:

    report = tf_reorder.convert_saved_model("exported/", "exported_reordered/")
    print(report)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from absl import logging
from tensorflow.core.protobuf import saved_model_pb2

from tf_reorder import graph_pass
from tf_reorder.errors import ReorderError
from tf_reorder.policy import Policy, load_policy
from tf_reorder.report import Report

SAVED_MODEL_PB = "saved_model.pb"
FINGERPRINT_PB = "fingerprint.pb"


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
                        ) -> tuple[saved_model_pb2.SavedModel, Report]:
    """The rewritten SavedModel proto (a copy) and the report over all its graphs.

    `target` is as for `graph_pass.reorder_graph_def`.
    """
    policy = load_policy(target)
    new = saved_model_pb2.SavedModel()
    new.CopyFrom(proto)
    sites = []
    for meta_graph in new.meta_graphs:
        graph_def, report = graph_pass.reorder_graph_def(
            meta_graph.graph_def, preserve=_fetched_names(meta_graph), target=policy)
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
    if os.path.lexists(dst) and not overwrite:
        raise ReorderError(f"{dst}: already exists (pass overwrite=True to replace it)")
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise ReorderError(f"{dst}: exists and is not a directory")
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(parent):
        raise ReorderError(f"{dst}: the parent directory {parent} does not exist")


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

    Example:

        model.export("exported")                 # a Keras model's serving SavedModel
        report = tf_reorder.convert_saved_model("exported", "exported_reordered",
                                                target="tflite")
    """
    src, dst = os.fspath(src), os.fspath(dst)
    policy = load_policy(target)
    proto = read_saved_model(src)
    _check_destination(src, dst, overwrite)
    new, report = rewrite_saved_model(proto, subject=src, target=policy)

    parent = os.path.dirname(os.path.abspath(dst))
    staging = tempfile.mkdtemp(dir=parent, prefix=".tf-reorder-")
    try:
        target = os.path.join(staging, "model")
        shutil.copytree(src, target, symlinks=True,
                        ignore=lambda d, names: [n for n in names if os.path.samefile(d, src)
                                                 and n in (SAVED_MODEL_PB, FINGERPRINT_PB)])
        with open(os.path.join(target, SAVED_MODEL_PB), "wb") as f:
            f.write(new.SerializeToString(deterministic=True))
        if os.path.exists(os.path.join(src, FINGERPRINT_PB)):
            _write_fingerprint(target)
        if os.path.lexists(dst):  # overwrite: move the old one aside, then swap
            old = os.path.join(staging, "old")
            os.rename(dst, old)
            try:
                os.rename(target, dst)
            except OSError:
                os.rename(old, dst)
                raise
        else:
            os.rename(target, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logging.info("converted %s -> %s: %d of %d sites moved", src, dst, len(report.moved),
                 len(report.sites))
    return report
