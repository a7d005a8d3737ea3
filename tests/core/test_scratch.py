"""Long media go to disk-backed arrays: same samples, bounded RAM, nothing left behind."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
import soundfile

from bridge.core import scratch as scratch_mod
from bridge.core.config import Config
from bridge.core.engine import Audio
from bridge.core.jobs import JobState
from bridge.core.media import read_audio, write_audio_atomic
from bridge.core.scratch import Scratch
from bridge.core.service import Service
from tests.conftest import wait_state, write_tone

TERMINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def test_small_arrays_stay_in_memory_and_large_ones_go_to_the_jobs_folder(tmp_path):
    folder = tmp_path / "job1"
    with Scratch(folder, large_bytes=4000) as scratch:
        small = scratch.array(100, 2)  # 800 bytes
        assert type(small) is np.ndarray and not folder.exists()
        large = scratch.array(1000, 2)  # 8000 bytes
        assert isinstance(large, np.memmap) and large.shape == (1000, 2)
        assert large.dtype == np.float32 and not large.any()
        large[10:20] = 1.0
        assert large.sum() == 20 and len(list(folder.iterdir())) == 1
    assert not folder.exists()
    # with no folder everything is in memory, whatever the size
    assert type(Scratch(None, large_bytes=1).array(1000, 2)) is np.ndarray


def test_a_spool_spills_to_disk_past_the_threshold_and_keeps_every_sample(tmp_path):
    rng = np.random.default_rng(1)
    blocks = [rng.standard_normal((n, 2)).astype(np.float32) for n in (300, 500, 700, 11)]
    with Scratch(tmp_path / "s", large_bytes=6000) as scratch:
        spool = scratch.spool(2)
        for block in blocks:
            spool.append(block)
        got = spool.array()
        assert isinstance(got, np.memmap)
        np.testing.assert_array_equal(got, np.concatenate(blocks))
    memory = Scratch(tmp_path / "m", large_bytes=1 << 30).spool(2)
    memory.append(blocks[0])
    assert type(memory.array()) is np.ndarray and not (tmp_path / "m").exists()


@pytest.mark.parametrize("suffix,codec", [(".wav", None), (".m4a", ["-c:a", "aac"])])
def test_long_inputs_decode_into_disk_backed_arrays_equal_to_memory(tmp_path, suffix, codec):
    source = write_tone(tmp_path / "tone.wav", seconds=3.0, rate=48000, level=0.3)
    path = source
    if codec:
        path = tmp_path / f"tone{suffix}"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(source), *codec, str(path)],
                       check=True)
    in_memory = read_audio(path)
    with Scratch(tmp_path / "job", large_bytes=100_000) as scratch:
        on_disk = read_audio(path, scratch)
        assert isinstance(on_disk.samples, np.memmap)
        np.testing.assert_array_equal(on_disk.samples, in_memory.samples)
        assert on_disk.sample_rate == 48000 and on_disk.name == "tone"


def test_blockwise_writes_are_exact_and_16_bit_dither_is_repeatable(tmp_path):
    frames = 200_000  # several write blocks
    rng = np.random.default_rng(2)
    with Scratch(tmp_path / "job", large_bytes=1) as scratch:
        samples = scratch.array(frames, 2)
        samples[:] = np.clip(0.1 * rng.standard_normal((frames, 2)), -0.9, 0.9)
        audio = Audio(samples, 44100)
        exact = write_audio_atomic(tmp_path, "x.float.wav", audio, "float")
        first = write_audio_atomic(tmp_path, "x.16.wav", audio, "wav16")
        again = write_audio_atomic(tmp_path, "x.16.wav", audio, "wav16")
        np.testing.assert_array_equal(soundfile.read(exact, dtype="float32")[0], samples)
        assert first.read_bytes() == again.read_bytes()
        pcm = soundfile.read(first, dtype="float32")[0]
        error = pcm - samples
        assert np.abs(error).max() <= 2.0 / 32768  # dither is at most +-1 LSB, plus rounding


def test_a_job_on_a_long_file_uses_its_scratch_folder_and_removes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(scratch_mod, "LARGE_BYTES", 50_000)  # 3 s of stereo is "long" here
    media = tmp_path / "media"
    media.mkdir()
    clip = write_tone(media / "tone.wav", seconds=3.0, rate=44100, level=0.3)
    leftover = tmp_path / "state" / "scratch" / "killedjob"
    leftover.mkdir(parents=True)
    (leftover / "0.f32").write_bytes(b"\0" * 64)
    service = Service(Config(state_dir=tmp_path / "state", media_roots=[media]))
    try:
        assert not leftover.exists()  # a killed daemon's scratch goes at the next start
        seen = []
        real = scratch_mod.Scratch.array

        def spy(self, frames, channels):
            out = real(self, frames, channels)
            seen.append(isinstance(out, np.memmap))
            return out

        monkeypatch.setattr(scratch_mod.Scratch, "array", spy)
        record = service.submit("separate", {"audio": {"path": str(clip)}},
                                {"stems": "harmonic"}, str(media / "out"), model="hpss")
        done = wait_state(service, record.id, TERMINAL)
        assert done.state is JobState.SUCCEEDED, done.error
        assert seen and seen[0]  # the input was read into a disk-backed array
        time.sleep(0.05)
        assert list((tmp_path / "state" / "scratch").glob("*")) == []
        stem, rate = soundfile.read(done.outputs[0]["path"], dtype="float32")
        mix, _ = soundfile.read(clip, dtype="float32")
        assert rate == 44100 and stem.shape == mix.shape
    finally:
        service.close()
