"""`tsproxy demo` as a real process on free ports, and the README's transcripts run against it.

The demo runs on a copy of conf/ whose ports are replaced by free ones (tsproxy.yaml's
entrypoints, endpoints.yaml's backends, passed to `tsproxy demo` on its command line); the
README's commands get the same ports, and their output is compared with the README's text
with those ports put back.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
from typing import Any, Dict, List, Tuple

from twisted.internet import defer, reactor
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tsproxy import __version__

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(ROOT, "conf")
README = os.path.join(ROOT, "README.md")
BIN = os.path.dirname(sys.executable)

#: The demo's ports as conf/ and the README have them; the UDP ones are bound as UDP.
PORTS: Dict[str, int] = {
    "web": 8000,
    "websecure": 8443,
    "tcp": 9000,
    "udp": 5300,
    "traefik": 8080,
    "app-v1": 9001,
    "app-v2": 9002,
    "echo-1": 9053,
    "echo-2": 9054,
    "greeter-1": 9101,
    "greeter-2": 9102,
    "dnsmasq": 5454,
}
UDP = ("udp", "echo-1", "echo-2", "dnsmasq")
MARK = "@@end-of-command@@"


def free(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_both() -> int:
    """A port free for UDP and TCP alike (dnsmasq listens on both)."""
    for _ in range(50):
        port = free(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP")


def number(port: int) -> re.Pattern[str]:
    return re.compile(r"(?<![0-9])%d(?![0-9])" % (port,))


def console_blocks(text: str) -> List[Tuple[int, List[Tuple[str, List[str]]]]]:
    """Each ```console block of ``text``: (line number, [(command, expected output lines)]).
    A command continues on the next line after a trailing backslash."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```console":
            index += 1
            continue
        start = index + 1
        index += 1
        commands: List[Tuple[str, List[str]]] = []
        while lines[index].strip() != "```":
            line = lines[index]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    index += 1
                    command = command[:-1] + lines[index].strip()
                commands.append((command, []))
            else:
                commands[-1][1].append(line)
            index += 1
        for _, output in commands:
            while output and not output[-1].strip():
                output.pop()
        blocks.append((start, commands))
        index += 1
    return blocks


class _Collect(ProcessProtocol):
    def __init__(self) -> None:
        self.output: List[bytes] = []
        self.ended: defer.Deferred[Any] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value)

    def text(self) -> str:
        return b"".join(self.output).decode(errors="replace")


class DemoTests(TestCase):
    """The demo process: its README transcripts, SIGHUP, a busy port."""

    timeout = 120
    maxDiff = None

    def setUp(self) -> None:
        #: The UDP Endpoints point at dnsmasq instead of the echo backends.
        self.dns_endpoints = False
        self.configure()

    def configure(self) -> None:
        """Pick free ports and write a copy of conf/ that uses them."""
        self.ports = {
            name: free(socket.SOCK_DGRAM if name in UDP else socket.SOCK_STREAM) for name in PORTS
        }
        self.ports["dnsmasq"] = free_both()
        self.conf = os.path.abspath(self.mktemp())
        shutil.copytree(CONF, self.conf)
        for name in ("tsproxy.yaml", "endpoints.yaml"):
            path = os.path.join(self.conf, name)
            with open(path) as f:
                text = f.read()
            for key, port in PORTS.items():
                text = number(port).sub(str(self.ports[key]), text)
            if name == "endpoints.yaml" and self.dns_endpoints:
                for echo in ("echo-1", "echo-2"):
                    text = number(self.ports[echo]).sub(str(self.ports["dnsmasq"]), text)
            with open(path, "w") as f:
                f.write(text)

    def to_ours(self, text: str) -> str:
        for key, port in PORTS.items():
            text = number(port).sub(str(self.ports[key]), text)
        return text

    def to_readme(self, text: str) -> str:
        for key, port in PORTS.items():
            text = number(self.ports[key]).sub(str(port), text)
        return text

    def spawn_demo(self) -> Tuple[Any, _Collect]:
        program = os.path.join(BIN, "tsproxy")
        if not os.path.exists(program):
            self.skipTest("tsproxy is not installed next to " + sys.executable)
        p = self.ports
        argv = [program, "demo", "-c", self.conf]
        argv += ["--v1-port", str(p["app-v1"]), "--v2-port", str(p["app-v2"])]
        argv += ["--echo-ports", "%d,%d" % (p["echo-1"], p["echo-2"])]
        argv += ["--greeter-ports", "%d,%d" % (p["greeter-1"], p["greeter-2"])]
        proc = _Collect()
        transport = reactor.spawnProcess(proc, program, argv, env=dict(os.environ), path=ROOT)

        def kill() -> Any:
            if not proc.ended.called:
                transport.signalProcess("KILL")
            return proc.ended

        self.addCleanup(kill)
        return transport, proc

    @defer.inlineCallbacks
    def wait_output(self, proc: _Collect, part: str, count: int = 1) -> Any:
        """Until ``part`` shows ``count`` times in the process output (bounded: ~15 s)."""
        for _ in range(300):
            if proc.text().count(part) >= count:
                return
            if proc.ended.called:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.fail("no %r in:\n%s" % (part, proc.text()))

    @defer.inlineCallbacks
    def start_demo(self) -> Any:
        """Start the demo; a port taken since it was picked (by a test running alongside)
        means new ports and another try, three at most."""
        for _ in range(3):
            transport, proc = self.spawn_demo()
            for _ in range(300):  # up to ~15 s
                if "Ctrl-C stops" in proc.text() or proc.ended.called:
                    break
                yield deferLater(reactor, 0.05, lambda: None)
            if "Ctrl-C stops" in proc.text():
                return transport, proc
            if not proc.ended.called or "Address already in use" not in proc.text():
                break
            self.configure()
        self.fail("the demo did not start:\n" + proc.text())

    @defer.inlineCallbacks
    def stop_demo(self, transport: Any, proc: _Collect) -> Any:
        transport.signalProcess(signal.SIGTERM)
        reason = yield proc.ended
        self.assertIsInstance(reason, ProcessDone, proc.text())

    @defer.inlineCallbacks
    def run_block(self, commands: List[Tuple[str, List[str]]], cwd: str, where: int) -> Any:
        """Run one transcript's commands in one shell; each output must be the README's."""
        outputs, err = yield self.run_commands(commands, cwd)
        self.compare(commands, outputs, err, where)

    def compare(
        self, commands: List[Tuple[str, List[str]]], outputs: List[str], err: str, where: int
    ) -> None:
        """Each command's output is the README's."""
        for (command, expected), got in zip(commands, outputs):
            self.assertEqual(
                got.rstrip("\n").split("\n") if got.strip() else [],
                expected,
                "README.md:%d: $ %s\n(stderr: %s)" % (where, command, err),
            )

    @defer.inlineCallbacks
    def run_commands(self, commands: List[Tuple[str, List[str]]], cwd: str) -> Any:
        """(each command's output, stderr) of one transcript's commands run in one shell."""
        script = "".join(
            '%s\n__s=$?; echo "%s"; (exit $__s)\n' % (self.to_ours(command), MARK)
            for command, _ in commands
        )
        # What a transcript leaves running in the background (dnsmasq) ends with it.
        script += "kill $(jobs -p) 2>/dev/null; wait\n"
        path = os.pathsep.join([BIN, os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        env = dict(os.environ, PATH=path)
        out, err, code = yield getProcessOutputAndValue(
            "/bin/bash", ["-c", "set -o pipefail 2>/dev/null; " + script], env=env, path=cwd
        )
        # A terminal does not show a line's \r (curl -i prints the headers' CRLF).
        outputs = self.to_readme(out.decode().replace("\r\n", "\n")).split(MARK + "\n")
        return outputs, err.decode()

    @defer.inlineCallbacks
    def test_readmeTranscripts(self) -> None:
        """Every transcript of the README's demo section prints what the README shows, run
        in order against one demo, and the demo logs the two mirrored copies it claims."""
        with open(README) as f:
            blocks = console_blocks(f.read())
        demo_blocks = [
            (line, commands)
            for line, commands in blocks
            if not any("tsproxy check" in c or "dnsmasq" in c for c, _ in commands)
        ]
        self.assertGreaterEqual(len(demo_blocks), 5)
        transport, proc = yield self.start_demo()
        for line, commands in demo_blocks:
            yield self.run_block(commands, ROOT, line)
        mirrored = "app-v2 got GET / (Host: traefikservice-copy.kubesre.lc)"
        self.assertEqual(proc.text().count(mirrored), 2, proc.text())
        # One line per backend request: twisted.web's own access line is not there too.
        self.assertNotIn('"GET / HTTP/1.1" 200', proc.text())
        yield self.stop_demo(transport, proc)

    @defer.inlineCallbacks
    def test_readmeCheckTranscript(self) -> None:
        """The README's `tsproxy check` transcript is what the commands print, in a directory
        holding a copy of conf/."""
        with open(README) as f:
            blocks = [b for b in console_blocks(f.read()) if "tsproxy check" in b[1][0][0]]
        self.assertEqual(len(blocks), 1)
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        shutil.copytree(CONF, os.path.join(cwd, "conf"))
        self.ports = dict(PORTS)  # the copy keeps conf/'s ports: nothing to substitute
        yield self.run_block(blocks[0][1], cwd, blocks[0][0])

    @defer.inlineCallbacks
    def test_readmeDNSTranscript(self) -> None:
        """The README's DNS transcript: dnsmasq behind the demo's UDP entrypoint, with both
        UDP Endpoints set to dnsmasq's port as the README says, answers dig."""
        path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
        for tool, package in (("dnsmasq", "dnsmasq-base"), ("dig", "bind9-dnsutils")):
            if shutil.which(tool, path=path) is None:
                self.skipTest("needs %s (apt-get install %s)" % (tool, package))
        with open(README) as f:
            blocks = [b for b in console_blocks(f.read()) if any("dnsmasq" in c for c, _ in b[1])]
        self.assertEqual(len(blocks), 1)
        self.dns_endpoints = True
        for _ in range(3):
            self.configure()
            transport, proc = yield self.start_demo()
            outputs, err = yield self.run_commands(blocks[0][1], ROOT)
            if "Address already in use" not in err:
                break
            # dnsmasq's port was taken after it was picked: new ports, another try.
            yield self.stop_demo(transport, proc)
        self.compare(blocks[0][1], outputs, err, blocks[0][0])
        yield self.stop_demo(transport, proc)

    @defer.inlineCallbacks
    def test_hangupReloads(self) -> None:
        """The start-up summary names what runs and the dashboard; SIGHUP reloads the
        configuration (even unchanged) and the demo keeps running; SIGTERM then stops it
        with status 0."""
        transport, proc = yield self.start_demo()
        summary = (
            "INFO  tsproxy %s started: 6 routers (4 HTTP, 1 TCP, 1 UDP), 11 services (5 HTTP,"
            " 3 TCP, 3 UDP), 5 entrypoints (4 TCP, 1 UDP); dashboard at"
            " http://127.0.0.1:8080/dashboard/\n" % (__version__,)
        )
        self.assertIn(summary, self.to_readme(proc.text()))
        transport.signalProcess(signal.SIGHUP)
        yield self.wait_output(proc, "SIGHUP: reloading the configuration")
        yield self.wait_output(
            proc, "configuration applied: 6 routers (4 HTTP, 1 TCP, 1 UDP), 11 services"
        )
        self.assertFalse(proc.ended.called, proc.text())
        yield self.stop_demo(transport, proc)

    @defer.inlineCallbacks
    def busy(self, name: str, expected: str) -> Any:
        """With ``name``'s port taken, the demo exits 1 with one FATAL line saying so."""
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", self.ports[name]))
        taken.listen(1)
        transport, proc = self.spawn_demo()
        reason = yield proc.ended
        self.assertEqual(getattr(reason, "exitCode", None), 1, proc.text())
        text = self.to_readme(proc.text())
        self.assertNotIn("Traceback", text)
        fatal = [line for line in text.splitlines() if " FATAL " in line]
        self.assertEqual(len(fatal), 1, text)
        self.assertTrue(fatal[0].endswith(expected), fatal[0])

    def test_busyEntrypointPort(self) -> None:
        """A busy entrypoint port: the located one-line error, status 1."""
        return self.busy(
            "web",
            "FATAL cannot start: tsproxy.yaml:5: entrypoint web: cannot listen on"
            " 127.0.0.1:8000: [Errno 98] Address already in use",
        )

    def test_busyBackendPort(self) -> None:
        """A busy demo backend port: one line naming the backend, status 1."""
        return self.busy(
            "app-v1",
            "FATAL cannot start: demo backend app-v1: cannot listen on 127.0.0.1:9001:"
            " [Errno 98] Address already in use",
        )
