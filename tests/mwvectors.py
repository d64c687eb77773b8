"""Shared harness for the middleware vector tests: build a step from a case's config through
the kind's parse and build, run the case's request through it, apply its response hooks to
the simulated backend answer, and compare with `expect`, honouring deviations.json.

A deviation lists the aspects in which tsproxy deliberately differs from a case; the test
checks that exactly those aspects differ, so the list stays honest. One test method is
generated per case so each failure shows on its own.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import attrs
from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.schema import Fields
from tsproxy.config.yamlio import load_documents
from tsproxy.middlewares import headers as headers_module
from tsproxy.middlewares.base import Answer, HeaderList, Middleware, Request, Response
from tsproxy.middlewares.gourl import escape_path, unescape
from tsproxy.middlewares.registry import http_kinds

DATA = os.path.join(os.path.dirname(__file__), "data", "middlewares")
NAME = "default-test@kubernetescrd"

Mismatch = Tuple[str, str]  # (aspect, what differs)


def load(name: str) -> Any:
    with open(os.path.join(DATA, name), encoding="utf-8") as stream:
        return json.load(stream)


@functools.cache
def deviations() -> Dict[str, Dict[str, Any]]:
    """Listed cases where tsproxy deliberately differs from a vector, by case key."""
    return {entry["case"]: entry for entry in load("deviations.json")["deviations"]}


@attrs.define
class FakeContext:
    """A BuildContext with nothing in it: these kinds need no Secret nor reactor."""

    namespace: str = "default"
    reactor: Any = None

    def secret(self, name: str) -> Optional[Dict[str, bytes]]:
        return None


def fields_of(config: Dict[str, Any]) -> Fields:
    """The config as the Fields a parser receives (read from YAML text, so lines are real)."""
    documents, errors = load_documents(json.dumps({"spec": config}, indent=1), "case.yaml")
    assert not errors, errors
    root = Fields(documents[0].data, "", [])  # type: ignore[arg-type]
    section = root.mapping("spec")
    assert section is not None
    return section


def build(kind: str, config: Dict[str, Any], harness: str = "") -> Middleware:
    """Parse and build a step; the headers harnesses build only one of its two handlers."""
    kinds = http_kinds()
    spec = kinds[kind].parse(fields_of(config))
    if harness in ("header", "secure"):
        return headers_module.build_parts(
            spec, NAME, custom=harness == "header", secure=harness == "secure"
        )
    return kinds[kind].build(spec, NAME, FakeContext())


def _values(value: Any) -> List[str]:
    return list(value) if isinstance(value, list) else [value]


def make_request(case_request: Dict[str, Any], target: Optional[str] = None) -> Request:
    """The Request a case describes (Go test defaults: Host example.com, 192.0.2.1)."""
    url = case_request.get("url", "/")
    parts = urlsplit(url.replace("<port>", "8080"))
    if target is None:
        path = case_request.get("path", parts.path)
        query: Optional[str] = parts.query if "?" in url else None
    else:
        target_parts = urlsplit(target)
        path, query = target_parts.path, (target_parts.query if "?" in target else None)
    headers = HeaderList()
    host = case_request.get("host", parts.netloc if parts.scheme else "example.com")
    if host:
        headers.add("Host", host.replace("<port>", "8080"))
    for name, value in case_request.get("headers", {}).items():
        for item in _values(value):
            headers.add(name, item)
    remote = case_request.get("remoteAddr", "192.0.2.1:1234")
    return Request(
        method=case_request.get("method", "GET"),
        path=path,
        query=query,
        headers=headers,
        client_ip=remote.rsplit(":", 1)[0],
        tls=bool(case_request.get("tls", url.startswith("https://"))),
    )


@attrs.define
class Outcome:
    """What came of one request: the answer the client got and what the backend saw."""

    status: int
    headers: HeaderList
    body: bytes
    called: bool
    request: Request
    original_target: str


def backend_answer(case: Dict[str, Any]) -> Tuple[int, HeaderList, bytes]:
    """The simulated backend's status, headers and body (a 1xx sequence accumulates, as Go's
    header map does)."""
    backend = case.get("backendResponse") or {}
    headers = HeaderList()
    body = backend.get("body", "")
    for step in backend.get("sequence", [backend]):
        for name, value in (step.get("headers") or step.get("addHeaders") or {}).items():
            for item in _values(value):
                headers.add(name, item)
        body = step.get("body", body)
    return backend.get("status", 200), headers, body.encode("utf-8")


def run(step: Optional[Middleware], request: Request, case: Dict[str, Any]) -> Outcome:
    """Run the step, then the backend (when called) and the response hooks, innermost first;
    the engine's parts are played here: Content-Length on answers, sniffing when asked."""
    original = request.target
    result = step.handle(request) if step is not None else None
    if isinstance(result, Answer):
        headers = HeaderList(result.headers)
        headers.set("Content-Length", str(len(result.body)))
        return Outcome(result.status, headers, result.body, False, request, original)
    assert result is None, result
    status, headers, body = backend_answer(case)
    response = Response(status, headers, request)
    for hook in reversed(request.response_hooks):
        hook(response)
    if (
        response.sniff is not None
        and body
        and "Content-Type" not in headers
        and "Content-Encoding" not in headers
    ):
        headers.set("Content-Type", response.sniff(body[:512]))
    return Outcome(status, headers, body, True, request, original)


def go_raw_path(raw: str) -> str:
    """Go's URL.RawPath for a request sent with this escaped path: "" when it is the
    default escaping of the decoded path."""
    decoded, _ = unescape(raw)
    return "" if decoded is None or escape_path(decoded) == raw else raw


def _compare_headers(
    aspect: str,
    actual: HeaderList,
    expected: Dict[str, Any],
    exact: bool,
    ignore: Tuple[str, ...] = (),
) -> List[Mismatch]:
    out: List[Mismatch] = []
    for name, value in expected.items():
        got = actual.get_all(name)
        want = [] if value is None else _values(value)
        if got != want:
            out.append(("%s.%s" % (aspect, name), "got %r, want %r" % (got, want)))
    if exact:
        got_names = {name.lower() for name, _ in actual} - set(ignore)
        want_names = {name.lower() for name, value in expected.items() if value is not None}
        if got_names != want_names:
            out.append(
                (aspect, "header names %s, want %s" % (sorted(got_names), sorted(want_names)))
            )
    return out


def compare(case: Dict[str, Any], outcome: Outcome) -> List[Mismatch]:
    """Every aspect of `expect` the outcome does not meet."""
    expect = case["expect"]
    out: List[Mismatch] = []
    if expect.get("status") is not None and outcome.status != expect["status"]:
        out.append(("status", "got %d, want %d" % (outcome.status, expect["status"])))
    if "location" in expect:
        got = outcome.headers.get_all("Location")
        want = [] if expect["location"] is None else [expect["location"]]
        if got != want:
            out.append(("location", "got %r, want %r" % (got, want)))
    if "headers" in expect:
        out += _compare_headers(
            "headers", outcome.headers, expect["headers"], bool(expect.get("headersExact"))
        )
    if "body" in expect and outcome.body != expect["body"].encode("utf-8"):
        out.append(("body", "got %r" % outcome.body))
    if "interimResponses" in expect:
        out.append(("interimResponses", "1xx responses are relayed by the engine, not a step"))
    backend = expect.get("backend")
    if backend is None:
        return out
    if backend.get("called") is not None and backend["called"] != outcome.called:
        out.append(("backend.called", "got %s" % outcome.called))
    if not outcome.called:
        return out
    request = outcome.request
    if "path" in backend:
        decoded, _ = unescape(request.path)
        if decoded != backend["path"]:
            out.append(("backend.path", "got %r, want %r" % (decoded, backend["path"])))
    if "rawPath" in backend and go_raw_path(request.path) != backend["rawPath"]:
        out.append(("backend.rawPath", "got %r" % go_raw_path(request.path)))
    if "requestURI" in backend:
        # "" is a Go test request without a RequestURI: the step must leave the target alone.
        want = backend["requestURI"] or outcome.original_target
        if request.target != want:
            out.append(("backend.requestURI", "got %r, want %r" % (request.target, want)))
    if "headers" in backend:
        out += _compare_headers(
            "backend.headers",
            request.headers,
            backend["headers"],
            bool(backend.get("headersExact")),
            ignore=("host",),  # Go keeps the Host out of req.Header
        )
    if "host" in backend and request.host != backend["host"]:
        out.append(("backend.host", "got %r, want %r" % (request.host, backend["host"])))
    return out


def outcome_mismatches(kind: str, case: Dict[str, Any]) -> List[Mismatch]:
    """Build the case's step (or fail to), run its request(s), compare."""
    expect = case["expect"]
    harness = case.get("harness", "")
    if harness == "classification":
        spec = http_kinds()[kind].parse(fields_of(case["config"]))
        if headers_module.has_secure_headers(spec) != expect["secureHeadersDefined"]:
            return [("secureHeadersDefined", "differs")]
        return []
    if case.get("config") is None and case.get("middlewareEnabled") is False:
        step: Optional[Middleware] = None
    else:
        try:
            step = build(kind, case["config"], harness)
        except Exception as error:  # BuildError, FieldError: both are "an error"
            return _error_mismatches(expect, str(error))
    out = _error_mismatches(expect, None)
    if "request" not in case:
        return out
    targets: List[Optional[str]] = list(case["request"].get("requestURIForms", [None]))
    for target in targets:
        for mismatch in compare(case, run(step, make_request(case["request"], target), case)):
            if mismatch not in out:
                out.append(mismatch)
    return out


def _error_mismatches(expect: Dict[str, Any], error: Optional[str]) -> List[Mismatch]:
    if "error" not in expect:
        return [] if error is None else [("error", "unexpected: %s" % error)]
    want = expect["error"]
    if want is None:
        return [] if error is None else [("error", "unexpected: %s" % error)]
    if error is None:
        return [("error", "none, want %r" % want)]
    if expect.get("errorExact") and error != want:
        return [("error", "got %r, want exactly %r" % (error, want))]
    if expect.get("errorContains") and want not in error:
        return [("error", "got %r, want it to contain %r" % (error, want))]
    return []


def add_vector_tests(cls: type, filename: str, kind: str) -> None:
    """Add one test method per case of `filename` to the TestCase class `cls`."""
    for index, case in enumerate(load(filename)["cases"]):
        key = "%s#%d" % (filename, index)

        def test(self: SynchronousTestCase, key: str = key, case: Dict[str, Any] = case) -> None:
            mismatches = outcome_mismatches(kind, case)
            listed = deviations().get(key)
            if listed is None:
                self.assertEqual(mismatches, [], "%s (%s)" % (key, case["name"]))
                return
            aspects = sorted({aspect for aspect, _ in mismatches})
            self.assertEqual(
                aspects,
                sorted(listed["differs_in"]),
                "%s is listed as differing in %s; it differs in %s"
                % (key, listed["differs_in"], mismatches),
            )

        test.__name__ = "test_case_%02d" % index
        test.__doc__ = "%s case %d (%s) holds, or differs only as deviations.json lists." % (
            filename,
            index,
            case["name"],
        )
        setattr(cls, test.__name__, test)


def case_keys(filename: str) -> List[str]:
    return ["%s#%d" % (filename, index) for index in range(len(load(filename)["cases"]))]


def parse_error(kind: str, text: str) -> Tuple[int, str]:
    """The (line, message) of the located error parsing the YAML `text` (a mapping with
    one key, spec, holding the kind's section) raises; (0, "") when it parses."""
    from tsproxy.config.schema import FieldError

    documents, errors = load_documents(text, "case.yaml")
    assert not errors, errors
    root = Fields(documents[0].data, "", [])  # type: ignore[arg-type]
    try:
        section = root.mapping("spec")
        assert section is not None
        http_kinds()[kind].parse(section)
    except FieldError as error:
        return error.line, str(error)
    return 0, ""


def parse_notices(kind: str, text: str) -> List[Tuple[int, str]]:
    """The notices parsing `text` leaves (accepted fields that do nothing)."""
    documents, errors = load_documents(text, "case.yaml")
    assert not errors, errors
    notices: List[Tuple[int, str]] = []
    section = Fields(documents[0].data, "", notices).mapping("spec")  # type: ignore[arg-type]
    assert section is not None
    http_kinds()[kind].parse(section)
    return notices
