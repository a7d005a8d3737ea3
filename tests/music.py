"""Real music for tests: music21 corpus scores rendered by fluidsynth.

Renders are cached by name in a directory the caller owns, so a pytest
session renders each (score, rate) once. Use :func:`cache_dir` with pytest's
``tmp_path_factory`` to share one cache across test modules::

    @pytest.fixture(scope="session")
    def music(tmp_path_factory):
        return cache_dir(tmp_path_factory)

    path = render_bach(music, 48000, seconds=20)
    samples, rate = load(path, channels=1)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
DEFAULT_SCORE = "bach/bwv66.6"


def cache_dir(tmp_path_factory) -> Path:
    """One render cache per pytest session (shared by all test modules)."""
    path = Path(tmp_path_factory.getbasetemp()) / "music-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def have_renderer() -> bool:
    """True when fluidsynth and the General MIDI soundfont are installed."""
    return shutil.which("fluidsynth") is not None and os.path.exists(SOUNDFONT)


def score_to_midi(tmpdir, score: str = DEFAULT_SCORE) -> Path:
    """Write a music21 corpus score to a MIDI file (cached by name).

    Args:
        tmpdir: cache directory.
        score: a music21 corpus path, e.g. ``bach/bwv66.6``.

    Returns:
        Path of the ``.mid`` file.
    """
    path = Path(tmpdir) / (score.replace("/", "_") + ".mid")
    if not path.exists():
        from music21 import corpus

        corpus.parse(score).write("midi", fp=str(path))
    return path


def render_midi(midi: Path, out: Path, rate: int) -> Path:
    """Render a MIDI file to float WAV with fluidsynth (reverb and chorus off)."""
    tmp = out.with_suffix(".part.wav")
    subprocess.run(
        ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(rate), "-R", "0", "-C", "0",
         "-F", str(tmp), "-O", "float", "-T", "wav", SOUNDFONT, str(midi)],
        check=True, capture_output=True, timeout=300,
    )
    os.replace(tmp, out)  # atomic: a half-written render is never cached
    return out


def render_bach(tmpdir, rate: int, seconds: float | None = None, score: str = DEFAULT_SCORE) -> Path:
    """Render a Bach chorale (stereo float WAV), cached in ``tmpdir``.

    Args:
        tmpdir: cache directory (see :func:`cache_dir`).
        rate: sample rate in Hz.
        seconds: cut (or loop, if longer than the piece) to this length;
            ``None`` keeps the whole render (~25 s for bwv66.6).
        score: music21 corpus path.

    Returns:
        Path of the WAV file.
    """
    tmpdir = Path(tmpdir)
    stem = score.replace("/", "_")
    full = tmpdir / f"{stem}.{rate}.wav"
    if not full.exists():
        render_midi(score_to_midi(tmpdir, score), full, rate)
    if seconds is None:
        return full
    cut = tmpdir / f"{stem}.{rate}.{seconds:g}s.wav"
    if not cut.exists():
        data, _ = sf.read(full, dtype="float32", always_2d=True)
        data = loop_to(data, int(round(seconds * rate)))
        tmp = cut.with_suffix(".part.wav")
        sf.write(tmp, data, rate, subtype="FLOAT")
        os.replace(tmp, cut)
    return cut


def loop_to(samples: np.ndarray, frames: int) -> np.ndarray:
    """Repeat (or cut) ``samples`` along time to exactly ``frames`` frames."""
    reps = -(-frames // samples.shape[0])
    return np.concatenate([samples] * reps, axis=0)[:frames]


def load(path, channels: int = 2) -> tuple[np.ndarray, int]:
    """Read a render as float64 (frames, channels); 1 channel = average of L/R."""
    data, rate = sf.read(path, dtype="float64", always_2d=True)
    if channels == 1:
        data = data.mean(axis=1, keepdims=True)
    elif channels != data.shape[1]:
        data = np.stack([data[:, c % data.shape[1]] for c in range(channels)], axis=1)
    return data, rate


def bach(tmpdir, rate: int, channels: int = 2, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Shortcut: render (cached) and load a Bach chorale."""
    return load(render_bach(tmpdir, rate, seconds), channels)
