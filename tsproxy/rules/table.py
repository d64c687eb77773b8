"""The ordered set of routers of one entrypoint, and the lookup of the router for a request.

Evaluation order is priority descending, then router name ascending: Traefik leaves equal
priorities in an unspecified (Go map and unstable sort) order, so tsproxy picks this
deterministic one. Routers whose rule requires a literal host are indexed by that host, so
a lookup costs the same with 10 or 10,000 host routes; the result is always exactly that
of trying every router in order. It must not compute priorities (the caller passes them).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from tsproxy.rules.request import HTTPRequestInfo, TCPConnectionInfo

# (name, rule, priority, value); the rule is an HTTPRule or a TCPRule.
Entry = Tuple[str, Any, int, object]


def evaluation_order(entries: Iterable[Entry]) -> List[Entry]:
    """Entries sorted by priority descending, then name ascending (input order if both tie)."""
    return sorted(entries, key=lambda entry: (-entry[2], entry[0]))


class _IndexedRouters:
    """Routers in evaluation order, with an index from required host to router positions.

    The subject is an HTTPRequestInfo or a TCPConnectionInfo, as the subclass says.
    """

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._entries: Tuple[Entry, ...] = tuple(evaluation_order(entries))
        self._matchers: List[Callable[[Any], bool]] = [e[1].match for e in self._entries]
        self._values: List[object] = [e[3] for e in self._entries]
        self._fallback: List[int] = []
        self._buckets: Dict[str, List[int]] = {}
        for position, (_, rule, _, _) in enumerate(self._entries):
            hosts = rule.required_hosts
            if hosts is None:
                self._fallback.append(position)
            else:
                for host in hosts:
                    self._buckets.setdefault(host, []).append(position)

    def _key(self, subject: Any) -> str:
        raise NotImplementedError

    def match(self, subject: Any) -> Optional[object]:
        """The value of the first router (in evaluation order) whose rule matches, or None."""
        matchers = self._matchers
        values = self._values
        fallback = self._fallback
        bucket = self._buckets.get(self._key(subject))
        if bucket is None:
            for position in fallback:
                if matchers[position](subject):
                    return values[position]
            return None
        # Merge the host's routers with the unindexed ones, keeping evaluation order.
        index = 0
        count = len(fallback)
        for position in bucket:
            while index < count and fallback[index] < position:
                other = fallback[index]
                if matchers[other](subject):
                    return values[other]
                index += 1
            if matchers[position](subject):
                return values[position]
        while index < count:
            other = fallback[index]
            if matchers[other](subject):
                return values[other]
            index += 1
        return None

    def ordered(self) -> Tuple[Entry, ...]:
        """Every (name, rule, priority, value) in evaluation order."""
        return self._entries

    def explain(self, subject: Any) -> Tuple[Tuple[str, int, bool], ...]:
        """(name, priority, matched) for every router in evaluation order."""
        return tuple(
            (name, priority, bool(rule.match(subject))) for name, rule, priority, _ in self._entries
        )

    def __len__(self) -> int:
        return len(self._entries)


class RouterSet(_IndexedRouters):
    """HTTP routers of one entrypoint: ``RouterSet([(name, rule, priority, value), ...])``."""

    def _key(self, subject: HTTPRequestInfo) -> str:
        return subject.host


class TCPRouterSet(_IndexedRouters):
    """TCP routers of one entrypoint, with the same shape as RouterSet."""

    def _key(self, subject: TCPConnectionInfo) -> str:
        sni = subject.sni
        return sni.rstrip(".") if sni.endswith(".") else sni
