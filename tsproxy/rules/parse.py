"""Tokenizer and parser for the rule expression language shared by HTTP and TCP routers.

Go's lexical rules as Traefik inherits them, errors with columns; it knows no matcher.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import attrs


class RuleError(ValueError):
    """A rule that cannot be compiled: where (1-based column, or None) and what was expected."""

    def __init__(self, message: str, column: Optional[int] = None) -> None:
        super().__init__(message, column)
        self.message = message
        self.column = column

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return "column %d: %s" % (self.column, self.message)


@attrs.frozen
class Call:
    """A matcher call such as ``Host(`a`)``; ``name`` is the spelling written in the rule."""

    name: str
    args: Tuple[str, ...]
    column: int
    arg_columns: Tuple[int, ...]


@attrs.frozen
class Not:
    operand: Node
    column: int


@attrs.frozen
class And:
    operands: Tuple[Node, ...]


@attrs.frozen
class Or:
    operands: Tuple[Node, ...]


Node = Union[Call, Not, And, Or]


@attrs.frozen
class Token:
    kind: str  # ident, string, number, char, op, newline, eof, or the operator itself
    text: str
    start: int  # 0-based offset in the rule
    value: str = ""  # decoded string literal


# Tokens after which Go's scanner turns a newline into a semicolon: a line that ends with
# one of these ends the expression, so the next line cannot continue it.
_SEMI_AFTER = frozenset(["ident", "string", "number", "char", ")"])
_OPERATORS = (
    "&&",
    "||",
    "&^=",
    "<<=",
    ">>=",
    "...",
    "&^",
    "<<",
    ">>",
    "==",
    "!=",
    "<=",
    ">=",
    ":=",
    "<-",
    "++",
    "--",
    "+=",
    "-=",
    "*=",
    "/=",
    "%=",
    "&=",
    "|=",
    "^=",
)
_SINGLE = "+-*/%&|^<>=!()[]{},;.:~"
_SIMPLE_ESCAPES = {
    "a": 7,
    "b": 8,
    "f": 12,
    "n": 10,
    "r": 13,
    "t": 9,
    "v": 11,
    "\\": 92,
    '"': 34,
}
_HEX = "0123456789abcdefABCDEF"


def at_end(token: Token) -> bool:
    """The end of the rule, or the statement end Go inserts right before it."""
    return token.kind == "eof" or (token.kind == "newline" and not token.text)


def describe(token: Token) -> str:
    """How an error message names a token."""
    if at_end(token):
        return "end of rule"
    if token.kind == "newline":
        return "newline"
    return repr(token.text) if len(token.text) <= 30 else repr(token.text[:27] + "...")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: List[Token] = []

    def run(self) -> List[Token]:
        text = self.text
        n = len(text)
        # Go skips a byte order mark at the very start of the source.
        if text.startswith("\ufeff"):
            self.pos = 1
        while True:
            insert_semi = bool(self.tokens) and self.tokens[-1].kind in _SEMI_AFTER
            while self.pos < n:
                ch = text[self.pos]
                if ch in " \t\r":
                    self.pos += 1
                elif ch == "\n":
                    if insert_semi:
                        break
                    self.pos += 1
                else:
                    break
            if self.pos >= n:
                if insert_semi:
                    # The semicolon Go inserts at the end of the source (empty text).
                    self.tokens.append(Token("newline", "", n))
                self.tokens.append(Token("eof", "", n))
                return self.tokens
            start = self.pos
            ch = text[start]
            if ch == "\n":
                self.pos += 1
                self.tokens.append(Token("newline", "\n", start))
            elif ch.isalpha() or ch == "_":
                end = start + 1
                while end < n and (text[end].isalnum() or text[end] == "_"):
                    end += 1
                self.pos = end
                self.tokens.append(Token("ident", text[start:end], start))
            elif ch.isdigit():
                end = start + 1
                while end < n and (text[end].isalnum() or text[end] in "._"):
                    end += 1
                self.pos = end
                self.tokens.append(Token("number", text[start:end], start))
            elif ch == "`":
                self.tokens.append(self._raw_string(start))
            elif ch == '"':
                self.tokens.append(self._interpreted_string(start))
            elif ch == "'":
                end = text.find("'", start + 1)
                end = n if end < 0 else end + 1
                self.pos = end
                self.tokens.append(Token("char", text[start:end], start))
            else:
                for op in _OPERATORS:
                    if text.startswith(op, start):
                        break
                else:
                    op = ch
                    if ch not in _SINGLE:
                        raise RuleError("unexpected character %r" % ch, start + 1)
                self.pos = start + len(op)
                kind = op if op in ("&&", "||", "!", "(", ")", ",") else "op"
                self.tokens.append(Token(kind, op, start))

    def _raw_string(self, start: int) -> Token:
        end = self.text.find("`", start + 1)
        if end < 0:
            raise RuleError("string started here is never closed with '`'", start + 1)
        self.pos = end + 1
        # Go drops carriage returns from raw strings.
        value = self.text[start + 1 : end].replace("\r", "")
        return Token("string", self.text[start : end + 1], start, value)

    def _interpreted_string(self, start: int) -> Token:
        text = self.text
        n = len(text)
        out = bytearray()
        i = start + 1
        while True:
            if i >= n or text[i] == "\n":
                raise RuleError("string started here is never closed with '\"'", start + 1)
            ch = text[i]
            if ch == '"':
                break
            if ch != "\\":
                out += ch.encode("utf-8", "surrogatepass")
                i += 1
                continue
            i = self._escape(i, out)
        self.pos = i + 1
        value = out.decode("utf-8", "surrogateescape")
        return Token("string", text[start : i + 1], start, value)

    def _escape(self, i: int, out: bytearray) -> int:
        """Decode the Go escape at text[i] (a backslash) into out; return the next index."""
        text = self.text
        kind = text[i + 1] if i + 1 < len(text) else ""
        if kind in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[kind])
            return i + 2
        if kind in "01234567" and kind:
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                raise RuleError("octal escape needs exactly three octal digits", i + 1)
            value = int(digits, 8)
            if value > 255:
                raise RuleError("octal escape value %s is above 255" % digits, i + 1)
            out.append(value)
            return i + 4
        widths = {"x": 2, "u": 4, "U": 8}
        if kind in widths and kind:
            width = widths[kind]
            digits = text[i + 2 : i + 2 + width]
            if len(digits) != width or any(d not in _HEX for d in digits):
                raise RuleError(
                    "escape \\%s needs exactly %d hexadecimal digits" % (kind, width), i + 1
                )
            value = int(digits, 16)
            if kind == "x":
                out.append(value)
            elif value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                raise RuleError("escape is not a valid Unicode code point", i + 1)
            else:
                out += chr(value).encode("utf-8")
            return i + 2 + width
        raise RuleError("unknown escape sequence in string", i + 1)


def tokenize(text: str) -> List[Token]:
    """Split a rule into tokens, inserting a newline token where Go would end a statement."""
    return _Scanner(text).run()


MAX_NESTING = 100  # parentheses and '!' around one term; keeps the recursion bounded


class _Parser:
    def __init__(self, tokens: List[Token]) -> None:
        self.tokens = tokens
        self.index = 0
        self.nesting = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, expected: str, token: Optional[Token] = None) -> RuleError:
        token = token or self.token
        if token.kind == "newline" and token.text:
            return RuleError(
                "%s, found a line break after a complete term (put '&&' or '||' at the end"
                " of the line, not at the start of the next one)" % expected,
                token.start + 1,
            )
        return RuleError("%s, found %s" % (expected, describe(token)), token.start + 1)

    def parse_rule(self) -> Node:
        node = self.parse_or()
        # Go swallows exactly one inserted semicolon before requiring the end of input.
        if self.token.kind == "newline":
            self.advance()
        if self.token.kind != "eof":
            if self.token.kind == "op":
                raise RuleError(
                    "unsupported operator %r (only '&&', '||' and '!' are allowed)"
                    % self.token.text,
                    self.token.start + 1,
                )
            previous = self.tokens[self.index - 1]
            if previous.kind == "newline":
                raise RuleError(
                    "a line cannot start with %s: put '&&' or '||' at the end of the previous"
                    " line" % describe(self.token),
                    self.token.start + 1,
                )
            raise self.fail("expected '&&', '||' or end of rule")
        return node

    def parse_or(self) -> Node:
        operands = [self.parse_and()]
        while self.token.kind == "||":
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Node:
        operands = [self.parse_unary()]
        while self.token.kind == "&&":
            self.advance()
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_unary(self) -> Node:
        token = self.token
        if token.kind in ("!", "("):
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                raise RuleError("rule nests '(' and '!' too deeply", token.start + 1)
            self.advance()
            if token.kind == "!":
                node: Node = Not(self.parse_unary(), token.start + 1)
            else:
                node = self.parse_or()
                if self.token.kind != ")":
                    raise self.fail(
                        "expected ')' to close the '(' at column %d" % (token.start + 1)
                    )
                self.advance()
            self.nesting -= 1
            return node
        if token.kind == "ident":
            self.advance()
            if self.token.kind != "(":
                raise self.fail("expected '(' after matcher name %s" % token.text)
            self.advance()
            return self.parse_call(token)
        if token.kind == "string":
            raise RuleError(
                "a string needs a matcher: write e.g. Host(%s)" % token.text, token.start + 1
            )
        raise self.fail("expected a matcher, '!' or '('")

    def parse_call(self, name: Token) -> Call:
        args: List[str] = []
        columns: List[int] = []
        while self.token.kind != ")":
            token = self.token
            if token.kind != "string":
                if token.kind == "char":
                    raise RuleError(
                        'single quotes are not string quotes here; use `...` or "..."',
                        token.start + 1,
                    )
                raise self.fail('expected a string argument in `...` or "..."')
            self.advance()
            args.append(token.value)
            columns.append(token.start + 1)
            if self.token.kind == ",":
                self.advance()
            elif at_end(self.token):
                raise RuleError("expected ')' after argument", self.token.start + 1)
            elif self.token.kind != ")":
                raise self.fail("expected ',' or ')' after argument")
        self.advance()
        return Call(name.text, tuple(args), name.start + 1, tuple(columns))


def parse(text: str) -> Node:
    """Parse a rule into its tree; raise RuleError naming the column of the first problem."""
    return _Parser(tokenize(text)).parse_rule()
