"""Loudness and peak measurement (ITU-R BS.1770 / EBU R128) via libebur128.

libebur128 (through ``pyebur128``) is the measurement authority for the
whole project: the mastering engine targets what it reports, and the tests
check against it. Integrated loudness is measured without libebur128's
histogram mode, because the histogram quantises block energies and can be
off by a few hundredths of an LU, which matters for a 0.05 LU target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyebur128 as ebur

from ..core.errors import MediaError

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


def _state(samples: np.ndarray, sample_rate: int, mode: int) -> "ebur.R128State":
    frames = _as_frames(samples)
    state = ebur.R128State(frames.shape[1], int(sample_rate), mode)
    if frames.shape[0]:
        state.add_frames(frames.ravel(), frames.shape[0])
    return state


def integrated_loudness(samples: np.ndarray, sample_rate: int) -> float:
    """Measure gated integrated loudness with libebur128.

    Args:
        samples: float array (frames, channels) or (frames,).
        sample_rate: in Hz.

    Returns:
        Loudness in LUFS; ``-inf`` when undefined (silence, everything
        below the absolute gate, or shorter than one 400 ms block).
    """
    return float(ebur.get_loudness_global(_state(samples, sample_rate, _MODE_INTEGRATED)))


def measure(samples: np.ndarray, sample_rate: int) -> Measurement:
    """Measure integrated loudness, loudness range, true and sample peak.

    Args:
        samples: float array (frames, channels) or (frames,).
        sample_rate: in Hz.

    Returns:
        A :class:`Measurement`. True peak uses libebur128's interpolator
        (4x below 96 kHz, 2x from 96 kHz).
    """
    frames = _as_frames(samples)
    state = _state(frames, sample_rate, _MODE_FULL)
    channels = range(frames.shape[1])
    true_peak = max((ebur.get_true_peak(state, c) for c in channels), default=0.0)
    sample_peak = max((ebur.get_sample_peak(state, c) for c in channels), default=0.0)
    return Measurement(
        integrated_lufs=float(ebur.get_loudness_global(state)),
        loudness_range_lu=float(ebur.get_loudness_range(state)),
        true_peak_dbtp=to_db(true_peak),
        sample_peak_dbfs=to_db(sample_peak),
    )


def check_content(samples: np.ndarray, sample_rate: int, what: str = "audio") -> np.ndarray:
    """Check that audio can be measured and processed at all.

    Args:
        samples: the array to check.
        sample_rate: in Hz.
        what: how to name this input in messages ("audio", "reference").

    Returns:
        The samples as a contiguous (frames, channels) float array.

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
    finite = np.isfinite(frames)
    if not finite.all():
        frame, channel = np.argwhere(~finite)[0]
        value = frames[frame, channel]
        raise MediaError(
            f"{what} has a non-finite sample ({value}) at frame {frame} "
            f"({frame / sample_rate:.3f} s), channel {channel}; every sample must be a "
            "finite number. Re-export the clip, or repair the damaged region."
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
