"""Tests for tsproxy.middlewares.tcp against Traefik's own test tables (tests/data/tcp-*.json):
ipAllowList on the remote address, inFlightConn per client IP, and admit's give-back."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Optional

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.schema import FieldError, Fields
from tsproxy.config.yamlio import load_documents
from tsproxy.middlewares.tcp import KINDS, admit

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
_KINDS = {kind.name: kind for kind in KINDS}


def vectors(name: str) -> Any:
    with open(os.path.join(DATA, name)) as stream:
        return json.load(stream)["cases"]


def parse(kind: str, config: Dict[str, Any]) -> Any:
    """The kind's spec from a vector's config, read as YAML like a MiddlewareTCP section."""
    (document,), _ = load_documents(json.dumps({"section": config}), "vector.yaml")
    fields = Fields.of(document.data["section"], f"spec.{kind}", 1, [])
    return _KINDS[kind].parse(fields)


def host(remote: str) -> str:
    return remote.rsplit(":", 1)[0].strip("[]")


class IPAllowListVectorTests(SynchronousTestCase):
    """Every case of Traefik's TCP ipAllowList tests."""

    def test_vectors(self) -> None:
        """Constructor errors as located errors; allowed connections admitted, others not."""
        for case in vectors("tcp-ipAllowList.json"):
            with self.subTest(case=case["name"]):
                expect = case["expect"]
                error: Optional[str] = expect.get("error")
                if error is not None:
                    with self.assertRaises(FieldError) as raised:
                        parse("ipAllowList", case["config"])
                    self.assertIn(error, str(raised.exception))
                    continue
                spec = parse("ipAllowList", case["config"])
                step = _KINDS["ipAllowList"].build(spec, "ns-ip@kubernetescrd", None)
                if "request" not in case:
                    continue
                called = step.admit(host(case["request"]["remoteAddr"])) is not None
                self.assertEqual(called, expect["backend"]["called"])

    def test_oldName(self) -> None:
        """ipWhiteList is the same middleware."""
        spec = parse("ipWhiteList", {"sourceRange": ["10.0.0.0/8"]})
        step = _KINDS["ipWhiteList"].build(spec, "n", None)
        self.assertEqual(
            [step.admit(ip) is not None for ip in ("10.1.2.3", "11.0.0.1", "")],
            [True, False, False],
        )


_OPEN = re.compile(r"open connection (\w) from ([0-9.]+):(\d+)")
_FINISH = re.compile(r"backend finishes (\w)")


class InFlightConnVectorTests(SynchronousTestCase):
    """Every case of Traefik's TCP inFlightConn tests, step by step on one instance."""

    def test_vectors(self) -> None:
        """At most ``amount`` connections per IP (port ignored); a slot comes back at the end."""
        for case in vectors("tcp-inFlightConn.json"):
            with self.subTest(case=case["name"]):
                spec = parse("inFlightConn", case["config"])
                step = _KINDS["inFlightConn"].build(spec, "n", None)
                releases: Dict[str, Any] = {}
                for item in case["steps"]:
                    action, expect = item["action"], item["expect"]
                    opened, finished = _OPEN.search(action), _FINISH.search(action)
                    if opened is not None:
                        release = step.admit(opened.group(2))
                        self.assertEqual(release is not None, expect["backend"]["called"], action)
                        if release is not None:
                            releases[opened.group(1)] = release
                    else:
                        assert finished is not None, action
                        releases.pop(finished.group(1))()

    def test_amountZeroRefusesAll(self) -> None:
        """amount 0 (also the default) refuses every connection, as Traefik's count >= amount."""
        for config in ({"amount": 0}, {}):
            step = _KINDS["inFlightConn"].build(parse("inFlightConn", config), "n", None)
            self.assertIsNone(step.admit("127.0.0.1"))


class AdmitTests(SynchronousTestCase):
    """admit runs the steps in order and gives back what earlier ones took on a refusal."""

    def test_giveBack(self) -> None:
        """inFlightConn then a refusing ipAllowList: the inFlightConn slot is released."""
        counter = _KINDS["inFlightConn"].build(parse("inFlightConn", {"amount": 1}), "n", None)
        deny = _KINDS["ipAllowList"].build(
            parse("ipAllowList", {"sourceRange": ["10.0.0.1"]}), "d", None
        )
        self.assertIsNone(admit((("n", counter), ("d", deny)), "127.0.0.1"))
        self.assertEqual(counter.open, {})
        releases = admit((("n", counter),), "127.0.0.1")
        assert releases is not None
        self.assertIsNone(admit((("n", counter),), "127.0.0.1"))
        releases[0]()
        releases[0]()  # twice is once
        self.assertEqual(counter.open, {})
