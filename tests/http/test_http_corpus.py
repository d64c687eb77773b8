"""The request and response corpora (tests/data/http-requests.json, http-responses.json)
through one real listener: the answer class of every raw request and exactly what the
backend receives, and exactly what the client receives of every raw backend response."""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionDone

from tests.hardeningfixture import HardeningTestCase

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
_MANY = re.compile(r"\{many:([0-9]+)\}")
_BIG = re.compile(r"\{big:([0-9]+)\}")
_DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def expand(text: str) -> bytes:
    """A corpus string as the bytes it stands for (latin-1, placeholders expanded)."""
    text = _MANY.sub(lambda m: "".join("X-N%d: v\r\n" % i for i in range(int(m.group(1)))), text)
    text = _BIG.sub(lambda m: "X-Big: " + "a" * int(m.group(1)), text)
    return text.encode("latin-1")


def load(name: str) -> Any:
    with open(os.path.join(DATA, name), encoding="ascii") as f:
        return json.load(f)["cases"]


class CorpusTests(HardeningTestCase):
    """Each case on its own connection to one proxy."""

    def setUp(self) -> None:
        super().setUp()
        self.configure()

    @defer.inlineCallbacks
    def test_requests(self) -> None:
        """Every raw request gets its status; forwarded ones reach the backend byte-exact."""
        cases = load("http-requests.json")
        self.assertGreaterEqual(len(cases), 300)
        proxy = socket.gethostname()
        failures = []
        for case in cases:
            del self.backend.requests[:]
            raw = yield self.exchange(expand(case["request"]))
            status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
            got = self.backend.requests[0] if self.backend.requests else None
            want = case["forwarded"]
            if want is not None:
                want = expand(want.replace("{proxy}", proxy))
            if status != case["status"] or (want is not None and got != want):
                failures.append((case["name"], status, raw[:60], got, want))
        self.assertEqual(failures, [])

    @defer.inlineCallbacks
    def test_responses(self) -> None:
        """Every raw backend response reaches the client byte-exact (Date aside); a body
        broken off after the head ends in a reset, never in a body end."""
        self.backend.close_after = True
        failures = []
        for case in load("http-responses.json"):
            self.backend.answer = lambda request, data=case["backend"]: expand(data)
            client = yield self.connect()
            client.transport.write(
                b"%s /r HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % case["method"].encode()
            )
            raw = yield client.closed
            reset = not client.reason.check(ConnectionDone)
            raw = _DATE.sub(b"\r\nDate: {date}\r\n", raw)
            want = expand(case["client"])
            if case.get("reset"):
                # The reset may overtake what was sent before it: a prefix of it arrives.
                if not (reset and want.startswith(raw)):
                    failures.append((case["name"], raw, want, reset))
            elif raw != want or reset:
                failures.append((case["name"], raw, want, reset))
        self.assertEqual(failures, [])
