"""A rolling audio buffer addressed by absolute JACK frame."""

from __future__ import annotations

import threading

import numpy as np


class FrameRing:
    """Keeps the last ``capacity`` frames of a multichannel stream, by absolute frame.

    The audio thread writes blocks; another thread reads a frame range. Thread-safe.

    Args:
        capacity: frames kept.
        channels: channel count.
    """

    def __init__(self, capacity: int, channels: int):
        self.capacity = int(capacity)
        self.channels = channels
        self._data = np.zeros((self.capacity, channels), dtype=np.float32)
        self._end: int | None = None  # absolute frame after the newest written sample
        self._start: int | None = None  # oldest frame written since the last gap
        self._lock = threading.Lock()

    def write(self, frame: int, block: np.ndarray) -> None:
        """Store ``block`` (frames, channels) as starting at absolute ``frame``."""
        n = len(block)
        with self._lock:
            if self._end is None or frame != self._end:
                self._start = frame  # a gap (xrun, restart): older audio no longer lines up
            i = frame % self.capacity
            first = min(n, self.capacity - i)
            self._data[i:i + first] = block[:first]
            if first < n:
                self._data[:n - first] = block[first:]
            self._end = frame + n
            self._start = max(self._start, self._end - self.capacity)

    @property
    def span(self) -> tuple[int, int] | None:
        """(first, end) absolute frames held, or None before anything arrived."""
        with self._lock:
            return None if self._end is None else (self._start, self._end)

    def read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start``..``stop`` (exclusive).

        Raises:
            LookupError: part of the range is not (or no longer) held.
        """
        with self._lock:
            if self._end is None or start < self._start or stop > self._end or stop < start:
                held = "nothing" if self._end is None else f"{self._start}..{self._end}"
                raise LookupError(f"frames {start}..{stop} are not in the buffer (holds {held})")
            idx = np.arange(start, stop) % self.capacity
            return self._data[idx].copy()
