"""Harmonic/percussive separation by median filtering (FitzGerald 2010).

A DSP split, not a neural separation: sustained partials are smooth along
time in a spectrogram, transients are smooth along frequency. Median
filtering the magnitude both ways and turning the two estimates into soft
(Wiener-like) masks gives a harmonic and a percussive part that sum back to
the input exactly. No weights, any channel count, any sample rate.

No installed library does this without librosa, so it is written here on
numpy's FFT and ``scipy.ndimage.median_filter``. Long files are processed in
blocks aligned to the STFT hop with margins wider than the filters' reach,
so memory stays bounded and the result matches one pass over the whole file.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

STEMS = ("harmonic", "percussive")
HARMONIC_KERNEL_SECONDS = 0.2  # median along time: longer than a drum hit
PERCUSSIVE_KERNEL_HZ = 500.0  # median along frequency: wider than a partial's lobe
MASK_POWER = 2.0
BLOCK_SECONDS = 30.0


def stft_size(rate: int) -> int:
    """About 93 ms of audio, a power of two (4096 at 44.1/48 kHz, 1024 at 8 kHz)."""
    return int(2 ** round(np.log2(max(rate, 1000) * 0.093)))


def hpss(samples: np.ndarray, rate: int, progress: Callable[[float], None] | None = None,
         alloc: Callable[[int, int], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``samples`` (frames, channels) into harmonic and percussive parts.

    Args:
        samples: float audio, shape (frames, channels).
        rate: sample rate in Hz (sets the STFT size and filter lengths).
        progress: called with 0..1 after each block and channel; may raise
            (e.g. the job's ``Cancelled``) to stop between blocks.
        alloc: makes each zeroed (frames, channels) float32 output array (a
            job's disk-backed scratch for long files); default ``np.zeros``.

    Returns:
        (harmonic, percussive), float32 arrays shaped like ``samples``;
        ``harmonic + percussive`` equals ``samples`` up to rounding.
    """
    samples = np.asarray(samples, dtype=np.float32)
    frames, channels = samples.shape
    n_fft = stft_size(rate)
    hop = n_fft // 4
    time_kernel = _odd(HARMONIC_KERNEL_SECONDS * rate / hop)
    freq_kernel = _odd(PERCUSSIVE_KERNEL_HZ * n_fft / rate)
    # A block's core must see every STFT frame the filters reach: half a
    # kernel of frames plus a frame on each side, rounded up to whole hops.
    margin = (time_kernel // 2 + 2) * hop + n_fft
    core = max(hop, int(BLOCK_SECONDS * rate) // hop * hop)
    alloc = alloc or (lambda n, c: np.zeros((n, c), dtype=np.float32))
    harmonic, percussive = alloc(frames, channels), alloc(frames, channels)
    starts = list(range(0, max(frames, 1), core))
    total = len(starts) * channels
    done = 0
    for start in starts:
        stop = min(frames, start + core)
        lo, hi = max(0, start - margin), min(frames, stop + margin)  # lo stays hop-aligned
        for ch in range(channels):
            h, p = _split(samples[lo:hi, ch], n_fft, hop, time_kernel, freq_kernel)
            harmonic[start:stop, ch] = h[start - lo:stop - lo]
            percussive[start:stop, ch] = p[start - lo:stop - lo]
            done += 1
            if progress is not None:
                progress(done / total)
    return harmonic, percussive


def _odd(value: float) -> int:
    size = max(3, int(round(value)))
    return size if size % 2 else size + 1


def _split(x: np.ndarray, n_fft: int, hop: int, time_kernel: int, freq_kernel: int):
    """One channel, one block: STFT, median masks, inverse STFT."""
    from scipy.ndimage import median_filter

    length = x.shape[0]
    window = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann: COLA at hop n/4
    padded = np.concatenate([np.zeros(n_fft, np.float32), x,
                             np.zeros(n_fft + (-length) % hop, np.float32)])
    count = 1 + (padded.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    spec = np.fft.rfft(padded[idx] * window, axis=1)  # (frames, bins)
    mag = np.abs(spec).astype(np.float32)
    harm = median_filter(mag, size=(time_kernel, 1), mode="reflect")
    perc = median_filter(mag, size=(1, freq_kernel), mode="reflect")
    hp, pp = harm ** MASK_POWER, perc ** MASK_POWER
    total = hp + pp
    mask = np.where(total > 0, hp / np.where(total > 0, total, 1.0), 0.5).astype(np.float32)
    h = _istft(spec * mask, window, hop, padded.shape[0])
    p = _istft(spec * (1.0 - mask), window, hop, padded.shape[0])
    return h[n_fft:n_fft + length], p[n_fft:n_fft + length]


def _istft(spec: np.ndarray, window: np.ndarray, hop: int, length: int) -> np.ndarray:
    """Weighted overlap-add, normalised by the summed squared window (exact inverse)."""
    n_fft = window.shape[0]
    frames = np.fft.irfft(spec, n=n_fft, axis=1).astype(np.float32) * window
    out = np.zeros(length, np.float32)
    norm = np.zeros(length, np.float32)
    for k in range(frames.shape[0]):
        out[k * hop:k * hop + n_fft] += frames[k]
        norm[k * hop:k * hop + n_fft] += window ** 2
    return out / np.maximum(norm, 1e-8)
