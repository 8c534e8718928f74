"""pytest_test: a py_test that runs one pytest module through tools/pytest_main.py."""

def pytest_test(name, src, deps = [], data = [], slow = False, **kwargs):
    """A py_test that runs pytest on the test module `src`.

    Args:
      name: the target name.
      src: the test module, a file of this package.
      deps: the py_library targets the module imports.
      data: files the module reads when it runs.
      slow: the module takes minutes: size "large" and the tag "slow", so that
        `bazel test //... --test_tag_filters=-slow` leaves it out.
      **kwargs: more py_test attributes.
    """
    native.py_test(
        name = name,
        srcs = [src, "//tools:pytest_main.py"],
        main = "//tools:pytest_main.py",
        args = ["$(rootpath %s)" % src],
        deps = deps,
        # pytest.ini: pytest's options and warning filters, as in `python -m pytest`.
        data = data + ["//:pytest.ini"],
        size = "large" if slow else "medium",
        tags = kwargs.pop("tags", []) + (["slow"] if slow else []),
        python_version = "PY3",
        srcs_version = "PY3",
        legacy_create_init = False,
        **kwargs
    )
