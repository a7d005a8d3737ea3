"""Tempo lock for generated audio: whole bars, the downbeat at sample 0, loopable seams.

A text prompt lands a generated tempo only within a few BPM and its first
downbeat anywhere in the first bar, so the engine generates a little more than
asked and this module cuts it: the bar length comes from the host's tempo, the
phase from the audio itself (an onset-strength comb at the given tempo, with
downbeats weighted), and a loop's seam is a crossfade of the material that
followed the cut into the head, so the last sample runs into the first.

Onset strength comes from librosa (a dependency of the generate extra), imported
when used.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

HOP_SECONDS = 0.002  # onset envelope resolution: the downbeat is placed within ~2 ms
MAX_LOOP_FADE_SECONDS = 0.25
REFINE_BEFORE, REFINE_AFTER = 0.012, 0.006  # window (s) around the comb's pick for the attack


@dataclass(frozen=True)
class Grid:
    """A tempo grid at one sample rate."""

    bpm: float
    bars: int
    beats_per_bar: int
    rate: int

    @property
    def beat(self) -> float:
        """Samples per beat (fractional)."""
        return 60.0 * self.rate / self.bpm

    @property
    def bar(self) -> float:
        return self.beat * self.beats_per_bar

    @property
    def frames(self) -> int:
        """The exact output length: bars x beats x 60 / bpm seconds, to the nearest sample."""
        return round(self.bars * self.bar)

    @property
    def seconds(self) -> float:
        return self.bars * self.beats_per_bar * 60.0 / self.bpm

    def loop_fade(self) -> int:
        """Crossfade for a loop seam: half a beat, at most 250 ms."""
        return int(min(self.beat / 2, MAX_LOOP_FADE_SECONDS * self.rate))


def find_downbeat(samples: np.ndarray, grid: Grid, latest: int) -> tuple[int, float]:
    """The sample (0 <= offset <= latest) where a bar of the grid best starts.

    Two steps, as a drummer counts in: the beat phase is where a comb at the
    tempo catches the most onset strength (all bands); the bar phase is the
    beat of that comb whose onsets carry the most low-frequency energy (kick
    and bass mark the one).

    Args:
        samples: audio (frames, channels) at ``grid.rate``.
        grid: tempo and metre to fit.
        latest: the last allowed offset (so the cut still fits in the audio).

    Returns:
        (offset in samples, strength: the beat comb's mean onset strength
        over the envelope's mean; about 1 means no beat was found).
    """
    hop = max(1, round(HOP_SECONDS * grid.rate))
    mono = np.asarray(samples, dtype=np.float32).mean(axis=1)
    full, low = _onsets(mono, grid.rate, hop)
    span = len(mono) - max(0, latest)  # audio every candidate phase can use
    beats = max(1, int(span / grid.beat))
    phases = np.arange(0, int(grid.beat), hop)
    beat_scores = _comb(full, phases, grid.beat, beats, hop)
    phase = int(phases[int(np.argmax(beat_scores))])
    strength = float(beat_scores.max() / beats / (full.mean() + 1e-9))
    bars = max(1, int(span / grid.bar))
    starts = [phase + j * grid.beat for j in range(grid.beats_per_bar)]
    starts = [x for x in starts if x <= latest] or [phase]
    bar_scores = [_comb(low, np.array([x]), grid.bar, bars, hop)[0] for x in starts]
    offset = int(round(starts[int(np.argmax(bar_scores))]))
    return min(max(0, latest), _refine(mono, offset, grid.rate)), strength


def _refine(mono: np.ndarray, offset: int, rate: int) -> int:
    """The steepest energy rise near ``offset``: the envelope's frames smear an
    attack by a few milliseconds; the waveform places it to a quarter millisecond."""
    width, step = max(2, int(0.001 * rate)), max(1, int(0.00025 * rate))
    lo = max(0, offset - int(REFINE_BEFORE * rate))
    hi = min(len(mono), offset + int(REFINE_AFTER * rate) + width)
    if hi - lo < 3 * width:
        return offset
    starts = np.arange(lo, hi - width, step)
    power = np.array([np.mean(np.square(mono[x:x + width])) for x in starts])
    rise = np.diff(10 * np.log10(power + 1e-10)) * np.sqrt(power[1:])  # loud and sudden
    return int(starts[int(np.argmax(rise)) + 1])


def _onsets(mono: np.ndarray, rate: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Onset strength, all bands (short window: timing) and below 200 Hz (kick, bass)."""
    import librosa

    short = 1 << int(round(math.log2(0.016 * rate)))  # ~16 ms
    long = 1 << int(round(math.log2(0.128 * rate)))  # ~128 ms: resolves the low band
    full = librosa.onset.onset_strength(y=mono, sr=rate, n_fft=short, hop_length=hop, n_mels=32)
    low = librosa.onset.onset_strength(y=mono, sr=rate, n_fft=long, hop_length=hop,
                                       n_mels=8, fmax=200.0)
    return full, low


def _comb(env: np.ndarray, phases: np.ndarray, period: float, count: int, hop: int):
    """Sum of ``env`` at phase + k * period (samples) for k < count, per phase."""
    scores = np.zeros(len(phases))
    for k in range(count):
        index = np.round((phases + k * period) / hop).astype(int)
        valid = index < len(env)
        scores[valid] += env[index[valid]]
    return scores


def cut(samples: np.ndarray, start: int, frames: int, loop_fade: int = 0) -> np.ndarray:
    """``frames`` samples from ``start``; with ``loop_fade``, the seam crossfaded.

    For a loop, the ``loop_fade`` samples that followed the cut are faded out
    over the head while the head fades in (equal power), so playing the
    result end to start continues the music instead of jumping.

    Raises:
        ValueError: the audio is too short for the cut.
    """
    need = start + frames + loop_fade
    if need > len(samples):
        raise ValueError(f"{len(samples)} samples cannot give {frames} from {start} "
                         f"plus a {loop_fade}-sample loop fade")
    out = np.array(samples[start:start + frames], dtype=np.float32)
    if loop_fade:
        t = (np.arange(loop_fade, dtype=np.float64) + 0.5) / loop_fade
        fade_in = np.sin(0.5 * np.pi * t)[:, None]
        fade_out = np.cos(0.5 * np.pi * t)[:, None]
        tail = samples[start + frames:start + frames + loop_fade]
        out[:loop_fade] = (out[:loop_fade] * fade_in + tail * fade_out).astype(np.float32)
    return out


def seam_jump(loop: np.ndarray) -> float:
    """How much bigger the end-to-start step is than the loop's typical sample step."""
    steps = np.abs(np.diff(loop, axis=0))
    typical = float(np.percentile(steps, 99)) + 1e-12
    return float(np.abs(loop[0] - loop[-1]).max()) / typical


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt: 'Warm Rhodes, 92!' -> 'warm-rhodes-92'."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if len(words) > limit:
        words = words[:limit].rsplit("-", 1)[0] or words[:limit]
    return words or "generated"


def generation_seconds(grid: Grid, loop: bool, align: bool) -> float:
    """How much audio to generate so a cut of ``grid.frames`` (and its loop fade) fits
    after a downbeat anywhere in the first bar."""
    extra = (grid.bar if align else 0.0) + (grid.loop_fade() if loop else 0)
    return math.ceil((grid.frames + extra + 0.05 * grid.rate) / grid.rate * 100) / 100
