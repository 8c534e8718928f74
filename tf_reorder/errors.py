"""The one exception type tf_reorder raises for bad input."""


class ReorderError(ValueError):
    """Input tf_reorder cannot rewrite; the message names the problem."""
