"""The `tsproxy` command: `check DIR`, `route`, `demo`, `version`.

Running the proxy itself is twistd's job (`twistd -n --pidfile= tsproxy -c DIR`, or
`twist tsproxy -c DIR`); this command holds the tools around it. Output goes to stdout; the
exit status says the verdict.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from tsproxy import __version__


def _check(directory: str, fmt: str) -> int:
    from tsproxy.check import check_directory

    return check_directory(directory, fmt, sys.stdout)


def _route(args: argparse.Namespace) -> int:
    from tsproxy.config.load import load_directory
    from tsproxy.explain import explain, request_info
    from tsproxy.runtime.build import build_table

    loaded = load_directory(args.config)
    if loaded.static is None:
        for error in loaded.errors:
            print("error: %s" % (error,), file=sys.stderr)
        return 2
    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            print("error: header %r is not 'Name: value'" % (header,), file=sys.stderr)
            return 2
        headers.append((name.strip(), value.strip()))
    result = build_table(loaded)
    for error in tuple(loaded.errors) + tuple(result.errors):
        print("error: %s" % (error,), file=sys.stderr)
    if (args.method is None) != (args.url is None):
        print("error: give both METHOD and URL, or neither", file=sys.stderr)
        return 2
    req = None
    tls = False
    if args.url is not None:
        req = request_info(args.method, args.url, headers, args.client_ip)
        tls = args.url.lower().startswith("https://")
        if tls and args.sni is None:
            # As curl does: the SNI is the URL's host, whatever Host header is sent, and
            # none for an IP address.
            host = urlsplit(args.url).hostname or ""
            args.sni = "" if _is_ip(host) else host
    status, text = explain(
        result.table,
        args.entrypoint,
        req,
        args.all,
        tls=tls,
        sni=args.sni,
        client_ip=args.client_ip,
    )
    print(text)
    return status


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _two_ports(text: str) -> Tuple[int, int]:
    first, sep, second = text.partition(",")
    try:
        return int(first), int(second)
    except ValueError:
        raise argparse.ArgumentTypeError("expected two ports, A,B: %r" % (text,)) from None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tsproxy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version="tsproxy " + __version__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version")
    check = sub.add_parser("check", help="load a configuration directory and report problems")
    check.add_argument("directory")
    check.add_argument("--format", choices=["text", "json"], default="text")
    route = sub.add_parser(
        "route",
        help="show which router and service would serve a request, connection or datagram",
        description="HTTP: METHOD URL (https:// for HTTPS). TCP: --sni HOST for a TLS"
        " connection, nothing for a plain one. UDP: nothing.",
    )
    route.add_argument("-c", "--config", default="conf/")
    route.add_argument("--entrypoint", default="web")
    route.add_argument("method", nargs="?", help="GET, POST, ...")
    route.add_argument("url", nargs="?", help="http://host/path?query or https://...")
    route.add_argument("--sni", help="a TLS connection with this server name")
    route.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    route.add_argument("--client-ip", default="127.0.0.1")
    route.add_argument("--all", action="store_true", help="list every router and its verdict")
    demo = sub.add_parser(
        "demo",
        help="run the proxy with the six demo backends (HTTP app-v1/v2, UDP echo-1/2,"
        " TCP greeter-1/2)",
    )
    demo.add_argument("-c", "--config", default="conf/")
    demo.add_argument("--v1-port", type=int, default=9001)
    demo.add_argument("--v2-port", type=int, default=9002)
    demo.add_argument("--echo-ports", type=_two_ports, default=(9053, 9054), help="UDP, A,B")
    demo.add_argument("--greeter-ports", type=_two_ports, default=(9101, 9102), help="TCP, A,B")
    args = parser.parse_args(argv)
    if args.command == "version":
        print("tsproxy " + __version__)
        return 0
    if args.command == "check":
        return _check(args.directory, args.format)
    if args.command == "route":
        return _route(args)
    from tsproxy.demo import run_demo

    return run_demo(args.config, args.v1_port, args.v2_port, args.echo_ports, args.greeter_ports)


if __name__ == "__main__":
    sys.exit(main())
