"""The ordered routers of one entrypoint and the lookup of the router for a request.

Order: priority descending, then router name ascending (Traefik leaves ties unspecified);
lookups use a host and path-prefix index. It must not compute priorities.
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
    """Routers in evaluation order, indexed by required host, else by required path prefix.

    The subject is an HTTPRequestInfo or a TCPConnectionInfo, as the subclass says. A
    router is tried only when its index key fits the subject (a necessary condition of its
    rule), and always in evaluation order with the unindexed ones, so the winner is the
    one a linear scan finds.
    """

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._entries: Tuple[Entry, ...] = tuple(evaluation_order(entries))
        self._matchers: List[Callable[[Any], bool]] = [e[1].match for e in self._entries]
        self._values: List[object] = [e[3] for e in self._entries]
        self._fallback: List[int] = []
        self._buckets: Dict[str, List[int]] = {}
        by_length: Dict[int, Dict[str, List[int]]] = {}
        for position, (_, rule, _, _) in enumerate(self._entries):
            hosts = rule.required_hosts
            prefixes = getattr(rule, "required_path_prefixes", None)
            if hosts is not None:
                for host in hosts:
                    self._buckets.setdefault(host, []).append(position)
            elif prefixes is not None:
                for prefix in prefixes:
                    table = by_length.setdefault(len(prefix), {})
                    table.setdefault(prefix, []).append(position)
            else:
                self._fallback.append(position)
        # Ascending prefix lengths: a lookup slices the path once per distinct length.
        self._prefix_tables = sorted(by_length.items())

    def _key(self, subject: Any) -> str:
        raise NotImplementedError

    def _candidates(self, subject: Any) -> Optional[List[int]]:
        """Positions of the indexed routers whose key fits the subject, in order."""
        bucket = self._buckets.get(self._key(subject))
        if not self._prefix_tables:
            return bucket
        path = subject.path
        found = list(bucket) if bucket else []
        for length, table in self._prefix_tables:
            if length > len(path):
                break
            hit = table.get(path[:length])
            if hit:
                found.extend(hit)
        return sorted(set(found)) if found else None

    def match(self, subject: Any) -> Optional[object]:
        """The value of the first router (in evaluation order) whose rule matches, or None."""
        matchers = self._matchers
        values = self._values
        fallback = self._fallback
        candidates = self._candidates(subject)
        if candidates is None:
            for position in fallback:
                if matchers[position](subject):
                    return values[position]
            return None
        # Merge the candidates with the unindexed routers, keeping evaluation order.
        index = 0
        count = len(fallback)
        for position in candidates:
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
