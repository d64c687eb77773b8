"""How many files the process may open, and how many of them UDP sessions may take.

One socket per UDP session: a flood from many source ports must not take the descriptors
that TCP and HTTP connections need. :func:`udp_session_budget` is pure; the two functions
that read and set the limit take the ``resource`` module (or a fake) as a parameter.
"""

from __future__ import annotations

import os
from typing import Any, Optional

__all__ = ["open_files", "raise_open_files_limit", "udp_session_budget"]

#: When the hard limit is unlimited, the soft one is raised this far (Linux refuses more than
#: fs.nr_open, 1,048,576 by default).
UNLIMITED_TARGET = 1 << 20
#: At least this many descriptors are kept for TCP and HTTP connections (or half of what is
#: free, if less is free), and a quarter of the limit if that is more.
MIN_HEADROOM = 256


def raise_open_files_limit(resource: Any) -> Optional[int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit then in force, or None
    where there is no such limit (``resource`` is None: not a POSIX system)."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # e.g. macOS caps it lower: keep the soft limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def open_files() -> int:
    """How many descriptors the process holds now (0 where that cannot be read)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return 0


def udp_session_budget(limit: int, in_use: int, udp_entrypoints: int) -> int:
    """The most UDP sessions each of ``udp_entrypoints`` may keep with the process at
    ``limit`` open files and ``in_use`` open now: what is free, less the TCP headroom."""
    free = max(limit - in_use, 0)
    headroom = min(max(MIN_HEADROOM, limit // 4), free // 2)
    return max(1, (free - headroom) // max(udp_entrypoints, 1))
