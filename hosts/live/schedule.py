"""Scheduling maths for the live host: JACK frames, bar lines and block offsets.

Everything here is pure and works in one time base, the JACK frame counter
(extended past its 32-bit wrap), so the capture buffer, the clock fit and the
playback start all speak the same unit. ``ClockEstimator`` times are seconds =
frames / rate.
"""

from __future__ import annotations

import math

import numpy as np

WRAP = 1 << 32  # jack_nframes_t is 32 bits: 24.8 hours at 48 kHz


class FrameCounter:
    """Extends JACK's 32-bit frame time to a monotonic 64-bit one (handles the wrap)."""

    def __init__(self) -> None:
        self._last = None
        self._high = 0

    def extend(self, frame: int) -> int:
        """Args: frame: a 32-bit JACK frame time. Returns: the same time without wraps."""
        if self._last is not None and frame < self._last and self._last - frame > WRAP // 2:
            self._high += WRAP
        self._last = frame
        return self._high + frame


class BlockClock:
    """The frame of each process callback's block, counted by this client.

    JACK's frame timer read in a process callback is the current cycle's start,
    but a callback that runs late reads the next cycle's (seen here: a jump of
    one period, then the same value again). A client that was not run for some
    cycles (xrun) sees the same jump, then the timer running on. So a jump is
    first taken as a late read (the block follows the previous one), and only
    when the next callback shows the timer kept its lead is it a skip: the
    count moves on to the timer and the skipped frames are reported.
    """

    def __init__(self) -> None:
        self._timer = FrameCounter()
        self._previous: int | None = None
        self._frames = 0
        self._jump: int | None = None  # a timer read ahead of the count, not yet explained

    def next(self, timer: int, frames: int) -> tuple[int, int]:
        """(this block's frame, frames skipped just before the previous block - 0 if none).

        Args:
            timer: JACK's 32-bit frame timer read in this callback.
            frames: this block's length.
        """
        timer = self._timer.extend(timer)
        skipped = 0
        if self._previous is None:
            base = timer
        else:
            base = self._previous + self._frames
            if self._jump is not None and timer > self._jump:  # the lead held: cycles were skipped
                skipped, base = timer - base, timer
                self._jump = None
            elif self._jump is not None:  # read the same again: the jump was a late read
                self._jump = None
            elif timer > base:
                self._jump = timer
        self._previous, self._frames = base, frames
        return base, skipped


def beat_time(beat: float, now_beats: float, now: float, bpm: float) -> float:
    """When the song reaches ``beat`` (quarter notes), seen from ``now`` at ``now_beats``."""
    return now + (beat - now_beats) * 60.0 / bpm


def last_bars(now_beats: float, now: float, bpm: float, bars: int, beats_per_bar: int,
              ) -> tuple[float, float, float]:
    """The ``bars`` complete bars that end at the last bar line at or before ``now``.

    Args:
        now_beats: song position at ``now`` (quarter notes; 0 is a bar line).
        now: the time, seconds.
        bpm: the tempo.
        bars: how many bars.
        beats_per_bar: quarter notes per bar.

    Returns:
        (start_seconds, end_seconds, first_bar_beat).
    """
    end_beat = math.floor(now_beats / beats_per_bar + 1e-9) * beats_per_bar
    start_beat = end_beat - bars * beats_per_bar
    return (beat_time(start_beat, now_beats, now, bpm), beat_time(end_beat, now_beats, now, bpm),
            start_beat)


def next_bar_beat(now_beats: float, beats_per_bar: int, lead_beats: float = 0.0) -> float:
    """The first bar line (in beats) at least ``lead_beats`` after ``now_beats``."""
    return (math.floor((now_beats + lead_beats) / beats_per_bar + 1e-9) + 1) * beats_per_bar


def to_frame(seconds: float, rate: int) -> int:
    """Seconds on the frame clock to the nearest frame."""
    return int(math.floor(seconds * rate + 0.5))


def block_offset(target: int, block_start: int, block_size: int) -> int | None:
    """Where ``target`` falls inside the block starting at ``block_start``.

    Returns:
        0..block_size-1 when the target frame is in this block, else None.
    """
    offset = target - block_start
    return offset if 0 <= offset < block_size else None


def delay_seconds(offset: int, rate: int) -> float:
    """A delay that pyo's SDelay turns back into exactly ``offset`` samples.

    SDelay truncates ``delay * sr`` to an integer; half a sample of margin keeps
    float rounding from landing one sample short.
    """
    return (offset + 0.5) / rate


def fade(audio: np.ndarray, rate: int, ms: float = 3.0, fade_in: bool = True,
         fade_out: bool = True) -> np.ndarray:
    """Raised-cosine fades at the ends; the first and last samples become exactly 0.

    A table reader that waits at index 0 or holds its last index then outputs
    silence, and a loop's seam does not click.

    Args:
        audio: (frames, channels) float array (not modified).
        rate: sample rate.
        ms: fade length in milliseconds (shortened for very short audio).
    Returns:
        A float32 copy with the fades applied.
    """
    out = np.array(audio, dtype=np.float32, copy=True)
    if out.ndim == 1:
        out = out[:, None]
    n = min(max(2, int(rate * ms / 1000.0)), max(2, len(out) // 2))
    if len(out) < 2:
        return np.zeros_like(out)
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)[:, None]
    if fade_in:
        out[:n] *= ramp
    if fade_out:
        out[-n:] *= ramp[::-1]
    return out
