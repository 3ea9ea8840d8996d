"""Shared test settings: one thread for numeric libraries, deterministic hypothesis runs."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from hypothesis import settings  # noqa: E402

settings.register_profile("repo", derandomize=True, deadline=None, max_examples=60, print_blob=True)
settings.load_profile("repo")
