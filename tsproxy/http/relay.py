"""Relaying between two connections, shared by the HTTP/1.1 and HTTP/2 backends: bounded relay
buffers with read gates and write watchers, abandonable connects, timer cancelling.

Kept apart from ``backend`` so ``h2backend`` need not import it (``backend`` re-exports these).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, FrozenSet, List, Optional, Union

from twisted.internet import tcp
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

#: A relaying transport pauses its peer past this much unsent data, and reads this much at
#: a time: what one connection holds toward a slow reader stays near twice this (64 KiB).
RELAY_BUFFER = 32 * 1024


def cancel_call(call: Any) -> None:
    """Cancel a DelayedCall if there is one and it is still pending."""
    if call is not None and call.active():
        call.cancel()


def send(transport: Any, data: bytes) -> None:
    """Write ``data`` to ``transport``, sending it at once when the socket can take it.

    Twisted's ``write`` queues the bytes and registers for writability: they go out on the
    next reactor turn, at the cost of an ``epoll_ctl`` pair and an event dispatch. A plain TCP
    transport with nothing queued (and not closing, not TLS) is written through with one
    ``send``; what the socket does not take, or any error, goes the usual way (queued, the
    producer paused past the buffer size, errors found by the reactor's write).

    While the reactor handles a batch of events (``hold_sends``, tsproxy/fastpoll.py), such
    a write is held and sent when the batch is over (``release_sends``), in the order written:
    the sends of a batch go out together, and a peer woken by the first finds the others
    ready (one wake-up instead of one per send, which is most of a loopback send's cost).
    """
    t: Any = transport  # Twisted's tcp.Connection internals, read as they are
    if (
        t.__class__ in _PLAIN_TCP
        and not t.dataBuffer
        and not t._tempDataLen
        and t.connected
        and not t.TLS
        and not t._writeDisconnected
        and not t._aborting
    ):
        held = _HELD[0]
        if held is not None and not t.disconnecting:
            pending = held.get(t)
            if pending is None:
                held[t] = pending = data
            else:
                if pending.__class__ is bytes:
                    held[t] = pending = bytearray(pending)
                pending += data
            if len(pending) < RELAY_BUFFER:
                return
            # Past a relay buffer's worth it goes now: the producer pausing that bounds
            # what a connection holds (a client not reading its pipelined answers) sees
            # Twisted's queue, not this one.
            del held[t]
            _release(t, pending)
            return
        _release(t, data)
        return
    transport.write(data)


#: Held bytes: one transport's first write as is, joined into a bytearray from the second.
Held = Dict[Any, Union[bytes, bytearray]]
#: The writes ``send`` holds during a batch of events (None: none is held).
_HELD: List[Optional[Held]] = [None]


def hold_sends() -> Held:
    """Start holding ``send``'s writes; give what ``release_sends`` takes at the end."""
    held: Held = {}
    _HELD[0] = held
    return held


def release_sends(held: Held) -> None:
    """Send what was held: each transport's chunks at once, ahead of anything Twisted queued
    for it meanwhile (all written after them). An aborted or lost connection's are dropped,
    as they would have been by the connection's end."""
    _HELD[0] = None
    for t, data in held.items():
        _release(t, data)


def _release(t: Any, data: Union[bytes, bytearray]) -> None:
    """Send what the socket takes now; queue the rest ahead of what Twisted holds for ``t``
    (as its ``write`` would, producer pausing and write registration included)."""
    if not t.connected or t._aborting:
        return
    queued = len(t.dataBuffer) - t.offset
    if not queued and not t._tempDataLen:
        try:
            sent = t.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error the queued write will meet and report
        if sent == len(data):
            return
        data = data[sent:]
    data = bytes(data)
    if queued:
        t.dataBuffer = data + bytes(t.dataBuffer[t.offset :])
        t.offset = 0
    else:
        t._tempDataBuffer.insert(0, data)
        t._tempDataLen += len(data)
    t._maybePauseProducer()
    t.startWriting()


#: The transports `send` writes through: Twisted's own TCP connections (not subclasses,
#: whose write may do more).
_PLAIN_TCP: FrozenSet[Any] = frozenset([tcp.Server, tcp.Client])


class ReadGate:
    """Pauses a transport's reading while any reason to pause holds.

    Several parties want a connection paused for their own reasons (a peer's full write
    buffer, a pending backend connect, too much pipelined input); reading resumes only
    when all of them have let go.
    """

    __slots__ = ("transport", "reasons")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.reasons: set = set()

    def pause(self, reason: str) -> None:
        if not self.reasons:
            self.transport.pauseProducing()
        self.reasons.add(reason)

    def resume(self, reason: str) -> None:
        if reason in self.reasons:
            self.reasons.discard(reason)
            if not self.reasons:
                self.transport.resumeProducing()


@implementer(IPushProducer)
class WriteWatcher:
    """Registered as the producer on a transport: relays its full/drained write buffer
    to whichever peer connection currently feeds it, by pausing that peer's reading."""

    __slots__ = ("owner",)

    def __init__(self, owner: Relaying) -> None:
        self.owner = owner

    def pauseProducing(self) -> None:
        self.owner.write_blocked = True
        peer = self.owner.peer
        if peer is not None and peer.gate is not None:
            peer.gate.pause("peer")

    def resumeProducing(self) -> None:
        owner = self.owner
        owner.write_blocked = False
        peer = owner.peer
        if peer is not None and peer.gate is not None:
            peer.gate.resume("peer")
        owner.write_drained()

    def stopProducing(self) -> None:
        pass  # connection loss is handled by the protocol itself


class Relaying(Protocol):
    """A connection that relays to a peer connection, with backpressure both ways."""

    # A TCP transport (ITCPTransport, IProducer and IConsumer at once): typed loosely on purpose.
    transport: Any
    peer: Optional[Relaying] = None
    gate: Optional[ReadGate] = None
    write_blocked = False
    #: Called when the write buffer drains, by whoever writes more than it relays (a
    #: stored request body: tsproxy/http/bodypump.py).
    drain_hook: Optional[Callable[[], None]] = None

    def start_relaying(self) -> None:
        transport = self.transport
        transport.bufferSize = RELAY_BUFFER
        self.gate = ReadGate(transport)
        transport.registerProducer(WriteWatcher(self), True)

    def write_drained(self) -> None:
        """The transport's write buffer has room again (after ``write_blocked``)."""
        hook = self.drain_hook
        if hook is not None:
            hook()

    def set_peer(self, peer: Optional[Relaying]) -> None:
        """Join or leave a peer, carrying any pause the write buffers already call for."""
        old = self.peer
        if old is peer:
            return
        if old is not None and self.write_blocked and old.gate is not None:
            old.gate.resume("peer")
        self.peer = peer
        if peer is not None and self.write_blocked and peer.gate is not None:
            peer.gate.pause("peer")


class PendingConnect:
    """A connection attempt the exchange may abandon (its client went away)."""

    def __init__(self) -> None:
        self.connector: Any = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.connector is not None and self.connector.state == "connecting":
            self.connector.stopConnecting()
