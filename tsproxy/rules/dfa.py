"""A linear-time matcher for Go regex trees: a Thompson NFA run as a lazily built, bounded DFA.

For patterns Python's backtracking ``re`` could blow up on, as RE2 does; it must not parse text.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

from tsproxy.rules import charclass
from tsproxy.rules.regex_syntax import Alt, Assert, Chars, Concat, Node, Repeat

# Kinds of the character on either side of a position, for empty-width assertions.
EDGE, NEWLINE, WORD, OTHER = 0, 1, 2, 3
_WORD_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")

MAX_STATES = 4096  # cached DFA states before the cache is dropped and rebuilt


def _kind(ch: str) -> int:
    if ch == "\n":
        return NEWLINE
    return WORD if ch in _WORD_CHARS else OTHER


def _assertion_holds(kind: str, before: int, after: int) -> bool:
    if kind == "bot":
        return before == EDGE
    if kind == "eot":
        return after == EDGE
    if kind == "bol":
        return before in (EDGE, NEWLINE)
    if kind == "eol":
        return after in (EDGE, NEWLINE)
    word_boundary = (before == WORD) != (after == WORD)
    return word_boundary if kind == "wordb" else not word_boundary


class _Program:
    """Thompson NFA: parallel lists indexed by instruction number."""

    def __init__(self) -> None:
        self.op: List[str] = []  # char, split, assert, match, jump
        self.test: List[Optional[Callable[[str], object]]] = []
        self.assertion: List[str] = []
        self.out: List[int] = []
        self.out2: List[int] = []

    def add(self, op: str) -> int:
        self.op.append(op)
        self.test.append(None)
        self.assertion.append("")
        self.out.append(-1)
        self.out2.append(-1)
        return len(self.op) - 1

    def emit(self, node: Node, next_pc: int) -> int:
        """Instructions matching node then continuing at next_pc; returns the entry pc."""
        if isinstance(node, Chars):
            pc = self.add("char")
            source = charclass.to_python(node.ranges, node.negated, node.fold)
            self.test[pc] = re.compile(source).match
            self.out[pc] = next_pc
            return pc
        if isinstance(node, Assert):
            pc = self.add("assert")
            self.assertion[pc] = node.kind
            self.out[pc] = next_pc
            return pc
        if isinstance(node, Concat):
            for item in reversed(node.items):
                next_pc = self.emit(item, next_pc)
            return next_pc
        if isinstance(node, Alt):
            entries = [self.emit(branch, next_pc) for branch in node.branches]
            entry = entries[-1]
            for other in reversed(entries[:-1]):
                pc = self.add("split")
                self.out[pc], self.out2[pc] = other, entry
                entry = pc
            return entry
        return self.emit_repeat(node, next_pc)

    def emit_repeat(self, node: Repeat, next_pc: int) -> int:
        if node.max < 0:
            loop = self.add("split")
            body = self.emit(node.body, loop)
            self.out[loop], self.out2[loop] = body, next_pc
            tail = loop
        else:
            tail = next_pc
            for _ in range(node.max - node.min):
                pc = self.add("split")
                body = self.emit(node.body, tail)
                self.out[pc], self.out2[pc] = body, next_pc
                tail = pc
        for _ in range(node.min):
            tail = self.emit(node.body, tail)
        return tail


class _State:
    __slots__ = ("pcs", "before", "transitions", "end_match", "dead")

    def __init__(self, pcs: FrozenSet[int], before: int) -> None:
        self.pcs = pcs
        self.before = before
        self.transitions: Dict[str, object] = {}
        self.end_match: Optional[bool] = None
        self.dead = False


_MATCHED = object()


class Searcher:
    """Go's MatchString for one compiled tree, in time linear in the subject."""

    def __init__(self, node: Node) -> None:
        program = _Program()
        match_pc = program.add("match")
        self.program = program
        self.start = program.emit(node, match_pc)
        self.states: Dict[Tuple[FrozenSet[int], int], _State] = {}
        self.restart_only = frozenset([self.start])
        self.anchored = all(
            not any(self._closure(self.restart_only, before, after))
            for before in (NEWLINE, WORD, OTHER)
            for after in (EDGE, NEWLINE, WORD, OTHER)
        )

    def _closure(self, pcs: FrozenSet[int], before: int, after: int) -> Tuple[List[int], bool]:
        """Character instructions reachable without consuming, and whether MATCH is."""
        program = self.program
        seen = set()
        stack = list(pcs)
        chars: List[int] = []
        matched = False
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = program.op[pc]
            if op == "char":
                chars.append(pc)
            elif op == "split":
                stack.append(program.out2[pc])
                stack.append(program.out[pc])
            elif op == "assert":
                if _assertion_holds(program.assertion[pc], before, after):
                    stack.append(program.out[pc])
            elif op == "match":
                matched = True
        return chars, matched

    def _state(self, pcs: FrozenSet[int], before: int) -> _State:
        key = (pcs, before)
        state = self.states.get(key)
        if state is None:
            if len(self.states) >= MAX_STATES:
                # Bounded memory: forget every cached transition, as RE2 does.
                for old in self.states.values():
                    old.transitions.clear()
                self.states.clear()
            state = self.states[key] = _State(pcs, before)
            # Only the restart thread is left and it cannot start a match past position 0
            # (an anchored pattern): nothing later in the subject can match.
            state.dead = before != EDGE and pcs == self.restart_only and self.anchored
        return state

    def _step(self, state: _State, ch: str) -> object:
        chars, matched = self._closure(state.pcs, state.before, _kind(ch))
        if matched:
            result: object = _MATCHED
        else:
            program = self.program
            following = {program.out[pc] for pc in chars if program.test[pc](ch)}  # type: ignore[misc]
            following.add(self.start)  # unanchored search: a match may start anywhere
            result = self._state(frozenset(following), _kind(ch))
        state.transitions[ch] = result
        return result

    def search(self, text: str) -> bool:
        state = self._state(frozenset([self.start]), EDGE)
        for ch in text:
            if state.dead:
                return False
            following = state.transitions.get(ch)
            if following is None:
                following = self._step(state, ch)
            if following is _MATCHED:
                return True
            state = following  # type: ignore[assignment]
        if state.end_match is None:
            state.end_match = self._closure(state.pcs, state.before, EDGE)[1]
        return state.end_match


def compile_search(node: Node) -> Callable[[str], bool]:
    """A function telling whether the tree matches anywhere in a string."""
    return Searcher(node).search
