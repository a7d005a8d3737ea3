"""Reference matching's chunked pieces give the whole-array results."""

from fractions import Fraction

import numpy as np
import pytest
from scipy import signal

from bridge.dsp import match


@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(7)
    frames = 44100 * 12 + 77
    return rng.standard_normal((frames, 2)) * np.linspace(0.05, 1.0, frames)[:, None]


def test_chunked_welch_equals_scipy(noise):
    rate = 44100
    nperseg = match._segment(rate)
    _, expected = signal.welch(noise.mean(axis=1), fs=rate, nperseg=nperseg, window="hann")
    spectrum = match.Spectrum(rate, nperseg)
    for start in range(0, noise.shape[0], 12345):  # chunks cut segments anywhere
        spectrum.add(noise[start : start + 12345])
    freqs, power = spectrum.result()
    np.testing.assert_allclose(power, expected, rtol=1e-12)
    assert np.array_equal(freqs, np.fft.rfftfreq(nperseg, 1 / rate))
    short = noise[:3001]  # shorter than a segment: one segment of the whole clip
    _, expected = signal.welch(short.mean(axis=1), fs=rate, nperseg=3001, window="hann")
    np.testing.assert_allclose(match.average_spectrum(short, rate, nperseg)[1], expected, rtol=1e-10)


@pytest.mark.parametrize("old,new", [(48000, 44100), (44100, 96000), (96000, 44100), (22050, 48000),
                                     (44100, 44100)])
def test_chunked_resampling_equals_resample_poly(noise, old, new):
    ratio = Fraction(new, old)
    expected = signal.resample_poly(noise, ratio.numerator, ratio.denominator, axis=0).mean(axis=1)
    got = np.concatenate(list(match.resampled_mono(noise, old, new, chunk=50000)))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-12


def test_reference_spectrum_at_another_rate_matches_the_resampled_clip(noise):
    resampled = signal.resample_poly(noise, 160, 147, axis=0)  # 44.1 -> 48 kHz
    expected = match.average_spectrum(resampled, 48000, match._segment(48000))
    freqs, power = match.reference_spectrum(noise, 44100, 48000)
    assert np.array_equal(freqs, expected[0])
    np.testing.assert_allclose(power, expected[1], rtol=1e-9, atol=1e-12 * expected[1].max())


def test_chunked_fir_equals_whole_also_in_place(noise):
    rate = 44100
    freqs = np.fft.rfftfreq(match._segment(rate), 1 / rate)
    gain = np.clip(np.random.default_rng(1).standard_normal(freqs.size) * 3, -9, 9)
    taps = match._fir(freqs, gain, rate)
    expected = match.apply_fir(noise, taps)
    out = match.apply_fir_into(noise, taps, np.zeros_like(noise), chunk=30001)
    assert np.abs(out - expected).max() < 1e-12
    inplace = noise.copy()
    match.apply_fir_into(inplace, taps, inplace, chunk=999)  # chunks shorter than the FIR's delay
    assert np.abs(inplace - expected).max() < 1e-12
