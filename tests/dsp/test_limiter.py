"""The true-peak limiter: never over the ceiling, smooth, look-ahead."""

import numpy as np
import pytest

from bridge.dsp import limiter, loudness
from tests.music import bach, cache_dir, have_renderer

pytestmark = pytest.mark.skipif(not have_renderer(), reason="needs fluidsynth + FluidR3_GM")


@pytest.fixture(scope="session")
def music(tmp_path_factory):
    return cache_dir(tmp_path_factory)


def apply(x, rate, ceiling, gain_db, **kwargs):
    envelope = limiter.peak_envelope(x, rate)
    reduction = limiter.gain_curve(envelope, rate, ceiling, gain_db=gain_db, **kwargs)
    return x * (10 ** ((gain_db - reduction) / 20))[:, None], reduction


def test_oversamples_at_least_4x_at_every_rate():
    for rate in (22050, 44100, 48000, 88200, 96000, 192000):
        assert limiter.oversampling_factor(rate) >= 4


def test_envelope_catches_inter_sample_peaks():
    rate = 48000
    t = np.arange(rate) / rate
    x = 0.5 * np.sin(2 * np.pi * 12000 * t + np.pi / 4)[:, None]  # samples at 0.354
    envelope = limiter.peak_envelope(x, rate)
    assert np.abs(x).max() == pytest.approx(0.354, abs=0.001)
    assert envelope[100:-100].min() > 0.49


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("gain_db", [16.0, 24.0])
def test_never_exceeds_the_ceiling_by_libebur128(music, rate, gain_db):
    x, rate = bach(music, rate, seconds=10)
    y, reduction = apply(x, rate, -1.0, gain_db)
    assert reduction.max() > 2.0  # it really had to limit
    assert loudness.measure(y, rate).true_peak_dbtp <= -1.0 + 0.02


def test_gain_ramps_down_before_the_peak_and_recovers():
    rate = 48000
    x = np.full((rate * 2, 1), 0.1)
    x[rate, 0] = 1.0  # one spike at 1 s, 20 dB over the rest
    y, reduction = apply(x, rate, -6.0, 0.0, lookahead_ms=3.0, release_ms=80.0)
    assert reduction[rate] >= 6.0 - 1e-9
    assert reduction[rate - int(0.0015 * rate)] > 0.5  # already reducing 1.5 ms early
    assert reduction[rate - int(0.005 * rate)] == 0.0  # but not 5 ms early
    assert reduction[rate + int(0.5 * rate)] < 0.05  # released after 0.5 s
    assert np.abs(y).max() <= 10 ** (-6 / 20) + 1e-9


def test_gain_is_smooth(music):
    x, rate = bach(music, 44100, seconds=10)
    _, reduction = apply(x, rate, -1.0, 24.0)
    # Attack is spread over the 3 ms look-ahead: no step bigger than the
    # deepest reduction divided by the ramp length (plus a little slack).
    ramp = int(0.003 * rate)
    assert np.abs(np.diff(reduction)).max() <= reduction.max() / ramp * 1.01


def test_does_nothing_under_the_ceiling(music):
    x, rate = bach(music, 48000, seconds=5)
    y, reduction = apply(x, rate, 0.0, 0.0)  # renders peak near -12 dBFS
    assert reduction.max() == 0.0
    np.testing.assert_array_equal(y, x)


# -- chunked == whole -------------------------------------------------------------------------
# The engine limits long files chunk by chunk from block peaks; these pin that it computes the
# same numbers as the documented whole-array math (module docstring of bridge.dsp.limiter).

def reference_envelope(x, rate):
    """Step 1 written out plainly: each phase interpolated from its 16 neighbours (float64)."""
    factor = limiter.oversampling_factor(rate)
    offsets = np.arange(-7, 9)
    padded = np.pad(x, ((7, 8), (0, 0)))
    peak = np.abs(x).max(axis=1)
    for phase in range(1, factor):
        window = np.kaiser(18, 7.0)[1:-1]
        taps = np.sinc(phase / factor - offsets) * window
        taps /= taps.sum()
        between = sum(taps[j] * padded[j : j + x.shape[0]] for j in range(16))
        peak = np.maximum(peak, np.abs(between).max(axis=1))
    peak[1:] = np.maximum(peak[1:], peak[:-1])
    return peak


def reference_curve(envelope, rate, ceiling, gain_db, lookahead_ms=3.0, release_ms=80.0):
    """Steps 2-4 written out plainly (a direct max over the release window, loops over frames)."""
    block = max(1, round(rate * 0.0005))
    width = max(block, round(rate * lookahead_ms / 1000))
    nblocks = -(-envelope.size // block)
    peaks = np.array([envelope[b * block : (b + 1) * block].max() for b in range(nblocks)])
    with np.errstate(divide="ignore"):
        required = np.maximum(20 * np.log10(peaks) + gain_db - ceiling, 0.0)
    alpha = np.exp(-block / (rate * release_ms / 1000))
    reach = 1
    while reach < nblocks and alpha**reach >= 1e-4:
        reach *= 2  # the doubling covers the 2m latest blocks after its last shift m
    released = required.copy()
    for d in range(1, min(reach, nblocks)):  # max over the window, one distance at a time
        released[d:] = np.maximum(released[d:], required[:-d] * alpha**d)
    ahead = -(-(width - 1) // block)
    held = np.array([released[b : b + ahead + 1].max() for b in range(nblocks)])
    stair = np.concatenate([np.full(width - 1, held[0]), np.repeat(held, block)[: envelope.size]])
    window_sums = np.convolve(stair, np.ones(width), mode="valid")
    return window_sums / width


def test_chunked_envelope_and_curve_match_the_plain_math():
    rate = 8000  # 8x oversampling, short blocks: every path, quickly
    rng = np.random.default_rng(3)
    frames = rate * 3 + 5
    level = np.repeat(rng.random(31) * 2, rate // 10)[:frames]
    level[rate : rate * 11 // 10] = 4.0  # a loud burst, then a quiet stretch: the whole release shows
    level[rate * 11 // 10 : rate * 5 // 2] = 0.05
    x = rng.standard_normal((frames, 2)) * level[:, None]
    envelope = limiter.peak_envelope(x, rate)
    assert np.allclose(envelope, reference_envelope(x, rate), rtol=1e-6, atol=0)
    assert (envelope >= np.abs(x).max(axis=1)).all()  # exact frame peaks never rounded down
    for gain in (0.0, 12.0):
        expected = reference_curve(envelope, rate, -1.0, gain)
        assert np.abs(limiter.gain_curve(envelope, rate, -1.0, gain_db=gain) - expected).max() < 1e-9
        peaks = limiter.block_peaks(x, rate, chunk=777)
        curve = limiter.GainCurve(peaks, x.shape[0], rate, -1.0, gain_db=gain)
        spans = np.concatenate([curve.span(s, min(s + 1001, x.shape[0]))
                                for s in range(0, x.shape[0], 1001)])
        assert np.abs(spans - expected).max() < 1e-9


@pytest.mark.parametrize("rate", [44100, 96000])
def test_chunked_limiter_equals_whole_on_music(music, rate):
    x, rate = bach(music, rate, seconds=10)
    envelope = limiter.peak_envelope(x, rate)
    for start, stop in ((0, 1), (0, 5000), (1, 4097), (123457, 300001), (x.shape[0] - 9, x.shape[0])):
        np.testing.assert_array_equal(limiter.envelope_span(x, rate, start, stop), envelope[start:stop])
    block = limiter.block_frames(rate)
    whole_peaks = limiter.block_peaks(x, rate, chunk=x.shape[0])
    np.testing.assert_array_equal(limiter.block_peaks(x, rate, chunk=10000), whole_peaks)
    np.testing.assert_array_equal(whole_peaks[:-1], envelope[: (whole_peaks.size - 1) * block]
                                  .reshape(-1, block).max(axis=1))
    whole = limiter.gain_curve(envelope, rate, -1.0, gain_db=24.0)
    curve = limiter.GainCurve(whole_peaks, x.shape[0], rate, -1.0, gain_db=24.0)
    step = 65537  # not a multiple of the block: boundaries inside blocks and ramps
    chunked = np.concatenate([curve.span(s, min(s + step, x.shape[0]))
                              for s in range(0, x.shape[0], step)])
    assert whole.max() > 6.0
    assert np.abs(chunked - whole).max() < 1e-9


def test_float32_block_peaks_round_up_never_down():
    rate = 48000
    x = np.random.default_rng(5).standard_normal((rate, 2)) * 0.3  # float64 frames
    exact = limiter.block_peaks(x, rate)
    stored = limiter.block_peaks(x, rate, out=np.zeros(exact.size, np.float32), chunk=5000)
    assert (stored.astype(np.float64) >= exact).all()
    assert (stored.astype(np.float64) <= exact * (1 + 2**-22)).all()  # at most one float32 step
