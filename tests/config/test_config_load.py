"""Tests for tsproxy.config.load: reading a configuration directory into a LoadedConfig."""

from __future__ import annotations

import os
import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.load import LoadedConfig, load_directory, load_files
from tsproxy.config.resources import Endpoints, Service, TraefikService

SEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "seed")
STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {ports: [{port: 80}]}\n"


def write(directory: str, files: dict[str, bytes]) -> None:
    os.makedirs(directory)
    for name, content in files.items():
        path = os.path.join(directory, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            stream.write(content)


class SeedTests(SynchronousTestCase):
    """The seed scenario (WRR, sticky, mirroring) loads cleanly."""

    def test_seed(self) -> None:
        """Every resource is read, in file order; the two Deployments get one notice each."""
        loaded = load_directory(SEED)
        self.assertEqual(loaded.errors, ())
        assert loaded.static is not None
        self.assertEqual([e.name for e in loaded.static.entrypoints], ["web"])
        self.assertEqual(loaded.static.path, os.path.join(SEED, "tsproxy.yaml"))
        self.assertEqual(
            [(type(r).__name__, r.meta.name) for r in loaded.resources],
            [
                ("Service", "app-v1"),
                ("Service", "app-v2"),
                ("Endpoints", "app-v1"),
                ("Endpoints", "app-v2"),
                ("TraefikService", "app-wrr"),
                ("TraefikService", "app-cookie"),
                ("TraefikService", "app-mirror"),
                ("IngressRoute", "wrr"),
                ("IngressRoute", "cookie"),
                ("IngressRoute", "mirror"),
            ],
        )
        self.assertEqual(
            loaded.notices,
            (
                "seed.yaml:1: skipping Deployment default/app-v1 (kind not handled)",
                "seed.yaml:8: skipping Deployment default/app-v2 (kind not handled)",
            ),
        )


class DirectoryTests(SynchronousTestCase):
    """Which files are read, in which order, and what happens to unreadable ones."""

    def test_filesSortedNotRecursive(self) -> None:
        """YAML files load sorted by name; other files, hidden files and subdirectories do not."""
        directory = self.mktemp()
        write(
            directory,
            {
                "tsproxy.yaml": STATIC.encode(),
                "b.yml": (SERVICE % "b").encode(),
                "a.yaml": (SERVICE % "a").encode(),
                "c.yaml.bak": (SERVICE % "c").encode(),
                ".#d.yaml": (SERVICE % "d").encode(),
                "sub/e.yaml": (SERVICE % "e").encode(),
                "notes.txt": b"hello",
            },
        )
        loaded = load_directory(directory)
        self.assertEqual((loaded.errors, loaded.notices), ((), ()))
        self.assertEqual([r.meta.name for r in loaded.resources], ["a", "b"])
        self.assertEqual([r.meta.location.file for r in loaded.resources], ["a.yaml", "b.yml"])
        self.assertEqual(loaded.path, directory)

    def test_brokenFilesAreLocated(self) -> None:
        """A syntax error or non-UTF-8 bytes cost only that file, with a located error."""
        directory = self.mktemp()
        write(
            directory,
            {
                "tsproxy.yaml": STATIC.encode(),
                "a.yaml": (SERVICE % "a").encode(),
                "b.yaml": (SERVICE % "b" + "---\nkey: [oops\n").encode(),
                "c.yaml": b"apiVersion: v1\n\xff\n",
                "d.yaml": (SERVICE % "d").encode(),
            },
        )
        loaded = load_directory(directory)
        self.assertEqual([r.meta.name for r in loaded.resources], ["a", "d"])
        self.assertEqual(
            [str(e) for e in loaded.errors],
            [
                "c.yaml:2: not UTF-8 text (byte 15)",
                "b.yaml:7: invalid YAML: expected ',' or ']', but got '<stream end>'"
                " (while parsing a flow sequence at line 6)",
            ],
        )

    def test_missingStatic(self) -> None:
        """Without tsproxy.yaml there is no static configuration, and that is an error."""
        directory = self.mktemp()
        write(directory, {"a.yaml": (SERVICE % "a").encode()})
        loaded = load_directory(directory)
        self.assertIsNone(loaded.static)
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["tsproxy.yaml:1: file not found: no entrypoints defined"],
        )
        self.assertEqual(len(loaded.resources), 1)

    def test_missingDirectory(self) -> None:
        """A directory that cannot be listed gives one error and nothing else."""
        loaded = load_directory("/nonexistent/tsproxy-conf")
        self.assertEqual(
            loaded,
            LoadedConfig(None, (), loaded.errors, (), "/nonexistent/tsproxy-conf"),
        )
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["/nonexistent/tsproxy-conf:1: cannot read directory: No such file or directory"],
        )

    def test_byteOrderMark(self) -> None:
        """A UTF-8 byte order mark at the start of a file is not part of the YAML."""
        directory = self.mktemp()
        write(directory, {"tsproxy.yaml": b"\xef\xbb\xbf" + STATIC.encode()})
        self.assertEqual(load_directory(directory).errors, ())


class DuplicateTests(SynchronousTestCase):
    """The same kind, namespace and name twice: the first definition wins."""

    def test_duplicate(self) -> None:
        """The second definition is an error pointing at the first."""
        loaded = load_files(
            STATIC, [("a.yaml", SERVICE % "x"), ("b.yaml", "---\n" + SERVICE % "x")]
        )
        self.assertEqual(len(loaded.resources), 1)
        self.assertEqual(loaded.resources[0].meta.location.file, "a.yaml")
        self.assertEqual(
            [str(e) for e in loaded.errors],
            ["b.yaml:2: Service default/x: defined twice, this one is ignored (first at a.yaml:1)"],
        )

    def test_sameNameOtherKindOrNamespace(self) -> None:
        """Names only clash within one kind and namespace; both API groups are one kind."""
        text = (
            SERVICE % "x"
            + "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: x}\n"
            + "---\n"
            + (SERVICE % "x").replace("{name: x}", "{name: x, namespace: other}")
        )
        loaded = load_files(STATIC, [("a.yaml", text)])
        self.assertEqual(loaded.errors, ())
        self.assertEqual([type(r) for r in loaded.resources], [Service, Endpoints, Service])
        route = "apiVersion: %s\nkind: TraefikService\nmetadata: {name: t}\nspec: {weighted: {services: []}}\n"
        loaded = load_files(
            STATIC,
            [
                (
                    "a.yaml",
                    route % "traefik.io/v1alpha1"
                    + "---\n"
                    + route % "traefik.containo.us/v1alpha1",
                )
            ],
        )
        self.assertEqual([type(r) for r in loaded.resources], [TraefikService])
        self.assertEqual(len(loaded.errors), 1)


FIELDS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "spec",
        "routes",
        "match",
        "services",
        "port",
        "weight",
        "sticky",
        "cookie",
        "mirroring",
        "mirrors",
        "percent",
        "weighted",
        "entryPoints",
        "subsets",
        "addresses",
        "ip",
        "ports",
        "endpoints",
        "labels",
        "tls",
        "priority",
        "forwardingTimeouts",
        "dialTimeout",
        "maxBodySize",
        "externalName",
        "type",
    ]
)
SCALAR_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(
        [
            "Service",
            "TraefikService",
            "IngressRoute",
            "v1",
            "traefik.io/v1alpha1",
            "app",
            "10s",
            "http",
            "Host(`a`)",
        ]
    ),
)
VALUES = st.recursive(
    SCALAR_VALUES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=12,
)
DOCUMENTS = st.fixed_dictionaries(
    {
        "apiVersion": st.sampled_from(["traefik.io/v1alpha1", "v1", "discovery.k8s.io/v1"]),
        "kind": st.sampled_from(
            [
                "IngressRoute",
                "TraefikService",
                "ServersTransport",
                "Service",
                "Endpoints",
                "EndpointSlice",
            ]
        ),
        "metadata": st.fixed_dictionaries({"name": st.sampled_from(["a", "b"])}),
    },
    optional={"spec": VALUES, "subsets": VALUES, "endpoints": VALUES, "ports": VALUES},
)


class ArbitraryDocumentTests(SynchronousTestCase):
    """Whatever the documents hold, the loader answers with resources and located errors."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(DOCUMENTS, min_size=1, max_size=4))
    def test_neverRaises(self, documents: list[dict[str, object]]) -> None:
        """Random field soup never raises; each document gives one resource, error or skip."""
        text = yaml.safe_dump_all(documents)
        loaded = load_files(STATIC, [("f.yaml", text)])
        skipped = [notice for notice in loaded.notices if ": skipping " in notice]
        outcomes = len(loaded.resources) + len(loaded.errors) + len(skipped)
        self.assertEqual(outcomes, len(documents), text)
        for error in loaded.errors:
            self.assertIsNotNone(
                re.match(r"^f\.yaml:\d+: (\w+ default/\w+: )?\S", str(error)), str(error)
            )
        for resource in loaded.resources:
            self.assertIn(
                type(resource).__name__,
                {
                    "IngressRoute",
                    "TraefikService",
                    "ServersTransport",
                    "Service",
                    "Endpoints",
                    "EndpointSlice",
                },
            )
