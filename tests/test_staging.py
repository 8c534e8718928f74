"""The hidden directories outputs are built in before they are renamed into place."""

import os

import pytest

from tf_reorder.staging import STAGING_PREFIX, STAGING_SUFFIX, make_staging_directory


def test_a_new_hidden_directory_beside_the_output(tmp_path):
    first = make_staging_directory(str(tmp_path / "out.keras"))
    second = make_staging_directory(str(tmp_path / "out.keras"))
    assert first != second and os.path.dirname(first) == str(tmp_path)
    for path in (first, second):
        name = os.path.basename(path)
        assert os.path.isdir(path) and not os.listdir(path)
        assert name.startswith(STAGING_PREFIX) and name.endswith(STAGING_SUFFIX)
        assert name.startswith(".") and not name.endswith(".keras")


def test_a_missing_directory_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        make_staging_directory(str(tmp_path / "missing" / "out.keras"))
