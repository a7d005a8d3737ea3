"""The MIDI clock estimator against synthetic clock with JACK-like jitter (sd 1.7 ms)."""

from __future__ import annotations

import math
import random

import pytest

from hosts.midi.clock import ClockEstimator

JITTER = 0.0017  # seconds, sd per tick over JACK with a ~5 ms period (TESTING.md)


def send(clock: ClockEstimator, bpm: float, ticks: int, start: float, rng: random.Random,
         jitter: float = JITTER) -> float:
    """``ticks`` clock messages at ``bpm`` from ``start`` (ideal times + jitter); returns the next ideal time."""
    period = 60.0 / bpm / clock.ppqn
    for i in range(ticks):
        clock.tick(start + i * period + rng.gauss(0.0, jitter))
    return start + ticks * period


@pytest.mark.parametrize("bpm", [120.0, 93.5])
@pytest.mark.parametrize("seed", range(5))
def test_tempo_within_a_tenth_of_a_bpm_through_jitter(bpm, seed):
    rng = random.Random(seed)
    clock = ClockEstimator()
    clock.start(0.0)
    send(clock, bpm, 96, 0.01, rng)
    assert clock.bpm == pytest.approx(bpm, abs=0.1)
    # one interval on its own would be far off: that is why the fit exists
    period = 60.0 / bpm / 24
    assert max(abs(60.0 / ((period + rng.gauss(0, JITTER) * 2 ** 0.5) * 24) - bpm) for _ in range(96)) > 5


def test_no_tempo_until_a_full_window():
    clock = ClockEstimator(window_ticks=96)
    clock.start(0.0)
    send(clock, 120.0, 95, 0.0, random.Random(1))
    assert clock.bpm is None
    clock.tick(95 * 60 / 120 / 24)
    assert clock.bpm == pytest.approx(120.0, abs=0.1)


@pytest.mark.parametrize("reset", ["start", "continue", "song_position"])
def test_start_continue_and_song_position_reset_the_estimate(reset):
    rng = random.Random(2)
    clock = ClockEstimator()
    clock.start(0.0)
    t = send(clock, 120.0, 200, 0.0, rng)
    assert clock.bpm is not None
    if reset == "start":
        clock.start(t)
    elif reset == "continue":
        clock.continue_(t)
    else:
        clock.song_position(32, t)
    assert clock.bpm is None
    t = send(clock, 93.5, 96, t, rng)
    assert clock.bpm == pytest.approx(93.5, abs=0.1)  # nothing of the old tempo left in the fit


def test_follows_a_tempo_change_within_one_window():
    rng = random.Random(3)
    clock = ClockEstimator()
    clock.start(0.0)
    t = send(clock, 120.0, 192, 0.0, rng)
    assert clock.bpm == pytest.approx(120.0, abs=0.1)
    t = send(clock, 100.0, 48, t, rng)
    assert 100.5 < clock.bpm < 119.5  # half a window in: between the two
    send(clock, 100.0, 48, t, rng)
    assert clock.bpm == pytest.approx(100.0, abs=0.1)


def test_position_follows_start_song_position_stop_and_continue():
    clock = ClockEstimator()
    period = 60 / 120 / 24
    assert not clock.running and clock.beats(0.0) == 0.0
    clock.start(0.0)
    assert clock.running and clock.beats(0.0) == 0.0 and clock.next_bar_time(0.0) is None
    for i in range(97):  # first tick after Start is position 0
        clock.tick(1.0 + i * period)
    last = 1.0 + 96 * period
    assert clock.beats(last) == pytest.approx(4.0, abs=1e-6)
    assert clock.beats(last + 0.25) == pytest.approx(4.5, abs=1e-6)  # carried along the fit
    assert clock.next_bar_time(last + 0.25) == pytest.approx(last + 2.0, abs=1e-6)  # bar 2 at beat 8
    assert clock.next_bar_time(last) == pytest.approx(last + 2.0, abs=1e-6)  # on a bar line: the next one
    clock.stop(last + period / 2)
    assert not clock.running and clock.next_bar_time(last + 0.3) is None
    held = clock.beats(last + 0.3)
    clock.tick(last + period)  # clock while stopped keeps the tempo fresh, not the position
    assert clock.beats(last + 5) == held == pytest.approx(97 / 24)
    clock.song_position(16, last + 1)  # 16 sixteenths = beat 4
    assert clock.beats(last + 1) == 4.0 and clock.bpm is None
    clock.continue_(last + 1.1)
    clock.tick(last + 1.2)
    assert clock.beats(last + 1.2) == pytest.approx(4.0)
    # right after a reset the bar line comes from the tempo before it
    assert clock.next_bar_time(last + 1.2) == pytest.approx(last + 1.2 + 2.0, abs=1e-6)


def test_a_gap_in_the_clock_starts_the_fit_over():
    rng = random.Random(4)
    clock = ClockEstimator()
    t = send(clock, 120.0, 96, 0.0, rng)
    send(clock, 120.0, 10, t + 3.0, rng)  # the master paused for 3 s without saying so
    assert clock.bpm is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="window_ticks"):
        ClockEstimator(window_ticks=1)
    with pytest.raises(ValueError, match="song position"):
        ClockEstimator().song_position(-1, 0.0)


def test_ticks_lost_by_the_receiver_are_counted_and_the_position_kept():
    """A JACK client not run for 3 cycles (32 ms) loses the ticks in them; told so, the clock
    counts them from the fitted tempo: position and tempo stay those of the master."""
    rng = random.Random(5)
    clock = ClockEstimator()
    clock.start(0.0)
    period = 60.0 / 120.0 / 24
    times = [i * period + rng.gauss(0.0, JITTER) for i in range(200)]
    lost = {150, 151}  # inside 32 ms of missed cycles
    for i, t in enumerate(times):
        if i == 150:
            clock.missed(times[149] + 0.005)
        if i not in lost:
            clock.tick(t)
    assert clock.beats(199 * period) == pytest.approx(199 / 24, abs=0.1 / 24)
    assert clock.bpm == pytest.approx(120.0, abs=0.1)


def test_a_slower_tempo_is_not_taken_for_lost_ticks():
    """Ticks twice as far apart with no word of lost input are a tempo change (120 -> 60)."""
    rng = random.Random(6)
    clock = ClockEstimator()
    clock.start(0.0)
    t = send(clock, 120.0, 96, 0.0, rng, jitter=0.0)
    send(clock, 60.0, 96, t, rng, jitter=0.0)
    assert clock.beats(t + 95 * 60.0 / 60.0 / 24) == pytest.approx((96 + 95) / 24, abs=1e-6)
    assert clock.bpm == pytest.approx(60.0, abs=0.1)


def test_a_reported_stall_longer_than_the_gap_limit_keeps_the_position():
    """0.6 s of missed cycles (longer than a paused master's gap): told, the clock counts the
    ticks in it instead of starting over; untold, it starts the fit over (a paused master)."""
    period = 60.0 / 120.0 / 24
    for told in (True, False):
        clock = ClockEstimator()
        clock.start(0.0)
        for i in range(200):
            if 100 <= i < 100 + round(0.6 / period):
                if told and i == 100:
                    clock.missed(99 * period + 0.001)
                continue
            clock.tick(i * period)
        if told:
            assert clock.beats(199 * period) == pytest.approx(199 / 24, abs=1e-6)
            assert clock.bpm == pytest.approx(120.0, abs=1e-6)
        else:
            assert clock.bpm is None  # the fit started over: fewer than 96 ticks since
    assert clock.relocations == 1


def test_lost_ticks_are_counted_when_the_tick_before_the_hole_was_stamped_early():
    """A JACK client learns of skipped cycles one block late: the tick in the block after
    the hole was stamped as if no cycle was skipped (1024 frames = 21 ms early at 48 kHz)."""
    period = 60.0 / 120.0 / 24
    clock = ClockEstimator()
    clock.start(0.0)
    early = 1024 / 48000
    for i in range(200):
        if i in (150, 151):
            continue  # lost in the skipped cycles
        if i == 153:
            clock.missed(148 * period)  # said at the block after the mis-stamped one
        clock.tick(i * period - (early if i == 152 else 0.0))
    assert clock.beats(199 * period) == pytest.approx(199 / 24, abs=0.2 / 24)


def test_a_receiver_clock_that_slipped_part_of_a_tick_is_not_counted_as_lost_ticks():
    """A JACK client that took a late timer read for a skipped cycle moves its clock by a
    period (512 frames = 0.52 of a tick at 123 BPM): no tick was lost, none is counted."""
    period = 60.0 / 123.0 / 24
    slip = 512 / 48000
    clock = ClockEstimator()
    clock.start(0.0)
    for i in range(200):
        if i == 150:
            clock.missed(149 * period)
        clock.tick(i * period + (slip if i >= 150 else 0.0))
    assert clock.beats(199 * period + slip) == pytest.approx(199 / 24, abs=1 / 48)


RATE = 48000


def jack_stamps(bpm: float, ticks: int, period: int = 256, first: float = 77.0) -> list[float]:
    """Tick times as python-rtmidi gives them on JACK: each tick's time is that of the cycle
    it falls in (the next multiple of ``period`` frames), not its own frame."""
    interval = RATE * 60.0 / (bpm * 24)
    return [math.ceil((first + k * interval) / period) * period / RATE for k in range(ticks)]


def read(times: list[float], resolution: float | None) -> float | None:
    clock = ClockEstimator(resolution=resolution)
    clock.start(0.0)
    for t in times:
        clock.tick(t)
    return clock.bpm


@pytest.mark.parametrize("bpm", [120.0, 93.5])
@pytest.mark.parametrize("where", [20, 48, 80])
def test_a_tick_lost_without_a_word_moves_no_tempo_when_the_times_are_fine(bpm, where):
    """A JACK cycle missed by the master or this receiver loses a tick and nobody says so
    (python-rtmidi cannot): counted as it came, a bar reads 1-2 BPM slow (118.68 for 120 in
    CI); with the JACK period as the times' resolution the hole is seen and kept out."""
    times = jack_stamps(bpm, 97)
    del times[where]
    assert abs(read(times, None) - bpm) > 0.3  # the count slipped: this is what CI saw
    assert read(times, 256 / RATE) == pytest.approx(bpm, abs=0.1)


@pytest.mark.parametrize("bpm", [120.0, 93.5])
def test_a_doubled_tick_and_a_late_cycle_move_no_tempo(bpm):
    """A tick delivered twice (a stale buffer after an xrun) and a cycle run a whole tick late
    (its tick stamped with the next one's): both slip the count or the time by a tick."""
    times = jack_stamps(bpm, 96)
    doubled = times[:30] + [times[29]] + times[30:]
    assert read(doubled, 256 / RATE) == pytest.approx(bpm, abs=0.1)
    late = list(times)
    late[60] = late[61]
    assert read(late, 256 / RATE) == pytest.approx(bpm, abs=0.1)
    assert abs(read(doubled, None) - bpm) > 0.3


@pytest.mark.parametrize("period", [512, 1024])
def test_coarse_times_are_counted_as_they_come(period):
    """With a JACK period of a third of a tick or more, an interval of two ticks or of none is
    normal (two ticks in one cycle at 1024 frames and 120 BPM): nothing is taken for a slip."""
    times = jack_stamps(120.0, 200, period)
    for end in range(96, 201, 8):
        assert read(times[:end], period / RATE) == read(times[:end], None)


@pytest.mark.parametrize("new_bpm", [60.0, 100.0, 240.0])
def test_a_tempo_change_is_followed_within_a_window_when_the_times_are_fine(new_bpm):
    """Many long (or short) intervals are a new tempo, not lost (or doubled) ticks."""
    clock = ClockEstimator(resolution=256 / RATE)
    clock.start(0.0)
    old = jack_stamps(120.0, 96)
    new = jack_stamps(new_bpm, 97, first=old[-1] * RATE)[1:]
    for t in old + new:
        clock.tick(t)
    assert clock.bpm == pytest.approx(new_bpm, abs=0.1 * new_bpm / 120)
    assert clock.slips == 0


def test_gaussian_jitter_with_a_fine_resolution_reads_as_before():
    """Times with random jitter (sd 1.7 ms) and a resolution of 1 ms: no interval is half a
    tick off, so the reading is the plain fit's."""
    rng = random.Random(7)
    period = 60.0 / 120.0 / 24
    times = [0.01 + i * period + rng.gauss(0.0, JITTER) for i in range(300)]
    for end in range(96, 301, 12):
        assert read(times[:end], 0.001) == pytest.approx(read(times[:end], None), abs=1e-12)


def test_a_negative_resolution_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        ClockEstimator(resolution=-0.001)
