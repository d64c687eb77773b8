"""Turns a parsed rule tree into one predicate, given the matchers a syntax offers.

Spellings, Traefik's argument checks, and/or/not; it must not define any matcher itself.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Sequence, Tuple

import attrs

from tsproxy.rules.parse import And, Call, Node, Not, Or, RuleError

Predicate = Callable[[Any], bool]


@attrs.frozen
class Matcher:
    """One matcher of one syntax: its declared name, accepted arities, and its builder."""

    name: str
    build: Callable[[Call], Predicate]
    # None = one or more arguments (v2's "any of" forms); else the allowed counts.
    arities: Optional[Tuple[int, ...]] = (1,)


def by_name(*matchers: Matcher) -> Dict[str, Matcher]:
    """Matchers keyed by their declared names."""
    return {matcher.name: matcher for matcher in matchers}


def spellings(name: str) -> Tuple[str, ...]:
    """The four spellings Traefik registers for a matcher: as declared, lower, UPPER, Title."""
    lower = name.lower()
    return (name, lower, name.upper(), lower[:1].upper() + lower[1:])


@attrs.frozen
class Syntax:
    """The matchers one rule syntax offers, indexed by every accepted spelling."""

    label: str
    matchers: Mapping[str, Matcher]
    # Matchers of the other syntax, named in errors so a v2 rule in v3 gets a useful hint.
    foreign: Mapping[str, str] = attrs.field(factory=dict)
    by_spelling: Mapping[str, Matcher] = attrs.field(init=False)
    by_lower: Mapping[str, str] = attrs.field(init=False)

    @by_spelling.default
    def _index_spellings(self) -> Dict[str, Matcher]:
        return {spelled: m for m in self.matchers.values() for spelled in spellings(m.name)}

    @by_lower.default
    def _index_lower(self) -> Dict[str, str]:
        return {name.lower(): name for name in self.matchers}

    def resolve(self, call: Call) -> Matcher:
        found = self.by_spelling.get(call.name)
        if found is not None:
            return found
        declared = self.by_lower.get(call.name.lower())
        if declared is not None:
            raise RuleError(
                "matcher %r must be spelled %s" % (call.name, ", ".join(spellings(declared))),
                call.column,
            )
        hint = self.foreign.get(call.name.lower())
        if hint:
            raise RuleError(hint, call.column)
        raise RuleError(
            "unknown matcher %r (%s syntax has %s)"
            % (call.name, self.label, ", ".join(sorted(self.matchers))),
            call.column,
        )


def check_arguments(call: Call, matcher: Matcher) -> None:
    """Traefik's rules.CheckRule plus the builder's arity check."""
    if not call.args:
        raise RuleError("%s needs an argument" % matcher.name, call.column)
    for value, column in zip(call.args, call.arg_columns):
        if not value:
            raise RuleError("empty argument for %s" % matcher.name, column)
    if matcher.arities is not None and len(call.args) not in matcher.arities:
        counts = " or ".join(str(n) for n in matcher.arities)
        raise RuleError(
            "%s takes %s argument%s, got %d"
            % (matcher.name, counts, "" if counts == "1" else "s", len(call.args)),
            call.column,
        )


def _all(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 2:
        first, second = predicates
        return lambda subject: first(subject) and second(subject)
    return lambda subject: all(p(subject) for p in predicates)


def _any(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 2:
        first, second = predicates
        return lambda subject: first(subject) or second(subject)
    return lambda subject: any(p(subject) for p in predicates)


def build(node: Node, syntax: Syntax) -> Predicate:
    """One predicate for the whole tree; the first invalid leaf (left to right) raises."""
    if isinstance(node, Call):
        matcher = syntax.resolve(node)
        check_arguments(node, matcher)
        return matcher.build(node)
    if isinstance(node, Not):
        inner = build(node.operand, syntax)
        return lambda subject: not inner(subject)
    predicates = [build(operand, syntax) for operand in node.operands]
    return _all(predicates) if isinstance(node, And) else _any(predicates)


def normalize(node: Node, negate: bool = False) -> Node:
    """Push ``!`` down to the leaves with De Morgan, as Traefik's tree builder does.

    Leaves that end up negated are wrapped in a single Not.
    """
    if isinstance(node, Not):
        return normalize(node.operand, not negate)
    if isinstance(node, Call):
        return Not(node, node.column) if negate else node
    operands = tuple(normalize(operand, negate) for operand in node.operands)
    if isinstance(node, And) != negate:
        return And(operands)
    return Or(operands)


def leaves(node: Node) -> Iterable[Call]:
    """Every matcher call, left to right."""
    if isinstance(node, Call):
        yield node
    elif isinstance(node, Not):
        yield from leaves(node.operand)
    else:
        for operand in node.operands:
            yield from leaves(operand)


def required_values(
    node: Node, leaf_values: Callable[[Call], Optional[FrozenSet[str]]]
) -> Optional[FrozenSet[str]]:
    """Values one of which every match must have, or None when the rule gives no such set.

    ``leaf_values`` says, for a positive leaf, the set the subject must be in (None when
    the leaf does not constrain it). The tree must be normalized: a Not wraps only a leaf.
    """
    if isinstance(node, Call):
        return leaf_values(node)
    if isinstance(node, Not):
        return None
    found = [required_values(operand, leaf_values) for operand in node.operands]
    if isinstance(node, And):
        known = [values for values in found if values is not None]
        return min(known, key=len) if known else None
    if any(values is None for values in found):
        return None
    return frozenset().union(*found)  # type: ignore[arg-type]
