"""Shared test set-up: quiet TF, and helpers that check a rewrite end to end."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
