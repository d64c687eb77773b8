"""The circuit breaker's pure parts, as oxy's cbreaker (behind Traefik's circuitBreaker):
the expression language (metrics compared with literals, && || and parentheses, type
checked as oxy's predicate parser does), rolling metrics, and the standby / tripped /
recovering state machine. Time is a number of seconds handed in; no Twisted, no I/O."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import attrs

__all__ = ["Breaker", "ExpressionError", "Metrics", "parse_expression"]


class ExpressionError(ValueError):
    """A circuit-breaker expression that does not parse; the message says where (column)."""


#: A parsed expression: true when the metrics (or a retry Attempt) meet it.
Condition = Callable[[Any], bool]

_TOKEN = re.compile(
    r"\s*(?:(?P<string>\"[^\"\\\\]*\")|(?P<float>\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|(?P<int>\d+)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<op>&&|\|\||>=|<=|==|!=|[<>(),!]))"
)

#: Metric name -> (argument kinds, result kind).
_METRICS: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "NetworkErrorRatio": ((), "float"),
    "ResponseCodeRatio": (("int", "int", "int", "int"), "float"),
    "LatencyAtQuantileMS": (("float",), "int"),
    "RequestThreshold": ((), "int"),
}
_COMPARE: Dict[str, Callable[[Any, Any], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _tokens(text: str) -> List[Tuple[str, str, int]]:
    out: List[Tuple[str, str, int]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = len(text) - len(text[position:].lstrip()) + 1
            raise ExpressionError(f"column {column}: unexpected {text[column - 1]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    out.append(("end", "", len(text) + 1))
    return out


@attrs.define
class _Parser:
    tokens: List[Tuple[str, str, int]]
    #: Function name -> (argument kinds, result kind: float, int, bool or string).
    functions: Dict[str, Tuple[Tuple[str, ...], str]] = attrs.Factory(lambda: dict(_METRICS))
    #: Makes the evaluator of a call from its name and arguments.
    make: Callable[[str, List[Any]], Callable[[Any], Any]] = attrs.Factory(lambda: _metric)
    index: int = 0

    def peek(self) -> Tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> Tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, value: str) -> None:
        kind, text, column = self.take()
        if text != value or kind == "end":
            found = "the end" if kind == "end" else repr(text)
            raise ExpressionError(f"column {column}: expected {value!r}, found {found}")

    def either(self) -> Condition:
        parts = [self.both()]
        while self.peek()[1] == "||":
            self.take()
            parts.append(self.both())
        if len(parts) == 1:
            return parts[0]
        return lambda metrics: any(part(metrics) for part in parts)

    def both(self) -> Condition:
        parts = [self.primary()]
        while self.peek()[1] == "&&":
            self.take()
            parts.append(self.primary())
        if len(parts) == 1:
            return parts[0]
        return lambda metrics: all(part(metrics) for part in parts)

    def primary(self) -> Condition:
        kind, text, column = self.peek()
        if text == "(" and kind == "op":
            self.take()
            inner = self.either()
            self.expect(")")
            return inner
        if kind == "op" and text == "!":
            raise ExpressionError(f"column {column}: the operator ! is not supported")
        return self.comparison()

    def literal(self) -> Tuple[str, Any, int]:
        kind, text, column = self.take()
        if kind == "string":
            return kind, text[1:-1], column
        if kind not in ("int", "float"):
            found = "the end" if kind == "end" else repr(text)
            raise ExpressionError(f"column {column}: expected a number, found {found}")
        return kind, (int(text) if kind == "int" else float(text)), column

    def comparison(self) -> Condition:
        kind, name, column = self.take()
        if kind != "name":
            found = "the end" if kind == "end" else repr(name)
            raise ExpressionError(f"column {column}: expected a metric, found {found}")
        if name not in self.functions:
            known = ", ".join(sorted(self.functions))
            raise ExpressionError(f"column {column}: unknown function {name} (known: {known})")
        kinds, result = self.functions[name]
        self.expect("(")
        args: List[Any] = []
        for position, wanted in enumerate(kinds):
            if position:
                self.expect(",")
            got, value, at = self.literal()
            if got != wanted:
                raise ExpressionError(
                    f"column {at}: {name} argument {position + 1} must be a {wanted} literal"
                )
            args.append(value)
        self.expect(")")
        metric = self.make(name, args)
        if result == "bool":
            return lambda metrics: bool(metric(metrics))
        op_kind, op, op_column = self.take()
        if result == "string" and op not in ("==", "!="):
            raise ExpressionError(f"column {op_column}: {name}() is compared with == or !=")
        if op not in _COMPARE or op_kind != "op":
            raise ExpressionError(
                f"column {op_column}: {name}() must be compared (> >= < <= == !=) with a "
                f"{result} literal"
            )
        got, limit, at = self.literal()
        if got != result:
            raise ExpressionError(
                f"column {at}: {name}() is a {result}: compare it with a {result} literal"
            )
        compare = _COMPARE[op]
        return lambda metrics: compare(metric(metrics), limit)


def _metric(name: str, args: List[Any]) -> Callable[[Any], Any]:
    if name == "NetworkErrorRatio":
        return lambda metrics: metrics.network_error_ratio()
    if name == "ResponseCodeRatio":
        a, b, c, d = (int(x) for x in args)
        return lambda metrics: metrics.response_code_ratio(a, b, c, d)
    if name == "LatencyAtQuantileMS":
        quantile = args[0]
        return lambda metrics: metrics.latency_at_quantile_ms(quantile)
    return lambda metrics: metrics.total()


def parse_expression(
    text: str,
    functions: Optional[Mapping[str, Tuple[Tuple[str, ...], str]]] = None,
    make: Optional[Callable[[str, List[Any]], Callable[[Any], Any]]] = None,
) -> Condition:
    """The condition `text` states, or ExpressionError (with the column) when it is not one
    oxy's parser accepts. `functions` and `make` give another vocabulary than the circuit
    breaker's metrics (the buffering middleware's retry expression)."""
    if not text.strip():
        raise ExpressionError("the expression is empty")
    parser = _Parser(_tokens(text))
    if functions is not None and make is not None:
        parser.functions, parser.make = dict(functions), make
    condition = parser.either()
    kind, token, column = parser.peek()
    if kind != "end":
        raise ExpressionError(f"column {column}: unexpected {token!r}")
    return condition


#: Counters: 10 buckets of one second; latencies: 6 buckets of 10 seconds (oxy's RTMetrics).
_COUNTER_BUCKETS, _COUNTER_WIDTH = 10, 1.0
_LATENCY_BUCKETS, _LATENCY_WIDTH = 6, 10.0
_MAX_LATENCY_MS = 3_600_000


@attrs.define
class Metrics:
    """Rolling response counts by status and latencies (ms), with `now` in seconds."""

    now: Callable[[], float]
    #: bucket number -> status -> count
    codes: Dict[int, Dict[int, int]] = attrs.Factory(dict)
    #: bucket number -> latency ms -> count
    latencies: Dict[int, Dict[int, int]] = attrs.Factory(dict)

    def record(self, status: int, latency: float) -> None:
        now = self.now()
        bucket = self.codes.setdefault(int(now // _COUNTER_WIDTH), {})
        bucket[status] = bucket.get(status, 0) + 1
        ms = min(_MAX_LATENCY_MS, max(0, int(latency * 1000)))
        histogram = self.latencies.setdefault(int(now // _LATENCY_WIDTH), {})
        histogram[ms] = histogram.get(ms, 0) + 1
        self._expire(now)

    def reset(self) -> None:
        self.codes.clear()
        self.latencies.clear()

    def _expire(self, now: float) -> None:
        first = int(now // _COUNTER_WIDTH) - _COUNTER_BUCKETS + 1
        for key in [key for key in self.codes if key < first]:
            del self.codes[key]
        first = int(now // _LATENCY_WIDTH) - _LATENCY_BUCKETS + 1
        for key in [key for key in self.latencies if key < first]:
            del self.latencies[key]

    def _counts(self) -> Dict[int, int]:
        self._expire(self.now())
        total: Dict[int, int] = {}
        for bucket in self.codes.values():
            for status, count in bucket.items():
                total[status] = total.get(status, 0) + count
        return total

    def total(self) -> int:
        return sum(self._counts().values())

    def network_error_ratio(self) -> float:
        counts = self._counts()
        total = sum(counts.values())
        if not total:
            return 0.0
        return (counts.get(502, 0) + counts.get(504, 0)) / total

    def response_code_ratio(self, start: int, end: int, div_start: int, div_end: int) -> float:
        counts = self._counts()
        part = sum(n for code, n in counts.items() if start <= code < end)
        whole = sum(n for code, n in counts.items() if div_start <= code < div_end)
        return part / whole if whole else 0.0

    def latency_at_quantile_ms(self, quantile: float) -> int:
        """The latency (ms) under which `quantile` percent of the recorded ones are (HDR's
        ValueAtQuantile rounding), 0 when none is recorded."""
        self._expire(self.now())
        merged: Dict[int, int] = {}
        for histogram in self.latencies.values():
            for ms, count in histogram.items():
                merged[ms] = merged.get(ms, 0) + count
        total = sum(merged.values())
        if not total:
            return 0
        wanted = max(1, int(min(quantile, 100.0) / 100 * total + 0.5))
        seen = 0
        for ms in sorted(merged):
            seen += merged[ms]
            if seen >= wanted:
                return ms
        return max(merged)


STANDBY, TRIPPED, RECOVERING = "standby", "tripped", "recovering"


@attrs.define
class Breaker:
    """oxy's CircuitBreaker state machine, driven by `allow` before and `record` after each
    request, with `now` in seconds."""

    condition: Condition
    now: Callable[[], float]
    check_period: float = 0.1
    fallback_duration: float = 10.0
    recovery_duration: float = 10.0
    state: str = STANDBY
    until: float = 0.0
    last_check: float = float("-inf")
    metrics: Optional[Metrics] = None
    recovery_start: float = 0.0
    allowed: int = 0
    denied: int = 0

    def __attrs_post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = Metrics(self.now)

    def allow(self) -> bool:
        """Whether this request goes to the service (else it gets the fallback)."""
        if self.state == STANDBY:
            return True
        now = self.now()
        if self.state == TRIPPED:
            if now < self.until:
                return False
            self.state, self.until = RECOVERING, now + self.recovery_duration
            self.recovery_start, self.allowed, self.denied = now, 0, 0
        if now > self.until:
            self.state, self.until = STANDBY, now
            return True
        target = 0.5 * (now - self.recovery_start) / self.recovery_duration
        ratio = (self.allowed + 1) / (self.allowed + 1 + self.denied)
        if ratio < target:
            self.allowed += 1
            return True
        self.denied += 1
        return False

    def record(self, status: int, latency: float) -> None:
        """A request the service handled ended: count it, and check at most once a period."""
        assert self.metrics is not None
        self.metrics.record(status, latency)
        now = self.now()
        if now < self.last_check:
            return
        self.last_check = now + self.check_period
        if self.state == TRIPPED or not self.condition(self.metrics):
            return
        self.state, self.until = TRIPPED, now + self.fallback_duration
        self.metrics.reset()
