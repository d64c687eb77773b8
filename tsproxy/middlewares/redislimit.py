"""rateLimit's distributed mode: every proxy naming the same middleware takes its tokens from
one bucket per source kept in Redis, read and written atomically by one Lua script (as
Traefik 3.4+ does), with Redis's own clock so that proxies with skewed clocks agree.

The client is txredisapi (Twisted-native, pooled, AUTH with ACL user, SELECT, TLS, reply
timeouts); no reactor is imported here until a connection is made.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import attrs

from tsproxy.middlewares.base import BuildContext, BuildError

__all__ = ["SCRIPT", "RedisLimiter", "RedisSettings", "connection_settings"]

#: KEYS[1] the bucket; ARGV rate (tokens per microsecond), burst, TTL (s), maxDelay (µs),
#: and optionally the time in µs (tests drive time; proxies leave it to Redis's clock).
#: Returns {allowed 0/1, wait µs as text}. A refused request leaves the bucket as it was
#: (Traefik cancels the reservation). The bucket expires once it would be full anyway.
SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local max_delay = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if not now then
  redis.replicate_commands()
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
local state = redis.call('HMGET', key, 'last', 'tokens')
local last = tonumber(state[1]) or now
local tokens = tonumber(state[2]) or burst
if now < last then last = now end
tokens = math.min(burst, tokens + (now - last) * rate) - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
local allowed = 1
if wait > max_delay then
  allowed = 0
  tokens = tokens + 1
end
redis.call('HSET', key, 'last', now, 'tokens', tostring(tokens))
redis.call('EXPIRE', key, ttl)
return {allowed, tostring(wait)}
"""


@attrs.frozen
class RedisSettings:
    """Where and how to connect, resolved at build time (Secrets read)."""

    host: str
    port: int
    db: int = 0
    username: Optional[str] = None
    password: Optional[str] = None
    pool_size: int = 1
    dial_timeout: float = 5.0
    reply_timeout: float = 3.0
    #: An IPolicyForHTTPS for TLS, or None for plain TCP.
    tls_policy: Any = None


def connection_settings(spec: Any, context: BuildContext) -> RedisSettings:
    """The RedisSettings of a `ratelimit.RedisSpec` (Secret ``secret`` holds username and
    password, as Traefik's CRD; tls.caSecret / certSecret as forwardAuth's)."""
    host, _, port = spec.endpoints[0].rpartition(":")
    username, password = spec.username, spec.password
    if spec.secret:
        data = context.secret(spec.secret)
        if data is None:
            raise BuildError(f"redis: secret {context.namespace}/{spec.secret} not found")
        username = data.get("username", b"").decode("utf-8") or username
        password = data.get("password", b"").decode("utf-8") or password
    policy = None
    if spec.tls is not None:
        from tsproxy.middlewares.authclient import tls_policy
        from tsproxy.middlewares.forwardauth import ForwardAuthTLSSpec, tls_material

        material = tls_material(
            ForwardAuthTLSSpec(
                spec.tls.ca_secret, spec.tls.cert_secret, spec.tls.insecure_skip_verify
            ),
            context,
        )
        try:
            policy = tls_policy(material)
        except Exception as exc:  # pyOpenSSL raises several kinds for bad PEM
            raise BuildError(f"redis: tls: cannot use the certificates: {exc}") from None
    pool = spec.pool_size or 10
    if spec.max_active_conns:
        pool = min(pool, spec.max_active_conns)
    return RedisSettings(
        host=host.strip("[]"),
        port=int(port),
        db=spec.db,
        username=username or None,
        password=password or None,
        pool_size=pool,
        dial_timeout=spec.dial_timeout,
        reply_timeout=max(spec.read_timeout, spec.write_timeout),
        tls_policy=policy,
    )


@attrs.define(eq=False)
class RedisLimiter:
    """Takes tokens from the shared buckets of middleware `name`."""

    name: str
    rate: float
    burst: int
    max_delay: float
    settings: RedisSettings
    pool: Any = None
    #: Seconds since the epoch for the script instead of Redis's TIME (tests only).
    now: Any = None
    #: For the deadline of each call (dial + reply timeouts); the global one when None.
    reactor: Any = None

    @property
    def ttl(self) -> int:
        """Seconds after which an untouched bucket would be full again."""
        return max(1, int(math.ceil(self.burst / self.rate)) + 1)

    def _connection(self) -> Any:
        if self.pool is None:
            import txredisapi

            creator: Any = False
            if self.settings.tls_policy is not None:
                creator = self.settings.tls_policy.creatorForNetloc(
                    self.settings.host.encode("idna"), self.settings.port
                )
            self.pool = txredisapi.lazyConnectionPool(
                self.settings.host,
                self.settings.port,
                dbid=self.settings.db or None,
                poolsize=self.settings.pool_size,
                password=self.settings.password,
                username=self.settings.username,
                ssl_context_factory=creator,
                connectTimeout=self.settings.dial_timeout,
                replyTimeout=self.settings.reply_timeout,
                convertNumbers=False,
            )
        return self.pool

    def take(self, source: str) -> Any:
        """A Deferred of (allowed, wait seconds) for one request from `source`."""
        args = [
            repr(self.rate / 1e6),
            str(self.burst),
            str(self.ttl),
            repr(self.max_delay * 1e6),
        ]
        if self.now is not None:
            args.append(str(int(self.now() * 1e6)))
        result = self._connection().eval(SCRIPT, [f"rate:{self.name}:{source}"], args)
        if self.reactor is None:
            from twisted.internet import reactor

            self.reactor = reactor
        # Unreachable, the pool waits for a connection without end: give up as go-redis would.
        deadline = self.settings.dial_timeout + self.settings.reply_timeout
        result.addTimeout(deadline, self.reactor)
        return result.addCallback(_decision)

    def stop(self) -> Any:
        """Close the pool (no reconnection afterwards)."""
        if self.pool is not None:
            pool, self.pool = self.pool, None
            return pool.disconnect()
        return None


def _decision(reply: Any) -> Tuple[bool, float]:
    allowed, wait = reply
    if isinstance(wait, bytes):
        wait = wait.decode("ascii")
    return int(allowed) == 1, float(wait) / 1e6
