"""tsproxy's test suite (trial). Under CI (CI=true) hypothesis runs derandomized, so a
landing is judged on the same examples every time; locally it explores freely."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
