"""Client side helpers for the TLS tests: Python ``ssl`` client contexts, an in-memory
handshake against a pyOpenSSL server connection (no sockets), what the client saw, and a
socket client that can end each half of a TLS connection on its own."""

from __future__ import annotations

import os
import socket
import ssl
import tempfile
import time
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


class HalfCloseClient:
    """A blocking TLS client on a socket, through Python's ``ssl`` memory BIOs so that each
    half ends on its own: ``close_notify`` sends ours and keeps reading (SSLSocket.unwrap
    would wait for the peer's and refuse the data that comes first), ``fin`` shuts the
    socket's write half with no close_notify."""

    def __init__(
        self,
        port: int,
        sni: str,
        context: Optional[ssl.SSLContext] = None,
        hello_pause: float = 0.0,
    ) -> None:
        """Connect and handshake; ``hello_pause`` seconds pass between the ClientHello
        and the rest of the handshake."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        context = context or client_context()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=sni)
        self.got = b""
        if hello_pause:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()  # the ClientHello
                time.sleep(hello_pause)
        self._step(self.tls.do_handshake)

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        """More bytes from the socket into the TLS object; False at the socket's EOF."""
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def _step(self, call: Any) -> Any:
        while True:
            try:
                result = call()
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
                continue
            self._flush()
            return result

    def send(self, data: bytes, flush: bool = True) -> None:
        """Send ``data``; without ``flush``, it leaves with whatever is sent next (one
        segment for the request and the close_notify or FIN after it)."""
        if flush:
            self._step(lambda: self.tls.write(data))
        else:
            self.tls.write(data)  # after the handshake, a write needs no reads

    def close_notify(self) -> None:
        """Say we are done sending (TLS half-close). Read first what the peer sent before:
        OpenSSL drops application data it finds while it waits for the peer's close_notify."""
        while self.incoming.pending or self.tls.pending():
            try:
                self.got += self.tls.read(65536)
            except ssl.SSLError:  # nothing complete yet, or the peer's close_notify
                break
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # ours is out; the peer's comes later
        self._flush()

    def fin(self) -> None:
        """A bare FIN: the socket's write half ends, without close_notify."""
        self._flush()
        self.sock.shutdown(socket.SHUT_WR)

    def read_until(self, marker: bytes, count: int = 1) -> bytes:
        """Read until ``marker`` has arrived ``count`` times (all read is in ``got``)."""
        while self.got.count(marker) < count:
            if self._read_some() is not None:
                raise AssertionError("ended before %r: %r" % (marker, self.got))
        return self.got

    def read_to_end(self) -> Tuple[bytes, str]:
        """Read until the peer ends: (all read, "close_notify" or "EOF" (a FIN without
        close_notify) or the TLS error)."""
        while True:
            end = self._read_some()
            if end is not None:
                return self.got, end

    def _read_some(self) -> Optional[str]:
        try:
            chunk = self.tls.read(65536)
        except ssl.SSLWantReadError:
            self._flush()
            self._fill()  # at the socket's EOF, the next read says how the stream ended
            return None
        except ssl.SSLZeroReturnError:
            return "close_notify"
        except ssl.SSLEOFError:
            return "EOF"
        except ssl.SSLError as exc:
            return str(exc)
        if not chunk:
            return "close_notify"
        self.got += chunk
        return None

    def socket_closed(self) -> bool:
        """Whether the peer closed the socket too (a FIN after everything)."""
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()
