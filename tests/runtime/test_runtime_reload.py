"""Tests for tsproxy.runtime.reload: which static configuration changes apply live."""

from __future__ import annotations

from typing import List, Tuple

from twisted.trial.unittest import SynchronousTestCase

from tsproxy.config.static import StaticConfig, parse_static
from tsproxy.runtime.reload import static_change

RUNNING = """\
entryPoints:
  web:
    address: ":8000"
  admin:
    address: "127.0.0.1:8080"
log:
  level: INFO
"""


def static(text: str) -> StaticConfig:
    config, errors, _ = parse_static(text)
    assert config is not None, errors
    return config


def change(text: str) -> Tuple[List[Tuple[str, str, int]], List[str], List[str], str]:
    """(effective entrypoints as (name, host, port), added names, restart messages, level)."""
    result = static_change(static(RUNNING), static(text))
    effective = [(e.name, e.host, e.port) for e in result.effective.entrypoints]
    return (
        effective,
        [e.name for e in result.added],
        [str(e) for e in result.restart],
        result.effective.log_level,
    )


class StaticChangeTests(SynchronousTestCase):
    """New entrypoints and the log level apply live; other entrypoint changes wait."""

    def test_table(self) -> None:
        """Each edit of tsproxy.yaml gives its effective entrypoints and restart messages."""
        running = [("web", "", 8000), ("admin", "127.0.0.1", 8080)]
        cases = [
            (RUNNING, running, [], [], "INFO"),
            ("# moved down\n" + RUNNING.replace("INFO", "DEBUG"), running, [], [], "DEBUG"),
            (
                RUNNING.replace("log:", '  extra:\n    address: ":9000"\nlog:'),
                running + [("extra", "", 9000)],
                ["extra"],
                [],
                "INFO",
            ),
            (
                RUNNING.replace(":8000", ":8001"),
                running,
                [],
                [
                    "tsproxy.yaml:2: entrypoint web: address changed; the old settings stay until"
                    " a restart"
                ],
                "INFO",
            ),
            (
                RUNNING.replace(
                    '":8000"', '":8000"\n    transport: {lifeCycle: {graceTimeOut: 3s}}'
                ),
                running,
                [],
                [
                    "tsproxy.yaml:2: entrypoint web: transport.lifeCycle.graceTimeOut changed; the old"
                    " settings stay until a restart"
                ],
                "INFO",
            ),
            (
                RUNNING.replace('":8000"', '":8000"\n    proxyProtocol: {insecure: true}'),
                running,
                [],
                [
                    "tsproxy.yaml:2: entrypoint web: proxyProtocol changed; the old settings stay"
                    " until a restart"
                ],
                "INFO",
            ),
            (
                'entryPoints:\n  web:\n    address: ":8000"\n',
                running,
                [],
                [
                    "tsproxy.yaml:1: entrypoint admin: removed from the file; it keeps"
                    " listening until a restart"
                ],
                "INFO",
            ),
        ]
        for text, effective, added, restart, level in cases:
            self.assertEqual(change(text), (effective, added, restart, level), text)

    def test_transports(self) -> None:
        """The default transports apply live (only the next build reads them), without a
        restart message."""
        text = RUNNING + (
            "serversTransport: {insecureSkipVerify: true}\ntcpServersTransport: {dialTimeout: 2s}\n"
        )
        result = static_change(static(RUNNING), static(text))
        self.assertEqual(result.restart, ())
        self.assertEqual(
            (
                result.effective.servers_transport.insecure_skip_verify,
                result.effective.tcp_servers_transport.dial_timeout,
            ),
            (True, 2.0),
        )
