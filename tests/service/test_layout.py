"""The house rules of tsproxy/'s modules: each at most 500 lines, and no import circle among
them, counting imports under TYPE_CHECKING and inside functions too."""

from __future__ import annotations

import ast
import os
from typing import Dict, FrozenSet, List, Set, Tuple

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_LINES = 500

#: Modules allowed over MAX_LINES while a change splits them (none left): an entry must go
#: once its module is under the limit (the test fails while a listed one is).
OVER_LIMIT: FrozenSet[str] = frozenset()


def _modules() -> Dict[str, Tuple[str, bool]]:
    """tsproxy's modules by dotted name: (source, whether it is a package's __init__)."""
    found = {}
    for directory, _, files in os.walk(os.path.join(ROOT, "tsproxy")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            dotted = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
            package = name == "__init__.py"
            if package:
                dotted = dotted[: -len(".__init__")]
            with open(path, encoding="utf-8") as f:
                found[dotted] = (f.read(), package)
    return found


def import_graph(modules: Dict[str, Tuple[str, bool]]) -> Dict[str, Set[str]]:
    """Which of ``modules`` each one imports, wherever the import statement is (top level,
    under ``if TYPE_CHECKING:``, in a function). ``from p import x`` is an edge to ``p.x``
    when that is a module, else to ``p``. The parent packages Python runs before a submodule
    (``p/__init__.py`` for ``p.x``) are not edges: a package re-exporting its submodules'
    names would otherwise be in a circle with each of them."""
    graph: Dict[str, Set[str]] = {}
    for name, (source, package) in modules.items():
        here = name if package else name.rpartition(".")[0]
        targets: Set[str] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One circle (a path back to its start) per group of modules importing each other."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    groups: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path(graph, set(group), group[0]) for group in groups]


def _path(graph: Dict[str, Set[str]], group: Set[str], start: str) -> List[str]:
    """A shortest path from ``start`` back to itself inside ``group``."""
    previous = {start: ""}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{start} is in no circle of {sorted(group)}")


class SizeTests(SynchronousTestCase):
    """Every module is at most MAX_LINES long, but the listed ones being split."""

    def test_modulesShort(self) -> None:
        """No module of tsproxy/ outside OVER_LIMIT has more than MAX_LINES lines."""
        long = []
        for name, (source, package) in sorted(_modules().items()):
            path = name.replace(".", "/") + ("/__init__.py" if package else ".py")
            lines = len(source.splitlines())
            if lines > MAX_LINES and path not in OVER_LIMIT:
                long.append(f"{path}: {lines} lines")
        self.assertEqual(long, [])

    def test_allowedStillLong(self) -> None:
        """Each module of OVER_LIMIT exists and is still over the limit (else its entry goes)."""
        stale = []
        for path in sorted(OVER_LIMIT):
            full = os.path.join(ROOT, path)
            if not os.path.exists(full):
                stale.append(f"{path}: gone")
                continue
            with open(full, encoding="utf-8") as f:
                lines = len(f.read().splitlines())
            if lines <= MAX_LINES:
                stale.append(f"{path}: {lines} lines, remove it from OVER_LIMIT")
        self.assertEqual(stale, [])


# (modules: name -> (source, is a package), the circles expected)
_CASES = [
    # A plain chain: no circle.
    ({"p": ("", True), "p.a": ("import p.b", False), "p.b": ("", False)}, []),
    # A function-level import closes the circle.
    (
        {
            "p": ("", True),
            "p.a": ("from p.b import X", False),
            "p.b": ("def f():\n    from p.a import Y\n", False),
        },
        [["p.a", "p.b", "p.a"]],
    ),
    # So does one under TYPE_CHECKING, through a third module, with relative imports.
    (
        {
            "p": ("", True),
            "p.a": ("from . import b", False),
            "p.b": ("from .c import Z", False),
            "p.c": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from p import a\n",
                False,
            ),
        },
        [["p.a", "p.b", "p.c", "p.a"]],
    ),
    # A package re-exporting its submodules' names, which import each other plainly.
    (
        {
            "p": ("from p.a import A\nfrom p.b import B", True),
            "p.a": ("from p.b import B", False),
            "p.b": ("from p import c", False),
            "p.c": ("", False),
        },
        [],
    ),
    # A submodule taking a name from its package's __init__, which imports it back.
    (
        {"p": ("from p.a import A", True), "p.a": ("from p import VERSION", False)},
        [["p", "p.a", "p"]],
    ),
]


class CircleTests(SynchronousTestCase):
    """No two modules of tsproxy/ import each other, directly or around a circle."""

    def test_cases(self) -> None:
        """The finder sees circles through every kind of import statement, and only those."""
        for modules, expected in _CASES:
            self.assertEqual(circles(import_graph(modules)), expected, modules)

    def test_noCircle(self) -> None:
        """tsproxy/ has no import circle (TYPE_CHECKING and function-level imports count)."""
        self.assertEqual(circles(import_graph(_modules())), [])
