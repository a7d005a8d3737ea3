"""The master engine's own allocations stay a few chunks, however long the file.

A 6-minute stereo 48 kHz clip is 132 MiB as float32 (the old whole-array engine held
~1.4 GiB for it). Input, shaped mix and result are disk-backed arrays here (a scratch
folder with a 1 MiB threshold, as the daemon's job scratch is for long files), so what
tracemalloc sees is the engine's working memory: numpy reports its buffers to it, and
unlike RSS it does not depend on what else the machine is doing. The daemon-level
numbers (RssAnon, VmHWM for 2-20 minutes) are in bench/master_memory.py.
"""

import tracemalloc

import numpy as np
import pyebur128 as ebur

from bridge.core.engine import Audio, RunContext
from bridge.core.scratch import Scratch
from bridge.engines.master import MasterEngine

RATE = 48000
MINUTES = 6


def write_music(scratch: Scratch, frames: int) -> np.ndarray:
    """A groove with level changes: kick, noise hats, a bass line (block by block)."""
    out = scratch.array(frames, 2)
    rng = np.random.default_rng(0)
    for start in range(0, frames, RATE * 10):
        t = (start + np.arange(min(RATE * 10, frames - start))) / RATE
        beat = t % 0.5
        kick = np.sin(2 * np.pi * 55 * beat) * np.exp(-8 * beat)
        bass = 0.3 * np.sin(2 * np.pi * 110 * t)
        hats = rng.standard_normal((t.size, 2)) * np.exp(-60 * (t % 0.25))[:, None] * 0.1
        level = np.where((t // 30) % 2 == 0, 0.3, 0.08)[:, None]
        out[start : start + t.size] = level * ((kick + bass)[:, None] + hats)
    return out


def test_engine_memory_is_a_few_chunks_not_the_file(tmp_path):
    scratch = Scratch(tmp_path / "scratch", large_bytes=1 << 20)
    frames = RATE * 60 * MINUTES
    audio = Audio(write_music(scratch, frames), RATE)
    assert isinstance(audio.samples, np.memmap)
    engine = MasterEngine()
    tracemalloc.start()
    try:
        result = engine.run(None, {"audio": audio}, engine.validate({}), RunContext(scratch=scratch))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out = result.outputs[0].audio.samples
    assert isinstance(out, np.memmap) and out.shape == (frames, 2)
    file_bytes = frames * 2 * 4
    # ~17 MiB measured (chunks of 2**18 frames); the file is 132 MiB, float64 of it 264 MiB.
    assert peak < 48 << 20, f"engine allocated {peak / 2**20:.0f} MiB at its peak"
    assert peak < file_bytes / 4
    state = ebur.R128State(2, RATE, ebur.MeasurementMode.MODE_I)
    for start in range(0, frames, RATE * 30):
        block = np.ascontiguousarray(out[start : start + RATE * 30])
        state.add_frames(block.ravel(), block.shape[0])
    assert abs(ebur.get_loudness_global(state) + 14) <= 0.1
    scratch.close()
