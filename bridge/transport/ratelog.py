"""Log lines a sender can provoke, bounded: one per kind per interval, then a count."""

from __future__ import annotations

import logging
import threading
import time


class LogLimiter:
    """At most one line per kind per interval: the first at once, then a count.

    Args:
        logger: where lines go (WARNING).
        interval: seconds per kind between lines.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(self, logger: logging.Logger, interval: float, clock=time.monotonic):
        self._log, self._interval, self._clock = logger, interval, clock
        self._kinds: dict[str, list] = {}  # kind -> [window start, suppressed, what, wall start]
        self._lock = threading.Lock()

    def note(self, kind: str, what: str, message: str, *args) -> None:
        """Log ``message % args`` unless ``kind`` was logged in this interval (then count it).

        ``what`` names the kind in the count line ("N more <what> since ...").
        """
        now = self._clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is not None and now - state[0] < self._interval:
                state[1] += 1
                return
            if state is not None and state[1]:
                self._summary(kind, state)
            self._kinds[kind] = [now, 0, what, time.time()]
        self._log.warning(message, *args)

    def flush(self, final: bool = False) -> None:
        """Write the counts of intervals that are over (all of them if ``final``)."""
        now = self._clock()
        with self._lock:
            for kind, state in list(self._kinds.items()):
                if state[1] and (final or now - state[0] >= self._interval):
                    self._summary(kind, state)
                    self._kinds[kind] = [now, 0, state[2], time.time()]

    def _summary(self, kind: str, state: list) -> None:
        since = time.strftime("%H:%M:%S", time.localtime(state[3]))
        self._log.warning("%d more %s since %s", state[1], state[2], since)
