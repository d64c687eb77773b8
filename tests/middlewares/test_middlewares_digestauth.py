"""Tests for tsproxy.middlewares.digestauth: Traefik's vectors through a real RFC 2617 client."""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Optional

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.authfixture import (
    FakeContext,
    fields_of,
    fields_yaml,
    load_vectors,
    request_of,
    run_step,
)
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import digestauth
from tsproxy.middlewares.base import Answer, BuildError, HeaderList, Request

VECTORS = load_vectors("digestAuth.json")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def build_case(config: Dict[str, Any], clock: Optional[Clock] = None) -> Any:
    section = {k: v for k, v in config.items() if k != "usersFileContent"}
    context = FakeContext(reactor=clock or Clock())
    if "usersFileContent" in config:
        context.secrets["file"] = {"users": config["usersFileContent"].encode()}
        section["secret"] = "file"
    return digestauth.build(digestauth.parse(fields_of(section)), "digest@test", context)


def get(headers: Any = ()) -> Request:
    return Request("GET", "/", None, HeaderList([("Host", "example.com"), *headers]), "192.0.2.1")


def respond(
    challenge: str,
    user: str,
    password: str,
    nc: int = 1,
    uri: str = "/",
    method: str = "GET",
    realm: Optional[str] = None,
) -> str:
    """The Authorization header a digest client sends for `challenge`."""
    params = digestauth.parse_pairs(challenge.split(" ", 1)[1])
    realm = params["realm"] if realm is None else realm
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    ncs, cnonce = "%08x" % nc, "0a4f113b"
    response = md5(f"{ha1}:{params['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{params["nonce"]}", uri="{uri}", '
        f'algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}", response="{response}", '
        f'opaque="{params["opaque"]}"'
    )


def challenge_of(step: Any) -> str:
    answer = step.handle(get())
    assert isinstance(answer, Answer) and answer.status == 401
    return HeaderList(answer.headers).get("WWW-Authenticate") or ""


class VectorTests(SynchronousTestCase):
    """Every case of digestAuth.json."""

    def test_vectors(self) -> None:
        """Each case builds (or fails to) and each client handshake ends as Traefik's does."""
        for case in VECTORS["cases"]:
            with self.subTest(case["name"]):
                expect = case.get("expect", {})
                if expect.get("error"):
                    with self.assertRaises((BuildError, FieldError)):
                        build_case(case["config"])
                    continue
                step = build_case(case["config"])
                for one in case.get("steps") or [case]:
                    self.run_one(step, one)

    def run_one(self, step: Any, one: Dict[str, Any]) -> None:
        expect = one["expect"]
        if "client" in one:
            challenge = challenge_of(step)
            self.assertRegex(
                challenge,
                r'^Digest realm="[^"]+", nonce="[^"]+", opaque="[^"]+", '
                r'algorithm=MD5, qop="auth"$',
            )
            headers = dict((one.get("request") or {}).get("headers", {}))
            headers["Authorization"] = respond(
                challenge, one["client"]["user"], one["client"]["password"]
            )
            req = request_of({"url": "http://127.0.0.1/", "headers": headers})
        else:
            req = request_of(one["request"])
        result = run_step(step, req)
        if expect["status"] == 401:
            self.assertEqual(result.status, 401)
            self.assertNotIn(b"traefik", result.body)
            return
        self.assertIsNone(result)
        backend = expect.get("backend", {})
        for name, value in backend.get("headers", {}).items():
            got = [v for k, v in req.headers if k == name]
            self.assertEqual(got, [] if value is None else [value], name)


class HandshakeTests(SynchronousTestCase):
    """The nonce and nonce-count rules."""

    def setUp(self) -> None:
        self.step = build_case({"users": ["test:traefik:" + md5("test:traefik:test")]})

    def test_replayed_count_refused(self) -> None:
        """The same nc twice is refused; a larger one is accepted."""
        challenge = challenge_of(self.step)
        self.assertIsNone(
            self.step.handle(get([("Authorization", respond(challenge, "test", "test"))]))
        )
        again = self.step.handle(get([("Authorization", respond(challenge, "test", "test"))]))
        self.assertEqual(again.status, 401)
        self.assertTrue(HeaderList(again.headers).get("WWW-Authenticate").endswith("stale=true"))
        later = respond(challenge, "test", "test", nc=2)
        self.assertIsNone(self.step.handle(get([("Authorization", later)])))

    def test_unknown_nonce_refused(self) -> None:
        """A response to a nonce this step never gave is refused."""
        challenge = challenge_of(self.step).replace('nonce="', 'nonce="x')
        answer = self.step.handle(get([("Authorization", respond(challenge, "test", "test"))]))
        self.assertEqual(answer.status, 401)
        self.assertIn("stale=true", HeaderList(answer.headers).get("WWW-Authenticate"))
        wrong = self.step.handle(get([("Authorization", respond(challenge, "test", "bad"))]))
        self.assertNotIn("stale", HeaderList(wrong.headers).get("WWW-Authenticate"))

    def test_wrong_fields_refused(self) -> None:
        """Wrong password, realm, opaque, qop, algorithm or method are refused."""
        challenge = challenge_of(self.step)
        good = respond(challenge, "test", "test")
        table = {
            "password": respond(challenge, "test", "nope"),
            "realm": respond(challenge, "test", "test", realm="other"),
            "opaque": good.replace('opaque="', 'opaque="x'),
            "qop": good.replace("qop=auth", "qop=auth-int"),
            "algorithm": good.replace("algorithm=MD5", "algorithm=SHA-256"),
            "method": respond(challenge, "test", "test", method="POST"),
            "scheme": good.replace("Digest ", "digest "),
            "user": respond(challenge, "nobody", "test"),
        }
        for what, header in table.items():
            with self.subTest(what):
                self.assertEqual(self.step.handle(get([("Authorization", header)])).status, 401)

    def test_uri_prefix_accepted(self) -> None:
        """A uri whose path is a prefix of the request path is accepted, as the library does."""
        challenge = challenge_of(self.step)
        header = respond(challenge, "test", "test", uri="http://127.0.0.1:8080")
        req = Request("GET", "/a/b", None, HeaderList([("Authorization", header)]), "192.0.2.1")
        self.assertIsNone(self.step.handle(req))
        header = respond(challenge, "test", "test", uri="/other", nc=2)
        req = Request("GET", "/a/b", None, HeaderList([("Authorization", header)]), "192.0.2.1")
        self.assertEqual(self.step.handle(req).status, 401)

    def test_nonces_bounded(self) -> None:
        """Remembered nonces stay bounded: past size + tolerance the oldest are dropped."""
        clock = Clock()
        step = build_case({"users": ["a:traefik:" + md5("a:traefik:b")]}, clock)
        first = challenge_of(step)
        for _ in range(digestauth.CLIENT_CACHE_SIZE + digestauth.CLIENT_CACHE_TOLERANCE + 5):
            clock.advance(1)
            step.handle(get())
        self.assertLessEqual(
            len(step.clients), digestauth.CLIENT_CACHE_SIZE + digestauth.CLIENT_CACHE_TOLERANCE + 1
        )
        self.assertEqual(
            step.handle(get([("Authorization", respond(first, "a", "b"))])).status, 401
        )

    def test_parse_pairs(self) -> None:
        """Quoted values keep their commas; unquoted values are taken as they are."""
        self.assertEqual(
            digestauth.parse_pairs('a="x, y", b=2, c="q\\"d"'),
            {"a": "x, y", "b": "2", "c": 'q"d'},
        )


class ParseTests(SynchronousTestCase):
    """The digestAuth section: located errors and build errors."""

    def test_errors(self) -> None:
        """Each bad section names the line and field path."""
        table = [
            ("secret: s\nbogus: 1\n", 2, "spec.kind.bogus", "unknown field"),
            ("users:\n  - a:b\n", 2, "spec.kind.users[0]", "user:realm:HA1"),
            ("usersFile: /x\n", 1, "spec.kind.usersFile", "Secret"),
            ("realm: r\n", 1, "spec.kind", "needs a secret"),
        ]
        for text, line, path, message in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    digestauth.parse(fields_yaml(text))
                self.assertEqual((caught.exception.line, caught.exception.path), (line, path))
                self.assertIn(message, caught.exception.message)

    def test_build_errors(self) -> None:
        """A missing Secret or a bad line in it refuses to build."""
        spec = digestauth.DigestAuthSpec(secret="s")
        with self.assertRaises(BuildError):
            digestauth.build(spec, "d", FakeContext(reactor=Clock()))
        context = FakeContext(reactor=Clock(), secrets={"s": {"users": b"a:b\n"}})
        with self.assertRaises(BuildError) as caught:
            digestauth.build(spec, "d", context)
        self.assertIn("error parsing DigestUser: a:b", str(caught.exception))


class RegistryTests(SynchronousTestCase):
    """The kinds are listed in the registry."""

    def test_registered(self) -> None:
        """http_kinds() gives this module's kinds by their Traefik key."""
        from tsproxy.middlewares.registry import http_kinds

        kinds = http_kinds()
        for kind in digestauth.KINDS:
            self.assertIs(kinds[kind.name], kind)
        self.assertEqual({kind.name for kind in digestauth.KINDS}, {"digestAuth"})
