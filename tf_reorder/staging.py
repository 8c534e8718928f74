"""Hidden staging directories: where an output is built before it is renamed into place.

Example:

    staging = make_staging_directory("out/model.keras")  # out/.tf-reorder-XXXXXXXX.partial
"""

from __future__ import annotations

import os
import tempfile

STAGING_PREFIX, STAGING_SUFFIX = ".tf-reorder-", ".partial"


def make_staging_directory(path: str) -> str:
    """A new hidden directory beside `path`; `OSError` if it cannot be made.

    Its name, ``.tf-reorder-XXXXXXXX.partial``, is never an output's. A process
    killed while writing leaves it behind; nothing removes it later (another run
    may be writing into the same directory), and it is safe to delete once none is.
    """
    return tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)), prefix=STAGING_PREFIX,
                            suffix=STAGING_SUFFIX)
