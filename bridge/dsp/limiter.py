"""An oversampled look-ahead true-peak limiter, vectorised with numpy/scipy.

How it works (offline, so look-ahead costs no latency and length is exact):

1. **Peak envelope.** Each channel is interpolated 4x (8x below 32 kHz)
   with a windowed-sinc polyphase FIR, in chunks to bound memory. The
   envelope holds, per input frame, the largest absolute value among the
   frame and its interpolated neighbours, over all channels (linked, so the
   stereo image never shifts).
2. **Required attenuation** in dB per frame is ``max(0, peak + gain - ceiling)``,
   reduced to blocks of ~0.5 ms by taking the block maximum.
3. **Release.** An exponential release in the dB domain with instant attack,
   ``a[b] = max_k req[k] * alpha**(b - k)``, is computed by doubling
   (``log2`` vectorised passes) instead of a per-sample loop.
4. **Look-ahead attack.** A forward running maximum over the look-ahead
   window followed by a backward moving average of the same length ramps
   the gain down *before* each peak. Every frame averaged for frame ``n``
   saw ``n`` inside its max window, so the smoothed attenuation is never
   less than what frame ``n`` needs: the ramp cannot undershoot.

The gain curve is smooth (milliseconds), so the inter-sample peaks of the
product stay within a few hundredths of a dB of ``gain * peak``; callers
limit to a ceiling slightly below the real one and verify with libebur128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Oversampling of the peak detector; BS.1770 asks for >= 4x below 96 kHz.
MIN_FACTOR = 4
# Neighbours used each side of an interpolated point (16-tap phases).
_HALF_TAPS = 8


@dataclass(frozen=True)
class LimiterStats:
    """What the limiter did.

    Attributes:
        max_reduction_db: the deepest gain reduction applied, in dB.
        limited_fraction: share of frames with more than 0.1 dB reduction.
    """

    max_reduction_db: float
    limited_fraction: float


def oversampling_factor(sample_rate: int) -> int:
    """Return the detector's oversampling: 4x, or 8x below 32 kHz."""
    return 8 if sample_rate < 32000 else MIN_FACTOR


def _phase_taps(factor: int) -> np.ndarray:
    """Kaiser-windowed sinc taps for the ``factor - 1`` in-between phases.

    Row ``p - 1`` interpolates the point ``p / factor`` of a frame after
    each frame from ``2 * _HALF_TAPS`` neighbours. Phase 0 is the frame
    itself, so it needs no filter. Each row is normalised to unity DC gain.
    """
    offsets = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)  # neighbour j of frame n
    rows = []
    for phase in range(1, factor):
        distance = phase / factor - offsets
        window = np.kaiser(2 * _HALF_TAPS + 2, 7.0)[1:-1]
        taps = np.sinc(distance) * window
        rows.append(taps / taps.sum())
    # np.convolve flips its kernel; store the taps flipped to get correlation.
    return np.asarray(rows, dtype=np.float32)[:, ::-1]


def peak_envelope(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame true-peak envelope over all channels.

    Args:
        samples: float array (frames, channels).
        sample_rate: in Hz (decides the oversampling factor).

    Returns:
        float64 array (frames,): for each frame, the largest absolute value
        of the frame and of the interpolated points up to the next frame,
        over all channels.
    """
    factor = oversampling_factor(sample_rate)
    phases = _phase_taps(factor)
    frames = samples.shape[0]
    envelope = np.zeros(frames, dtype=np.float32)
    # Channel by channel (numpy's max over a short last axis is slow), one
    # short convolution per phase: np.convolve on float32 is several times
    # faster here than upfirdn or FFT convolution.
    for channel in range(samples.shape[1]):
        data = np.ascontiguousarray(samples[:, channel], dtype=np.float32)
        np.maximum(envelope, np.abs(data), out=envelope)
        for taps in phases:
            between = np.convolve(data, taps, mode="full")[_HALF_TAPS : _HALF_TAPS + frames]
            np.maximum(envelope, np.abs(between, out=between), out=envelope)
    # A peak between frames n and n+1 constrains both of them.
    np.maximum(envelope[1:], envelope[:-1], out=envelope[1:])
    # float32 rounding is ~1e-7 relative: far below the limiter's margin, but
    # the exact frame peaks must not be rounded down.
    out = envelope.astype(np.float64)
    for channel in range(samples.shape[1]):
        np.maximum(out, np.abs(samples[:, channel]), out=out)
    return out


def db_to_gain(db: np.ndarray | float) -> np.ndarray:
    """Convert dB to linear gain (``exp`` is ~20x faster than ``10 ** x``)."""
    return np.exp(np.asarray(db, dtype=np.float64) * (math.log(10.0) / 20.0))


def apply_gain(samples: np.ndarray, gain_db: np.ndarray | float) -> np.ndarray:
    """Multiply every channel by a per-frame (or scalar) gain given in dB.

    Args:
        samples: float array (frames, channels).
        gain_db: scalar or array (frames,) of gains in dB.

    Returns:
        A new array of the same shape and dtype.
    """
    gains = db_to_gain(gain_db).astype(samples.dtype, copy=False)
    if gains.ndim:
        gains = gains[:, None]
    return samples * gains


def _release(required: np.ndarray, alpha: float) -> np.ndarray:
    """Instant-attack exponential release: ``max_k required[k] * alpha**(n-k)``.

    Computed by doubling: after the pass with shift ``m`` each value covers
    the ``2m`` latest blocks. Stops once ``alpha**m`` is negligible, which
    only trims the far tail of a release, never a needed reduction.
    """
    out = required.copy()
    shift = 1
    while shift < out.size:
        decay = alpha**shift
        if decay < 1e-4:
            break
        shifted = out[:-shift] * decay
        np.maximum(out[shift:], shifted, out=out[shift:])
        shift *= 2
    return out


def gain_curve(
    envelope: np.ndarray,
    sample_rate: int,
    ceiling_db: float,
    gain_db: float = 0.0,
    lookahead_ms: float = 3.0,
    release_ms: float = 80.0,
) -> np.ndarray:
    """Compute the limiter's attenuation in dB for every frame.

    Args:
        envelope: per-frame true-peak envelope (from :func:`peak_envelope`).
        sample_rate: in Hz.
        ceiling_db: the level no peak may exceed after gain and limiting.
        gain_db: static gain applied before the limiter.
        lookahead_ms: attack ramp length; the gain is down before a peak.
        release_ms: time constant of the release (dB domain).

    Returns:
        float64 array (frames,) of attenuation in dB (>= 0).
    """
    frames = envelope.size
    block = max(1, int(round(sample_rate * 0.0005)))
    lookahead = max(block, int(round(sample_rate * lookahead_ms / 1000.0)))
    nblocks = -(-frames // block)
    padded = np.zeros(nblocks * block)
    padded[:frames] = envelope
    peaks = padded.reshape(nblocks, block).max(axis=1)
    with np.errstate(divide="ignore"):
        required = np.maximum(20.0 * np.log10(peaks) + gain_db - ceiling_db, 0.0)
    alpha = math.exp(-block / (sample_rate * release_ms / 1000.0))
    released = _release(required, alpha)
    # Forward max over enough blocks to cover the averaging window below.
    ahead = -(-(lookahead - 1) // block)
    held = _forward_max(released, ahead)
    stair = np.repeat(held, block)[:frames]
    return _backward_mean(stair, lookahead)


def _forward_max(values: np.ndarray, span: int) -> np.ndarray:
    """Return ``max(values[b : b + span + 1])`` for every ``b``."""
    size = span + 1
    # origin -(size // 2) moves scipy's centred window to start at b.
    return ndimage.maximum_filter1d(values, size=size, origin=-(size // 2), mode="nearest")


def _backward_mean(values: np.ndarray, length: int) -> np.ndarray:
    """Return the mean of ``values[n - length + 1 : n + 1]`` (start padded)."""
    # origin (length - 1) // 2 moves scipy's centred window to end at n.
    return ndimage.uniform_filter1d(values, size=length, origin=(length - 1) // 2, mode="nearest")
