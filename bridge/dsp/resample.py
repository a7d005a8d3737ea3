"""Block-by-block sample-rate conversion that matches ``julius`` exactly.

Long files (20-60 minutes) are read and written as ``np.memmap`` arrays
shaped (frames, channels); resampling them whole would hold several
file-length torch copies in RAM. ``resample_into`` instead converts one
output block at a time and gives the same samples (to float32 rounding) as
``julius.resample_frac`` on the whole array, which is the resampler demucs
itself uses.

Why blocks can be exact: after dividing both rates by their gcd into
``o`` (input) and ``n`` (output), julius is a strided conv1d in which every
*unit* of ``n`` output samples ``[b*n, (b+1)*n)`` reads only input frames
``[b*o - w, (b+1)*o + w)``, where ``w`` is the filter's half-width, after
padding both ends of the signal with ``replicate``. An output block made of
whole units, computed from an input slice that starts on a unit boundary
(a multiple of ``o``) and has at least ``w`` frames of context on each side,
therefore sees the same input window and the same filter phases as in the
whole-array run. Where the slice reaches the file's first or last frame it
uses the true edge, so julius replicates the same sample as it would for
the whole array.

torch and julius are imported inside the functions so that importing
``bridge`` stays fast on installs without the stem-separation extra.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np

# julius's defaults; the context maths below must use the same filter.
_ZEROS = 24
_ROLLOFF = 0.945
MAX_FILTER_BYTES = 64 << 20


def resampled_length(frames: int, old: int, new: int) -> int:
    """floor(frames * new / old): what julius gives by default.

    Computed with integers, so it stays exact for hours of audio (julius
    itself goes through a float32 tensor, which drifts by a few samples
    beyond about 2**24 output frames).

    Args:
        frames: input length in frames (>= 0).
        old: input sample rate in Hz.
        new: output sample rate in Hz.

    Returns:
        The default output length in frames.

    Raises:
        ValueError: if a rate is not positive or ``frames`` is negative.
        TypeError: if an argument is not an integer.
    """
    frames, old, new = _check_args(frames, old, new)
    return frames * new // old


def resample_into(
    src: np.ndarray,
    old: int,
    new: int,
    dst: np.ndarray,
    block_seconds: float = 30.0,
    check: Callable[[], object] | None = None,
) -> None:
    """Resample ``src`` at ``old`` Hz into the preallocated ``dst`` at ``new`` Hz.

    ``dst`` may be shorter or longer than ``resampled_length``: samples beyond
    what the input can give (``ceil(frames * new / old)``, julius's
    ``full=True`` length) are zeros. Work is done on output blocks aligned to
    the reduced rates, each read with enough context that it equals the
    whole-array result (see the module docstring). Memory is O(block), never
    O(file); ``old == new`` copies blockwise. Computation is in float32.

    Args:
        src: input samples shaped (frames, channels), e.g. an ``np.memmap``.
        old: input sample rate in Hz.
        new: output sample rate in Hz.
        dst: output array shaped (frames_out, channels), written in place.
        block_seconds: output duration converted per block; rounded to whole
            units of the reduced rate pair (at least one unit).
        check: called between blocks, e.g. a cancel hook; whatever it raises
            propagates, and ``dst`` is then only partly written.

    Raises:
        ValueError: on non-positive rates or ``block_seconds``, or if ``src``
            and ``dst`` are not 2-D with the same number of channels.
        TypeError: if a rate is not an integer.
    """
    _, old, new = _check_args(0, old, new)
    _check_arrays(src, dst)
    if not block_seconds > 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    check_rates(old, new)
    gcd = math.gcd(old, new)
    o, n = old // gcd, new // gcd
    frames = src.shape[0]
    # What the input can give at most; the rest of dst is silence.
    produced = min(dst.shape[0], -(-frames * n // o))
    units = max(1, int(block_seconds * gcd))  # a unit lasts 1/gcd seconds
    if o == n:
        _copy_blocks(src, dst, produced, units * n, check)
    elif produced > 0:
        _resample_blocks(src, old, new, dst, produced, units, check)
    dst[produced:] = 0


def check_rates(old: int, new: int) -> None:
    """Refuse rate pairs whose filter bank would not fit in memory.

    julius builds one filter per output phase: ``new / gcd`` of them. Rates
    that share almost no factor (44100 -> 44099) need gigabytes.

    Raises:
        ValueError: naming the rates and what to do instead.
    """
    gcd = math.gcd(old, new)
    o, n = old // gcd, new // gcd
    if o == n:
        return
    nbytes = n * (2 * _context(o, n) + o) * 4
    if nbytes > MAX_FILTER_BYTES:
        raise ValueError(
            f"converting {old} Hz to {new} Hz needs a {nbytes / 2**30:.1f} GiB resampling filter "
            f"(the two rates share almost no common factor); convert the file to a standard rate "
            f"(44100 or 48000 Hz) first")


def _check_args(frames: int, old: int, new: int) -> tuple[int, int, int]:
    """Return the arguments as ints, refusing what julius cannot use."""
    frames, old, new = (operator.index(v) for v in (frames, old, new))
    if old <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive integers, got old={old}, new={new}")
    if frames < 0:
        raise ValueError(f"frame count must not be negative, got {frames}")
    return frames, old, new


def _check_arrays(src: np.ndarray, dst: np.ndarray) -> None:
    """Both arrays must be (frames, channels) with matching channels."""
    if src.ndim != 2 or dst.ndim != 2:
        raise ValueError(
            f"src and dst must be shaped (frames, channels), got {src.shape} and {dst.shape}"
        )
    if src.shape[1] != dst.shape[1]:
        raise ValueError(f"src has {src.shape[1]} channels but dst has {dst.shape[1]}")


def _context(o: int, n: int) -> int:
    """Input frames read either side of a block: julius's filter half-width
    (same formula as ``ResampleFrac._width``), rounded up to whole units of
    ``o`` so the slice still starts on a unit boundary."""
    width = math.ceil(_ZEROS * o / (min(o, n) * _ROLLOFF))
    return -(-width // o) * o


def _copy_blocks(src, dst, produced: int, step: int, check) -> None:
    """Equal rates: julius returns its input, so copy without loading it all."""
    for start in range(0, produced, step):
        if start and check is not None:
            check()
        stop = min(start + step, produced)
        dst[start:stop] = src[start:stop]


def _resample_blocks(src, old: int, new: int, dst, produced: int, units: int, check) -> None:
    """Fill ``dst[:produced]`` one block of ``units`` reduced units at a time."""
    import julius
    import torch

    gcd = math.gcd(old, new)
    o, n = old // gcd, new // gcd
    frames = src.shape[0]
    context = _context(o, n)
    for first in range(0, -(-produced // n), units):
        if first and check is not None:
            check()
        out_start = first * n
        out_stop = min((first + units) * n, produced)
        # Both ends of the slice sit on unit boundaries or on the true edge.
        in_start = max(0, first * o - context)
        in_stop = min(frames, (first + units) * o + context)
        block = np.array(src[in_start:in_stop].T, dtype=np.float32, order="C")  # a copy: src may be read-only
        with torch.no_grad():
            y = julius.resample_frac(torch.from_numpy(block), old, new, full=True)
        # in_start is a whole number of units, i.e. in_start // o * n outputs.
        skip = in_start // o * n
        dst[out_start:out_stop] = y[:, out_start - skip : out_stop - skip].numpy().T
