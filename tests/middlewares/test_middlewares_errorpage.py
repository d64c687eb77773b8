"""Tests for tsproxy.middlewares.errorpage: every case of Traefik's errors vectors through the
response sink (the error service played by a fetch function), the query placeholders, the
CRD service reference and the fail-closed build."""

from __future__ import annotations

import re
from typing import Any, Dict, List

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import FakeContext, fields_of, load_vectors, request_of
from tests.trafficfixture import Collected, HookedContext
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import errorpage
from tsproxy.middlewares.base import BuildError, HeaderList, Request, Response
from tsproxy.middlewares.ipallowlist import go_status_text

VECTORS = load_vectors("errors.json")
DEVIATIONS = {
    entry["case"]: entry
    for entry in load_vectors("traffic-deviations.json")["deviations"]
    if entry["file"] == "errors.json"
}


def crd_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The vector's file-provider service name as the CRD's Service reference."""
    return dict(config, service={"name": config["service"], "port": 80})


def error_service(case: Dict[str, Any], calls: List[Request]) -> Any:
    spec = case["errorService"]

    def fetch(request: Request) -> Any:
        calls.append(request)
        only = spec.get("onlyIfRequestURI")
        if only is not None and request.target != only:
            return defer.succeed((200, HeaderList(), b""))
        body = spec.get("body", "")
        body = body.replace("<request Host>", request.host)
        for name in re.findall(r"<([A-Za-z-]+)>", body):
            body = body.replace(f"<{name}>", request.headers.get(name) or "")
        headers = HeaderList([("Content-Type", "text/plain; charset=utf-8")])
        return defer.succeed((spec.get("status", 200), headers, body.encode()))

    return fetch


def backend_of(case: Dict[str, Any]) -> Any:
    backend = case["backendResponse"]
    if "sequence" in backend:
        status, body = 0, ""
        for item in backend["sequence"]:
            if "body" in item and not status:
                status, body = 200, item["body"]
            elif "writeStatus" in item and item["writeStatus"] >= 200 and not status:
                status = item["writeStatus"]
        return status, body.encode()
    status = backend["status"]
    body = backend.get("body", "(status text)\n").replace("(status text)", go_status_text(status))
    return status, body.encode()


class VectorTests(SynchronousTestCase):
    """errors.json, every case (the ingress-nginx-only ones must be refused)."""

    def test_vectors(self) -> None:
        """Each case gives Traefik's status, page and error-service request."""
        for index, case in enumerate(VECTORS["cases"]):
            with self.subTest("%d %s" % (index, case["name"])):
                config = crd_config(case["config"])
                listed = DEVIATIONS.get(case["name"])
                if listed is not None:
                    # Listed as differing in its configuration: tsproxy must refuse it.
                    self.assertEqual(listed["differs_in"], ["config"])
                    self.assertRaises(FieldError, errorpage.parse, fields_of(config))
                    continue
                self.run_case(case, config)

    def test_deviations_name_cases(self) -> None:
        """Every listed deviation names a case of its file."""
        names = {case["name"] for case in VECTORS["cases"]}
        self.assertLessEqual(set(DEVIATIONS), names)
        self.assertEqual(len(DEVIATIONS), 2)

    def run_case(self, case: Dict[str, Any], config: Dict[str, Any]) -> None:
        calls: List[Request] = []
        context = HookedContext()
        ref = errorpage.ServiceRef("error", 80, "default")
        context.services[ref] = error_service(case, calls)  # type: ignore[index]
        step = errorpage.build(errorpage.parse(fields_of(config)), "e", context)
        given = dict(case["request"])
        if given["url"].startswith("/"):
            given["url"] = "http://%s%s" % (given.get("host", "localhost"), given["url"])
        request = request_of(given)
        self.assertIsNone(step.handle(request))
        client = Collected()
        sink: Any = client
        for wrapper in request.sink_wrappers:
            sink = wrapper(sink)
        status, body = backend_of(case)
        sink.head(Response(status, HeaderList(), request))
        if body:
            sink.data(body)
        sink.end()
        expect = case["expect"]
        self.assertTrue(client.ended)
        if "status" in expect:
            self.assertEqual(client.status, expect["status"])
        for text in expect.get("bodyContains", []):
            self.assertIn(text.encode(), client.body)
        for text in expect.get("bodyNotContains", []):
            self.assertNotIn(text.encode(), client.body)
        called = expect.get("errorService", {})
        if "called" in called:
            self.assertEqual(bool(calls), called["called"])
        if calls and "requestURI" in called:
            self.assertEqual(calls[0].target, called["requestURI"])
        if calls and "host" in called:
            self.assertEqual(calls[0].host, called["host"])
        for name, value in called.get("headers", {}).items():
            self.assertEqual(calls[0].headers.get(name), value, name)


class ConfigTests(SynchronousTestCase):
    """The Service reference, rewrites and the fail-closed build."""

    def test_errors(self) -> None:
        """Bad ranges, a Service without port, a name where a reference is due: located."""
        base = {"status": ["500"], "service": {"name": "err", "port": 80}}
        table = [
            (dict(base, status=["5xx"]), "creating HTTP code ranges"),
            (dict(base, service={"name": "err"}), "port"),
            (dict(base, service="err"), "must be a mapping"),
            (dict(base, statusRewrites={"50x": 404}), "status rewrite"),
            (dict(base, statusRewrites={"500": 42}), "statusRewrites"),
        ]
        for config, message in table:
            with self.subTest(config):
                with self.assertRaises(FieldError) as caught:
                    errorpage.parse(fields_of(config))
                self.assertIn(message, str(caught.exception))

    def test_build(self) -> None:
        """The page's service must exist and the engine must wire sinks."""
        spec = errorpage.parse(
            fields_of({"status": ["500"], "service": {"name": "x", "port": 8080}})
        )
        self.assertRaises(BuildError, errorpage.build, spec, "e", FakeContext())
        with self.assertRaises(BuildError) as caught:
            errorpage.build(spec, "e", HookedContext())
        self.assertIn("default/x:8080 not found", str(caught.exception))

    def test_page_unreachable(self) -> None:
        """An error service that fails: the caught status with its status text."""
        spec = errorpage.parse(
            fields_of({"status": ["500-599"], "service": {"name": "x", "port": 1}})
        )
        request = request_of({})
        client = Collected()
        sink = errorpage.ErrorPageSink(
            client, spec, request, lambda r: defer.fail(OSError("refused"))
        )
        sink.head(Response(503, HeaderList(), request))
        sink.end()
        self.assertEqual((client.status, client.body), (503, b"Service Unavailable"))
        self.flushLoggedErrors()
