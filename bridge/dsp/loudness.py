"""Loudness and peak measurement (ITU-R BS.1770 / EBU R128) via libebur128.

libebur128 (through ``pyebur128``) is the measurement authority for the
whole project: the mastering engine targets what it reports, and the tests
check against it. Integrated loudness is measured without libebur128's
histogram mode, because the histogram quantises block energies and can be
off by a few hundredths of an LU, which matters for a 0.05 LU target.

libebur128 is a streaming meter: frames added in any number of calls give
bit-identical results to one call (its filters and 100 ms gating blocks carry
over). :class:`Meter` feeds it chunk by chunk, so long, disk-backed clips are
measured in bounded memory, and so is a signal computed on the fly (a gain
curve applied chunk by chunk) without ever materialising it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyebur128 as ebur

from ..core.errors import MediaError
from . import chunks

# libebur128 gates blocks quieter than this absolutely (BS.1770-4).
ABSOLUTE_GATE_LUFS = -70.0
# One gating block: integrated loudness is undefined for shorter audio.
MIN_DURATION_S = 0.4
MAX_CHANNELS = 8

_MODE_INTEGRATED = ebur.MeasurementMode.MODE_I
_MODE_FULL = (
    ebur.MeasurementMode.MODE_I
    | ebur.MeasurementMode.MODE_LRA
    | ebur.MeasurementMode.MODE_TRUE_PEAK
    | ebur.MeasurementMode.MODE_SAMPLE_PEAK
)


@dataclass(frozen=True)
class Measurement:
    """What a loudness meter shows for one clip.

    Attributes:
        integrated_lufs: gated integrated loudness (``-inf`` if undefined).
        loudness_range_lu: EBU R128 loudness range (0 for clips under 3 s).
        true_peak_dbtp: maximum oversampled peak over all channels, dBTP.
        sample_peak_dbfs: maximum absolute sample over all channels, dBFS.
    """

    integrated_lufs: float
    loudness_range_lu: float
    true_peak_dbtp: float
    sample_peak_dbfs: float

    def to_dict(self, digits: int = 3) -> dict:
        """Return plain, JSON-friendly floats (``None`` for -inf values)."""
        return {name: _json_float(value, digits) for name, value in self.__dict__.items()}


def _json_float(value: float, digits: int) -> float | None:
    # JSON has no infinity; None says "undefined" without breaking encoders.
    return round(float(value), digits) if math.isfinite(value) else None


def to_db(linear: float) -> float:
    """Convert a linear amplitude to dB (``-inf`` for zero)."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


def _as_frames(samples: np.ndarray) -> np.ndarray:
    """Return ``samples`` as a C-contiguous (frames, channels) float array."""
    array = np.asarray(samples)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise MediaError(
            f"audio must be shaped (frames, channels); got an array of shape {array.shape}. "
            "Pass samples as a 2-D array with one column per channel."
        )
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    return np.ascontiguousarray(array)


class Meter:
    """A libebur128 meter fed chunk by chunk.

    Args:
        channels: channel count of the blocks to come.
        sample_rate: in Hz.
        full: also track loudness range and true/sample peak (slower);
            False measures integrated loudness only.
    """

    def __init__(self, channels: int, sample_rate: int, full: bool = True):
        self.channels, self.full = int(channels), full
        mode = _MODE_FULL if full else _MODE_INTEGRATED
        self._state = ebur.R128State(self.channels, int(sample_rate), mode)

    def add(self, block: np.ndarray) -> None:
        """Add frames shaped (frames, channels) (float32 or float64)."""
        block = np.ascontiguousarray(block)
        if block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        if block.shape[0]:
            self._state.add_frames(block.ravel(), block.shape[0])

    def integrated(self) -> float:
        """Gated integrated loudness so far (``-inf`` if undefined)."""
        return float(ebur.get_loudness_global(self._state))

    def measurement(self) -> Measurement:
        """Everything measured so far (needs ``full``)."""
        channels = range(self.channels)
        true_peak = max((ebur.get_true_peak(self._state, c) for c in channels), default=0.0)
        sample_peak = max((ebur.get_sample_peak(self._state, c) for c in channels), default=0.0)
        return Measurement(
            integrated_lufs=self.integrated(),
            loudness_range_lu=float(ebur.get_loudness_range(self._state)),
            true_peak_dbtp=to_db(true_peak),
            sample_peak_dbfs=to_db(sample_peak),
        )


def _metered(samples: np.ndarray, sample_rate: int, full: bool) -> Meter:
    frames = _as_frames(samples)
    meter = Meter(frames.shape[1], sample_rate, full)
    for start, stop in chunks.spans(frames.shape[0]):
        meter.add(frames[start:stop])
    return meter


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Measure gated integrated loudness with libebur128.

    Args:
        samples: float array (frames, channels) or (frames,); a disk-backed
            memmap is read chunk by chunk.
        sample_rate: in Hz.

    Returns:
        Loudness in LUFS; ``-inf`` when undefined (silence, everything
        below the absolute gate, or shorter than one 400 ms block).
    """
    return _metered(samples, sample_rate, full=False).integrated()


def measure(samples: np.ndarray, sample_rate: int) -> Measurement:
    """Measure integrated loudness, loudness range, true and sample peak.

    Args:
        samples: float array (frames, channels) or (frames,); a disk-backed
            memmap is read chunk by chunk.
        sample_rate: in Hz.

    Returns:
        A :class:`Measurement`. True peak uses libebur128's interpolator
        (4x below 96 kHz, 2x from 96 kHz).
    """
    return _metered(samples, sample_rate, full=True).measurement()


def check_content(samples: np.ndarray, sample_rate: int, what: str = "audio") -> np.ndarray:
    """Check that audio can be measured and processed at all.

    Args:
        samples: the array to check.
        sample_rate: in Hz.
        what: how to name this input in messages ("audio", "reference").

    Returns:
        The samples as a contiguous (frames, channels) float array (the
        caller's array itself when it already is one: nothing is copied).

    Raises:
        MediaError: bad shape, no channels or more than 8, a bad sample
            rate, or a NaN/Inf sample (the message names its frame).
    """
    frames = _as_frames(samples)
    channels = frames.shape[1]
    if not 1 <= channels <= MAX_CHANNELS:
        raise MediaError(
            f"{what} has {channels} channels; mastering supports 1 to {MAX_CHANNELS} "
            "(mono to 7.1). Fold it down or split it into stems first."
        )
    if sample_rate < 8000 or sample_rate > 384000:
        raise MediaError(
            f"{what} has a sample rate of {sample_rate} Hz; supported rates are 8000 to "
            "384000 Hz. Resample it first."
        )
    for start, stop in chunks.spans(frames.shape[0]):  # a long clip may be on disk
        finite = np.isfinite(frames[start:stop])
        if not finite.all():
            frame, channel = np.argwhere(~finite)[0]
            value = frames[start + frame, channel]
            raise MediaError(
                f"{what} has a non-finite sample ({value}) at frame {start + frame} "
                f"({(start + frame) / sample_rate:.3f} s), channel {channel}; every sample must "
                "be a finite number. Re-export the clip, or repair the damaged region."
            )
    return frames


def require_defined_loudness(lufs: float, frames: int, sample_rate: int, what: str = "audio") -> None:
    """Raise if integrated loudness is undefined (so no finite gain exists).

    Args:
        lufs: the measured integrated loudness.
        frames: the clip's length in frames.
        sample_rate: in Hz.
        what: how to name this input in messages.

    Raises:
        MediaError: for silence, audio entirely below the -70 LUFS gate, or
            audio shorter than one 400 ms gating block.
    """
    if math.isfinite(lufs):
        return
    seconds = frames / float(sample_rate)
    if seconds < MIN_DURATION_S:
        reason = (
            f"it is {seconds:.3f} s long and loudness needs at least one "
            f"{MIN_DURATION_S:g} s block"
        )
    else:
        reason = (
            "it is digital silence or every 400 ms block is below the "
            f"{ABSOLUTE_GATE_LUFS:g} LUFS absolute gate"
        )
    raise MediaError(
        f"{what} has no defined integrated loudness (-inf LUFS): {reason}. Reaching a "
        "loudness target would need infinite gain. Give a clip of at least 0.4 s with "
        "audible content."
    )
