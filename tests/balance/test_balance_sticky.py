"""Tests for tsproxy.balance.sticky against Traefik's cookie name, value and Set-Cookie vectors."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.balance.sticky import (
    CookieValues,
    StickyCookie,
    StickyLevel,
    cookie_name,
    generated_name,
    name_values,
    same_site_attribute,
    sanitize_name,
    server_values,
)

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def vectors(group: str) -> list[dict[str, Any]]:
    with open(os.path.join(DATA, "services.json")) as stream:
        groups = json.load(stream)["groups"]
    return next(g for g in groups if g["id"] == group)["cases"]


class CookieNameTests(SynchronousTestCase):
    """Cookie names: configured ones sanitized, default ones derived from the service."""

    def test_vectors(self) -> None:
        """Every sticky-cookie-name vector gives its name."""
        cases = vectors("sticky-cookie-name")
        self.assertEqual(len(cases), 10)
        for case in cases:
            inputs, expected = case["inputs"], case["expected"]
            if "srcName" in inputs:
                got, want = sanitize_name(inputs["srcName"]), expected["expectedName"]
            elif "cookieName" in inputs:
                configured, backend = inputs["cookieName"], inputs["backendName"]
                got = sanitize_name(configured) if configured else generated_name(backend)
                want = expected["expectedCookieName"]
            else:
                service = inputs.get("serviceName", inputs.get("backendName"))
                got, want = generated_name(service), expected["cookieName"]
            self.assertEqual(got, want, case["description"])

    def test_providerQualified(self) -> None:
        """A default name hashes the service qualified with @kubernetescrd."""
        self.assertEqual(cookie_name("", "default-app-80"), "_ebcf2")
        self.assertEqual(cookie_name("", "default-test-route-6b204d94623b3df4370c"), "_892d0")
        self.assertEqual(cookie_name("my cookie", "ignored"), "my_cookie")


class CookieValueTests(SynchronousTestCase):
    """Every value format any Traefik version wrote points back at its child."""

    def test_valueVectors(self) -> None:
        """Each historical value of the sticky-cookie-values vectors is accepted."""
        cases = vectors("sticky-cookie-values")
        self.assertEqual(len(cases), 6)
        for case in cases:
            inputs = case["inputs"]
            if "server_url" in inputs:
                accepted = server_values(inputs["server_url"])
                self.assertEqual(accepted[0], inputs["server_url"])
            else:
                accepted = name_values(inputs["child_service_name"])
                self.assertEqual(accepted[0], inputs["child_service_name"])
            for version, value in case["expected"].items():
                self.assertIn(value, accepted, (case["description"], version))

    def test_stickyHandlerVectors(self) -> None:
        """The v3 StickyHandler lookups: sha256, raw and FNV values find their handler."""
        cases = [
            c
            for c in vectors("sticky-cookie-v3")
            if "handlers" in c["inputs"] and "write_for" not in c["inputs"]
        ]
        self.assertEqual(len(cases), 6)
        for case in cases:
            handlers = case["inputs"]["handlers"]
            cookies = case["inputs"].get("cookies", [])
            value = cookies[0]["Value"] if cookies else None
            index = CookieValues.for_names(handlers).lookup(value)
            got = "" if index is None else handlers[index]
            self.assertEqual(got, case["expected"]["wantHandler"], case["description"])

    def test_serversAndNamesAreSeparate(self) -> None:
        """Server tables accept the URL formats; an unknown or absent value finds nothing."""
        urls = ["http://10.10.0.1:80", "http://10.10.0.2:80"]
        table = CookieValues.for_servers(urls)
        self.assertEqual(
            [
                table.lookup(v)
                for v in [
                    "http://10.10.0.2:80",
                    "f39f9b8be900245f",
                    "3c073d17a4838e67",
                    "2cfca75c282a2f00",
                ]
            ],
            [1, 1, 1, 1],
        )
        self.assertEqual(
            [table.lookup(v) for v in [None, "", "http://10.10.0.3:80"]], [None, None, None]
        )


class SetCookieTests(SynchronousTestCase):
    """The Set-Cookie header, attribute by attribute, in Go's order."""

    def test_sameSiteVectors(self) -> None:
        """SameSite modes of any case map to None, Lax, Strict; anything else omits it."""
        modes = {
            "None (SameSite=None)": "None",
            "Lax": "Lax",
            "Strict": "Strict",
            "Default (attribute omitted)": None,
        }
        cases = [c for c in vectors("sticky-cookie-v3") if "sameSite" in c["inputs"]]
        self.assertEqual(len(cases), 11)
        for case in cases:
            got = same_site_attribute(case["inputs"]["sameSite"])
            self.assertEqual(got, modes[case["expected"]["mode"]], case["description"])

    def test_writeVector(self) -> None:
        """WriteStickyCookie's attributes, with tsproxy's raw value instead of the sha256 one."""
        case = next(
            c for c in vectors("sticky-cookie-v3") if c["description"] == "WriteStickyCookie"
        )
        config, want = case["inputs"]["cookie_config"], case["expected"]["Set-Cookie"]
        cookie = StickyCookie(
            name=config["name"],
            secure=config["secure"],
            http_only=config["httpOnly"],
            same_site=config["sameSite"],
            max_age=config["maxAge"],
            path=config["path"],
            domain=config["domain"],
        )
        self.assertEqual(
            cookie.header(case["inputs"]["write_for"]),
            f"{want['Name']}=first; Path={want['Path']}; Domain={want['Domain']}; Max-Age={want['MaxAge']};"
            f" HttpOnly; Secure; SameSite={want['SameSite']}",
        )

    def test_wrrStickyVector(self) -> None:
        """The v3 TestSticky cookie: every configured attribute appears."""
        case = next(
            c
            for c in vectors("http-weighted-round-robin")
            if c["description"] == "sticky v3: cookie attributes and hashed value"
        )
        config, want = case["inputs"]["sticky_cookie"], case["expected"]["cookie"]
        cookie = StickyCookie(
            config["name"],
            config["secure"],
            config["httpOnly"],
            config["sameSite"],
            config["maxAge"],
            config["path"],
            config["domain"],
        )
        self.assertEqual(
            cookie.header("second"),
            "test=second; Path=%s; Domain=%s; Max-Age=%d; HttpOnly; Secure; SameSite=%s"
            % (want["Path"], want["Domain"], want["MaxAge"], want["SameSite"]),
        )

    def test_table(self) -> None:
        """Defaults, deletion, domains and values that need quoting."""
        cases = [
            (StickyCookie("cookie"), "default-app-v1-80", "cookie=default-app-v1-80; Path=/"),
            (StickyCookie("_ebcf2"), "http://10.0.0.1:80", "_ebcf2=http://10.0.0.1:80; Path=/"),
            (StickyCookie("c", max_age=-1), "v", "c=v; Path=/; Max-Age=0"),
            (
                StickyCookie("c", max_age=60, same_site="lax"),
                "v",
                "c=v; Path=/; Max-Age=60; SameSite=Lax",
            ),
            (
                StickyCookie("c", domain=".example.org", secure=True),
                "v",
                "c=v; Path=/; Domain=example.org; Secure",
            ),
            (StickyCookie("c", path="", same_site="bogus"), "v", "c=v"),
            (StickyCookie("c"), "a b", 'c="a b"; Path=/'),
            (StickyCookie("c"), 'a;"\\b', "c=ab; Path=/"),
        ]
        for cookie, value, header in cases:
            self.assertEqual(cookie.header(value), header)


class StickyLevelTests(SynchronousTestCase):
    """One sticky level: the cookie's child first, else a pick that sets the cookie."""

    def test_choose(self) -> None:
        """Known values stick silently; absent, unknown and unwritable ones pick and set."""
        level = StickyLevel.for_names(StickyCookie("s"), ["a", None, "c"])
        picks = iter([2, 0, 1])
        set_cookies: list[str] = []
        chosen = [
            level.choose({"s": "a"}, lambda: next(picks), set_cookies),
            level.choose({}, lambda: next(picks), set_cookies),
            level.choose({"s": "b"}, lambda: next(picks), set_cookies),
            level.choose({"s": "zzz"}, lambda: next(picks), set_cookies),
            level.choose({}, lambda: None, set_cookies),
        ]
        self.assertEqual(chosen, [0, 2, 0, 1, None])
        self.assertEqual(set_cookies, ["s=c; Path=/", "s=a; Path=/"])

    def test_servers(self) -> None:
        """A server level writes the URL and reads every historical server format."""
        level = StickyLevel.for_servers(StickyCookie("lb"), ["http://10.10.0.1:80"])
        set_cookies: list[str] = []
        self.assertEqual(level.choose({"lb": "1f0b77948e6e95e0"}, lambda: None, set_cookies), 0)
        self.assertEqual(level.choose({}, lambda: 0, set_cookies), 0)
        self.assertEqual(set_cookies, ["lb=http://10.10.0.1:80; Path=/"])
