"""The installed package holds every module of the tree (setup.cfg lists packages by hand)."""

from __future__ import annotations

import configparser
import os

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PackagesTests(SynchronousTestCase):
    """setup.cfg's packages are exactly the tree's."""

    def test_everyPackageListed(self) -> None:
        """Every directory of tsproxy/ with an __init__.py is in options.packages (a missing
        one installs a proxy that cannot import it)."""
        parser = configparser.ConfigParser()
        parser.read(os.path.join(ROOT, "setup.cfg"))
        listed = set(parser["options"]["packages"].split())
        found = set()
        for directory, _, files in os.walk(os.path.join(ROOT, "tsproxy")):
            if "__init__.py" in files:
                found.add(os.path.relpath(directory, ROOT).replace(os.sep, "."))
        self.assertEqual(found - listed, set())
