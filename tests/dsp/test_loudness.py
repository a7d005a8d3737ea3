"""Loudness measurement against known signals, pyloudnorm and ffmpeg."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from bridge.core.errors import MediaError
from bridge.dsp import loudness
from tests.music import bach, cache_dir, have_renderer, render_bach

pytestmark = pytest.mark.skipif(not have_renderer(), reason="needs fluidsynth + FluidR3_GM")


@pytest.fixture(scope="session")
def music(tmp_path_factory):
    return cache_dir(tmp_path_factory)


def sine(freq, amplitude, rate=48000, seconds=5.0, channels=2, phase=0.0):
    t = np.arange(int(rate * seconds)) / rate
    wave = amplitude * np.sin(2 * np.pi * freq * t + phase)
    return np.repeat(wave[:, None], channels, axis=1)


def test_sine_reads_the_textbook_value():
    # BS.1770: a 997 Hz sine at 0 dBFS peak in one channel reads -3.01 LUFS;
    # in both channels of a stereo pair it reads 0 LUFS.
    amplitude = 10 ** (-20 / 20)
    mono = loudness.measure(sine(997, amplitude, channels=1), 48000)
    stereo = loudness.measure(sine(997, amplitude, channels=2), 48000)
    assert mono.integrated_lufs == pytest.approx(-23.01, abs=0.05)
    assert stereo.integrated_lufs == pytest.approx(-20.0, abs=0.05)
    assert stereo.sample_peak_dbfs == pytest.approx(-20.0, abs=0.01)


def test_true_peak_sees_inter_sample_peaks():
    # fs/4 at 45 degrees: every sample sits at 0.707 of the real peak.
    x = sine(12000, 0.5, rate=48000, phase=np.pi / 4)
    m = loudness.measure(x, 48000)
    assert m.sample_peak_dbfs == pytest.approx(20 * np.log10(0.5 * 0.7071), abs=0.02)
    assert m.true_peak_dbtp == pytest.approx(20 * np.log10(0.5), abs=0.2)


def test_agrees_with_pyloudnorm_on_music(music):
    import pyloudnorm

    x, rate = bach(music, 44100, seconds=20)
    ours = loudness.integrated_loudness(x, rate)
    theirs = pyloudnorm.Meter(rate).integrated_loudness(x)
    assert ours == pytest.approx(theirs, abs=0.1)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_agrees_with_ffmpeg_ebur128(music):
    path = render_bach(music, 48000, seconds=20)
    x, rate = sf.read(path, always_2d=True)
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
         "-f", "null", "-"], capture_output=True, text=True, check=True)
    summary = run.stderr[run.stderr.rindex("Summary:"):]
    ffmpeg_i = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    m = loudness.measure(x, rate)
    assert m.integrated_lufs == pytest.approx(ffmpeg_i, abs=0.1)


def test_report_is_plain_json():
    m = loudness.measure(sine(440, 0.1, seconds=4), 48000)
    text = json.dumps(m.to_dict())
    assert set(json.loads(text)) == {
        "integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "sample_peak_dbfs"}
    silent = loudness.measure(np.zeros((48000, 2)), 48000)
    assert silent.to_dict()["integrated_lufs"] is None  # JSON has no -inf


def test_silence_short_and_gated_audio_have_no_loudness():
    rate = 48000
    cases = {
        "silence": np.zeros((rate * 2, 2)),
        "short": sine(440, 0.5, seconds=0.3),
        "gated": sine(440, 10 ** (-85 / 20), seconds=2),
    }
    for name, x in cases.items():
        lufs = loudness.integrated_loudness(x, rate)
        assert lufs == -np.inf, name
        with pytest.raises(MediaError, match="infinite gain"):
            loudness.require_defined_loudness(lufs, x.shape[0], rate)


def test_check_content_names_the_first_bad_frame():
    x = sine(440, 0.1, seconds=1)
    x[12345, 1] = np.nan
    x[20000, 0] = np.inf
    with pytest.raises(MediaError, match=r"frame 12345 .*channel 1"):
        loudness.check_content(x, 48000)


def test_check_content_rejects_too_many_channels():
    with pytest.raises(MediaError, match="9 channels.*1 to 8"):
        loudness.check_content(np.zeros((1000, 9)), 48000)
    assert loudness.check_content(np.zeros(1000), 48000).shape == (1000, 1)


def test_meter_fed_in_chunks_reads_exactly_what_one_call_reads(music):
    x, rate = bach(music, 48000, seconds=20)
    whole = loudness.measure(x, rate)
    meter = loudness.Meter(x.shape[1], rate)
    for start in range(0, x.shape[0], 77777):  # odd sizes: gating blocks and filters carry over
        meter.add(x[start : start + 77777].astype(np.float32))
    assert meter.measurement() == loudness.measure(x.astype(np.float32), rate)
    assert meter.measurement().integrated_lufs == pytest.approx(whole.integrated_lufs, abs=1e-6)
    quick = loudness.Meter(x.shape[1], rate, full=False)
    quick.add(x)
    assert quick.integrated() == pytest.approx(whole.integrated_lufs, abs=1e-9)  # MODE_I alone


def test_long_disk_backed_clip_is_checked_and_measured_in_chunks(tmp_path):
    from bridge.dsp import chunks

    frames = chunks.CHUNK_FRAMES * 2 + 1000
    x = np.memmap(tmp_path / "long.f32", dtype=np.float32, mode="w+", shape=(frames, 2))
    x[:] = sine(997, 0.1, seconds=frames / 48000 + 0.1)[:frames]
    assert loudness.check_content(x, 48000) is not None
    m = loudness.measure(x, 48000)
    assert m.integrated_lufs == pytest.approx(-20.0, abs=0.05)
    bad = chunks.CHUNK_FRAMES + 123  # in the second chunk: the frame is still named right
    x[bad, 1] = np.nan
    with pytest.raises(MediaError, match=rf"frame {bad} .*channel 1"):
        loudness.check_content(x, 48000)
