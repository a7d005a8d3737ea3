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
