"""The Bazel BUILD files stay honest, checked without Bazel.

BUILD and .bzl files are Starlark, which is Python syntax: each BUILD file is executed with
stand-ins for Bazel's functions (a rule records its attributes, `glob()` lists files as
Bazel's does, `load()` runs the .bzl file with a stand-in `native`). The recorded targets
are then checked against the source tree:

- every file a BUILD file names exists, and every label names a target or a file;
- //:tf_reorder's srcs are exactly tf_reorder/**/*.py, its data has tf_reorder/data/*.json,
  and a py_binary runs tf_reorder/cli.py;
- every .py file of a package (benchmarks/, tools/, ...) is named by one of its targets;
- every module that is an absl app (calls `app.run`: the CLI, the benchmarks, tools) is the
  main of a py_binary, and every other benchmarks module is in a py_library each benchmark
  binary depends on;
- every test module pytest collects (tests/**/test_*.py, *_test.py) is run by a py_test,
  and every other file under tests/ (conftest.py, shared checks, sub-packages such as a
  regressions package, test inputs) is in the runfiles of every py_test, as is pytest.ini.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import re
import types
from collections.abc import Callable, Iterable
from typing import Any

import pytest

# The source tree, also under `bazel test`, where this file is a symlink in the runfiles
# (its py_test is tagged "external" so its result is never cached).
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

RULES = ("py_library", "py_binary", "py_test", "filegroup", "alias", "test_suite")
LABEL_ATTRS = ("srcs", "data", "deps")
_LOCATION = re.compile(r"\$\((?:rootpath|location|execpath) ([^)]+)\)")


@dataclasses.dataclass
class Target:
    kind: str
    package: str
    attrs: dict[str, Any]

    @property
    def label(self) -> str:
        return f"//{self.package}:{self.attrs['name']}"


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Bazel glob semantics: `*` within one path segment, `**` any number of segments."""
    segments = pattern.split("/")
    regex = ""
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += re.escape(segment).replace(r"\*", "[^/]*") + ("" if last else "/")
    return re.compile(regex + r"\Z")


class Workspace:
    """The BUILD files of a source tree, evaluated without Bazel."""

    def __init__(self, root: str):
        self.root = root
        self.targets: dict[str, Target] = {}
        self.constants: dict[str, dict[str, Any]] = {}  # package -> its top-level constants
        self.exported: dict[str, list[str]] = {}  # package -> exports_files
        self.problems: list[str] = []
        for package in self._packages():
            self._evaluate(package)

    # -- evaluation ---------------------------------------------------------------------

    def _packages(self) -> list[str]:
        """Every directory with a BUILD file, not crossing into other repositories."""
        found = []
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith((".", "bazel-"))
                                and d != "__pycache__"
                                and not os.path.exists(os.path.join(directory, d, "WORKSPACE")))
            if "BUILD" in files:
                found.append(os.path.relpath(directory, self.root).replace(os.sep, "/"))
        return ["" if p == "." else p for p in found]

    def path(self, package: str, name: str = "") -> str:
        return os.path.join(self.root, *package.split("/"), *name.split("/"))

    def files(self, package: str) -> list[str]:
        """The package's files (relative to it), not descending into sub-packages."""
        top = self.path(package)
        out = []
        for directory, subdirs, files in os.walk(top):
            subdirs[:] = [d for d in subdirs if not d.startswith((".", "bazel-"))
                          and not os.path.exists(os.path.join(directory, d, "BUILD"))]
            rel = os.path.relpath(directory, top)
            out += [f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files]
        return sorted(out)

    def _evaluate(self, package: str) -> None:
        def glob(include: list[str], exclude: Iterable[str] = (), **_: Any) -> list[str]:
            match = [_glob_regex(p) for p in include]
            skip = [_glob_regex(p) for p in exclude]
            return [f for f in self.files(package)
                    if any(m.match(f) for m in match) and not any(s.match(f) for s in skip)]

        def rule(kind: str) -> Callable[..., None]:
            def record(**attrs: Any) -> None:
                target = Target(kind, package, attrs)
                if target.label in self.targets:
                    self.problems.append(f"{target.label} is defined twice")
                self.targets[target.label] = target
            return record

        def exports_files(names: list[str], **_: Any) -> None:
            self.exported[package] += names
            for name in names:
                if not os.path.isfile(self.path(package, name)):
                    self.problems.append(f"//{package}/BUILD exports {name}, which does not exist")

        def package_fn(**_: Any) -> None:
            pass

        builtins: dict[str, Any] = {kind: rule(kind) for kind in RULES}
        builtins.update(glob=glob, exports_files=exports_files, package=package_fn,
                        package_name=lambda: package)
        native = types.SimpleNamespace(**builtins)

        def load(label: str, *symbols: str, **aliases: str) -> None:
            if not label.startswith("//"):
                raise ValueError(f"//{package}/BUILD loads {label}: only //... .bzl files")
            bzl_package, name = self.split(label, package)
            scope: dict[str, Any] = {"native": native, "fail": _fail}
            with open(self.path(bzl_package, name), encoding="utf-8") as f:
                exec(compile(f.read(), self.path(bzl_package, name), "exec"), scope)
            for symbol in symbols:
                namespace[symbol] = scope[symbol]
            for alias, symbol in aliases.items():
                namespace[alias] = scope[symbol]

        self.exported[package] = []
        namespace: dict[str, Any] = {**builtins, "load": load}
        build = self.path(package, "BUILD")
        with open(build, encoding="utf-8") as f:
            exec(compile(f.read(), build, "exec"), namespace)
        self.constants[package] = {k: v for k, v in namespace.items()
                                   if k.isupper() and isinstance(v, (list, dict, str))}

    # -- labels --------------------------------------------------------------------------

    @staticmethod
    def split(label: str, package: str) -> tuple[str, str]:
        """(package, name) of a label written in `package`."""
        if label.startswith("//"):
            pkg, _, name = label[2:].partition(":")
            return pkg, name or pkg.rsplit("/", 1)[-1]
        return package, label.removeprefix(":")

    def resolve(self, label: str, package: str) -> Target | str | None:
        """The target or the source file (path from the root) `label` names, or None."""
        if label.startswith("@"):
            return "external"
        pkg, name = self.split(label, package)
        target = self.targets.get(f"//{pkg}:{name}")
        if target is not None:
            return target
        if os.path.isfile(self.path(pkg, name)):
            return f"{pkg}/{name}" if pkg else name
        return None

    def file_set(self, target: Target, attrs: Iterable[str]) -> set[str]:
        """The source files `target` names in `attrs`, filegroups expanded."""
        out: set[str] = set()
        for attr in attrs:
            for label in _as_list(target.attrs.get(attr)):
                resolved = self.resolve(label, target.package)
                if isinstance(resolved, Target) and resolved.kind == "filegroup":
                    out |= self.file_set(resolved, ["srcs", "data"])
                elif isinstance(resolved, str) and resolved != "external":
                    out.add(resolved)
        return out

    def closure(self, target: Target) -> list[Target]:
        """`target` and every target it reaches through deps and data."""
        seen: dict[str, Target] = {}
        todo = [target]
        while todo:
            current = todo.pop()
            if current.label in seen:
                continue
            seen[current.label] = current
            for attr in ("deps", "data"):
                for label in _as_list(current.attrs.get(attr)):
                    resolved = self.resolve(label, current.package)
                    if isinstance(resolved, Target):
                        todo.append(resolved)
        return list(seen.values())

    def python_sources(self, target: Target) -> set[str]:
        return set().union(*(self.file_set(t, ["srcs"]) for t in self.closure(target)))

    def runfiles(self, target: Target) -> set[str]:
        return set().union(*(self.file_set(t, ["srcs", "data"]) for t in self.closure(target)))

    def main(self, target: Target) -> str | None:
        main = target.attrs.get("main", target.attrs["name"] + ".py")
        resolved = self.resolve(main, target.package)
        return resolved if isinstance(resolved, str) else None

    def of_kind(self, kind: str) -> list[Target]:
        return [t for t in self.targets.values() if t.kind == kind]


def _fail(message: str) -> None:
    raise AssertionError(message)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _tree(root: str, top: str, keep: Callable[[str], bool]) -> list[str]:
    """Files under root/top (paths from root) that `keep`, skipping caches."""
    out = []
    for directory, subdirs, files in os.walk(os.path.join(root, top)):
        subdirs[:] = [d for d in subdirs if d != "__pycache__" and not d.startswith(".")]
        for name in files:
            rel = os.path.relpath(os.path.join(directory, name), root).replace(os.sep, "/")
            if keep(rel):
                out.append(rel)
    return sorted(out)


def _is_absl_app(path: str) -> bool:
    """The module calls `app.run(...)` (in code, not in a docstring)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "run" and isinstance(node.func.value, ast.Name)
               and node.func.value.id == "app" for node in ast.walk(tree))


def _python_files(ws: Workspace, package: str) -> list[str]:
    """The package's .py files (paths from the root); the root package's only in tf_reorder/."""
    prefix = f"{package}/" if package else ""
    return [prefix + f for f in ws.files(package)
            if f.endswith(".py") and "__pycache__" not in f.split("/")
            and (package or f.startswith("tf_reorder/"))]


def _is_test_module(path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def _listed(items: set[str]) -> str:
    return ", ".join(sorted(items))


# -- the checks ----------------------------------------------------------------------------


def check_labels(ws: Workspace) -> list[str]:
    """Every label names a target or an existing file; every file-like constant exists."""
    problems = []
    for target in ws.targets.values():
        labels = [x for attr in LABEL_ATTRS for x in _as_list(target.attrs.get(attr))]
        if "main" in target.attrs:
            labels.append(target.attrs["main"])
        for arg in _as_list(target.attrs.get("args")):
            labels += _LOCATION.findall(arg)
        for label in labels:
            if ws.resolve(label, target.package) is None:
                problems.append(f"{target.label} names {label}, which is neither a file "
                                f"nor a target")
    for package, constants in ws.constants.items():
        for name, value in constants.items():
            for item in (list(value) if isinstance(value, (list, dict)) else [value]):
                if (isinstance(item, str) and item.endswith(".py") and "*" not in item
                        and not os.path.isfile(ws.path(package, item))):
                    problems.append(f"//{package}/BUILD: {name} names {item}, which does "
                                    f"not exist")
    return problems


def check_library(ws: Workspace) -> list[str]:
    """//:tf_reorder holds the whole package and its data; a py_binary runs the CLI."""
    library = ws.targets.get("//:tf_reorder")
    if library is None or library.kind != "py_library":
        return ["no py_library //:tf_reorder"]
    problems = []
    sources = set(_tree(ws.root, "tf_reorder", lambda p: p.endswith(".py")))
    srcs = ws.file_set(library, ["srcs"])
    if sources - srcs:
        problems.append(f"//:tf_reorder srcs lack {_listed(sources - srcs)}")
    if srcs - sources:
        problems.append(f"//:tf_reorder srcs have files outside tf_reorder/: "
                        f"{_listed(srcs - sources)}")
    data = set(_tree(ws.root, "tf_reorder/data", lambda p: p.endswith(".json")))
    if data - ws.file_set(library, ["data"]):
        problems.append(f"//:tf_reorder data lacks {_listed(data - ws.file_set(library, ['data']))}")
    cli = [t for t in ws.of_kind("py_binary") if ws.main(t) == "tf_reorder/cli.py"]
    if not cli:
        problems.append("no py_binary has tf_reorder/cli.py as its main")
    for binary in cli:
        if sources - ws.python_sources(binary):
            problems.append(f"{binary.label} does not depend on //:tf_reorder")
    return problems


def check_binaries(ws: Workspace) -> list[str]:
    """A py_binary per absl app; benchmark binaries have every helper module and tf_reorder.

    Also: every .py file of a package (tf_reorder/ for the root) is named by a target.
    """
    problems = []
    for package in ws.constants:
        named = set()
        for target in ws.targets.values():
            if target.package == package:
                named |= ws.file_set(target, ["srcs"]) | {ws.main(target)}
        named |= {f"{package}/{name}" if package else name for name in ws.exported[package]}
        for module in _python_files(ws, package):
            if module not in named:
                problems.append(f"{module} is in no target of //{package}")
            if _is_absl_app(os.path.join(ws.root, module)) and not any(
                    ws.main(t) == module for t in ws.of_kind("py_binary")):
                problems.append(f"{module} calls app.run but no py_binary has it as main")
    modules = set(_python_files(ws, "benchmarks")) if "benchmarks" in ws.constants else set()
    apps = {m for m in modules if _is_absl_app(os.path.join(ws.root, m))}
    library = set(_tree(ws.root, "tf_reorder", lambda p: p.endswith(".py")))
    for binary in ws.of_kind("py_binary"):
        if binary.package == "benchmarks":
            lacking = ((modules - apps) | library) - ws.python_sources(binary)
            if lacking:
                problems.append(f"{binary.label} does not depend on a py_library with "
                                f"{_listed(lacking)}")
    return problems


def check_tests(ws: Workspace) -> list[str]:
    """A py_test runs each test module; every py_test has all helpers, data and pytest.ini."""
    everything = _tree(ws.root, "tests", lambda p: not p.endswith(("/BUILD", ".pyc")))
    modules = [p for p in everything if _is_test_module(p)]
    shared = set(everything) - set(modules)
    if os.path.isfile(os.path.join(ws.root, "pytest.ini")):
        shared.add("pytest.ini")
    library = set(_tree(ws.root, "tf_reorder", lambda p: p.endswith(".py")))
    py_tests = ws.of_kind("py_test")
    problems = []
    for module in modules:
        runs = [t for t in py_tests if module in ws.file_set(t, ["srcs"])
                and any(ws.resolve(label, t.package) == module
                        for arg in _as_list(t.attrs.get("args"))
                        for label in _LOCATION.findall(arg))]
        if not runs:
            problems.append(f"{module} has no py_test that runs it")
        elif len(runs) > 1:
            problems.append(f"{module} is run by several py_tests: "
                            f"{_listed({t.label for t in runs})}")
    for test in py_tests:
        lacking = (shared | library) - ws.runfiles(test)
        if lacking:
            problems.append(f"{test.label} lacks (in a library or data it depends on) "
                            f"{_listed(lacking)}")
    return problems


def check_all(root: str) -> list[str]:
    ws = Workspace(root)
    return (ws.problems + check_labels(ws) + check_library(ws)
            + check_binaries(ws) + check_tests(ws))


# -- the real tree -------------------------------------------------------------------------


def test_the_build_files_match_the_source_tree():
    problems = check_all(ROOT)
    assert not problems, "BUILD files out of date:\n" + "\n".join(problems)


def test_every_module_has_its_target():
    ws = Workspace(ROOT)
    tests = {ws.main(t) for t in ws.of_kind("py_test")}
    assert tests == {"tools/pytest_main.py"}
    ran = {label for t in ws.of_kind("py_test") for label in _LOCATION.findall(t.attrs["args"][0])}
    modules = _tree(ROOT, "tests", _is_test_module)
    assert "tests/test_build_files.py" in modules and len(ran) == len(modules)
    assert {ws.main(t) for t in ws.of_kind("py_binary")} >= {
        "tf_reorder/cli.py", "benchmarks/bench_runtimes.py", "benchmarks/graph_pass_speed.py",
        "benchmarks/reorder_speed.py"}


def test_slow_modules_are_tagged():
    ws = Workspace(ROOT)
    slow = {t.attrs["name"] for t in ws.of_kind("py_test") if "slow" in t.attrs.get("tags", [])}
    assert {"test_applications", "test_saved_model", "test_benchmarks", "test_jax_backend",
            "test_grappler_crosscheck"} <= slow
    for test in ws.of_kind("py_test"):
        assert ("slow" in test.attrs["tags"]) == (test.attrs["size"] == "large"), test.label
    assert "external" in ws.targets["//tests:test_build_files"].attrs["tags"]


def test_the_runner_takes_bazels_test_environment():
    spec = importlib.util.spec_from_file_location(
        "pytest_main", os.path.join(ROOT, "tools", "pytest_main.py"))
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    assert runner.pytest_args(["tests/test_a.py"], {}, "/tmp/t") == [
        "-q", "--basetemp=/tmp/t", "tests/test_a.py"]
    env = {"XML_OUTPUT_FILE": "/out/test.xml", "TEST_TMPDIR": "/bazel/tmp",
           "TESTBRIDGE_TEST_ONLY": "relu and not slow"}
    assert runner.pytest_args(["tests/test_a.py"], env, "/tmp/t") == [
        "-q", "--basetemp=/tmp/t", "tests/test_a.py", "--junitxml=/out/test.xml",
        "-k", "relu and not slow"]


# -- the checks fail where they must ------------------------------------------------------


def write(root, files: dict[str, str]) -> None:
    for path, text in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)


RUNNER = {
    "pytest.ini": "[pytest]\n",
    "tools/BUILD": 'exports_files(["pytest_main.py"])\n',
    "tools/pytest_main.py": "",
}
LIBRARY = {
    "BUILD": """
exports_files(["pytest.ini"])
py_library(name = "tf_reorder", srcs = glob(["tf_reorder/**/*.py"]),
           data = glob(["tf_reorder/data/*.json"]))
py_binary(name = "cli", srcs = ["tf_reorder/cli.py"], main = "tf_reorder/cli.py",
          deps = [":tf_reorder"])
""",
    "tf_reorder/__init__.py": "",
    "tf_reorder/cli.py": "app.run(main)\n",
    "tf_reorder/data/policy.json": "{}",
}
BENCHMARKS = {
    "benchmarks/BUILD": """
py_library(name = "lib", srcs = ["timing.py"], deps = ["//:tf_reorder"])
py_binary(name = "speed", srcs = ["speed.py"], deps = [":lib"])
""",
    "benchmarks/speed.py": "from absl import app\napp.run(main)\n",
    "benchmarks/timing.py": "",
}
TESTS = {
    "tests/BUILD": """
py_library(name = "helpers", srcs = ["conftest.py"], deps = ["//:tf_reorder"])
[py_test(name = m[:-3], srcs = [m, "//tools:pytest_main.py"], main = "//tools:pytest_main.py",
         args = ["$(rootpath %s)" % m], deps = [":helpers"], data = ["//:pytest.ini"])
 for m in ["test_a.py"]]
""",
    "tests/conftest.py": "",
    "tests/test_a.py": "",
}


@pytest.fixture
def tree(tmp_path):
    write(tmp_path, {**RUNNER, **LIBRARY, **BENCHMARKS, **TESTS})
    return tmp_path


def test_a_consistent_tree_has_no_problems(tree):
    assert check_all(str(tree)) == []


@pytest.mark.parametrize("files, expected", [
    # A file a BUILD names is gone.
    ({"benchmarks/BUILD": BENCHMARKS["benchmarks/BUILD"].replace("timing.py", "timer.py")},
     "//benchmarks:lib names timer.py, which is neither a file nor a target"),
    ({"tools/BUILD": 'exports_files(["pytest_main.py", "gone.py"])\n'},
     "//tools/BUILD exports gone.py, which does not exist"),
    # A new test module, a new helper, a new test input.
    ({"tests/test_b.py": ""}, "tests/test_b.py has no py_test that runs it"),
    ({"tests/fuzz_cases.py": ""}, "//tests:test_a lacks (in a library or data it depends on) "
                                  "tests/fuzz_cases.py"),
    ({"tests/regressions/__init__.py": "", "tests/regressions/cases.json": ""},
     "lacks (in a library or data it depends on) tests/regressions/__init__.py, "
     "tests/regressions/cases.json"),
    # A new benchmark binary, and a benchmark helper outside the library.
    ({"benchmarks/sweep.py": "app.run(main)\n"},
     "benchmarks/sweep.py calls app.run but no py_binary has it as main"),
    ({"benchmarks/models.py": ""},
     "//benchmarks:speed does not depend on a py_library with benchmarks/models.py"),
    ({"benchmarks/models.py": ""}, "benchmarks/models.py is in no target of //benchmarks"),
    # A new tool: an absl app, or a module no target names.
    ({"tools/soak.py": "from absl import app\napp.run(main)\n"},
     "tools/soak.py calls app.run but no py_binary has it as main"),
    ({"tools/helper.py": '"""Not an app: app.run(main) in a docstring."""\n'},
     "tools/helper.py is in no target of //tools"),
    # The library misses a module or its data; no binary for the CLI.
    ({"BUILD": LIBRARY["BUILD"].replace('glob(["tf_reorder/**/*.py"])',
                                        '["tf_reorder/__init__.py"]')},
     "//:tf_reorder srcs lack tf_reorder/cli.py"),
    ({"BUILD": LIBRARY["BUILD"].replace('glob(["tf_reorder/data/*.json"])', "[]")},
     "//:tf_reorder data lacks tf_reorder/data/policy.json"),
    ({"BUILD": LIBRARY["BUILD"].split("py_binary")[0]},
     "no py_binary has tf_reorder/cli.py as its main"),
])
def test_a_problem_is_named(tree, files, expected):
    write(tree, files)
    problems = check_all(str(tree))
    assert any(expected in p for p in problems), problems


def test_a_stale_constant_is_named(tree):
    write(tree, {"tests/BUILD": 'SLOW = ["test_gone.py"]\n' + TESTS["tests/BUILD"]})
    assert check_all(str(tree)) == ["//tests/BUILD: SLOW names test_gone.py, which does "
                                       "not exist"]


def test_a_test_without_pytest_ini_or_library_is_named(tree):
    write(tree, {"tests/BUILD": TESTS["tests/BUILD"].replace(', data = ["//:pytest.ini"]', "")
                 .replace('deps = ["//:tf_reorder"]', "")})
    problems = check_all(str(tree))
    assert len(problems) == 1 and "pytest.ini" in problems[0], problems
    assert "tf_reorder/cli.py" in problems[0], problems


def test_the_real_build_files_cover_new_test_modules_and_helpers(tmp_path):
    """tests/BUILD globs: a new module, helper or sub-package needs no BUILD change."""
    for top in ("BUILD", "pytest.ini", "tf_reorder", "benchmarks", "tests", "tools"):
        source = os.path.join(ROOT, top)
        if os.path.isdir(source):
            for path in _tree(ROOT, top, lambda p: not p.endswith(".pyc")):
                with open(os.path.join(ROOT, path), "rb") as f:
                    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
                    (tmp_path / path).write_bytes(f.read())
        else:
            (tmp_path / top).write_bytes(open(source, "rb").read())
    write(tmp_path, {"tests/test_fuzz_new.py": "", "tests/fuzz_new_cases.py": "",
                     "tests/regressions/__init__.py": "",
                     "tests/regressions/test_issue_1.py": "",
                     "tests/regressions/issue_1.json": "{}"})
    assert check_all(str(tmp_path)) == []
    ws = Workspace(str(tmp_path))
    test = ws.targets["//tests:regressions/test_issue_1"]
    assert {"tests/fuzz_new_cases.py", "tests/regressions/issue_1.json"} <= ws.runfiles(test)
