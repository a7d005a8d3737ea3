"""Job-scoped arrays that live on disk once they are too big for RAM.

A 20-minute stereo file is 400 MiB as float32 and a separation writes four
or six of those; an hour-long DJ set triples it. Arrays above a threshold are
``np.memmap`` files in the job's scratch folder (under the daemon's state
dir, never in a user's folder): engines index them like any array, the
kernel pages them in and out, and resident memory stays about one window.
Small arrays stay plain arrays, so short clips pay nothing.

The runner opens one :class:`Scratch` per job and closes it when the outputs
are written; :func:`clear` removes what a killed daemon left behind.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when an array is made: the daemon starts without numpy
    import numpy as np

LARGE_BYTES = 64 << 20  # ~3 minutes of stereo float32 at 44.1 kHz


class Scratch:
    """Allocates zeroed float32 (frames, channels) arrays for one job.

    Args:
        folder: where disk-backed arrays go (created on first use); None keeps
            everything in memory (engines used in-process, tests).
        large_bytes: arrays at least this big go to disk.
    """

    def __init__(self, folder: str | Path | None = None, large_bytes: int | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.large_bytes = LARGE_BYTES if large_bytes is None else large_bytes
        self._count = itertools.count()
        self._own = False  # a temporary folder made by file(), removed and forgotten at close

    def array(self, frames: int, channels: int) -> np.ndarray:
        """A zeroed float32 array of shape (frames, channels)."""
        import numpy as np

        shape = (max(0, int(frames)), int(channels))
        if not self._on_disk(shape[0] * shape[1] * 4):
            return np.zeros(shape, dtype=np.float32)
        # A new file reads as zeros without touching RAM (sparse until written).
        return np.memmap(self._path(), dtype=np.float32, mode="w+", shape=shape)

    def file(self, suffix: str) -> Path:
        """A new file path in the job's folder for a rendered result (a private
        temporary folder when the scratch has none)."""
        if self.folder is None:
            self.folder, self._own = Path(tempfile.mkdtemp(prefix="sb-scratch-")), True
        return self._path().with_suffix(suffix)

    def spool(self, channels: int) -> "Spool":
        """An appendable array for decoders that do not know the length up front."""
        return Spool(self, channels)

    def close(self) -> None:
        """Remove this job's files (arrays still referenced stay readable until freed)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._own:
            self.folder, self._own = None, False

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_disk(self, nbytes: int) -> bool:
        return self.folder is not None and nbytes >= self.large_bytes and nbytes > 0

    def _path(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.folder / f"{next(self._count)}.f32"


class Spool:
    """Blocks appended in order; in memory until they pass the threshold, then on disk."""

    def __init__(self, scratch: Scratch, channels: int):
        self.scratch, self.channels = scratch, int(channels)
        self._blocks: list[np.ndarray] = []
        self._file = None
        self._path: Path | None = None
        self.frames = 0

    def append(self, block: np.ndarray) -> None:
        import numpy as np

        block = np.ascontiguousarray(block, dtype=np.float32).reshape(-1, self.channels)
        self.frames += block.shape[0]
        if self._file is not None:
            self._file.write(block.tobytes())
            return
        self._blocks.append(block)
        if self.scratch._on_disk(self.frames * self.channels * 4):
            self._spill()

    def array(self) -> np.ndarray:
        """Everything appended, as one (frames, channels) array."""
        import numpy as np

        if self._file is None:
            if not self._blocks:
                return np.zeros((0, self.channels), dtype=np.float32)
            return np.concatenate(self._blocks)
        self._file.close()
        return np.memmap(self._path, dtype=np.float32, mode="r+",
                         shape=(self.frames, self.channels))

    def _spill(self) -> None:
        self._path = self.scratch._path()
        self._file = open(self._path, "wb")
        for block in self._blocks:
            self._file.write(block.tobytes())
        self._blocks.clear()


def clear(root: str | Path) -> None:
    """Remove every job's scratch folder (at start: none of them is running)."""
    shutil.rmtree(root, ignore_errors=True)


def job_folder(root: str | Path, job_id: str) -> Path:
    """The scratch folder of one job under ``root``."""
    return Path(root) / job_id
