"""tsproxy's test suite (trial), on the lean epoll dispatch the proxy uses. Under CI (CI=true)
hypothesis runs derandomized, so a landing is judged on the same examples every time; locally
it explores freely."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The suite runs on the reactor dispatch the proxy runs on (tsproxy/fastpoll.py, which
# tap.makeService installs): every in-process test goes through it.
from twisted.internet import reactor  # noqa: E402

from tsproxy.fastpoll import speed_up  # noqa: E402

speed_up(reactor)
