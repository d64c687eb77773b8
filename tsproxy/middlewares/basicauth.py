"""Traefik's basicAuth middleware: htpasswd users (inline or from a Secret), one 401 challenge.

Hash checks follow the htpasswd library Traefik uses (MD5-crypt, {SHA}, bcrypt); successful
checks are cached (bounded) so a bcrypt user does not cost a bcrypt on every request.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
from typing import Any, Callable, Dict, List, Optional, Tuple

import attrs

from tsproxy.config.schema import FieldError, Fields
from tsproxy.middlewares.base import (
    Answer,
    BuildContext,
    BuildError,
    MiddlewareKind,
    Request,
    StepResult,
)

__all__ = [
    "KINDS",
    "BasicAuth",
    "BasicAuthSpec",
    "check_secret",
    "md5_crypt",
    "secret_lines",
    "unauthorized",
]

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_MD5_SWAPS = (12, 6, 0, 13, 7, 1, 14, 8, 2, 15, 9, 3, 5, 10, 4, 11)
_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2x$", b"$2y$")
#: How many successful (user, password, hash) checks are remembered.
CACHE_SIZE = 1024
BASIC_AUTH_SECRET = "kubernetes.io/basic-auth"


def md5_crypt(password: bytes, salt: bytes, magic: bytes) -> bytes:
    """MD5-crypt as the htpasswd library computes it: ``magic + salt + "$" + hash``."""
    digest = hashlib.md5(password + magic + salt)
    mixin = hashlib.md5(password + salt + password).digest()
    digest.update(bytes(mixin[i % 16] for i in range(len(password))))
    i = len(password)
    while i:
        digest.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = digest.digest()
    for i in range(1000):
        step = hashlib.md5(password if i & 1 else final)
        if i % 3:
            step.update(salt)
        if i % 7:
            step.update(password)
        step.update(final if i & 1 else password)
        final = step.digest()
    out = bytearray()
    value = bits = 0
    for index in _MD5_SWAPS:
        value |= final[index] << bits
        bits += 8
        while bits > 6:
            out.append(_ITOA64[value & 0x3F])
            value >>= 6
            bits -= 6
    out.append(_ITOA64[value & 0x3F])
    return magic + salt + b"$" + bytes(out)


def _check_md5(password: bytes, hashed: bytes) -> bool:
    parts = hashed.split(b"$", 3)
    if len(parts) != 4:
        return False
    return hmac.compare_digest(md5_crypt(password, parts[2], b"$" + parts[1] + b"$"), hashed)


def _check_sha(password: bytes, hashed: bytes) -> bool:
    expected = base64.b64encode(hashlib.sha1(password).digest())
    return hmac.compare_digest(hashed[5:], expected)


def _check_bcrypt(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    try:
        return bool(bcrypt.checkpw(password, hashed))
    except ValueError:
        return False


def check_secret(password: str, secret: str) -> bool:
    """Whether `password` matches the htpasswd `secret` (MD5-crypt unless another prefix)."""
    pw = password.encode("utf-8", "surrogateescape")
    hashed = secret.encode("utf-8", "surrogateescape")
    if hashed.startswith(b"{SHA}"):
        return _check_sha(pw, hashed)
    if hashed.startswith(_BCRYPT_PREFIXES):
        return _check_bcrypt(pw, hashed)
    return _check_md5(pw, hashed)


def is_slow(secret: str) -> bool:
    """bcrypt costs milliseconds to seconds; the others microseconds."""
    return secret.encode("utf-8", "surrogateescape").startswith(_BCRYPT_PREFIXES)


def secret_lines(context: BuildContext, name: str) -> List[str]:
    """The credential lines of Secret `name` as Traefik's CRD provider reads them.

    The Secret must hold exactly one key whose value has one credential per line; lines
    are trimmed and blank or ``#`` lines skipped, as in a users file (Traefik's CRD provider
    would refuse a comment line instead).
    """
    data = context.secret(name)
    if data is None:
        raise BuildError(f"secret {context.namespace}/{name} not found")
    if len(data) != 1:
        raise BuildError(
            f"found {len(data)} elements for secret {context.namespace}/{name}, "
            "must be single element exactly"
        )
    (value,) = data.values()
    text = value.decode("utf-8", "surrogateescape")
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise BuildError(f"secret {context.namespace}/{name} does not contain any credentials")
    return lines


def secret_type(context: BuildContext, name: str, data: Dict[str, bytes]) -> str:
    """The Secret's type from the context when it can tell, else guessed from its keys."""
    reader = getattr(context, "secret_type", None)
    if reader is not None:
        found = reader(name)
        if found:
            return str(found)
    if "username" in data and "password" in data and len(data) == 2:
        return BASIC_AUTH_SECRET
    return "Opaque"


def basic_auth_lines(context: BuildContext, name: str) -> List[str]:
    """basicAuth's users from a Secret: a basic-auth Secret is one user whose password is
    stored as {SHA} (as Traefik does), any other Secret holds htpasswd lines."""
    data = context.secret(name)
    if data is None:
        raise BuildError(f"secret {context.namespace}/{name} not found")
    if secret_type(context, name, data) != BASIC_AUTH_SECRET:
        return secret_lines(context, name)
    username, password = data.get("username"), data.get("password")
    if username is None or password is None:
        raise BuildError(
            f"secret {context.namespace}/{name} of type {BASIC_AUTH_SECRET} "
            "must contain both username and password keys"
        )
    if not username or not password:
        raise BuildError(
            f"secret {context.namespace}/{name} of type {BASIC_AUTH_SECRET} "
            "must contain non-empty username and password"
        )
    digest = base64.b64encode(hashlib.sha1(password).digest()).decode("ascii")
    return [username.decode("utf-8", "surrogateescape") + ":{SHA}" + digest]


def unauthorized(challenge: str) -> Answer:
    """The 401 the auth library answers with."""
    return Answer(
        401,
        (("Www-Authenticate", challenge), ("Content-Type", "text/plain")),
        b"401 Unauthorized\n",
    )


def parse_basic_user(line: str) -> Optional[Tuple[str, str]]:
    """``name:hash`` with exactly one colon, else None."""
    parts = line.split(":")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def read_users(fields: Fields, check: Callable[[str], Optional[Any]], what: str) -> Tuple[str, ...]:
    """The inline `users` lines, each checked where it is written."""
    users = []
    for item, path, line in fields.items("users"):
        if not isinstance(item, str):
            raise FieldError(line, path, "must be a string")
        if check(item) is None:
            raise FieldError(line, path, f"must be {what}")
        users.append(item)
    return tuple(users)


def refuse_users_file(fields: Fields) -> None:
    if fields.has("usersFile"):
        raise fields.fail(
            "usersFile",
            "is not read from Kubernetes resources (as in Traefik's CRD); "
            "put the users in a Secret named by secret",
        )


@attrs.frozen
class AuthSpec:
    """What basicAuth and digestAuth read alike: users inline or from a Secret, the realm,
    the header holding the user for the backend, whether the credentials are removed."""

    users: Tuple[str, ...] = ()
    secret: str = ""
    realm: str = "traefik"
    header_field: str = ""
    remove_header: bool = False


BasicAuthSpec = AuthSpec


def parse_auth(
    fields: Fields, parse_user: Callable[[str], object], what: str, kind: str
) -> AuthSpec:
    """The section of an auth kind: ``parse_user`` checks each user line (``what`` says
    its form in errors); ``kind`` names the kind in the missing-users error."""
    refuse_users_file(fields)
    users = read_users(fields, parse_user, what)
    spec = AuthSpec(
        users=users,
        secret=fields.string("secret"),
        realm=fields.string("realm") or "traefik",
        header_field=fields.string("headerField"),
        remove_header=fields.boolean("removeHeader", False),
    )
    fields.done()
    if not spec.users and not spec.secret:
        raise fields.whole(f"{kind} needs a secret (or users)")
    return spec


def parse(fields: Fields) -> AuthSpec:
    return parse_auth(fields, parse_basic_user, "name:hash (one colon)", "basicAuth")


def decode_basic(header: Optional[str]) -> Optional[Tuple[str, str]]:
    """Go's Request.BasicAuth: user and password from ``Basic base64(user:password)``."""
    if header is None or len(header) < 6 or header[:6].lower() != "basic ":
        return None
    encoded = header[6:]
    body = encoded.rstrip("=")
    # Go's StdEncoding wants whole quanta and at most two "=" (Python tolerates more).
    if len(encoded) % 4 or len(encoded) - len(body) > 2:
        return None
    try:
        raw = base64.b64decode(encoded.encode("latin-1"), validate=True)
    except (ValueError, binascii.Error):
        return None
    text = raw.decode("utf-8", "surrogateescape")
    user, colon, password = text.partition(":")
    return (user, password) if colon else None


def set_user_header(request: Request, field: str, user: str) -> None:
    """Replace any `field` header with the user, spelled as configured (as Traefik does)."""
    request.headers.remove(field)
    request.headers.items.append((field, user))


@attrs.define(eq=False)
class BasicAuth:
    """One built basicAuth step."""

    name: str
    users: Dict[str, str]
    realm: str
    header_field: str
    remove_header: bool
    #: Runs a slow (bcrypt) check off the reactor thread; returns a Deferred or the value.
    run_slow: Callable[[Callable[[], bool]], Any]
    _cache: collections.OrderedDict[bytes, None] = attrs.Factory(collections.OrderedDict)
    _pending: Dict[bytes, Any] = attrs.Factory(dict)

    def handle(self, request: Request) -> StepResult:
        credentials = decode_basic(request.headers.get("Authorization"))
        if credentials is None:
            return self._refuse()
        user, password = credentials
        secret = self.users.get(user)
        known = secret is not None
        if secret is None:
            # Unknown users still cost one check, so timing does not tell names apart.
            secret = next(iter(self.users.values()))
        key = hashlib.sha256(
            "\0".join((user, password, secret)).encode("utf-8", "surrogateescape")
        ).digest()
        if known and key in self._cache:
            self._cache.move_to_end(key)
            self._accept(request, user)
            return None
        if not is_slow(secret):
            return self._decide(request, user, known, key, check_secret(password, secret))
        pending = self._pending.get(key)
        if pending is None:
            result = self.run_slow(lambda: check_secret(password, secret))
            if not hasattr(result, "addCallback"):
                return self._decide(request, user, known, key, bool(result))
            pending = self._pending[key] = _Shared(result, lambda: self._pending.pop(key, None))
        return pending.wait().addCallback(lambda ok: self._decide(request, user, known, key, ok))

    def _decide(self, request: Request, user: str, known: bool, key: bytes, ok: bool) -> StepResult:
        if not (ok and known):
            return self._refuse()
        self._cache[key] = None
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._accept(request, user)
        return None

    def _accept(self, request: Request, user: str) -> None:
        request.notes["auth_user"] = user
        if self.header_field:
            set_user_header(request, self.header_field, user)
        if self.remove_header:
            request.headers.remove("Authorization")

    def _refuse(self) -> Answer:
        return unauthorized(f'Basic realm="{self.realm}"')


class _Shared:
    """One slow check that several identical requests wait for (computed once)."""

    def __init__(self, deferred: Any, done: Callable[[], None]) -> None:
        self.waiters: List[Any] = []
        self.result: Optional[bool] = None
        deferred.addBoth(self._fire)
        self._done = done

    def _fire(self, result: Any) -> None:
        ok = result is True
        self.result = ok
        self._done()
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(ok)

    def wait(self) -> Any:
        from twisted.internet.defer import Deferred, succeed

        if self.result is not None:
            return succeed(self.result)
        waiter: Deferred[bool] = Deferred()
        self.waiters.append(waiter)
        return waiter


def thread_runner(reactor: Any) -> Callable[[Callable[[], bool]], Any]:
    """Run slow checks in the reactor's thread pool; inline when it has none (a Clock)."""
    if not hasattr(reactor, "getThreadPool"):
        return lambda check: check()
    from twisted.internet.threads import deferToThreadPool

    return lambda check: deferToThreadPool(reactor, reactor.getThreadPool(), check)


def build(spec: BasicAuthSpec, name: str, context: BuildContext) -> BasicAuth:
    lines: List[str] = []
    if spec.secret:
        lines.extend(basic_auth_lines(context, spec.secret))
    lines.extend(spec.users)
    users: Dict[str, str] = {}
    for line in lines:
        parsed = parse_basic_user(line)
        if parsed is None:
            raise BuildError(f"error parsing BasicUser: {line}")
        users[parsed[0]] = parsed[1]
    if not users:
        raise BuildError("no users found")
    return BasicAuth(
        name,
        users,
        spec.realm,
        spec.header_field,
        spec.remove_header,
        thread_runner(context.reactor),
    )


KINDS = (MiddlewareKind("basicAuth", parse, build),)
