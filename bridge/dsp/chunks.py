"""Chunked passes over long (frames, channels) arrays.

The mastering stages walk a whole file many times (meter, envelope, each
loudness pass, the render). Inputs and intermediates of long files are
disk-backed ``np.memmap`` arrays (``bridge.core.scratch``); reading them a
chunk at a time keeps private memory at a few chunks whatever the length.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# ~5.5 s at 48 kHz: a stereo float64 chunk is 4 MiB, big enough that numpy
# and libebur128 run at full speed, small enough that 8 channels and a few
# temporaries stay well under 100 MiB.
CHUNK_FRAMES = 1 << 18


def spans(frames: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """Yield ``(start, stop)`` covering ``range(frames)`` in steps of ``size``
    (default :data:`CHUNK_FRAMES`, read at call time so tests can shrink it)."""
    size = max(1, int(CHUNK_FRAMES if size is None else size))
    for start in range(0, int(frames), size):
        yield start, min(start + size, int(frames))


def read(samples: np.ndarray, start: int, stop: int, dtype=np.float64) -> np.ndarray:
    """A C-contiguous copy of ``samples[start:stop]`` as ``dtype`` (frames, channels).

    Indexes outside the array read as zeros, so callers can ask for context
    before the first or after the last frame.
    """
    frames, channels = samples.shape
    out = np.zeros((stop - start, channels), dtype=dtype)
    lo, hi = max(start, 0), min(stop, frames)
    if hi > lo:
        out[lo - start : hi - start] = samples[lo:hi]
    return out
