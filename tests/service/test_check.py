"""Tests for tsproxy.check (`tsproxy check DIR`): every bad configuration of the loader and
build tests is reported at its file:line, the exit status says the verdict, JSON for tools."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from typing import Dict, List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tests.config import test_config_kinds, test_config_tcp_kinds
from tests.runtime import test_runtime_build, test_runtime_tcp
from tsproxy.check import check_directory
from tsproxy.cli import main

STATIC = 'entryPoints:\n  web:\n    address: ":8000"\n'
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {ports: [{port: 80}]}\n"


def as_reported(directory: str, error: str, severity: str = "error") -> str:
    """``file:line: rest`` as check prints it: the path under ``directory``, then severity."""
    match = re.match(r"^([^:]+):(\d+): (.*)$", error, re.DOTALL)
    assert match is not None, error
    return f"{os.path.join(directory, match[1])}:{match[2]}: {severity}: {match[3]}"


class CheckTestCase(SynchronousTestCase):
    def directory(self, files: Dict[str, bytes]) -> str:
        directory = self.mktemp()
        os.makedirs(directory)
        for name, content in files.items():
            with open(os.path.join(directory, name), "wb") as stream:
                stream.write(content)
        return directory

    def check(self, files: Dict[str, bytes], fmt: str = "text") -> Tuple[int, str, str]:
        """(exit status, output, directory) of checking a directory holding ``files``."""
        directory = self.directory(files)
        out = io.StringIO()
        status = check_directory(directory, fmt, out)
        return status, out.getvalue(), directory

    def errors(self, files: Dict[str, bytes]) -> Tuple[int, List[str], str]:
        status, output, directory = self.check(files)
        return status, [line for line in output.splitlines() if ": error: " in line], directory


class LoaderCaseTests(CheckTestCase):
    """The loader tests' broken directories, files and documents, as check reports them."""

    def test_badDocuments(self) -> None:
        """Each row of the kinds tests' bad-document table: exit 1 and exactly its error."""
        for text, expected in test_config_kinds.BAD_DOCUMENTS:
            files = {"tsproxy.yaml": STATIC.encode(), "wrr.yaml": textwrap.dedent(text).encode()}
            status, errors, directory = self.errors(files)
            self.assertEqual((status, errors), (1, [as_reported(directory, expected)]), text)

    def test_brokenReferences(self) -> None:
        """Each row of the build tests' broken-reference table: unknown services and ports,
        bad rules, reference cycles, each at its file:line."""
        for text, expected in test_runtime_build.BROKEN:
            files = {
                "tsproxy.yaml": test_runtime_build.STATIC.encode(),
                "backends.yaml": test_runtime_build.BACKENDS.encode(),
                "wrr.yaml": textwrap.dedent(text + test_runtime_build.GOOD_ROUTE).encode(),
            }
            status, errors, directory = self.errors(files)
            self.assertEqual(
                (status, errors), (1, [as_reported(directory, e) for e in expected]), text
            )

    def test_badTCPDocuments(self) -> None:
        """Each row of the TCP kinds' bad-document table (IngressRouteTCP, TLSOption, TLSStore,
        Secret): exit 1 and exactly its error."""
        for text, expected in test_config_tcp_kinds.BAD_TCP_DOCUMENTS:
            files = {"tsproxy.yaml": STATIC.encode(), "wrr.yaml": text.encode()}
            status, errors, directory = self.errors(files)
            self.assertEqual((status, errors), (1, [as_reported(directory, expected)]), text)

    def test_tcpRouteProblems(self) -> None:
        """Each row of the TCP build tests' problem table: unknown services, ports and
        entrypoints, HostSNI without TLS, bad rules as errors; all weights 0 and duplicate
        routes as warnings; each at its file:line."""
        for routes, extra, errors, warnings in test_runtime_tcp.PROBLEMS:
            files = {
                "tsproxy.yaml": test_runtime_tcp.STATIC.encode(),
                "backends.yaml": test_runtime_tcp.BACKENDS.encode(),
                "db.yaml": test_runtime_tcp.ingress_tcp(
                    "db", routes + test_runtime_tcp.GOOD, extra
                ).encode(),
            }
            status, output, directory = self.check(files)
            found = [
                line for line in output.splitlines() if ": error: " in line or ": warning: " in line
            ]
            expected = [as_reported(directory, e) for e in errors] + [
                as_reported(directory, w, "warning") for w in warnings
            ]
            self.assertEqual((status, found), (1 if errors else 0, expected), routes)

    def test_brokenFiles(self) -> None:
        """Unreadable bytes, bad YAML, duplicate names and a missing tsproxy.yaml."""
        cases = [
            (
                {"tsproxy.yaml": STATIC.encode(), "c.yaml": b"apiVersion: v1\n\xff\n"},
                ["c.yaml:2: not UTF-8 text (byte 15)"],
            ),
            (
                {"tsproxy.yaml": STATIC.encode(), "b.yaml": b"key: [oops\n"},
                [
                    "b.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"
                    " (while parsing a flow sequence at line 1)"
                ],
            ),
            (
                {
                    "tsproxy.yaml": STATIC.encode(),
                    "a.yaml": (SERVICE % "x").encode(),
                    "b.yaml": ("---\n" + SERVICE % "x").encode(),
                },
                [
                    "b.yaml:2: Service default/x: defined twice, this one is ignored"
                    " (first at a.yaml:1)"
                ],
            ),
            (
                {"a.yaml": (SERVICE % "a").encode()},
                ["tsproxy.yaml:1: file not found: no entrypoints defined"],
            ),
            (
                {
                    "tsproxy.yaml": b'entryPoints:\n  a:\n    address: ":80"\n  b:\n    address: ":80"\n'
                },
                [
                    "tsproxy.yaml:4: entrypoint b: address is already used by entrypoint a (tsproxy.yaml:2)"
                ],
            ),
            (
                {
                    "tsproxy.yaml": b'entryPoints:\n  a:\n    address: ":80"\n  b:\n    address: "127.0.0.1:80"\n'
                },
                [
                    "tsproxy.yaml:4: entrypoint b: port 80/tcp is already taken by entrypoint a (tsproxy.yaml:2)"
                ],
            ),
            (
                {"tsproxy.yaml": b'entryPoints:\n  web:\n    address: ":80"\nwhatever: 1\n'},
                ["tsproxy.yaml:4: whatever: unknown field"],
            ),
        ]
        for files, expected in cases:
            status, errors, directory = self.errors(files)
            self.assertEqual(
                (status, errors), (1, [as_reported(directory, e) for e in expected]), files
            )

    def test_missingDirectory(self) -> None:
        """A directory that cannot be read is one error at the directory itself."""
        out = io.StringIO()
        self.assertEqual(check_directory("/nonexistent/tsproxy-conf", "text", out), 1)
        self.assertEqual(
            out.getvalue().splitlines()[0],
            "/nonexistent/tsproxy-conf:1: error: cannot read directory: No such file or directory",
        )


SHADOWED = """\
apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata: {name: %s}
spec:
  routes:
    - match: Host(`a`)
      services: [{name: app-v1, port: 80}]
"""


class VerdictTests(CheckTestCase):
    """Warnings and notices do not fail the check; the summary and JSON carry every finding."""

    def test_clean(self) -> None:
        """The shipped conf/ is clean: exit 0, only the skipped Deployments as notices."""
        conf = os.path.join(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "conf"
        )
        out = io.StringIO()
        self.assertEqual(check_directory(conf, "text", out), 0)
        self.assertEqual(
            out.getvalue().splitlines(),
            [
                f"{conf}/app.yaml:3: notice: skipping Deployment default/app-v1 (kind not handled)",
                f"{conf}/app.yaml:22: notice: skipping Deployment default/app-v2 (kind not handled)",
                f"{conf}: 0 errors, 0 warnings, 2 notices",
            ],
        )

    def test_warningsAndJSON(self) -> None:
        """A route hidden by another is a warning (exit 0); JSON lists it with its place."""
        files = {
            "tsproxy.yaml": test_runtime_build.STATIC.encode(),
            "backends.yaml": test_runtime_build.BACKENDS.encode(),
            "a.yaml": (SHADOWED % "a").encode(),
            "b.yaml": (SHADOWED % "b").encode(),
            "d.yaml": b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
        }
        status, output, directory = self.check(files, "json")
        self.assertEqual(status, 0)
        self.assertEqual(
            json.loads(output),
            {
                "directory": directory,
                "findings": [
                    {
                        "severity": "warning",
                        "file": os.path.join(directory, "b.yaml"),
                        "line": 6,
                        "resource": "IngressRoute default/b",
                        "message": "match Host(`a`): never reached on entrypoint web, admin:"
                        " the route at a.yaml:6 (IngressRoute default/a) has the same rule and"
                        " is tried first",
                    },
                    {
                        "severity": "notice",
                        "file": os.path.join(directory, "d.yaml"),
                        "line": 1,
                        "resource": "",
                        "message": "skipping Deployment default/d (kind not handled)",
                    },
                ],
                "counts": {"error": 0, "warning": 1, "notice": 1},
            },
        )

    def test_tcpRouterBehindHTTPRouters(self) -> None:
        """A plain TCP router on an entrypoint with HTTP routers is a warning (exit 0)."""
        tcp = (
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRouteTCP\nmetadata: {name: db}\n"
            "spec:\n  entryPoints: [web]\n  routes:\n    - match: HostSNI(`*`)\n"
            "      services: [{name: app-v1, port: 80}]\n"
        )
        files = {
            "tsproxy.yaml": test_runtime_build.STATIC.encode(),
            "backends.yaml": test_runtime_build.BACKENDS.encode(),
            "a.yaml": (SHADOWED % "a").encode(),
            "db.yaml": tcp.encode(),
        }
        status, output, directory = self.check(files)
        self.assertEqual(
            (status, output.splitlines()),
            (
                0,
                [
                    f"{directory}/db.yaml:7: warning: IngressRouteTCP default/db: match"
                    " HostSNI(`*`): never gets a connection: non-TLS connections on entrypoint"
                    " web go to the HTTP routers there (like the route at a.yaml:6"
                    " (IngressRoute default/a)); give this route an entrypoint without HTTP"
                    " routers, or TLS",
                    f"{directory}: 0 errors, 1 warning, 0 notices",
                ],
            ),
        )

    def test_commandLine(self) -> None:
        """`tsproxy check` exits 1 with errors and 0 without; `--format json` parses."""
        bad = self.directory({"tsproxy.yaml": STATIC.encode(), "b.yaml": b"key: [oops\n"})
        good = self.directory({"tsproxy.yaml": STATIC.encode()})
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(main(["check", good]), 0)
            self.assertEqual(main(["check", "--format", "json", bad]), 1)
        self.assertEqual(json.loads(out.getvalue().split("\n", 1)[1])["counts"]["error"], 1)
        script = os.path.join(os.path.dirname(sys.executable), "tsproxy")
        if not os.path.exists(script):
            self.skipTest("the tsproxy script is not installed next to " + sys.executable)
        done = subprocess.run(
            [script, "check", bad], capture_output=True, text=True, timeout=60, check=False
        )
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn(f"{bad}/b.yaml:2: error: invalid YAML", done.stdout)


class ProviderFormatTests(CheckTestCase):
    """check reads every format: traefik.toml, file-provider YAML and TOML, CRD YAML."""

    def test_file_provider_rows(self) -> None:
        """Each row of the file-format error tables, as check reports it from a directory
        whose traefik.toml names the file."""
        from tests.providers import test_providers

        rows = [("d.yml", text, error) for text, error in test_providers.YAML_ERRORS]
        rows += [("d.toml", text, error) for text, error in test_providers.TOML_ERRORS]
        for name, text, expected in rows:
            static = (
                f'[entryPoints.web]\naddress = ":8000"\n[providers.file]\nfilename = "{name}"\n'
            )
            files = {"traefik.toml": static.encode(), name: text.encode()}
            status, errors, directory = self.errors(files)
            self.assertEqual((status, errors), (1, [as_reported(directory, expected)]), text)

    def test_clean_mix(self) -> None:
        """A CRD file and a file-provider file that reference each other check clean."""
        static = STATIC + "providers:\n  file: {filename: dynamic.yml}\n  kubernetesCRD: {}\n"
        crd = (
            "apiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: ir}\n"
            "spec:\n  routes:\n    - match: Host(`a`)\n"
            "      services: [{name: s@file, kind: TraefikService}]\n"
        )
        dynamic = "http:\n  services:\n    s:\n      loadBalancer: {servers: [{url: 'http://10.0.0.1'}]}\n"
        files = {
            "traefik.yml": static.encode(),
            "crd.yaml": crd.encode(),
            "dynamic.yml": dynamic.encode(),
        }
        status, output, directory = self.check(files)
        self.assertEqual((status, output), (0, f"{directory}: 0 errors, 0 warnings, 0 notices\n"))
