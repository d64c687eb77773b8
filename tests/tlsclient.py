"""Client side helpers for the TLS tests: Python ``ssl`` client contexts, an in-memory
handshake against a pyOpenSSL server connection (no sockets), and what the client saw."""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import Any, Optional, Sequence, Tuple

import attrs
from cryptography import x509
from OpenSSL import SSL

from tests.certs import Issued
from tsproxy.tls.certs import certificate_names


@attrs.frozen
class Seen:
    """The outcome of a handshake as the client saw it (``error`` set when it failed)."""

    names: Tuple[str, ...] = ()
    cn: str = ""
    version: str = ""
    alpn: Optional[str] = None
    cipher: str = ""
    error: str = ""
    server_error: str = ""
    reused: bool = False
    session: Any = attrs.field(default=None, eq=False)


def client_context(
    alpn: Sequence[str] = (),
    minimum: Optional[ssl.TLSVersion] = None,
    maximum: Optional[ssl.TLSVersion] = None,
    client_cert: Optional[Issued] = None,
    ciphers: str = "",
) -> ssl.SSLContext:
    """A client context that accepts any server certificate (the tests inspect it)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    if client_cert is not None:
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(client_cert.cert_pem + client_cert.key_pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
    return context


def describe(der: Optional[bytes]) -> Tuple[Tuple[str, ...], str]:
    """(names, CN) of a DER certificate."""
    if der is None:
        return (), ""
    cert = x509.load_der_x509_certificate(der)
    cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return certificate_names(cert), str(cns[0].value) if cns else ""


def memory_handshake(
    server_context: SSL.Context,
    client: ssl.SSLContext,
    sni: Optional[str] = None,
    session: Optional[ssl.SSLSession] = None,
) -> Seen:
    """Run a full handshake between ``client`` and a server connection on
    ``server_context`` through memory buffers, then one application record each way (so
    that TLS 1.3 client-certificate failures surface)."""
    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = client.wrap_bio(incoming, outgoing, server_hostname=sni, session=session)
    client_done = server_done = False
    client_error = server_error = ""
    ponged = False
    for _ in range(50):
        if not client_done and not client_error:
            try:
                conn.do_handshake()
                client_done = True
                conn.write(b"ping")
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                client_error = str(exc)
        data = outgoing.read()
        if data:
            server.bio_write(data)
        if not server_error:
            try:
                if not server_done:
                    server.do_handshake()
                    server_done = True
                if server.recv(100) == b"ping":
                    server.send(b"pong")
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                server_error = repr(exc)
        try:
            out = server.bio_read(65536)
        except SSL.WantReadError:
            out = b""
        if out:
            incoming.write(out)
        if client_done and not client_error:
            try:
                if conn.read(100) == b"pong":
                    ponged = True
                    break
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                client_error = str(exc)
        if client_error and (server_error or not data):
            break
        if server_error and not out and not data:
            break
    try:
        names, cn = describe(conn.getpeercert(binary_form=True))
    except ValueError:  # the handshake did not get that far
        names, cn = (), ""
    if not ponged and not client_error:
        client_error = "no application data"
    if client_error or server_error:
        return Seen(names, cn, error=client_error or "closed", server_error=server_error)
    cipher = conn.cipher()
    return Seen(
        names,
        cn,
        version=conn.version() or "",
        alpn=conn.selected_alpn_protocol(),
        cipher=cipher[0] if cipher else "",
        reused=conn.session_reused,
        session=conn.session,
    )
