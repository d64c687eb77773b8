"""`python -m tsproxy` is the `tsproxy` command."""

from __future__ import annotations

import sys

from tsproxy.cli import main

sys.exit(main())
