"""Writes http-requests.json and http-responses.json: raw requests with the answer class the
proxy must give (and, when forwarded, exactly what the backend receives), and raw backend
responses with exactly what the client receives. Expectations are written here by rule from
RFC 9110/9112 and docs/security.md, independently of the engine's code.

Run: python3 tests/data/make_http_corpus.py (writes next to this file).

Placeholders: ``{proxy}`` is the proxy's hostname (X-Forwarded-Server); ``{date}`` a Date
value; ``{many:N}`` expands to N lines ``X-N<i>: v``; ``{big:N}`` to ``X-Big: `` and N bytes.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
CLOSE = "Connection: close\r\n"
NO_BODY = ("GET", "HEAD", "CONNECT")


def forwarded(
    method: str,
    target: str,
    host: str = "h",
    headers: str = "",
    framing: str = "",
    body: str = "",
    port: str = "80",
) -> str:
    """What the backend receives for a request the proxy forwards, by docs/security.md."""
    lines = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n{headers}"
    lines += "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
    if host:
        lines += f"X-Forwarded-Host: {host}\r\n"
    lines += (
        f"X-Forwarded-Port: {port}\r\nX-Forwarded-Server: {{proxy}}\r\nX-Real-Ip: 127.0.0.1\r\n"
    )
    if framing:
        lines += framing
    elif method not in NO_BODY:
        lines += "Content-Length: 0\r\n"
    return lines + "\r\n" + body


def main() -> None:
    requests: List[Dict[str, object]] = []

    def add(name: str, request: str, status: int, sent: Optional[str] = None) -> None:
        requests.append({"name": name, "request": request, "status": status, "forwarded": sent})

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "X-CUSTOM"]
    paths = [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("/a//b", "/a/b"),
        ("//a", "/a"),
        ("/./a", "/a"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/a/b/..", "/a"),
        ("/a/b/../", "/a/"),
        ("/../../x", "/x"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E/b", "/a/b"),
        ("/%7Euser", "/~user"),
        ("/a%2fb", "/a%2Fb"),
        ("/a%3bb", "/a%3Bb"),
        ("/q?x=/../y&z=%2f", "/q?x=/../y&z=%2f"),
        ("/a//b?", "/a/b?"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
    ]
    for method in methods:
        for raw, clean in paths:
            add(
                f"{method} {raw}",
                f"{method} {raw} HTTP/1.1\r\nHost: h\r\n{CLOSE}\r\n",
                200,
                forwarded(method, clean),
            )
    # Absolute form: the authority is routed on and sent as Host.
    for target, host, clean in [
        ("http://admin.internal/x", "admin.internal", "/x"),
        ("http://admin.internal", "admin.internal", "/"),
        ("http://admin.internal?q=1", "admin.internal", "/?q=1"),
        ("https://admin.internal/a/../b", "admin.internal", "/b"),
        ("http://user@admin.internal/x", "admin.internal", "/x"),
        ("HTTP://admin.internal/x", "admin.internal", "/x"),
        ("http://admin.internal:8080/x", "admin.internal:8080", "/x"),
        ("http://@/x", "public.test", "/x"),
    ]:
        port = "8080" if ":8080" in host else "80"
        add(
            f"absolute {target}",
            f"GET {target} HTTP/1.1\r\nHost: public.test\r\n{CLOSE}\r\n",
            200,
            forwarded("GET", clean, host=host, port=port),
        )
    # Host values that are valid.
    for host, port in [("H", "80"), ("h:80", "80"), ("h.", "80"), ("public.test:8443", "8443")]:
        add(
            f"host {host}",
            f"GET / HTTP/1.1\r\nHost: {host}\r\n{CLOSE}\r\n",
            200,
            forwarded("GET", "/", host=host, port=port),
        )
    # Framing: always the proxy's own.
    body_cases = [
        ("length", "Content-Length: 3\r\n", "abc", "Content-Length: 3\r\n", "abc"),
        ("length list", "Content-Length: 3, 3\r\n", "abc", "Content-Length: 3\r\n", "abc"),
        (
            "length twice",
            "Content-Length: 3\r\nContent-Length: 3\r\n",
            "abc",
            "Content-Length: 3\r\n",
            "abc",
        ),
        ("length zero", "Content-Length: 0\r\n", "", "Content-Length: 0\r\n", ""),
        ("length leading zeros", "Content-Length: 003\r\n", "abc", "Content-Length: 3\r\n", "abc"),
        (
            "connection names content-length",
            "Connection: Content-Length\r\nContent-Length: 3\r\n",
            "abc",
            "Content-Length: 3\r\n",
            "abc",
        ),
        (
            "connection names transfer-encoding",
            "Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "chunked",
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "chunked extension and trailer",
            "Transfer-Encoding: chunked\r\n",
            "3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "chunked upper hex",
            "Transfer-Encoding: chunked\r\n",
            "A\r\n0123456789\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "a\r\n0123456789\r\n0\r\n\r\n",
        ),
        (
            "chunked token case",
            "Transfer-Encoding: Chunked\r\n",
            "1\r\nx\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "1\r\nx\r\n0\r\n\r\n",
        ),
        (
            "chunked empty",
            "Transfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
    ]
    for name, sent_headers, body, framing, out_body in body_cases:
        for method in ("POST", "PUT"):
            add(
                f"{method} {name}",
                f"{method} /p HTTP/1.1\r\nHost: h\r\n{sent_headers}{CLOSE}\r\n{body}",
                200,
                forwarded(method, "/p", framing=framing, body=out_body),
            )
    # Headers: hop-by-hop and Connection-named ones go; spoofed X-Forwarded-* go; Host stays.
    header_cases = [
        ("connection names host", "Connection: Host\r\n", ""),
        ("connection names x-secret", "Connection: X-Secret\r\nX-Secret: 1\r\n", ""),
        ("keep-alive dropped", "Keep-Alive: timeout=5\r\n", ""),
        ("te dropped", "TE: trailers\r\n", ""),
        ("proxy-connection dropped", "Proxy-Connection: keep-alive\r\n", ""),
        ("trailer dropped", "Trailer: X-T\r\n", ""),
        ("spoofed real ip dropped", "X-Real-Ip: 10.6.6.6\r\n", ""),
        ("spoofed forwarded-for dropped", "X-Forwarded-For: 6.6.6.6\r\n", ""),
        ("spoofed forwarded-host dropped", "X-Forwarded-Host: evil\r\n", ""),
        ("plain header kept", "X-Custom: 1\r\n", "X-Custom: 1\r\n"),
        ("empty value kept", "X-Empty:\r\n", "X-Empty: \r\n"),
        ("value whitespace trimmed", "X-Pad:   v  \r\n", "X-Pad: v\r\n"),
        ("obs-text kept", "X-Bytes: caf\u00e9\r\n", "X-Bytes: caf\u00e9\r\n"),
        ("tab in value kept", "X-Tab: a\tb\r\n", "X-Tab: a\tb\r\n"),
        ("repeated header kept", "X-R: 1\r\nX-R: 2\r\n", "X-R: 1\r\nX-R: 2\r\n"),
        ("cookie kept", "Cookie: a=1\r\n", "Cookie: a=1\r\n"),
        ("expect kept", "Expect: 100-continue\r\n", "Expect: 100-continue\r\n"),
        ("bare LF line ends", None, ""),
        ("leading empty line", None, ""),
    ]
    for name, extra, kept in header_cases:
        if name == "bare LF line ends":
            request = f"GET /x HTTP/1.1\nHost: h\n{CLOSE[:-2]}\n\n"
        elif name == "leading empty line":
            request = f"\r\nGET /x HTTP/1.1\r\nHost: h\r\n{CLOSE}\r\n"
        else:
            request = f"GET /x HTTP/1.1\r\nHost: h\r\n{extra}{CLOSE}\r\n"
        add(name, request, 200, forwarded("GET", "/x", headers=kept))
    add(
        "http/1.0 with host",
        "GET /x HTTP/1.0\r\nHost: h\r\n\r\n",
        200,
        forwarded("GET", "/x"),
    )
    add(
        "asterisk form",
        f"OPTIONS * HTTP/1.1\r\nHost: h\r\n{CLOSE}\r\n",
        200,
        forwarded("OPTIONS", "*"),
    )
    add(
        "100 header lines",
        f"GET /x HTTP/1.1\r\nHost: h\r\n{{many:98}}{CLOSE}\r\n",
        200,
        forwarded("GET", "/x", headers="{many:98}"),
    )

    def bad(name: str, request: str, status: int = 400) -> None:
        add(name, request, status)

    # Request lines and targets.
    for line in [
        "GET -ebho HTTP/1.1",
        "GET ebho HTTP/1.1",
        "GET http:/x HTTP/1.1",
        "GET :// HTTP/1.1",
        "GET 1http://h/ HTTP/1.1",
        "GET h:80 HTTP/1.1",
        "CONNECT h HTTP/1.1",
        "CONNECT h:x HTTP/1.1",
        "GET /a#b HTTP/1.1",
        "GET /a?b#c HTTP/1.1",
        "GET /a% HTTP/1.1",
        "GET /a%2 HTTP/1.1",
        "GET /a%zz HTTP/1.1",
        "GET /a%%41 HTTP/1.1",
        "GET /caf\u00e9 HTTP/1.1",
        "GET /\u00ff HTTP/1.1",
        "GET /\x7f HTTP/1.1",
        "GET /a\x01b HTTP/1.1",
        "GET  / HTTP/1.1",
        "GET /  HTTP/1.1",
        "GET / HTTP/1.1 ",
        "GET\t/ HTTP/1.1",
        "GET /",
        "GET / HTTP/1.1 extra",
        "G(T / HTTP/1.1",
        "G\u00e9T / HTTP/1.1",
        " GET / HTTP/1.1",
        "GET / http/1.1",
        "GET / HTTP/1",
        "GET / HTTP/1.1.1",
        "GET / HTTP/11",
        "GET / HTTPS/1.1",
        "GET http://a b/ HTTP/1.1",
        "GET http://h/x/ HTTP/1.1\r\nHost: h\r\nHost: h",
        "GET http://a,b/ HTTP/1.1",
        "GET http://a\\b/ HTTP/1.1",
        "NONSENSE",
    ]:
        if "\r\n" in line:
            bad(f"line {line!r}", line + "\r\n\r\n")
        else:
            bad(f"line {line!r}", f"{line}\r\nHost: h\r\n\r\n")
    for version in ["HTTP/2.0", "HTTP/1.2", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9"]:
        bad(f"version {version}", f"GET / {version}\r\nHost: h\r\n\r\n", 505)
    # Hosts.
    for host in [
        "a b",
        "h, admin.internal",
        "h,admin.internal",
        "h/x",
        "h\\x",
        "h@x",
        "h?x",
        "h#x",
        'h"x',
        "h<x",
        "h{x}",
        "h|x",
        "h^x",
        "h`x",
        "caf\u00e9.test",
    ]:
        bad(f"host {host!r}", f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")
    bad("no host", "GET / HTTP/1.1\r\n\r\n")
    bad("two hosts", "GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n")
    bad("two different hosts", "GET / HTTP/1.1\r\nHost: h\r\nHost: admin.internal\r\n\r\n")
    # Header syntax.
    for line in [
        "X-A : 1",
        " X-A: 1",
        "\tX-A: 1",
        "X A: 1",
        ": 1",
        "X-A",
        "X-A;: 1",
        "X-\u00e9: 1",
        "X-A: a\x00b",
        "X-A: a\x01b",
        "X-A: a\x7fb",
        "X-A: a\rb",
        "(X): 1",
        "X-A:1\r\n continued",
        "X-A:1\r\n\tcontinued",
        "[X]: 1",
    ]:
        bad(f"header {line!r}", f"GET / HTTP/1.1\r\nHost: h\r\n{line}\r\n\r\n")
    # Framing.
    for headers in [
        "Content-Length: 3, 4",
        "Content-Length: 3\r\nContent-Length: 4",
        "Content-Length: -1",
        "Content-Length: +3",
        "Content-Length: 3.0",
        "Content-Length: 0x3",
        "Content-Length: ",
        "Content-Length: 3 3",
        "Content-Length: 1000000000000000000000",
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
    ]:
        bad(f"framing {headers!r}", f"POST / HTTP/1.1\r\nHost: h\r\n{headers}\r\n\r\nabc")
    for coding in ["gzip", "chunked, gzip", "gzip, chunked", "identity", "chunked, chunked", "x"]:
        bad(
            f"transfer-encoding {coding}",
            f"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n",
            501,
        )
    bad(
        "transfer-encoding in 1.0",
        "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    for chunks in [
        "x\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcX\r\n0\r\n\r\n",
        "-3\r\nabc\r\n0\r\n\r\n",
        "3 3\r\nabc\r\n0\r\n\r\n",
        "1000000000000000\r\n",
        "0x3\r\nabc\r\n0\r\n\r\n",
        "\r\n3\r\nabc\r\n0\r\n\r\n",
    ]:
        bad(
            f"chunks {chunks!r}",
            f"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}",
        )
    bad("expect other", "GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417)
    bad("101 header lines", "GET / HTTP/1.1\r\nHost: h\r\n{many:100}\r\n", 431)
    bad("10000 header lines", "GET / HTTP/1.1\r\nHost: h\r\n{many:10000}\r\n", 431)
    bad("head over 1 MiB", "GET / HTTP/1.1\r\nHost: h\r\n{big:1048600}\r\n\r\n", 431)
    bad("target over 1 MiB", "GET /{big:1048600} HTTP/1.1\r\nHost: h\r\n\r\n", 431)

    responses: List[Dict[str, object]] = []

    def answer(name: str, backend: str, client: str, method: str = "GET") -> None:
        responses.append({"name": name, "method": method, "backend": backend, "client": client})

    ok_head = "HTTP/1.1 200 OK\r\n"
    end = "Connection: close\r\n\r\n"
    answer(
        "length",
        ok_head + "Content-Length: 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "length list",
        ok_head + "Content-Length: 2, 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "length twice",
        ok_head + "Content-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "connection names content-length",
        ok_head + "Connection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "connection names x-a",
        ok_head + "Connection: X-A\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 2\r\n\r\nok",
        ok_head + "X-B: 2\r\nContent-Length: 2\r\n" + end + "ok",
    )
    answer(
        "chunked rechunked",
        ok_head + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ok_head + "Transfer-Encoding: chunked\r\n" + end + "2\r\nok\r\n0\r\n\r\n",
    )
    answer(
        "chunked beats length",
        ok_head + "Content-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        ok_head + "Transfer-Encoding: chunked\r\n" + end + "2\r\nok\r\n0\r\n\r\n",
    )
    answer(
        "chunked trailers dropped",
        ok_head + "Transfer-Encoding: chunked\r\n\r\n2;x=y\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
        ok_head + "Transfer-Encoding: chunked\r\n" + end + "2\r\nok\r\n0\r\n\r\n",
    )
    answer(
        "close delimited",
        ok_head + "X-A: 1\r\n\r\nok",
        ok_head + "X-A: 1\r\nTransfer-Encoding: chunked\r\n" + end + "2\r\nok\r\n0\r\n\r\n",
    )
    answer(
        "head keeps length",
        ok_head + "Content-Length: 9\r\n\r\n",
        ok_head + "Content-Length: 9\r\n" + end,
        method="HEAD",
    )
    answer(
        "204",
        "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nX-A: 1\r\n" + end,
    )
    answer(
        "304",
        "HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nETag: x\r\n" + end,
    )
    answer(
        "103 relayed",
        "HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n" + ok_head + "Content-Length: 2\r\n\r\nok",
        "HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
        + ok_head
        + "Content-Length: 2\r\n"
        + end
        + "ok",
    )
    answer(
        "100 once",
        "HTTP/1.1 100 Continue\r\n\r\n" * 3 + ok_head + "Content-Length: 2\r\n\r\nok",
        "HTTP/1.1 100 Continue\r\n\r\n" + ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "http/1.0 backend",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "hop-by-hop dropped",
        ok_head + "Keep-Alive: timeout=5\r\nProxy-Authenticate: x\r\nUpgrade: h2\r\n"
        "Content-Length: 2\r\n\r\nok",
        ok_head + "Content-Length: 2\r\n" + end + "ok",
    )
    answer(
        "reason phrase kept",
        "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n" + end + "ok",
    )
    answer(
        "empty reason",
        "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 299 \r\nContent-Length: 0\r\n" + end,
    )
    bad_gateway = (
        "HTTP/1.1 502 Bad Gateway\r\nDate: {date}\r\nContent-Length: 11\r\n" + end + "Bad Gateway"
    )
    for name, backend in [
        ("garbage", "garbage\r\n\r\n"),
        ("http/2 status", "HTTP/2 200 OK\r\n\r\n"),
        ("short status", "HTTP/1.1 20 OK\r\n\r\n"),
        ("status 099", "HTTP/1.1 099 X\r\n\r\n"),
        ("no status", "HTTP/1.1\r\n\r\n"),
        ("length conflict", ok_head + "Content-Length: 2, 3\r\n\r\nok"),
        ("length negative", ok_head + "Content-Length: -2\r\n\r\nok"),
        ("obs-fold", ok_head + "X-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\nok"),
        ("nul in value", ok_head + "X-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"),
        ("space before colon", ok_head + "X-A : 1\r\nContent-Length: 2\r\n\r\nok"),
        ("101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
        (
            "11 interim",
            "HTTP/1.1 103 Early Hints\r\n\r\n" * 11 + ok_head + "Content-Length: 0\r\n\r\n",
        ),
        ("closed before head", "HTTP/1.1 200 OK\r\nContent-"),
    ]:
        if name == "11 interim":
            client = "HTTP/1.1 103 Early Hints\r\n\r\n" * 10 + bad_gateway
        else:
            client = bad_gateway
        answer(name, backend, client)

    # Bad bodies after the head went out: the client connection is reset, no end is sent.
    for name, backend, client in [
        (
            "bad chunk size",
            ok_head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            ok_head + "Transfer-Encoding: chunked\r\n" + end,
        ),
        (
            "length cut short",
            ok_head + "Content-Length: 10\r\n\r\nok",
            ok_head + "Content-Length: 10\r\n" + end + "ok",
        ),
        (
            "chunked cut short",
            ok_head + "Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
            ok_head + "Transfer-Encoding: chunked\r\n" + end + "2\r\nok\r\n",
        ),
    ]:
        responses.append(
            {"name": name, "method": "GET", "backend": backend, "client": client, "reset": True}
        )

    for name, data in (("http-requests.json", requests), ("http-responses.json", responses)):
        with open(os.path.join(HERE, name), "w", encoding="ascii") as f:
            json.dump(
                {"source": "tests/data/make_http_corpus.py", "cases": data},
                f,
                indent=1,
                ensure_ascii=True,
            )
            f.write("\n")
    print(len(requests), "requests,", len(responses), "responses")


if __name__ == "__main__":
    main()
