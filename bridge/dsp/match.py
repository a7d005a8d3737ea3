"""Reference matching: move a mix's long-term spectral balance to a reference's.

The long-term average spectra (Welch, mono sum) of the input and the
reference are smoothed to 1/3 octave, their ratio is made level-neutral
(loudness is matched separately), clamped, and applied as a linear-phase
FIR whose delay is removed so the output keeps the input's exact length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

# Outside this band the curve is held flat: below it is rumble the high-pass
# removes anyway, above it both spectra are mostly noise and air.
LOW_HZ = 30.0
HIGH_HZ = 16000.0
MAX_DB = 12.0
# Energy floor relative to a spectrum's peak, so empty bins (a render that
# stops at 10 kHz) do not ask for +infinity dB.
_FLOOR_DB = -100.0


@dataclass(frozen=True)
class MatchCurve:
    """A matching EQ curve.

    Attributes:
        freqs_hz: frequency grid (0 .. Nyquist).
        gain_db: correction in dB at each frequency (clamped).
        taps: the linear-phase FIR realising it (odd length).
    """

    freqs_hz: np.ndarray
    gain_db: np.ndarray
    taps: np.ndarray

    def summary(self) -> dict:
        """Return a small JSON-friendly description for reports."""
        bands = {"low_db": (LOW_HZ, 250.0), "mid_db": (250.0, 4000.0), "high_db": (4000.0, HIGH_HZ)}
        out = {}
        for name, (lo, hi) in bands.items():
            mask = (self.freqs_hz >= lo) & (self.freqs_hz < hi)
            out[name] = round(float(self.gain_db[mask].mean()), 2) if mask.any() else 0.0
        out["max_boost_db"] = round(float(self.gain_db.max()), 2)
        out["max_cut_db"] = round(float(self.gain_db.min()), 2)
        return out


def _segment(sample_rate: int) -> int:
    """Welch segment: a power of two of about 0.17 s (~6 Hz bins)."""
    return 1 << int(round(math.log2(sample_rate / 6.0)))


def average_spectrum(samples: np.ndarray, sample_rate: int, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average power spectrum of the mono sum.

    Args:
        samples: float array (frames, channels).
        sample_rate: in Hz.
        nperseg: Welch segment length.

    Returns:
        (freqs_hz, power) arrays.
    """
    mono = samples.mean(axis=1)
    nperseg = min(nperseg, mono.size)
    freqs, power = signal.welch(mono, fs=sample_rate, nperseg=nperseg, window="hann")
    return freqs, power


def smooth_octave(freqs: np.ndarray, power: np.ndarray, fraction: float = 3.0) -> np.ndarray:
    """Average power over a 1/``fraction`` octave around each frequency.

    Args:
        freqs: ascending frequency grid (uniform, starting at 0).
        power: power at each frequency.
        fraction: 3 for third-octave smoothing.

    Returns:
        The smoothed power on the same grid.
    """
    half = 2.0 ** (1.0 / (2.0 * fraction))
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.searchsorted(freqs, freqs / half, side="left")
    hi = np.searchsorted(freqs, freqs * half, side="right")
    hi = np.maximum(hi, lo + 1)  # at least the bin itself
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def design_curve(
    source: np.ndarray,
    reference: np.ndarray,
    sample_rate: int,
    max_db: float = MAX_DB,
) -> MatchCurve:
    """Design the FIR that moves ``source``'s spectral balance to ``reference``'s.

    Args:
        source: float array (frames, channels) to be corrected.
        reference: float array (frames, channels) at the same sample rate.
        sample_rate: in Hz.
        max_db: clamp of the correction, in dB either way.

    Returns:
        A :class:`MatchCurve`.
    """
    nperseg = _segment(sample_rate)
    freqs, src = average_spectrum(source, sample_rate, nperseg)
    _, ref = average_spectrum(reference, sample_rate, nperseg)
    src_s, ref_s = smooth_octave(freqs, src), smooth_octave(freqs, ref)
    floor = 10.0 ** (_FLOOR_DB / 10.0)
    src_s = np.maximum(src_s, src_s.max() * floor)
    ref_s = np.maximum(ref_s, ref_s.max() * floor)
    ratio = 10.0 * np.log10(ref_s / src_s)
    high = min(HIGH_HZ, 0.9 * sample_rate / 2.0)
    inside = (freqs >= LOW_HZ) & (freqs <= high)
    ratio = np.interp(freqs, freqs[inside], ratio[inside])  # holds the edges flat
    # Level-neutral: the source's energy is unchanged by the curve.
    weights = src_s / src_s.sum()
    ratio -= 10.0 * np.log10(np.sum(weights * 10.0 ** (ratio / 10.0)))
    ratio = np.clip(ratio, -max_db, max_db)
    taps = _fir(freqs, ratio, sample_rate)
    return MatchCurve(freqs_hz=freqs, gain_db=ratio, taps=taps)


def _fir(freqs: np.ndarray, gain_db: np.ndarray, sample_rate: int) -> np.ndarray:
    """Linear-phase FIR of ~85 ms (odd length) with the given magnitude."""
    numtaps = (1 << int(round(math.log2(sample_rate / 12.0)))) + 1
    nyquist = sample_rate / 2.0
    grid = np.clip(freqs / nyquist, 0.0, 1.0)
    grid[-1] = 1.0
    return signal.firwin2(numtaps, grid, 10.0 ** (gain_db / 20.0), window="hann")


def apply_fir(samples: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Filter every channel with a linear-phase FIR, delay removed.

    Args:
        samples: float array (frames, channels).
        taps: odd-length symmetric FIR.

    Returns:
        Filtered array with exactly the input's shape, time-aligned.
    """
    delay = (len(taps) - 1) // 2
    out = signal.oaconvolve(samples, taps[:, None], mode="full", axes=0)
    return out[delay : delay + samples.shape[0]]
