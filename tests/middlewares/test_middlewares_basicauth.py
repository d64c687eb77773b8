"""Tests for tsproxy.middlewares.basicauth: Traefik's vectors, hash formats, Secrets, cache."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Dict, List

import bcrypt
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.authfixture import (
    FakeContext,
    fields_of,
    fields_yaml,
    load_vectors,
    request_of,
    run_step,
)
from tsproxy.config.schema import FieldError
from tsproxy.middlewares import basicauth
from tsproxy.middlewares.base import Answer, BuildError, HeaderList, Request

VECTORS = load_vectors("basicAuth.json")


def build_case(config: Dict[str, Any]) -> Any:
    """A step from a vector config; usersFileContent becomes an Opaque Secret's users key."""
    section = {k: v for k, v in config.items() if k != "usersFileContent"}
    context = FakeContext()
    if "usersFileContent" in config:
        context.secrets["file"] = {"users": config["usersFileContent"].encode()}
        section["secret"] = "file"
    spec = basicauth.parse(fields_of(section))
    return basicauth.build(spec, "auth@test", context)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(authorization: str = "", **headers: str) -> Request:
    items = [("Host", "example.com")]
    if authorization:
        items.append(("Authorization", authorization))
    items.extend(headers.items())
    return Request("GET", "/", None, HeaderList(items), "192.0.2.1")


class VectorTests(SynchronousTestCase):
    """Every case of basicAuth.json."""

    def check(self, step: Any, case_request: Dict[str, Any], expect: Dict[str, Any]) -> None:
        req = request_of(case_request)
        result = run_step(step, req)
        if expect["status"] == 401:
            self.assertIsInstance(result, Answer)
            self.assertEqual(result.status, 401)
            self.assertNotIn(b"traefik", result.body)
            for name, value in expect.get("headers", {}).items():
                self.assertEqual(HeaderList(result.headers).get(name), value)
            return
        self.assertIsNone(result)
        backend = expect.get("backend", {})
        for name, value in backend.get("headers", {}).items():
            if backend.get("headerNamesCaseSensitive"):
                got = [v for k, v in req.headers if k == name]
                self.assertEqual(got, [] if value is None else [value], name)
            else:
                self.assertEqual(req.headers.get(name), value, name)

    def test_vectors(self) -> None:
        """Each case builds (or fails to) and answers each request as Traefik does."""
        for case in VECTORS["cases"]:
            with self.subTest(case["name"]):
                expect = case.get("expect", {})
                if expect.get("error"):
                    with self.assertRaises((BuildError, FieldError)):
                        build_case(case["config"])
                    continue
                step = build_case(case["config"])
                steps = case.get("steps") or [case]
                for one in steps:
                    self.check(step, one["request"], one["expect"])


MD5_TEST = "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"


class HashTests(SynchronousTestCase):
    """The htpasswd formats of the library Traefik uses."""

    def test_formats(self) -> None:
        """apr1, $1$ MD5-crypt, {SHA} and the bcrypt prefixes accept the right password only."""
        sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"test").digest()).decode()
        crypt1 = basicauth.md5_crypt(b"test", b"abcdefgh", b"$1$").decode()
        bhash = bcrypt.hashpw(b"test", bcrypt.gensalt(4)).decode()
        table = [
            (MD5_TEST, True),
            (crypt1, True),
            (sha, True),
            (bhash, True),
            ("$2a$" + bhash[4:], True),
            ("$2y$" + bhash[4:], True),
            ("test", False),
            ("$apr1$", False),
            ("$2y$garbage", False),
        ]
        for secret, ok in table:
            with self.subTest(secret):
                self.assertEqual(basicauth.check_secret("test", secret), ok)
                self.assertFalse(basicauth.check_secret("wrong", secret))

    def test_md5_crypt_known_value(self) -> None:
        """MD5-crypt of a known openssl passwd -1 value (salt 'saltsalt', password 'password')."""
        self.assertEqual(
            basicauth.md5_crypt(b"password", b"saltsalt", b"$1$"),
            b"$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/",
        )

    def test_decode_basic(self) -> None:
        """Go's BasicAuth parsing: scheme case-insensitive, strict base64, first colon splits."""
        table = [
            ("Basic dGVzdDp0ZXN0", ("test", "test")),
            ("basic dGVzdDp0ZXN0", ("test", "test")),
            ("Basic " + base64.b64encode(b"a:b:c").decode(), ("a", "b:c")),
            ("Basic dGVzdA==", None),
            ("Basic dGVzdDp0ZXN0=", None),
            ("Basic dGVz====", None),
            ("Bearer dGVzdDp0ZXN0", None),
            ("Basic", None),
            (None, None),
        ]
        for header, want in table:
            with self.subTest(header):
                self.assertEqual(basicauth.decode_basic(header), want)


class SecretTests(SynchronousTestCase):
    """Users from Kubernetes Secrets, as Traefik's CRD provider reads them."""

    def test_basic_auth_secret(self) -> None:
        """A kubernetes.io/basic-auth Secret is one user with that password."""
        context = FakeContext(
            secrets={"s": {"username": b"alice", "password": b"pw"}},
            types={"s": "kubernetes.io/basic-auth"},
        )
        step = basicauth.build(basicauth.BasicAuthSpec(secret="s"), "a", context)
        self.assertIsNone(step.handle(request(basic("alice", "pw"))))
        self.assertEqual(step.handle(request(basic("alice", "no"))).status, 401)

    def test_basic_auth_type_inferred(self) -> None:
        """Without a type from the context, username + password keys mean basic-auth."""
        context = FakeContext(secrets={"s": {"username": b"alice", "password": b"pw"}})
        step = basicauth.build(basicauth.BasicAuthSpec(secret="s"), "a", context)
        self.assertIsNone(step.handle(request(basic("alice", "pw"))))

    def test_build_errors(self) -> None:
        """Missing or unusable Secrets and bad lines refuse to build, saying why."""
        bad = {
            "missing": ({}, {}, "not found"),
            "two": ({"two": {"a": b"x:y", "b": b"z:w"}}, {}, "single element"),
            "empty": ({"empty": {"users": b"\n# only a comment\n"}}, {}, "any credentials"),
            "line": ({"line": {"users": b"nocolon"}}, {}, "error parsing BasicUser: nocolon"),
            "ba": (
                {"ba": {"username": b"alice"}},
                {"ba": "kubernetes.io/basic-auth"},
                "both username and password",
            ),
            "ba0": (
                {"ba0": {"username": b"alice", "password": b""}},
                {"ba0": "kubernetes.io/basic-auth"},
                "non-empty",
            ),
        }
        for name, (secrets, types, text) in bad.items():
            with self.subTest(name):
                context = FakeContext(secrets=secrets, types=types)
                with self.assertRaises(BuildError) as caught:
                    basicauth.build(basicauth.BasicAuthSpec(secret=name), "a", context)
                self.assertIn(text, str(caught.exception))


class ParseTests(SynchronousTestCase):
    """The basicAuth section: fields, defaults and located errors."""

    def test_defaults(self) -> None:
        """realm defaults to traefik (also when empty), the rest to off."""
        spec = basicauth.parse(fields_of({"secret": "s", "realm": ""}))
        self.assertEqual(spec, basicauth.BasicAuthSpec(secret="s"))

    def test_errors(self) -> None:
        """Each bad section names the line and field path."""
        table = [
            ("secret: s\nbogus: 1\n", 2, "spec.kind.bogus", "unknown field"),
            ("secret: s\nusers:\n  - ok:x\n  - nocolon\n", 4, "spec.kind.users[1]", "name:hash"),
            ("secret: s\nusers:\n  - a:b:c\n", 3, "spec.kind.users[0]", "name:hash"),
            ("usersFile: /etc/htpasswd\n", 1, "spec.kind.usersFile", "Secret"),
            ("realm: traefik\n", 1, "spec.kind", "needs a secret"),
            ("secret: s\nremoveHeader: yes\n", 2, "spec.kind.removeHeader", "true or false"),
            ("secret: [a]\n", 1, "spec.kind.secret", "must be a string"),
        ]
        for text, line, path, message in table:
            with self.subTest(text):
                with self.assertRaises(FieldError) as caught:
                    basicauth.parse(fields_yaml(text))
                self.assertEqual((caught.exception.line, caught.exception.path), (line, path), text)
                self.assertIn(message, caught.exception.message)


class CacheTests(SynchronousTestCase):
    """Successful checks are remembered; wrong passwords never are."""

    def step_with(self, secret: str, runner: Any) -> basicauth.BasicAuth:
        step = basicauth.build(basicauth.BasicAuthSpec(users=(f"u:{secret}",)), "a", FakeContext())
        step.run_slow = runner
        return step

    def test_bcrypt_checked_once(self) -> None:
        """A bcrypt user costs one check however many requests follow."""
        calls: List[int] = []

        def runner(check: Any) -> bool:
            calls.append(1)
            return bool(check())

        step = self.step_with(bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(), runner)
        for _ in range(5):
            self.assertIsNone(step.handle(request(basic("u", "pw"))))
        self.assertEqual(len(calls), 1)
        self.assertEqual(step.handle(request(basic("u", "bad"))).status, 401)
        self.assertEqual(step.handle(request(basic("u", "pw "))).status, 401)
        self.assertIsNone(step.handle(request(basic("u", "pw"))))

    def test_concurrent_checks_share_one(self) -> None:
        """Identical checks in flight wait for one computation, then all pass."""
        pending: List[Deferred[bool]] = []

        def runner(check: Any) -> Deferred[bool]:
            d: Deferred[bool] = Deferred()
            pending.append(d)
            d.addCallback(lambda _: check())
            return d

        step = self.step_with(bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(), runner)
        results: List[Any] = []
        for _ in range(3):
            step.handle(request(basic("u", "pw"))).addCallback(results.append)
        wrong: List[Any] = []
        step.handle(request(basic("u", "bad"))).addCallback(wrong.append)
        self.assertEqual(len(pending), 2)
        for d in pending:
            d.callback(None)
        self.assertEqual(results, [None, None, None])
        self.assertEqual(wrong[0].status, 401)

    def test_cache_bounded(self) -> None:
        """The cache keeps at most CACHE_SIZE entries."""
        self.patch(basicauth, "CACHE_SIZE", 3)
        users = tuple(f"u{i}:{MD5_TEST}" for i in range(6))
        step = basicauth.build(basicauth.BasicAuthSpec(users=users), "a", FakeContext())
        for i in range(6):
            self.assertIsNone(step.handle(request(basic(f"u{i}", "test"))))
        self.assertEqual(len(step._cache), 3)

    def test_unknown_user_refused(self) -> None:
        """An unknown user is refused even with a password matching another user's hash."""
        step = self.step_with(MD5_TEST, lambda check: check())
        self.assertEqual(step.handle(request(basic("other", "test"))).status, 401)
        self.assertIsNone(step.handle(request(basic("u", "test"))))
        self.assertEqual(step.handle(request(basic("other", "test"))).status, 401)

    def test_answer(self) -> None:
        """The 401 carries the realm challenge and the library's body; notes get the user."""
        step = basicauth.build(
            basicauth.BasicAuthSpec(users=(f"u:{MD5_TEST}",), realm="r"), "a", FakeContext()
        )
        answer = step.handle(request())
        self.assertEqual(HeaderList(answer.headers).get("WWW-Authenticate"), 'Basic realm="r"')
        self.assertEqual(answer.body, b"401 Unauthorized\n")
        req = request(basic("u", "test"))
        step.handle(req)
        self.assertEqual(req.notes["auth_user"], "u")


class RegistryTests(SynchronousTestCase):
    """The kinds are listed in the registry."""

    def test_registered(self) -> None:
        """http_kinds() gives this module's kinds by their Traefik key."""
        from tsproxy.middlewares.registry import http_kinds

        kinds = http_kinds()
        for kind in basicauth.KINDS:
            self.assertIs(kinds[kind.name], kind)
        self.assertEqual({kind.name for kind in basicauth.KINDS}, {"basicAuth"})


class ThreadTests(TestCase):
    """bcrypt runs in the reactor's thread pool."""

    def test_bcrypt_in_thread(self) -> Any:
        """With a real reactor the check is a Deferred that fires with the step's result."""
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
        step = basicauth.build(
            basicauth.BasicAuthSpec(users=(f"u:{hashed}",)), "a", FakeContext(reactor=reactor)
        )
        good = step.handle(request(basic("u", "pw")))
        self.assertIsInstance(good, Deferred)
        bad = step.handle(request(basic("u", "no")))

        def check(results: Any) -> None:
            self.assertIsNone(results[0])
            self.assertEqual(results[1].status, 401)

        from twisted.internet.defer import gatherResults

        return gatherResults([good, bad]).addCallback(check)
