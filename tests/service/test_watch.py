"""Tests for tsproxy.watch: debouncing, the stat poller, inotify, and the fallback between them."""

from __future__ import annotations

import os
from typing import Any, Callable, List

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tsproxy.watch import (
    ConfigWatcher,
    Debounce,
    InotifySource,
    PollingSource,
    directory_snapshot,
    watch_directory,
)


def write(path: str, text: str) -> None:
    with open(path, "w") as stream:
        stream.write(text)


def replace(path: str, text: str) -> None:
    """Atomic replace: write a hidden temporary file, rename it over ``path``."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, "." + name + ".tmp")
    write(temporary, text)
    os.replace(temporary, path)


class DebounceTests(SynchronousTestCase):
    """A burst of touches gives one call, after the quiet time or at the limit."""

    def test_burst(self) -> None:
        """Touches 1/8 s apart end in one call 1/4 s after the last; then a new burst starts."""
        clock = Clock()
        calls: List[float] = []
        debounce = Debounce(clock, lambda: calls.append(clock.seconds()), delay=0.25, limit=1.0)
        for _ in range(3):
            debounce.touch()
            clock.advance(0.125)
        self.assertEqual(calls, [])
        clock.advance(0.125)
        self.assertEqual(calls, [0.5])
        debounce.touch()
        clock.advance(0.25)
        self.assertEqual(calls, [0.5, 0.75])

    def test_limit(self) -> None:
        """A burst that never settles still fires ``limit`` seconds after its first touch."""
        clock = Clock()
        calls: List[float] = []
        debounce = Debounce(clock, lambda: calls.append(clock.seconds()), delay=0.25, limit=1.0)
        for _ in range(20):
            debounce.touch()
            clock.advance(0.125)
        self.assertEqual(calls, [1.0, 2.0])

    def test_cancel(self) -> None:
        """A cancelled debounce never fires."""
        clock = Clock()
        calls: List[int] = []
        debounce = Debounce(clock, lambda: calls.append(1))
        debounce.touch()
        debounce.cancel()
        clock.advance(5)
        self.assertEqual((calls, clock.getDelayedCalls()), ([], []))


class PollingTests(SynchronousTestCase):
    """The stat poller sees writes, atomic renames, creations and deletions."""

    def test_changes(self) -> None:
        """Each kind of change is seen at the next scan, and a quiet scan reports nothing."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "wrr.yaml")
        write(path, "a: 1\n")
        clock = Clock()
        seen: List[float] = []
        source = PollingSource(clock, directory, interval=0.5)
        source.start(lambda: seen.append(clock.seconds()))
        changes: List[Callable[[], None]] = [
            lambda: write(path, "a: 12\n"),
            lambda: replace(path, "a: 123\n"),
            lambda: write(os.path.join(directory, "new.yaml"), "b: 1\n"),
            lambda: os.unlink(os.path.join(directory, "new.yaml")),
        ]
        for number, change in enumerate(changes, 1):
            clock.advance(0.5)
            self.assertEqual(len(seen), number - 1)  # quiet scan
            change()
            clock.advance(0.5)
            self.assertEqual(len(seen), number)
        source.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_snapshotOfMissingDirectory(self) -> None:
        """A directory that cannot be listed has an empty snapshot."""
        self.assertEqual(directory_snapshot("/nonexistent/tsproxy-conf"), {})


class FakeSource:
    def __init__(self) -> None:
        self.changed: Callable[[], None] = lambda: None
        self.stopped = False

    def start(self, changed: Callable[[], None]) -> None:
        self.changed = changed

    def stop(self) -> None:
        self.stopped = True


class ConfigWatcherTests(SynchronousTestCase):
    """Source events, debounced, call the reload; a failing reload does not stop the next."""

    def test_debouncedAndRobust(self) -> None:
        """Two bursts give two calls; an exception in the first is logged, not raised."""
        source = FakeSource()
        clock = Clock()
        calls: List[float] = []

        def on_change() -> None:
            calls.append(clock.seconds())
            if len(calls) == 1:
                raise RuntimeError("bug")

        watcher = ConfigWatcher(source, clock, on_change, delay=0.2)
        watcher.start()
        source.changed()
        source.changed()
        clock.advance(0.2)
        self.assertTrue(self.flushLoggedErrors(RuntimeError))
        source.changed()
        clock.advance(0.2)
        self.assertEqual(calls, [0.2, 0.4])
        source.changed()
        watcher.stop()
        clock.advance(1)
        self.assertEqual((len(calls), source.stopped), (2, True))

    def test_fallbackToPolling(self) -> None:
        """Where inotify cannot watch (here: no such directory), the watcher polls."""
        watcher = watch_directory(reactor, Clock(), "/nonexistent/tsproxy-conf", lambda: None)
        self.assertIsInstance(watcher.source, PollingSource)


class InotifyTests(TestCase):
    """The kernel's notifications reach the callback for in-place writes and atomic renames."""

    timeout = 10

    def setUp(self) -> None:
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        try:
            self.source = InotifySource(reactor, self.directory)
        except Exception as exc:
            raise self.skipTest("no inotify here: %s" % (exc,)) from None
        self.addCleanup(self.source.stop)
        self.events: List[Any] = []
        self.waiting: List[defer.Deferred[None]] = []
        self.source.start(self._changed)

    def _changed(self) -> None:
        self.events.append(1)
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def next_event(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.waiting.append(d)
        return d

    @defer.inlineCallbacks
    def test_writesAndRenames(self) -> None:
        """An in-place write, an atomic rename and a deletion each give an event."""
        path = os.path.join(self.directory, "wrr.yaml")
        for change in (
            lambda: write(path, "a: 1\n"),
            lambda: replace(path, "a: 2\n"),
            lambda: os.unlink(path),
        ):
            d = self.next_event()
            change()
            yield d
        self.assertGreaterEqual(len(self.events), 3)
