"""Media I/O: every format a host hands us decodes; writes are atomic and never clobber."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.core.engine import Audio
from bridge.core.media import read_audio, write_audio_atomic
from bridge.core.paths import MediaRoots
from bridge.core.publish import remove_partials
from bridge.core.errors import PermissionDenied
from tests.conftest import write_tone

FORMATS = {  # suffix: ffmpeg codec arguments
    ".flac": ["-c:a", "flac"],
    ".aiff": ["-c:a", "pcm_s16be"],
    ".ogg": ["-c:a", "libvorbis"],
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "192k"],
    ".m4a": ["-c:a", "aac", "-b:a", "192k"],
}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_tone(tmp_path_factory.mktemp("src") / "tone.wav", seconds=2.0, rate=44100, level=0.3)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_each_format_decodes_to_the_same_music(source, tmp_path, suffix):
    target = tmp_path / f"tone{suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), *FORMATS[suffix], str(target)],
                   check=True)
    audio = read_audio(target)
    reference = read_audio(source)
    assert audio.sample_rate == 44100 and audio.channels == 2 and audio.name == "tone"
    # lossy codecs add priming/padding: compare a stretch in the middle, aligned by correlation
    mid = reference.samples[22050:44100, 0]
    got = audio.samples[:, 0]
    lag = int(np.argmax(np.correlate(got[20000:50000], mid, mode="valid"))) + 20000
    corr = np.corrcoef(got[lag:lag + mid.size], mid)[0, 1]
    assert corr > 0.99, (suffix, corr)
    assert abs(audio.frames - reference.frames) < 4096


def test_writes_are_atomic_and_never_clobber(tmp_path):
    audio = Audio(np.zeros((100, 2), dtype=np.float32), 48000)
    first = write_audio_atomic(tmp_path, "a.master.mastered.wav", audio, tag="job1")
    second = write_audio_atomic(tmp_path, "a.master.mastered.wav", audio, tag="job2")
    assert first.name == "a.master.mastered.wav" and second.name == "a.master.mastered.2.wav"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])
    assert oct(first.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not a temp's 0600
    assert soundfile.info(str(second)).frames == 100


def test_partials_of_a_killed_job_are_found_by_its_tag(tmp_path):
    mine = tmp_path / ".a.master.mastered.wav.sb-job1.x1y2.part"
    other = tmp_path / ".a.master.mastered.wav.sb-job2.x1y2.part"
    users = tmp_path / ".hidden-user-file.part"
    for path in (mine, other, users):
        path.write_bytes(b"half")
    assert remove_partials(tmp_path, "job1") == [mine]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, users.name])


def test_media_roots_follow_links(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.wav").write_bytes(b"x")
    (root / "escape").symlink_to(tmp_path)
    roots = MediaRoots([root])
    assert roots.check(root / "inside.wav") == root / "inside.wav"
    with pytest.raises(PermissionDenied, match="outside the daemon's media roots"):
        roots.check(root / "escape" / "root" / ".." / "secret.wav")
    with pytest.raises(PermissionDenied):
        roots.check(root / ".." / "x.wav")


def test_16_bit_output_is_dithered_not_truncated(tmp_path):
    """A -100 dBFS tone vanishes when truncated to 16 bits; dithered, it survives as signal."""
    rate = 48000
    t = np.arange(rate * 2) / rate
    quiet = (10 ** (-100 / 20) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)[:, None]
    path = write_audio_atomic(tmp_path, "q.wav", Audio(quiet, rate), fmt="wav16")
    data, _ = soundfile.read(str(path), dtype="float64")
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    tone_bin = 1000 * data.size // rate
    assert spectrum[tone_bin] > 10 * np.median(spectrum)  # the tone is still there, above the noise
    again = write_audio_atomic(tmp_path, "q.wav", Audio(quiet, rate), fmt="wav16")
    assert again.read_bytes() == path.read_bytes()  # deterministic, so the cache stays exact
