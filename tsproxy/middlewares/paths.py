"""The path-rewriting middlewares: stripPrefix, stripPrefixRegex, addPrefix, replacePath and
replacePathRegex, as Traefik 3.7 runs them on Go's decoded Path and escaped RawPath.

Pure steps over the request head; the escaped path in `Request.path` is what is forwarded.
"""

from __future__ import annotations

from typing import Optional, Tuple

import attrs

from tsproxy.config.schema import Fields
from tsproxy.middlewares.base import BuildContext, BuildError, MiddlewareKind, Request, StepResult
from tsproxy.middlewares.goregexp import GoRegexp, RegexError, compile_go
from tsproxy.middlewares.gourl import (
    cut_raw,
    has_dot_segments,
    http_error,
    path_bytes,
    unescape,
    wire_path,
)

__all__ = ["KINDS"]

FORWARDED_PREFIX = "X-Forwarded-Prefix"
REPLACED_PATH = "X-Replaced-Path"


def _ensure_leading_slash(path: str) -> str:
    return path if not path or path.startswith("/") else "/" + path


def _strip(request: Request, decoded: str, matched: str, force_slash: bool) -> StepResult:
    """Remove `matched` (a decoded prefix of the path) from both path forms; 400 when what
    is left holds dot segments (Traefik 3.7 refuses what path cleaning would change)."""
    rest = decoded[len(matched) :]
    raw_rest = cut_raw(request.path, len(path_bytes(matched)))
    if force_slash:
        rest = "/" + (rest[1:] if rest.startswith("/") else rest)
        raw_rest = "/" + (raw_rest[1:] if raw_rest.startswith("/") else raw_rest)
    else:
        rest = _ensure_leading_slash(rest)
        raw_rest = _ensure_leading_slash(raw_rest)
    if has_dot_segments(rest):
        return http_error(400)
    request.headers.add(FORWARDED_PREFIX, matched)
    request.path = wire_path(raw_rest, rest)
    return None


# -- stripPrefix ---------------------------------------------------------------------------


@attrs.frozen
class StripPrefixSpec:
    prefixes: Tuple[str, ...] = ()
    force_slash: bool = False


def parse_strip_prefix(fields: Fields) -> StripPrefixSpec:
    spec = StripPrefixSpec(
        prefixes=fields.strings("prefixes"),
        # Deprecated in Traefik 3.7; unset means false there (the struct comment is stale).
        force_slash=fields.boolean("forceSlash", False),
    )
    fields.done()
    return spec


@attrs.define
class StripPrefix:
    name: str
    prefixes: Tuple[str, ...]
    force_slash: bool

    def handle(self, request: Request) -> StepResult:
        decoded: Optional[str] = None
        for prefix in self.prefixes:
            if decoded is None:
                decoded, error = unescape(request.path)
                if decoded is None:
                    return http_error(400)
            if decoded.startswith(prefix):
                return _strip(request, decoded, prefix, self.force_slash)
        return None


def build_strip_prefix(spec: StripPrefixSpec, name: str, context: BuildContext) -> StripPrefix:
    return StripPrefix(name, tuple(prefix.strip() for prefix in spec.prefixes), spec.force_slash)


# -- stripPrefixRegex ----------------------------------------------------------------------


@attrs.frozen
class StripPrefixRegexSpec:
    regex: Tuple[str, ...] = ()


def parse_strip_prefix_regex(fields: Fields) -> StripPrefixRegexSpec:
    spec = StripPrefixRegexSpec(regex=fields.strings("regex"))
    fields.done()
    return spec


@attrs.define
class StripPrefixRegex:
    name: str
    expressions: Tuple[GoRegexp, ...]

    def handle(self, request: Request) -> StepResult:
        if not self.expressions:
            return None
        decoded, _ = unescape(request.path)
        if decoded is None:
            return http_error(400)
        for expression in self.expressions:
            match = expression.search(decoded)
            if match is None or not match.group(0):
                continue
            # Go checks the matched text, not where it matched.
            if decoded.startswith(match.group(0)):
                return _strip(request, decoded, match.group(0), False)
        return None


def _compile(pattern: str) -> GoRegexp:
    try:
        return compile_go(pattern)
    except RegexError as error:
        raise BuildError(
            "error compiling regular expression %s: error parsing regexp: %s" % (pattern, error)
        ) from None


def build_strip_prefix_regex(
    spec: StripPrefixRegexSpec, name: str, context: BuildContext
) -> StripPrefixRegex:
    return StripPrefixRegex(name, tuple(_compile(pattern.strip()) for pattern in spec.regex))


# -- addPrefix -----------------------------------------------------------------------------


@attrs.frozen
class AddPrefixSpec:
    prefix: str = ""


def parse_add_prefix(fields: Fields) -> AddPrefixSpec:
    spec = AddPrefixSpec(prefix=fields.string("prefix"))
    fields.done()
    return spec


@attrs.define
class AddPrefix:
    name: str
    prefix: str

    def handle(self, request: Request) -> StepResult:
        # Go prepends the prefix to Path (decoded) and RawPath alike, then sends RawPath only
        # if it is still a valid encoding of Path (a prefix with a space loses a %2F after it).
        decoded, _ = unescape(request.path)
        if decoded is None:
            return http_error(400)
        request.path = wire_path(
            _ensure_leading_slash(self.prefix + request.path),
            _ensure_leading_slash(self.prefix + decoded),
        )
        return None


def build_add_prefix(spec: AddPrefixSpec, name: str, context: BuildContext) -> AddPrefix:
    if not spec.prefix:
        raise BuildError("prefix cannot be empty")
    return AddPrefix(name, spec.prefix)


# -- replacePath ---------------------------------------------------------------------------


@attrs.frozen
class ReplacePathSpec:
    path: str = ""


def parse_replace_path(fields: Fields) -> ReplacePathSpec:
    spec = ReplacePathSpec(path=fields.string("path"))
    fields.done()
    return spec


@attrs.define
class ReplacePath:
    name: str
    path: str

    def handle(self, request: Request) -> StepResult:
        # The configured path is the escaped form; Go answers 500 when it does not decode.
        decoded, error = unescape(self.path)
        if decoded is None:
            return http_error(500, error)
        request.headers.add(REPLACED_PATH, request.path)
        request.path = wire_path(self.path, decoded)
        return None


def build_replace_path(spec: ReplacePathSpec, name: str, context: BuildContext) -> ReplacePath:
    return ReplacePath(name, spec.path)


# -- replacePathRegex ----------------------------------------------------------------------


@attrs.frozen
class ReplacePathRegexSpec:
    regex: str = ""
    replacement: str = ""


def parse_replace_path_regex(fields: Fields) -> ReplacePathRegexSpec:
    spec = ReplacePathRegexSpec(
        regex=fields.string("regex", required=True),
        replacement=fields.string("replacement"),
    )
    fields.done()
    return spec


@attrs.define
class ReplacePathRegex:
    name: str
    expression: GoRegexp
    replacement: str

    def handle(self, request: Request) -> StepResult:
        # Matched against the escaped path, as Go's URL.EscapedPath gives it.
        current = request.path
        if self.expression.search(current) is None:
            return None
        raw = self.expression.replace_all(current, self.replacement)
        decoded, error = unescape(raw)
        if decoded is None:
            return http_error(500, error)
        if has_dot_segments(decoded):
            return http_error(400)
        request.headers.add(REPLACED_PATH, current)
        request.path = wire_path(raw, decoded)
        return None


def build_replace_path_regex(
    spec: ReplacePathRegexSpec, name: str, context: BuildContext
) -> ReplacePathRegex:
    return ReplacePathRegex(name, _compile(spec.regex.strip()), spec.replacement.strip())


KINDS = (
    MiddlewareKind("stripPrefix", parse_strip_prefix, build_strip_prefix),
    MiddlewareKind("stripPrefixRegex", parse_strip_prefix_regex, build_strip_prefix_regex),
    MiddlewareKind("addPrefix", parse_add_prefix, build_add_prefix),
    MiddlewareKind("replacePath", parse_replace_path, build_replace_path),
    MiddlewareKind("replacePathRegex", parse_replace_path_regex, build_replace_path_regex),
)
