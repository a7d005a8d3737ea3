"""Tempo lock: exact bar lengths, the downbeat found in the audio, click-free loop seams."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa")

from bridge.dsp.tempo import Grid, cut, find_downbeat, generation_seconds, seam_jump, slug  # noqa: E402


def drum_loop(rate: int, bpm: float, seconds: float, first_downbeat: float, seed: int = 0):
    """Kick on each bar's 1, hats on the other beats, a pad under it, and noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = 0.05 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n)
    beat = 60.0 / bpm
    k = 0
    while first_downbeat + k * beat < seconds - 0.2:
        start = int(round((first_downbeat + k * beat) * rate))
        length = int(0.12 * rate)
        env = np.exp(-np.arange(length) / (0.02 * rate))
        if k % 4 == 0:
            hit = 0.9 * env * np.sin(2 * np.pi * 60 * np.arange(length) / rate)
        else:
            hit = 0.3 * env * rng.standard_normal(length)
        out[start:start + length] += hit[:max(0, n - start)]
        k += 1
    # and the pickup beat before the first downbeat, so the bar phase is not trivial
    return np.stack([out, out * 0.9], axis=1).astype(np.float32)


def test_grid_lengths_are_exact_bars():
    grid = Grid(bpm=92, bars=4, beats_per_bar=4, rate=48000)
    assert grid.frames == round(4 * 4 * 60 / 92 * 48000) == 500870
    assert abs(grid.frames / 48000 - grid.seconds) <= 0.5 / 48000
    assert Grid(120, 8, 3, 44100).frames == 8 * 3 * 22050
    assert Grid(120, 1, 4, 48000).loop_fade() == 12000  # half a beat (250 ms cap)
    assert Grid(60, 1, 4, 48000).loop_fade() == 12000  # capped at 250 ms
    assert Grid(240, 1, 4, 48000).loop_fade() == 6000


@pytest.mark.parametrize("bpm,first", [(120, 0.3712), (92, 1.234), (140, 0.0)])
def test_the_downbeat_is_found_within_a_millisecond(bpm, first):
    rate = 32000
    grid = Grid(bpm, 2, 4, rate)
    audio = drum_loop(rate, bpm, grid.seconds + 2 * grid.bar / rate + 1.0, first)
    latest = len(audio) - grid.frames - grid.loop_fade()
    offset, strength = find_downbeat(audio, grid, latest)
    # the kick of any bar is a right answer: the first within the search range
    candidates = [first + k * grid.bar / rate for k in range(8)]
    err = min(abs(offset / rate - c) for c in candidates)
    assert err <= 0.001, (offset / rate, candidates[:3])
    assert strength > 2.0  # a clear beat


def test_noise_has_no_beat_and_still_gives_a_valid_offset():
    rate = 32000
    grid = Grid(120, 2, 4, rate)
    noise = np.random.default_rng(3).standard_normal((rate * 8, 1)).astype(np.float32) * 0.1
    latest = len(noise) - grid.frames
    offset, strength = find_downbeat(noise, grid, latest)
    assert 0 <= offset <= latest
    assert strength < 2.0


def test_cut_is_exact_and_a_loop_seam_does_not_click():
    rate = 48000
    t = np.arange(3 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 217.3 * t))[:, None].astype(np.float32)
    frames, fade = 48000 + 123, 2400
    plain = cut(tone, 1000, frames)
    looped = cut(tone, 1000, frames, loop_fade=fade)
    assert plain.shape == looped.shape == (frames, 1)
    np.testing.assert_array_equal(looped[fade:], plain[fade:])
    assert seam_jump(plain) > 10  # a 217.3 Hz tone cut at an arbitrary sample jumps
    assert seam_jump(looped) < 1.5  # the crossfaded head continues the tail
    with pytest.raises(ValueError, match="cannot give"):
        cut(tone, len(tone) - 10, frames)


def test_slugs_and_generation_length():
    assert slug("Warm Rhodes chords, 92 BPM!") == "warm-rhodes-chords-92-bpm"
    assert slug("???") == "generated"
    assert len(slug("a very long prompt " * 10)) <= 40
    grid = Grid(120, 4, 4, 32000)
    assert generation_seconds(grid, loop=False, align=False) >= 8.0
    assert generation_seconds(grid, loop=True, align=True) >= 8.0 + 2.0 + 0.25
