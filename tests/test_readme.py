"""The README stays true: every test it cites as proof exists, and its commands parse."""

import ast
import pathlib
import re

# Under Bazel this file is a symlink into the runfiles; resolve() finds the source tree.
ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def functions_in(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def cited_tests(text: str) -> list[tuple[str, str]]:
    """(file, function) for each `tests/x.py::name` and each following `::name`."""
    cited = []
    current = None
    for token in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`|`(tests/[\w/]+\.py)`", text):
        path_with_name, name, bare_path = token
        if path_with_name:
            current = path_with_name
        elif bare_path:
            current = bare_path
            continue
        if name:
            assert current is not None, f"'::{name}' cited before any test file"
            cited.append((current, name))
    return cited


def test_every_cited_test_exists():
    text = README.read_text(encoding="utf-8")
    cited = cited_tests(text)
    assert len(cited) > 40, "the Guarantees section cites its tests"
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.exists() or name not in functions_in(path):
            missing.append(f"{file}::{name}")
    assert not missing, "the README cites tests that do not exist: " + ", ".join(missing)


def test_every_cited_file_exists():
    text = README.read_text(encoding="utf-8")
    files = set(re.findall(r"`((?:tests|benchmarks|tools|tf_reorder)/[\w/]+\.(?:py|sh|json))",
                           text))
    assert files, "the README names project files"
    missing = sorted(f for f in files if not (ROOT / f).exists())
    assert not missing, f"the README names files that do not exist: {missing}"


def test_the_citation_parser_follows_the_current_file():
    text = "`tests/a.py::one`, `::two`; `tests/b.py` (`::three`)"
    assert cited_tests(text) == [("tests/a.py", "one"), ("tests/a.py", "two"),
                                 ("tests/b.py", "three")]
