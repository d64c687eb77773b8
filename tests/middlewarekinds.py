"""Small middleware kinds for the machinery's tests, registered only while a test runs.

The real kinds live in tsproxy/middlewares/ and are listed in registry._MODULES; these use
the same contract (parse with Fields, build with a BuildContext), so whatever passes with
them passes with the real ones.
"""

from __future__ import annotations

from typing import Any, Optional

import attrs
from twisted.internet.defer import Deferred

from tsproxy.config.schema import Fields
from tsproxy.middlewares import registry
from tsproxy.middlewares.base import Answer, BuildError, MiddlewareKind, Request, Response


@attrs.frozen
class TagSpec:
    name: str
    value: str


def parse_tag(fields: Fields) -> TagSpec:
    spec = TagSpec(fields.string("name", required=True), fields.string("value"))
    fields.done()
    return spec


@attrs.define(eq=False)
class Tag:
    """Adds a request header, and ``X-Tag-<name>`` to the response (hooks show their order)."""

    name: str
    spec: TagSpec
    calls: int = 0

    def handle(self, request: Request) -> None:
        self.calls += 1
        request.headers.add(self.spec.name, self.spec.value)

        def hook(response: Response) -> None:
            trail = response.headers.get("X-Hooks")
            response.headers.set(
                "X-Hooks", f"{trail},{self.spec.value}" if trail else self.spec.value
            )

        request.on_response(hook)


def build_tag(spec: TagSpec, name: str, context: Any) -> Tag:
    return Tag(name, spec)


@attrs.frozen
class DenySpec:
    status: int


def parse_deny(fields: Fields) -> DenySpec:
    spec = DenySpec(fields.integer("status", 403, minimum=200, maximum=599))
    fields.done()
    return spec


@attrs.define(eq=False)
class Deny:
    name: str
    status: int

    def handle(self, request: Request) -> Answer:
        return Answer(self.status, (("X-Denied-By", self.name),), b"denied\n")


def build_deny(spec: DenySpec, name: str, context: Any) -> Deny:
    return Deny(name, spec.status)


@attrs.frozen
class LaterSpec:
    seconds: float
    allow: bool


def parse_later(fields: Fields) -> LaterSpec:
    spec = LaterSpec(fields.duration("after", 0.0), fields.boolean("allow", True))
    fields.done()
    return spec


@attrs.define(eq=False)
class Later:
    """Decides after ``seconds`` on the reactor it was built with (forwardAuth-like)."""

    name: str
    spec: LaterSpec
    reactor: Any
    cancelled: int = 0

    def handle(self, request: Request) -> Deferred[Optional[Answer]]:
        def cancel(d: Deferred[Optional[Answer]]) -> None:
            self.cancelled += 1
            call.cancel()

        d: Deferred[Optional[Answer]] = Deferred(cancel)
        answer = None if self.spec.allow else Answer(401, (), b"later no\n")
        call = self.reactor.callLater(self.spec.seconds, d.callback, answer)
        return d


def build_later(spec: LaterSpec, name: str, context: Any) -> Later:
    return Later(name, spec, context.reactor)


@attrs.frozen
class PathSpec:
    prefix: str
    host: str


def parse_path(fields: Fields) -> PathSpec:
    spec = PathSpec(fields.string("prefix", required=True), fields.string("host"))
    fields.done()
    return spec


@attrs.define(eq=False)
class Path:
    """Strips ``prefix`` and, with ``host``, sends another Host on."""

    name: str
    spec: PathSpec

    def handle(self, request: Request) -> None:
        if request.path.startswith(self.spec.prefix):
            request.path = request.path[len(self.spec.prefix) :] or "/"
        if self.spec.host:
            request.headers.set("Host", self.spec.host)


def build_path(spec: PathSpec, name: str, context: Any) -> Path:
    return Path(name, spec)


@attrs.frozen
class SecretSpec:
    secret: str


def parse_secret(fields: Fields) -> SecretSpec:
    spec = SecretSpec(fields.string("secret", required=True))
    fields.done()
    return spec


@attrs.define(eq=False)
class SecretStep:
    name: str
    data: Any

    def handle(self, request: Request) -> None:
        request.headers.set("X-Secret", self.data.get("token", b"").decode())


def build_secret(spec: SecretSpec, name: str, context: Any) -> SecretStep:
    data = context.secret(spec.secret)
    if data is None:
        raise BuildError(f"secret {spec.secret} not found")
    return SecretStep(name, data)


KINDS = (
    MiddlewareKind("testTag", parse_tag, build_tag),
    MiddlewareKind("testDeny", parse_deny, build_deny),
    MiddlewareKind("testLater", parse_later, build_later),
    MiddlewareKind("testPath", parse_path, build_path),
    MiddlewareKind("testSecret", parse_secret, build_secret),
)


def register(test: Any) -> None:
    """Make the test kinds known for the duration of ``test``."""
    for kind in KINDS:
        registry.EXTRA_HTTP[kind.name] = kind
    test.addCleanup(registry.EXTRA_HTTP.clear)
