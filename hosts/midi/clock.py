"""Tempo and song position from MIDI clock (0xF8 at 24 per quarter note).

A single tick interval is useless as a tempo: over JACK, with a ~5 ms period,
each tick arrives with ~1.7 ms of jitter, so one interval at 120 BPM
(20.8 ms) swings by about ±30 BPM. The tempo here is the slope of a
least-squares line through the times of the last ``window_ticks`` ticks (at
least one bar; 96 by default), which is within ±0.1 BPM at that jitter and
follows a tempo change within one window.

A receiver that misses input (a JACK client not run for some cycles loses
that MIDI) says so with ``missed``; the next tick then counts the ticks the
fitted line puts in the hole, so the song position does not fall behind.
Without that word a long interval is taken as the tempo it is: a master that
halves its tempo sends ticks twice as far apart, not lost ones.

Ticks lost or doubled without a word (a JACK cycle missed by the master or by
this receiver; python-rtmidi cannot tell) move every later tick by a whole
tick against its count, which alone puts a bar's fit 1-2 BPM off. When the
receiver says how coarse its times are (``resolution``: rtmidi on JACK stamps
every event of a cycle with that cycle's time, so one JACK period) and that is
at most a third of a tick, an interval off by half a tick or more cannot be
jitter: it is a slip of the count, and the fit counts the ticks the last fit
puts in it (a hole: one more; a tick delivered twice: one less; a tick stamped
a cycle late with the next: one more, then one less). Coarser times or unknown
resolution: the count is trusted as before (two ticks in one cycle, or none,
are normal then). The song position still counts what arrived (or ``missed``
says). A master whose own timeline slipped by part of a tick (a DAW in a JACK
graph that missed cycles falls behind the wall clock) did send that bar off
tempo in wall time, and is read so.

Pure Python, no MIDI library: feed it from any MIDI callback with the time the
message arrived (any monotonic clock in seconds, as long as every call uses
the same one). It is thread-safe: the MIDI thread calls ``tick`` while other
threads read ``bpm``, ``beats`` and ``next_bar_time``.
"""

from __future__ import annotations

import math
import threading
from collections import deque

# A gap this long between two ticks means the master stopped sending clock
# (at 24 ppqn it is slower than 5 BPM): the line is refitted from scratch.
MAX_TICK_GAP = 0.5
# How far from a whole number of fitted tick intervals a gap after reported lost input may
# be and still be counted as that many ticks (ticks jitter ~0.1 interval over JACK).
LOST_TICK_TOLERANCE = 0.2
# An interval this far (in ticks) from the fitted one is a slip of the count, not jitter, when
# the times are fine enough (see SLIP_RESOLUTION): a lost or doubled tick is a whole tick off.
SLIP = 0.5
# Slips are looked for only when the times' resolution is at most this part of a tick: jitter
# then stays within a third of a tick, a lost tick at least two thirds away.
SLIP_RESOLUTION = 1 / 3
# More slips than this in one window are no lost ticks but a tempo change (or jitter the given
# resolution did not describe): the window is fitted whole.
MAX_SLIPS = 6


class ClockEstimator:
    """Tempo and position from MIDI timing clock, start/continue/stop and song position.

    Position follows the MIDI rules: after Start the first tick is position
    0; Song Position Pointer (in MIDI beats, i.e. sixteenths) sets where the
    next tick lands; Continue resumes from there; ticks received while stopped
    keep the tempo estimate fresh but do not move the position.

    Args:
        ppqn: clock ticks per quarter note (24 in MIDI).
        window_ticks: ticks in the least-squares fit; ``bpm`` is None until
            this many ticks have arrived since the last reset.
        beats_per_bar: quarter notes per bar, for ``next_bar_time``.
        resolution: how coarse the tick times are, in seconds (rtmidi on JACK: one JACK
            period), or None if unknown; when it is known and small enough, ticks lost or
            doubled without ``missed`` are kept out of the tempo (see the module docstring).
    """

    def __init__(self, ppqn: int = 24, window_ticks: int = 96, beats_per_bar: int = 4,
                 resolution: float | None = None):
        if ppqn < 1:
            raise ValueError(f"ppqn must be at least 1, got {ppqn}")
        if window_ticks < 2:
            raise ValueError(f"window_ticks must be at least 2, got {window_ticks}")
        if beats_per_bar < 1:
            raise ValueError(f"beats_per_bar must be at least 1, got {beats_per_bar}")
        if resolution is not None and not resolution >= 0:
            raise ValueError(f"resolution must be >= 0 seconds or None, got {resolution}")
        self.ppqn = ppqn
        self.resolution = resolution
        self.window_ticks = window_ticks
        self.beats_per_bar = beats_per_bar
        self._lock = threading.Lock()
        self._times: deque[float] = deque(maxlen=window_ticks)  # tick times since the last reset
        self._indices: deque[int] = deque(maxlen=window_ticks)  # their tick numbers (holes skipped)
        self._missed_since: float | None = None  # input lost after this time (see missed())
        self._count = 0              # ticks since the last reset (index of the next one)
        self._slope: float | None = None      # seconds per tick, from the last fit
        self._centre = (0.0, 0.0)    # (mean tick number, mean time) of the last fit
        self.slips = 0               # slips of the count seen in the last fit (see _slips)
        self._prev_slope: float | None = None  # kept across a reset, for interpolation only
        self._running = False
        self._next_pos = 0           # position (in ticks) the next running tick lands on
        self._last_pos: int | None = None     # position of the last running tick
        self._last_index = 0         # its index in the fit
        self.relocations = 0         # Start, Continue and Song Position so far: the song moved

    # --- messages ---------------------------------------------------------------------------

    def tick(self, t: float) -> None:
        """A timing clock message (0xF8) arrived at time ``t`` (seconds)."""
        with self._lock:
            lost = self._lost_before(t)  # a reported hole is counted, however long
            if self._times and t - self._times[-1] > MAX_TICK_GAP and not lost:
                self._reset_estimate()
            self._missed_since = None
            self._count += lost
            self._next_pos += lost if self._running else 0
            self._times.append(t)
            self._indices.append(self._count)
            self._count += 1
            self._refit()
            if self._running:
                self._last_pos = self._next_pos
                self._last_index = self._count - 1
                self._next_pos += 1

    def missed(self, since: float) -> None:
        """Input after time ``since`` was lost (the receiver skipped it): ticks may be missing.

        The next tick counts as many ticks before it as the fitted tempo puts
        between it and the last one received.
        """
        with self._lock:
            if self._missed_since is None or since < self._missed_since:
                self._missed_since = since

    def start(self, t: float) -> None:
        """Start (0xFA): play from position 0; the tempo estimate starts over."""
        with self._lock:
            self._reset_estimate()
            self._next_pos = 0
            self._running = True
            self.relocations += 1

    def continue_(self, t: float) -> None:
        """Continue (0xFB): play on from the current position; the estimate starts over."""
        with self._lock:
            self._reset_estimate()
            self._running = True
            self.relocations += 1

    def stop(self, t: float) -> None:
        """Stop (0xFC): the position holds until Continue, Start or Song Position."""
        with self._lock:
            self._running = False
            self._last_pos = None

    def song_position(self, sixteenths: int, t: float) -> None:
        """Song Position Pointer (0xF2), in MIDI beats (sixteenth notes); the estimate starts over."""
        if sixteenths < 0:
            raise ValueError(f"song position must be >= 0, got {sixteenths}")
        with self._lock:
            self._reset_estimate()
            self._next_pos = sixteenths * self.ppqn // 4
            self._last_pos = None
            self.relocations += 1

    # --- readings ---------------------------------------------------------------------------

    @property
    def bpm(self) -> float | None:
        """The tempo in quarter notes per minute, or None until a full window of ticks arrived."""
        with self._lock:
            if len(self._times) < self.window_ticks or not self._slope:
                return None
            return 60.0 / (self._slope * self.ppqn)

    @property
    def tempo(self) -> float | None:
        """The best tempo there is now, for scheduling: the full-window fit, else the partial fit
        since the last reset, else the tempo before it; None if there never was one."""
        with self._lock:
            slope = self._slope or self._prev_slope
            return 60.0 / (slope * self.ppqn) if slope else None

    @property
    def running(self) -> bool:
        """True between Start/Continue and Stop."""
        with self._lock:
            return self._running

    def beats(self, t: float) -> float:
        """The song position at time ``t`` in quarter notes.

        While running, the position of the last tick is carried forward along
        the fitted line (so tick jitter does not show); before the first tick
        after Start/Continue, or while stopped, it is where playback resumes.
        """
        with self._lock:
            return self._beats(t)

    def next_bar_time(self, t: float) -> float | None:
        """The time of the first bar line strictly after ``t``.

        None while stopped or before there is any tempo to extrapolate with
        (this uses the partial fit right after a reset, or the tempo from before it).
        """
        with self._lock:
            slope = self._slope or self._prev_slope
            if not self._running or not slope:
                return None
            beats = self._beats(t)
            bar = math.floor(beats / self.beats_per_bar + 1e-9) + 1
            return t + (bar * self.beats_per_bar - beats) * self.ppqn * slope

    # --- internals (lock held) ----------------------------------------------------------------

    def _lost_before(self, t: float) -> int:
        """Ticks lost between the last tick and one at ``t``: only after ``missed``, by the fit.

        Measured from where the fit puts the last tick, not where it was stamped: the
        receiver may have stamped the ticks of the block before the hole early (it did not
        know of the hole yet); the fit over the window barely moves for one tick.
        """
        if self._missed_since is None or not self._times or not self._slope:
            return 0
        ticks = (t - self._fitted_time(self._indices[-1])) / self._slope
        # Whole ticks only: a receiver's clock that slipped by part of a tick (a JACK period
        # taken for a skipped cycle) is not a lost tick; counting it would move the song.
        if abs(ticks - round(ticks)) > LOST_TICK_TOLERANCE:
            return 0
        return max(0, round(ticks) - 1)

    def _reset_estimate(self) -> None:
        if self._slope:
            self._prev_slope = self._slope
        self._times.clear()
        self._indices.clear()
        self._count = 0
        self._slope = None
        self._last_pos = None

    def _refit(self) -> None:
        """The least-squares line of tick time against tick number, once per tick: its slope
        (seconds per tick) and centre, which every reading (each audio block) then uses.

        Tick numbers are taken as counted, but for slips of the count (``_slips``), which are
        counted over for the fit (in whole ticks); the centre is put back on the counted
        numbers at the last tick, so the fitted line passes where the clock is now.
        """
        n = len(self._times)
        if n < 2:
            self._slope = None
            return
        t0 = self._times[0]
        times = [x - t0 for x in self._times]
        counted = list(self._indices)
        shifts = self._slips(counted, times)
        self.slips = sum(1 for s in shifts if s)
        indices = counted
        if self.slips:
            total, indices = 0, []
            for i, shift in zip(counted, shifts):
                total += shift
                indices.append(i + total)
        mean_i = sum(indices) / n
        mean_t = sum(times) / n
        num = sum((i - mean_i) * (x - mean_t) for i, x in zip(indices, times))
        den = sum((i - mean_i) ** 2 for i in indices)
        self._slope = num / den if num > 0 and den > 0 else None
        self._centre = (mean_i - (indices[-1] - counted[-1]), t0 + mean_t)

    def _slips(self, indices: list[int], times: list[float]) -> list[int]:
        """Ticks to add to the count before each tick, for slips: an interval ``SLIP`` ticks or
        more from what the last fit says is one lost (+1) or doubled (-1) tick, or several.
        All zero when the times are too coarse to tell or of unknown resolution, or when there
        are so many that it is the tempo that changed."""
        shifts = [0] * len(times)
        if self.resolution is None:
            return shifts
        reference = self._slope
        if not reference:  # right after a reset: the median interval per tick number
            steps = sorted((times[j] - times[j - 1]) / (indices[j] - indices[j - 1]) for j in range(1, len(times)))
            reference = steps[len(steps) // 2]
        if reference <= 0 or self.resolution > SLIP_RESOLUTION * reference:
            return shifts
        slips = 0
        for j in range(1, len(times)):
            ticks = (times[j] - times[j - 1]) / reference
            counted = indices[j] - indices[j - 1]
            if abs(ticks - counted) >= SLIP:
                shifts[j] = round(ticks) - counted
                slips += shifts[j] != 0
        return shifts if slips <= MAX_SLIPS else [0] * len(times)

    def _fitted_time(self, index: int) -> float:
        """Where the fitted line puts the tick with this number (since the last reset)."""
        mean_i, mean_t = self._centre
        return mean_t + (index - mean_i) * self._slope

    def _beats(self, t: float) -> float:
        if not self._running or self._last_pos is None:
            return self._next_pos / self.ppqn
        if self._slope is None:
            anchor, slope = self._times[-1], self._prev_slope
        else:
            anchor, slope = self._fitted_time(self._last_index), self._slope
        ticks = self._last_pos
        if slope:
            ticks += (t - anchor) / slope
        return ticks / self.ppqn
