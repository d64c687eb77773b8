"""A leaner event dispatch for Twisted's epoll reactor: plain reads go straight to doRead.

Twisted's `EPollReactor.doPoll` hands every event to `log.callWithLogger`, which asks the
selectable for its log prefix, copies the logging context dict, pushes it on a context stack
and calls `_doReadOrWrite`, which checks `fileno()` before `doRead()`: about ten Python calls
and two dict copies per event, two events per proxied request (client, backend). For the
common event, readable and nothing else, this dispatch calls `doRead()` directly (for a TCP
connection whose `doRead` is Twisted's own, it does that method's recv and `dataReceived`
itself) with the same error handling (an exception is logged and disconnects the selectable, as
`_doReadOrWrite` does); every other event (writable, hang-up, error) takes Twisted's own path
unchanged. What is lost is only the legacy log context's "system" prefix for messages logged
while a read is handled; tsproxy logs through twisted.logger with its own fields.

Only an `EPollReactor` (the default on Linux) is changed; any other reactor is left alone.
"""

from __future__ import annotations

import errno
import sys
from typing import Any, Callable, FrozenSet, Optional

from twisted.internet import tcp
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST
from twisted.python import log

from tsproxy.http.relay import hold_sends, release_sends

__all__ = ["speed_up"]


def _plain_readers() -> FrozenSet[type]:
    """The TCP transport classes whose doRead is Connection.doRead (recv, then dataReceived)."""
    plain = tcp.Connection.doRead
    received = tcp.Connection._dataReceived
    return frozenset(
        cls
        for cls in (tcp.Server, tcp.Client)
        if cls.doRead is plain and cls._dataReceived is received
    )


def _fast_poll(reactor: Any) -> Callable[[Optional[float]], None]:
    poller = reactor._poller
    selectables = reactor._selectables
    lookup = selectables.get
    readable = reactor._POLL_IN
    slow = reactor._doReadOrWrite
    disconnect = reactor._disconnectSelectable
    with_logger = log.callWithLogger
    plain = _plain_readers()
    would_block = errno.EWOULDBLOCK

    def do_poll(timeout: Optional[float]) -> None:
        if timeout is None:
            timeout = -1
        try:
            events = poller.poll(timeout, len(selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        held = hold_sends()
        try:
            dispatch(events)
        finally:
            release_sends(held)

    def dispatch(events: Any) -> None:
        for fd, event in events:
            selectable = lookup(fd)
            if selectable is None:
                continue
            if event == readable:
                why: Optional[BaseException]
                try:
                    if type(selectable) in plain and "doRead" not in selectable.__dict__:
                        # (A connecting tcp.Client sets doRead on itself: Twisted's path.)
                        # tcp.Connection.doRead and _dataReceived, two calls fewer.
                        try:
                            data = selectable.socket.recv(selectable.bufferSize)
                        except OSError as se:
                            why = None if se.args[0] == would_block else CONNECTION_LOST
                        else:
                            if data:
                                why = None
                                selectable.protocol.dataReceived(data)
                            else:
                                why = CONNECTION_DONE
                    else:
                        why = selectable.doRead()
                except BaseException:
                    why = sys.exc_info()[1]
                    log.err()
                if why:
                    try:
                        disconnect(selectable, why, True)
                    except BaseException:
                        # As callWithLogger: logged, and the rest of the batch goes on.
                        log.err()
            else:
                with_logger(selectable, slow, selectable, fd, event)

    return do_poll


def speed_up(reactor: Any) -> bool:
    """Give an epoll reactor the lean dispatch; True if it was changed."""
    try:
        from twisted.internet.epollreactor import EPollReactor
    except ImportError:  # not Linux
        return False
    if type(reactor) is not EPollReactor:
        return False
    reactor.doIteration = _fast_poll(reactor)  # type: ignore[method-assign]
    return True
