"""Tests for tsproxy.config.yamlio: YAML 1.2 scalars, duplicate keys, lines, located errors."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.yamlio import YAMLList, YAMLMap, load_documents

# (YAML text, expected value of key "v")
SCALARS = [
    ("v: true", True),
    ("v: False", False),
    ("v: yes", "yes"),
    ("v: no", "no"),
    ("v: on", "on"),
    ("v: off", "off"),
    ("v: y", "y"),
    ("v: 10", 10),
    ("v: -3", -3),
    ("v: 010", "010"),
    ("v: 0x10", "0x10"),
    ("v: 0o10", "0o10"),
    ("v: 1:20", "1:20"),
    ("v: 1_000", "1_000"),
    ("v: 1.5", 1.5),
    ("v: 1e3", 1000.0),
    ("v: 2001-12-14", "2001-12-14"),
    ("v: ~", None),
    ("v: null", None),
    ("v: '010'", "010"),
    ("v: !!int 10", 10),
    ("v: !!bool true", True),
    ("v: !!str 10", "10"),
    ("v: <<", "<<"),
]

# (YAML text, the errors, exactly)
BAD = [
    ("a: 1\na: 2\n", ["f.yaml:2: invalid YAML: duplicate key 'a' (first at line 1)"]),
    (
        "m:\n  x: 1\n  y: 2\n  x: 3\n",
        ["f.yaml:4: invalid YAML: duplicate key 'x' (first at line 2)"],
    ),
    ("v: !!int 010\n", ["f.yaml:1: invalid YAML: '010' is not a YAML 1.2 integer"]),
    ("v: !!bool yes\n", ["f.yaml:1: invalid YAML: 'yes' is not a YAML 1.2 boolean"]),
    ("? [a]\n: 1\n", ["f.yaml:1: invalid YAML: mapping keys must be scalars"]),
    (
        "a: 1\nb: [1, 2\n",
        [
            "f.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"
            " (while parsing a flow sequence at line 2)"
        ],
    ),
    (
        "a: b: c\n",
        ["f.yaml:1: invalid YAML: mapping values are not allowed here"],
    ),
    (
        "a: 1\n\x07\n",
        [
            "f.yaml:2: invalid YAML: unacceptable character #x0007:"
            " special characters are not allowed"
        ],
    ),
    (
        "v: !!python/name:os.system\n",
        [
            "f.yaml:1: invalid YAML: could not determine a constructor for the tag"
            " 'tag:yaml.org,2002:python/name:os.system'"
        ],
    ),
]


class ScalarTests(SynchronousTestCase):
    """Scalars resolve as YAML 1.2 says, not as PyYAML's YAML 1.1 default does."""

    def test_table(self) -> None:
        """Every row of the scalar table loads to its expected value."""
        for text, expected in SCALARS:
            documents, errors = load_documents(text, "f.yaml")
            self.assertEqual(errors, (), text)
            value = documents[0].data["v"]  # type: ignore[index]
            self.assertEqual((text, value, type(value)), (text, expected, type(expected)))


class ErrorTests(SynchronousTestCase):
    """Bad YAML gives located errors and no documents from the broken part."""

    def test_table(self) -> None:
        """Every row of the bad-YAML table gives exactly its errors."""
        for text, expected in BAD:
            documents, errors = load_documents(text, "f.yaml")
            self.assertEqual(([str(e) for e in errors], documents), (expected, ()), text)

    def test_syntaxErrorSkipsWholeFile(self) -> None:
        """A syntax error in a later document drops the earlier good documents too."""
        documents, errors = load_documents("a: 1\n---\nb: [\n", "f.yaml")
        self.assertEqual(documents, ())
        self.assertEqual([e.line for e in errors], [4])

    def test_constructionErrorSkipsOneDocument(self) -> None:
        """A duplicate key drops only the document that holds it."""
        documents, errors = load_documents("a: 1\na: 2\n---\nb: 2\n", "f.yaml")
        self.assertEqual([(d.index, d.line, d.data) for d in documents], [(1, 4, {"b": 2})])
        self.assertEqual(
            [str(e) for e in errors],
            ["f.yaml:2: invalid YAML: duplicate key 'a' (first at line 1)"],
        )

    def test_deepNesting(self) -> None:
        """Nesting deeper than the parser can follow is an error, not a RecursionError."""
        documents, errors = load_documents("[" * 5000, "f.yaml")
        self.assertEqual(documents, ())
        self.assertEqual(len(errors), 1)


class LineTests(SynchronousTestCase):
    """Documents, mappings, keys and items carry their 1-based lines."""

    TEXT = (
        "# comment\n"  # 1
        "---\n"  # 2
        "kind: A\n"  # 3
        "spec:\n"  # 4
        "  routes:\n"  # 5
        "    - match: x\n"  # 6
        "      services:\n"  # 7
        "        - name: a\n"  # 8
        "\n"  # 9
        "        - {name: b}\n"  # 10
        "---\n"  # 11
        "---\n"  # 12
        "kind: B\n"  # 13
    )

    def test_lines(self) -> None:
        """Every container and key knows the line it starts on."""
        documents, errors = load_documents(self.TEXT, "f.yaml")
        self.assertEqual(errors, ())
        self.assertEqual([(d.index, d.line) for d in documents], [(0, 3), (2, 13)])
        root = documents[0].data
        assert isinstance(root, YAMLMap)
        self.assertEqual((root.line, root.key_lines), (3, {"kind": 3, "spec": 4}))
        routes = root["spec"]["routes"]
        assert isinstance(routes, YAMLList)
        self.assertEqual((routes.line, routes.item_lines), (6, [6]))
        services = routes[0]["services"]
        self.assertEqual(services.item_lines, [8, 10])
        self.assertEqual([s.line for s in services], [8, 10])
        self.assertEqual(routes[0].key_lines, {"match": 6, "services": 7})

    def test_plainTypes(self) -> None:
        """Located containers are still plain dicts and lists to the rest of the code."""
        documents, _ = load_documents("a: [1, {b: 2}]\n", "f.yaml")
        self.assertEqual(documents[0].data, {"a": [1, {"b": 2}]})
        self.assertIsInstance(documents[0].data, dict)


class ArbitraryTextTests(SynchronousTestCase):
    """Whatever the text, the loader answers with documents and located errors."""

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.sampled_from("ab:-[]{}&*!|>'\"#?,.\n 01\t%@`")))
    def test_neverRaises(self, text: str) -> None:
        """YAML-ish noise never raises; each error names the file and a line inside the text."""
        documents, errors = load_documents(text, "f.yaml")
        last_line = text.count("\n") + 1
        for error in errors:
            self.assertRegex(str(error), r"^f\.yaml:\d+: invalid YAML: ")
            self.assertTrue(1 <= error.line <= last_line, (text, str(error)))
        for document in documents:
            self.assertTrue(1 <= document.line <= last_line)

    @settings(max_examples=200, deadline=None)
    @given(st.text())
    def test_unicodeNeverRaises(self, text: str) -> None:
        """Arbitrary unicode, control characters included, never raises."""
        _, errors = load_documents(text, "f.yaml")
        for error in errors:
            self.assertIsNotNone(re.match(r"^f\.yaml:\d+: ", str(error)))
