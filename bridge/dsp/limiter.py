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

**Chunks.** Every step reaches only a bounded distance: the interpolator 8
frames either side, the release back ``sum(shifts)`` blocks (its doubling
stops once ``alpha**shift < 1e-4``, about 1 s), the look-ahead and the
average one window each way. So a long file is limited chunk by chunk
with that much context read around each chunk, and only the block peaks
(step 2, one value per 0.5 ms) are kept for the whole file: the same
numbers as the whole-array computation (:func:`peak_envelope`,
:func:`gain_curve`), up to the rounding of scipy's running average.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import chunks

# Oversampling of the peak detector; BS.1770 asks for >= 4x below 96 kHz.
MIN_FACTOR = 4
# Neighbours used each side of an interpolated point (16-tap phases).
_HALF_TAPS = 8
# Attenuation is decided per block of this length (the release's time step).
BLOCK_S = 0.0005
# The release's doubling stops once a block's decay is below this.
_RELEASE_FLOOR = 1e-4


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


def block_frames(sample_rate: int) -> int:
    """Frames per attenuation block (~0.5 ms)."""
    return max(1, int(round(sample_rate * BLOCK_S)))


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
    return envelope_span(samples, sample_rate, 0, samples.shape[0])


def envelope_span(samples: np.ndarray, sample_rate: int, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` of :func:`peak_envelope`, reading only that span.

    Args:
        samples: float array (frames, channels), e.g. a disk-backed memmap.
        sample_rate: in Hz.
        start, stop: the frames wanted (0 <= start <= stop <= frames).

    Returns:
        float64 array (stop - start,).
    """
    phases = _phase_taps(oversampling_factor(sample_rate))
    first = max(start - 1, 0)  # a peak between frames n-1 and n constrains n too
    # The interpolator reads 7 frames back and 8 ahead (zeros beyond the file).
    lo, hi = first - (_HALF_TAPS - 1), stop + _HALF_TAPS
    block = chunks.read(samples, lo, hi, np.float32)
    raw = np.zeros(stop - first, dtype=np.float32)
    # Channel by channel (numpy's max over a short last axis is slow), one
    # short convolution per phase: np.convolve on float32 is several times
    # faster here than upfirdn or FFT convolution.
    for channel in range(block.shape[1]):
        data = np.ascontiguousarray(block[:, channel])
        np.maximum(raw, np.abs(data[first - lo : stop - lo]), out=raw)
        for taps in phases:
            between = np.convolve(data, taps, mode="valid")  # [k] is frame first + k
            np.maximum(raw, np.abs(between, out=between), out=raw)
    envelope = np.maximum(raw[1:], raw[:-1]) if first < start else raw.copy()
    if first == start and raw.size > 1:
        np.maximum(envelope[1:], raw[:-1], out=envelope[1:])
    # float32 rounding is ~1e-7 relative: far below the limiter's margin, but
    # the exact frame peaks must not be rounded down.
    out = envelope.astype(np.float64)
    exact = samples[start:stop]
    for channel in range(exact.shape[1]):
        np.maximum(out, np.abs(exact[:, channel]), out=out)
    return out


def block_peaks(
    samples: np.ndarray,
    sample_rate: int,
    out: np.ndarray | None = None,
    check: Callable[[], object] | None = None,
    chunk: int | None = None,
) -> np.ndarray:
    """Block maxima of the peak envelope, computed chunk by chunk.

    Args:
        samples: float array (frames, channels), e.g. a disk-backed memmap.
        sample_rate: in Hz.
        out: where to write the ``ceil(frames / block_frames)`` peaks; a
            float32 array gets each value rounded up, never down.
        check: called between chunks (a cancel hook).
        chunk: frames per step (rounded to whole blocks; default
            :data:`chunks.CHUNK_FRAMES`).

    Returns:
        ``out`` (a new float64 array when None).
    """
    block = block_frames(sample_rate)
    frames = samples.shape[0]
    nblocks = -(-frames // block)
    out = np.zeros(nblocks) if out is None else out
    chunk = chunks.CHUNK_FRAMES if chunk is None else chunk
    for start, stop in chunks.spans(frames, block * max(1, chunk // block)):
        if start and check is not None:
            check()
        peaks = _block_max(envelope_span(samples, sample_rate, start, stop), block)
        _store_up(out, start // block, peaks)
    return out


def _block_max(envelope: np.ndarray, block: int) -> np.ndarray:
    """Maximum of each ``block`` frames (a partial last block counts too)."""
    nblocks = -(-envelope.size // block)
    padded = np.zeros(nblocks * block)
    padded[: envelope.size] = envelope
    return padded.reshape(nblocks, block).max(axis=1)


def _store_up(out: np.ndarray, at: int, values: np.ndarray) -> None:
    """``out[at:...] = values``, rounding up where ``out`` is less precise."""
    stored = values.astype(out.dtype)
    low = stored < values
    if low.any():  # a peak read low would let the limiter overshoot
        stored[low] = np.nextafter(stored[low], np.inf)
    out[at : at + values.size] = stored


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


def _release_shifts(alpha: float, size: int) -> list[int]:
    """The doubling's shifts: 1, 2, 4, ... while shorter than ``size`` and
    ``alpha**shift`` is not negligible."""
    shifts, shift = [], 1
    while shift < size and alpha**shift >= _RELEASE_FLOOR:
        shifts.append(shift)
        shift *= 2
    return shifts


def _release(required: np.ndarray, alpha: float, shifts: list[int] | None = None) -> np.ndarray:
    """Instant-attack exponential release: ``max_k required[k] * alpha**(n-k)``.

    Computed by doubling: after the pass with shift ``m`` each value covers
    the ``2m`` latest blocks. Stops once ``alpha**m`` is negligible, which
    only trims the far tail of a release, never a needed reduction.
    ``shifts`` are those of the whole file when ``required`` is a part of it.
    """
    out = required.copy()
    for shift in _release_shifts(alpha, out.size) if shifts is None else shifts:
        if shift >= out.size:
            break
        shifted = out[:-shift] * alpha**shift
        np.maximum(out[shift:], shifted, out=out[shift:])
    return out


class GainCurve:
    """The limiter's attenuation for one gain and ceiling, read chunk by chunk.

    Args:
        peaks: block maxima of the envelope (:func:`block_peaks`), any array
            that slices (a memmap is fine); only the blocks asked for are read.
        frames: the signal's length in frames.
        sample_rate: in Hz.
        ceiling_db: the level no peak may exceed after gain and limiting.
        gain_db: static gain applied before the limiter.
        lookahead_ms: attack ramp length; the gain is down before a peak.
        release_ms: time constant of the release (dB domain).
    """

    def __init__(self, peaks, frames: int, sample_rate: int, ceiling_db: float,
                 gain_db: float = 0.0, lookahead_ms: float = 3.0, release_ms: float = 80.0):
        self.peaks, self.frames = peaks, int(frames)
        self.gain_db, self.ceiling_db = gain_db, ceiling_db
        self.block = block_frames(sample_rate)
        self.lookahead = max(self.block, int(round(sample_rate * lookahead_ms / 1000.0)))
        self._alpha = math.exp(-self.block / (sample_rate * release_ms / 1000.0))
        self._shifts = _release_shifts(self._alpha, len(peaks))
        # Forward max over enough blocks to cover the averaging window below.
        self._ahead = -(-(self.lookahead - 1) // self.block)

    def span(self, start: int, stop: int) -> np.ndarray:
        """Attenuation in dB (>= 0, float64) for frames ``[start, stop)``."""
        width, block = self.lookahead, self.block
        lo, hi = max(start - width, 0), min(stop + width, self.frames)
        if hi <= lo:
            return np.zeros(stop - start)
        first = lo // block
        held = self._held(first, (hi - 1) // block + 1)
        stair = np.repeat(held, block)[lo - first * block : hi - first * block]
        # At the file's edges, repeat its first/last value (scipy's "nearest").
        stair = np.pad(stair, (lo - (start - width), stop + width - hi), mode="edge")
        return _backward_mean(stair, width)[width : width + stop - start]

    def _held(self, lo: int, hi: int) -> np.ndarray:
        """Released and forward-held attenuation of blocks ``[lo, hi)``."""
        # The release reaches sum(shifts) blocks back; the hold looks ahead.
        a = max(0, lo - sum(self._shifts))
        b = min(len(self.peaks), hi + self._ahead)
        peaks = np.asarray(self.peaks[a:b], dtype=np.float64)
        with np.errstate(divide="ignore"):
            required = np.maximum(20.0 * np.log10(peaks) + self.gain_db - self.ceiling_db, 0.0)
        released = _release(required, self._alpha, self._shifts)
        return _forward_max(released, self._ahead)[lo - a : hi - a]


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
    peaks = _block_max(np.asarray(envelope, dtype=np.float64), block_frames(sample_rate))
    curve = GainCurve(peaks, envelope.size, sample_rate, ceiling_db, gain_db,
                      lookahead_ms, release_ms)
    return curve.span(0, envelope.size)


def _forward_max(values: np.ndarray, span: int) -> np.ndarray:
    """Return ``max(values[b : b + span + 1])`` for every ``b``."""
    size = span + 1
    # origin -(size // 2) moves scipy's centred window to start at b.
    return ndimage.maximum_filter1d(values, size=size, origin=-(size // 2), mode="nearest")


def _backward_mean(values: np.ndarray, length: int) -> np.ndarray:
    """Return the mean of ``values[n - length + 1 : n + 1]`` (start padded)."""
    # origin (length - 1) // 2 moves scipy's centred window to end at n.
    return ndimage.uniform_filter1d(values, size=length, origin=(length - 1) // 2, mode="nearest")
