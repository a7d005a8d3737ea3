"""OSC packets in: parsing with bounds, the one queue for bundles' time tags, and the
few threads that handle messages.

python-osc's OscMessage parses each message. Bundles are walked here rather
than by OscBundle, which recurses without a depth bound (a deeply nested
datagram raised RecursionError) and logs any element it cannot identify,
raw bytes included, at WARNING on the root logger; and rather than by its
Dispatcher, which sleeps in the handler's thread until a bundle's time tag,
so a bundle for tomorrow held a graceful stop.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from typing import Callable

from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types

from ..core.errors import InvalidArgument

MAX_PACKET = 65536  # bytes: the most a UDP datagram carries; TCP frames and unix datagrams alike
MAX_DEPTH = 8  # bundles inside bundles
MAX_MESSAGES = 64  # messages in one packet
BUNDLE_PREFIX = b"#bundle\x00"
# Type tags python-osc reads. Others (c char, S symbol, I infinitum...) it skips
# without consuming their bytes, so the arguments after them would be misread.
TYPE_TAGS = frozenset("ihfdsbrmtTFN[]")

# Kinds of malformed packet: a closed set, so the log holds at most a line or
# two per kind per interval however many packets arrive.
MALFORMED = {
    "not-osc": "neither an OSC message (/address...) nor a bundle (#bundle)",
    "empty": "an empty packet",
    "too-large": f"more than {MAX_PACKET} bytes",
    "bad-string": "a string that is not UTF-8",
    "bad-type-tag": "a type tag string that does not start with ',' or has unbalanced [ ]",
    "unsupported-type": "an argument type the daemon does not read",
    "truncated": "shorter than its type tags say, or a string without its terminating zero",
    "bad-bundle": "a bundle whose time tag or element sizes do not fit it",
    "too-deep": f"bundles nested more than {MAX_DEPTH} deep",
    "too-many": f"more than {MAX_MESSAGES} messages in one packet",
    "tcp-bad-length": f"a TCP frame length outside 1..{MAX_PACKET} (OSC 1.0 framing)",
    "tcp-truncated": "a TCP connection closed inside a frame",
    "tcp-stalled": "a TCP frame that did not complete in time",
}


class Malformed(Exception):
    """A packet that is not OSC the daemon reads.

    Attributes:
        kind: a key of ``MALFORMED``.
        detail: what was wrong with this one (short; from the parser).
    """

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail[:160]


def parse(dgram: bytes) -> list[tuple[float, OscMessage]]:
    """The messages of one packet, each with the time tag it is due at.

    Returns:
        (time, message) in packet order; time is seconds since the epoch, or
        0.0 for "immediately" (a bare message, or a bundle tagged 1).

    Raises:
        Malformed: anything that is not a packet the daemon reads.
    """
    if not dgram:
        raise Malformed("empty")
    if len(dgram) > MAX_PACKET:
        raise Malformed("too-large", f"{len(dgram)} bytes")
    out: list[tuple[float, OscMessage]] = []
    _walk(dgram, 0, 0.0, out)
    return out


def _walk(dgram: bytes, depth: int, when: float, out: list) -> None:
    if dgram.startswith(b"/"):
        if len(out) >= MAX_MESSAGES:
            raise Malformed("too-many")
        out.append((when, message(dgram)))
        return
    if not dgram.startswith(BUNDLE_PREFIX):
        raise Malformed("not-osc", f"starts with {dgram[:8]!r}")
    if depth >= MAX_DEPTH:
        raise Malformed("too-deep")
    try:
        tag, index = osc_types.get_date(dgram, len(BUNDLE_PREFIX))
    except (osc_types.ParseError, ValueError, OverflowError) as exc:
        raise Malformed("bad-bundle", f"time tag: {exc}") from None
    # A bundle inside another runs no earlier than the outer one (OSC 1.0).
    when = max(when, float(tag)) if tag != osc_types.IMMEDIATELY else when
    while index < len(dgram):
        if len(dgram) - index < 4:
            raise Malformed("bad-bundle", "a partial element size at the end")
        size = int.from_bytes(dgram[index:index + 4], "big", signed=True)
        index += 4
        if size <= 0 or index + size > len(dgram):
            raise Malformed("bad-bundle", f"element size {size} with {len(dgram) - index} bytes left")
        _walk(dgram[index:index + size], depth + 1, when, out)
        index += size


def message(dgram: bytes) -> OscMessage:
    """One OSC message, its type tags checked before python-osc reads it."""
    try:
        _, index = osc_types.get_string(dgram, 0)
        if index < len(dgram):
            tags, _ = osc_types.get_string(dgram, index)
            if not tags.startswith(","):
                raise Malformed("bad-type-tag", f"type tags {tags[:40]!r}")
            odd = set(tags[1:]) - TYPE_TAGS
            if odd:
                raise Malformed("unsupported-type",
                                f"type {sorted(odd)[0]!r} (reads {''.join(sorted(TYPE_TAGS))})")
        return OscMessage(dgram)
    except Malformed:
        raise
    except UnicodeDecodeError as exc:
        raise Malformed("bad-string", str(exc)) from None
    except Exception as exc:  # python-osc's ParseError, IndexError, struct.error, OverflowError...
        text = " ".join(str(arg) for arg in exc.args if isinstance(arg, (str, Exception)))
        kind = "bad-type-tag" if "bracket" in text else "truncated"
        raise Malformed(kind, f"{type(exc).__name__}: {text}") from None


class TimeTagQueue:
    """Runs items at their bundle's time: one heap, one thread.

    Bounded, so that no sender can make the daemon hold unbounded work: at
    most ``limit`` items wait, none more than ``horizon`` seconds ahead.
    ``stop`` returns at once and drops whatever still waits.

    Args:
        run: called with each item when it is due (on the queue's thread: keep it short).
        limit: most items waiting at once.
        horizon: furthest ahead a time tag may be, in seconds.
        clock: wall-clock seconds since the epoch (time tags are absolute).
    """

    def __init__(self, run: Callable[[object], None], limit: int = 256, horizon: float = 3600.0,
                 clock: Callable[[], float] = time.time):
        self._run, self.limit, self.horizon, self._clock = run, limit, horizon, clock
        self._heap: list[tuple[float, int, object]] = []
        self._order = itertools.count()  # items due at the same time keep their order
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="sb-osc-timetags", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, items: list[tuple[float, object]]) -> None:
        """Queue every item or none.

        Raises:
            InvalidArgument: too far ahead, or too many waiting; says the limit.
        """
        now = self._clock()
        latest = max(when for when, _ in items)
        if latest - now > self.horizon:
            raise InvalidArgument(
                f"an OSC bundle's time tag is {latest - now:.0f} s ahead; the daemon holds bundles at most "
                f"{self.horizon:.0f} s ahead: send it closer to its time")
        with self._cond:
            if self._stopped:
                return
            if len(self._heap) + len(items) > self.limit:
                raise InvalidArgument(
                    f"{len(self._heap)} OSC messages already wait for their time tags and at most "
                    f"{self.limit} may: send this bundle once earlier ones have run, or untimed")
            for when, item in items:
                heapq.heappush(self._heap, (when, next(self._order), item))
            self._cond.notify()

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self) -> int:
        """Stop the thread; returns how many waiting items were dropped."""
        with self._cond:
            self._stopped = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(2.0)
        return dropped

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    delay = self._heap[0][0] - self._clock() if self._heap else None
                    if delay is not None and delay <= 0:
                        break
                    # Re-read the wall clock at least once a second: it may be stepped.
                    self._cond.wait(1.0 if delay is None else min(delay, 1.0))
                if self._stopped:
                    return
                _, _, item = heapq.heappop(self._heap)
            self._run(item)


class Workers:
    """A few threads running handler calls from a bounded queue."""

    def __init__(self, count: int, limit: int):
        self._queue: queue.Queue = queue.Queue(limit)
        self._threads = [threading.Thread(target=self._loop, name="sb-osc-worker", daemon=True)
                         for _ in range(count)]
        self._stopped = False

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, fn, *args) -> bool:
        """Queue a call; False if the queue is full or stopped."""
        if self._stopped:
            return False
        try:
            self._queue.put_nowait((fn, args))
            return True
        except queue.Full:
            return False

    def stop(self, timeout: float) -> int:
        """Drop what waits (returned: how many), let running calls end for ``timeout`` s."""
        self._stopped = True
        dropped = 0
        while True:
            try:
                self._queue.get_nowait()
                dropped += 1
            except queue.Empty:
                break
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        return dropped

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopped:
                return
            fn, args = item
            fn(*args)  # handlers catch their own errors
