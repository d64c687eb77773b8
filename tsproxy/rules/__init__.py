"""Router rules: compile Traefik HTTP and TCP rule strings and pick the router for a request.

The public names other packages use, re-exported from the submodules; pure, no Twisted or I/O.
"""

from __future__ import annotations

from tsproxy.rules.http import HTTPRule, compile_http_rule, parse_domains
from tsproxy.rules.parse import RuleError
from tsproxy.rules.request import HTTPRequestInfo, TCPConnectionInfo, routing_path
from tsproxy.rules.table import RouterSet, TCPRouterSet
from tsproxy.rules.tcp import TCPRule, compile_tcp_rule, parse_host_sni

__all__ = [
    "HTTPRequestInfo",
    "HTTPRule",
    "RouterSet",
    "RuleError",
    "TCPConnectionInfo",
    "TCPRouterSet",
    "TCPRule",
    "compile_http_rule",
    "compile_tcp_rule",
    "parse_domains",
    "parse_host_sni",
    "routing_path",
]
