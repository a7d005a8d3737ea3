"""Reference matching: move a mix's long-term spectral balance to a reference's.

The long-term average spectra (Welch, mono sum) of the input and the
reference are smoothed to 1/3 octave, their ratio is made level-neutral
(loudness is matched separately), clamped, and applied as a linear-phase
FIR whose delay is removed so the output keeps the input's exact length.

Long files are handled chunk by chunk with the same results: the Welch
average is a mean over fixed segments, so segments are accumulated as
chunks arrive (:class:`Spectrum`); a reference at another rate is resampled
chunk by chunk with scipy's own ``resample_poly`` on slices that start on
a whole resampling period and carry the filter's reach as context
(:func:`resampled_mono`); the FIR is applied by overlap-save
(:func:`apply_fir_into`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import signal

from . import chunks

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


def segment_for(sample_rate: int, frames: int) -> int:
    """The Welch segment used for a clip of ``frames`` (shorter clips: one segment)."""
    return max(1, min(_segment(sample_rate), int(frames)))


class Spectrum:
    """Welch's average power spectrum of the mono sum, fed chunk by chunk.

    Equals ``scipy.signal.welch(mono, fs, nperseg=nperseg, window="hann")``
    (half-overlapping segments, each detrended by its mean, density
    scaling), to float rounding.

    Args:
        sample_rate: in Hz.
        nperseg: segment length (see :func:`segment_for`).
    """

    def __init__(self, sample_rate: int, nperseg: int):
        self.rate, self.nperseg = int(sample_rate), int(nperseg)
        self.step = self.nperseg - self.nperseg // 2
        self.window = signal.get_window("hann", self.nperseg)
        self.segments = 0
        self._sum = np.zeros(self.nperseg // 2 + 1)
        self._tail = np.zeros(0)  # samples not yet in a complete segment

    def add(self, samples: np.ndarray) -> None:
        """Add the next frames: (frames, channels), or an already mono (frames,)."""
        mono = samples.mean(axis=1) if samples.ndim == 2 else np.asarray(samples, np.float64)
        buffer = np.concatenate([self._tail, mono])
        count = 0 if buffer.size < self.nperseg else (buffer.size - self.nperseg) // self.step + 1
        if count:
            windows = np.lib.stride_tricks.sliding_window_view(buffer, self.nperseg)
            segments = windows[:: self.step][:count]
            segments = (segments - segments.mean(axis=1, keepdims=True)) * self.window
            spectra = np.fft.rfft(segments, axis=1)
            self._sum += (spectra.real**2 + spectra.imag**2).sum(axis=0)
            self.segments += count
        self._tail = buffer[count * self.step :]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(freqs_hz, power density) averaged over every complete segment."""
        power = self._sum / (max(self.segments, 1) * self.rate * np.sum(self.window**2))
        power[1 : None if self.nperseg % 2 else -1] *= 2.0  # one-sided: fold negative freqs
        return np.fft.rfftfreq(self.nperseg, 1.0 / self.rate), power


def average_spectrum(samples: np.ndarray, sample_rate: int, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average power spectrum of the mono sum.

    Args:
        samples: float array (frames, channels); read chunk by chunk.
        sample_rate: in Hz.
        nperseg: Welch segment length (cut to the clip's length).

    Returns:
        (freqs_hz, power) arrays.
    """
    spectrum = Spectrum(sample_rate, min(nperseg, samples.shape[0]))
    for start, stop in chunks.spans(samples.shape[0]):
        spectrum.add(chunks.read(samples, start, stop))
    return spectrum.result()


def resampled_mono(samples: np.ndarray, old: int, new: int,
                   chunk: int | None = None) -> Iterator[np.ndarray]:
    """The mono sum of ``samples`` at ``new`` Hz, yielded chunk by chunk.

    Equals ``scipy.signal.resample_poly(mono, up, down)`` on the whole clip:
    its output ``m`` reads input ``n`` only near ``m * down / up``, and a
    slice that starts on a multiple of ``down`` lines up with the same
    filter phases. Each slice carries the filter's reach as context.
    """
    gcd = math.gcd(int(old), int(new))
    up, down = int(new) // gcd, int(old) // gcd
    frames = samples.shape[0]
    chunk = chunks.CHUNK_FRAMES if chunk is None else chunk
    if up == down:
        for start, stop in chunks.spans(frames, chunk):
            yield chunks.read(samples, start, stop).mean(axis=1)
        return
    half = 10 * max(up, down)  # resample_poly's own filter, designed once
    taps = signal.firwin(2 * half + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    context = half // up + 4
    total = -(-frames * up // down)
    for first, last in chunks.spans(total, up * max(1, chunk // down)):
        lo = max(0, (first * down // up - context) // down * down)
        hi = min(frames, -(-last * down // up) + context)
        y = signal.resample_poly(chunks.read(samples, lo, hi).mean(axis=1), up, down, window=taps)
        skip = lo // down * up  # outputs before this slice
        yield y[first - skip : last - skip]


def reference_spectrum(samples: np.ndarray, old: int, new: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch spectrum of ``samples`` (at ``old`` Hz) as it would read at ``new`` Hz.

    The reference's samples are resampled chunk by chunk and fed straight
    to the estimate; no resampled copy is kept.
    """
    gcd = math.gcd(int(old), int(new))
    frames = -(-samples.shape[0] * (int(new) // gcd) // (int(old) // gcd))
    spectrum = Spectrum(new, segment_for(new, frames))
    for block in resampled_mono(samples, old, new):
        spectrum.add(block)
    return spectrum.result()


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
    return curve_from_spectra(freqs, src, ref, sample_rate, max_db)


def curve_from_spectra(
    freqs: np.ndarray,
    src: np.ndarray,
    ref: np.ndarray,
    sample_rate: int,
    max_db: float = MAX_DB,
) -> MatchCurve:
    """Design the matching FIR from two average spectra on one grid.

    Args:
        freqs: the grid (0 .. Nyquist of ``sample_rate``).
        src: the source's average power at each frequency.
        ref: the reference's, on the same grid.
        sample_rate: in Hz.
        max_db: clamp of the correction, in dB either way.

    Returns:
        A :class:`MatchCurve`.
    """
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


def apply_fir_into(
    src: np.ndarray,
    taps: np.ndarray,
    dst: np.ndarray,
    check: Callable[[], object] | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """:func:`apply_fir` chunk by chunk (overlap-save), writing into ``dst``.

    ``dst`` may be ``src`` itself: the input frames a later chunk still
    needs are kept before they are overwritten.

    Args:
        src: float array (frames, channels), e.g. a disk-backed memmap.
        taps: odd-length symmetric FIR.
        dst: array of the same shape, written in place.
        check: called between chunks (a cancel hook).
        chunk: frames per step (default :data:`chunks.CHUNK_FRAMES`).

    Returns:
        ``dst``.
    """
    delay = (len(taps) - 1) // 2
    frames = src.shape[0]
    history = np.zeros((delay, src.shape[1]))  # src[start - delay : start], as it was
    kernel = np.asarray(taps, dtype=np.float64)[:, None]
    for start, stop in chunks.spans(frames, chunk):
        if start and check is not None:
            check()
        here = chunks.read(src, start, stop)
        ahead = chunks.read(src, stop, stop + delay)  # not yet overwritten
        extended = np.concatenate([history, here, ahead])
        history = extended[-2 * delay : extended.shape[0] - delay].copy() if delay else history
        dst[start:stop] = signal.oaconvolve(extended, kernel, mode="valid", axes=0)
    return dst
