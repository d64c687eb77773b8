"""bench/http_bench.py's Markdown writer: the README block from a recorded --json result, the
block's replacement in a file, and README.md's block in the writer's format with the command
that made it (no load is run here)."""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout
from typing import Any, Dict, List

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
if BENCH not in sys.path:
    sys.path.append(BENCH)  # http_bench imports its sibling peers.py as a script does

import http_bench  # noqa: E402
import peers  # noqa: E402

RESULT = os.path.join(ROOT, "tests", "data", "http_bench_result.json")


def _result() -> Dict[str, Any]:
    with open(RESULT, encoding="utf-8") as f:
        data: Dict[str, Any] = json.load(f)
    return data


def _table(block: str) -> List[List[str]]:
    """The cells of the Markdown table in a block (header first, separator left out)."""
    rows = []
    for line in block.splitlines():
        if line.startswith("| "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


class MarkdownBlockTests(SynchronousTestCase):
    """markdown_block renders a recorded result."""

    def test_recordedResult(self) -> None:
        """The block of the recorded run: markers, its command in a sh fence, then one table
        row per recorded row, in order, formatted from the JSON (req/s, ratios, µs/req)."""
        result = _result()
        lines = http_bench.markdown_block(result).splitlines()
        self.assertEqual(lines[0], http_bench.BLOCK_BEGIN)
        self.assertEqual(lines[-1], http_bench.BLOCK_END)
        self.assertEqual(lines[1:4], ["```sh", result["command"], "```"])
        table = _table("\n".join(lines))
        self.assertEqual(table[0], http_bench.MARKDOWN_HEADER)
        self.assertEqual([row[0] for row in table[1:]], [r["setup"] for r in result["rows"]])
        for row, recorded in zip(table[1:], result["rows"]):
            if recorded["status"] != "ok":
                self.assertEqual(row[1:], ["BROKEN"] + [""] * 7)
                continue
            self.assertEqual(row[1], f"{recorded['requests_per_s']:,.0f}")
            self.assertEqual(row[4], f"{recorded['ratio_haproxy']:.2f}")
            if recorded["per_proxy_core"]:
                self.assertEqual(row[7], f"{1e6 / recorded['per_proxy_core']:.1f}")

    def test_cells(self) -> None:
        """One row's cells, table-driven over a healthy row, a row without CPU figures and a
        broken one."""
        base = {
            "setup": "haproxy, nbthread 1",
            "status": "ok",
            "requests_per_s": 12345.6,
            "p50_ms": 1.234,
            "p99_ms": 12.34,
            "ratio_haproxy": 1.0,
            "ratio_haproxy_per_core": 1.0,
            "cpu_pct": 50.0,
            "per_proxy_core": 24691.2,
            "foreign_cpu_pct": 3.25,
        }
        cases = [
            (
                {},
                ["haproxy, nbthread 1", "12,346", "1.23", "12.3", "1.00", "1.00", "50", "40.5"]
                + ["3.2"],
            ),
            (
                {"cpu_pct": None, "per_proxy_core": None, "ratio_haproxy_per_core": None},
                ["haproxy, nbthread 1", "12,346", "1.23", "12.3", "1.00", "", "", "", "3.2"],
            ),
            ({"status": "broken"}, ["haproxy, nbthread 1", "BROKEN"] + [""] * 7),
        ]
        for change, expected in cases:
            result = _result()
            result["rows"] = [dict(base, **change)]
            table = _table(http_bench.markdown_block(result))
            self.assertEqual(table[1], expected, change)


class ReplaceBlockTests(SynchronousTestCase):
    """replace_block and write_markdown."""

    def test_replace(self) -> None:
        """Only the block, markers included, is replaced; the text around it is kept."""
        begin, end = http_bench.BLOCK_BEGIN, http_bench.BLOCK_END
        text = f"intro\n{begin}\nold table\n{end}\nafter\n"
        new = f"{begin}\nnew table\n{end}\n"
        self.assertEqual(http_bench.replace_block(text, new), f"intro\n{new}after\n")

    def test_noBlock(self) -> None:
        """A text without exactly one well-ordered block is refused, not appended to."""
        begin, end = http_bench.BLOCK_BEGIN, http_bench.BLOCK_END
        for text in ("no markers\n", f"{end}\n{begin}\n", f"{begin}\n{end}\n{begin}\n{end}\n"):
            self.assertRaises(RuntimeError, http_bench.replace_block, text, "x")

    def test_fromJson(self) -> None:
        """`--from-json FILE --markdown PATH` renders the recorded run into an existing file's
        block, and writes a new file with the block alone."""
        directory = self.mktemp()
        os.makedirs(directory)
        readme = os.path.join(directory, "README.md")
        with open(readme, "w", encoding="utf-8") as f:
            f.write(f"# Title\n\n{http_bench.BLOCK_BEGIN}\nold\n{http_bench.BLOCK_END}\nend\n")
        fresh = os.path.join(directory, "table.md")
        block = http_bench.markdown_block(_result())
        for path, expected in ((readme, f"# Title\n\n{block}end\n"), (fresh, block)):
            with redirect_stdout(io.StringIO()):
                status = http_bench.main(["--from-json", RESULT, "--markdown", path])
            self.assertEqual(status, 0)
            with open(path, encoding="utf-8") as f:
                self.assertEqual(f.read(), expected)

    def test_fromJsonNeedsMarkdown(self) -> None:
        """--from-json alone is a usage error (it would measure nothing and write nothing)."""
        with redirect_stderr(io.StringIO()):
            self.assertRaises(SystemExit, http_bench.parse_args, ["--from-json", RESULT])


class ReadmeBlockTests(SynchronousTestCase):
    """README.md's Benchmarks table is the writer's block, made by the command it shows."""

    def test_readmeBlock(self) -> None:
        """One block; its command is a valid http_bench.py invocation shown above the table;
        the table has the writer's header, a number in every healthy row and the rows the
        command's options ask for (Caddy, h2c, gRPC, --workers, PyPy)."""
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        self.assertEqual(text.count(http_bench.BLOCK_BEGIN), 1)
        start = text.index(http_bench.BLOCK_BEGIN)
        block = text[start : text.index(http_bench.BLOCK_END, start)]
        lines = block.splitlines()
        self.assertEqual((lines[1], lines[3]), ("```sh", "```"))
        argv = shlex.split(lines[2])
        self.assertEqual(argv[:2], ["python3", "bench/http_bench.py"])
        args = http_bench.parse_args(argv[2:])
        self.assertEqual(args.markdown, http_bench.Path("README.md"))
        table = _table(block)
        self.assertEqual(table[0], http_bench.MARKDOWN_HEADER)
        self.assertLess(block.index("```sh"), block.index("| setup"))
        setups = [row[0] for row in table[1:]]
        for row in table[1:]:
            self.assertEqual(len(row), len(http_bench.MARKDOWN_HEADER), row)
            if row[1] != "BROKEN":
                float(row[1].replace(",", ""))
        expected = ["haproxy, nbthread 1", "nginx proxy, 1 worker, upstream keepalive 64"]
        expected += [http_bench.CADDY, "tsproxy, CPython"]
        if args.http2:
            expected += [http_bench.H2 + "haproxy, nbthread 1", http_bench.H2 + http_bench.CADDY]
            expected.append(http_bench.H2 + "tsproxy, CPython")
        if args.grpc:
            expected += [
                http_bench.GRPC + "haproxy, nbthread 1",
                http_bench.GRPC + "tsproxy, CPython",
            ]
            expected.append(http_bench.GRPC + http_bench.CADDY)
        if args.workers:
            expected.append("tsproxy, CPython" + http_bench.workers_suffix(args.workers))
        if not args.skip_pypy:
            expected.append("tsproxy, PyPy")
        self.assertEqual([s for s in expected if s not in setups], [])


class PeersTests(SynchronousTestCase):
    """peers.py's gRPC framing, which the backend's reply files and h2load's request use."""

    def test_grpcFrames(self) -> None:
        """Length-prefixed messages and the HelloReply encoding, table-driven."""
        cases = [
            (peers.grpc_frame(b""), b"\x00\x00\x00\x00\x00"),
            (peers.grpc_frame(peers.GRPC_REQUEST_MESSAGE), b"\x00\x00\x00\x00\x07\x0a\x05bench"),
            (peers.grpc_reply_message("Hello app-v1\n"), b"\x0a\x0dHello app-v1\n"),
        ]
        for got, expected in cases:
            self.assertEqual(got, expected)
        self.assertRaises(ValueError, peers.grpc_reply_message, "x" * 128)

    def test_caddyfile(self) -> None:
        """The Caddyfile routes the bench host by weighted round robin 1:2, with h2c to the
        backends only for gRPC and h2c to clients for h2 and gRPC."""
        plain = peers.caddy_conf(8000, 8001, 8002, "bench.local")
        grpc = peers.caddy_conf(8000, 8001, 8002, "bench.local", grpc=True)
        self.assertIn("http://bench.local:8000 {", plain)
        self.assertIn("lb_policy weighted_round_robin 1 2", plain)
        self.assertIn("protocols h1\n", plain)
        self.assertNotIn("versions h2c", plain)
        self.assertIn("protocols h1 h2c\n", grpc)
        self.assertIn("versions h2c", grpc)
