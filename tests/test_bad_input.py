"""Bad input: a clear error, nothing lost, daemon still serving.

Every case goes through the real CLI (``studio-bridge master IN --out DIR
--json``) against a real daemon subprocess and checks the same four
promises:

* the command fails (non-zero exit) and prints exactly one JSON object whose
  ``error`` has a stable ``code`` and a ``message`` naming the file or value,
  what is allowed, and what to do;
* the output folder holds no files afterwards, not even a hidden ``.part``;
* the input file is byte-for-byte unchanged;
* the daemon is still serving: a good job on it succeeds afterwards.

A truncated WAV whose data chunk is cut short is *not* an error here:
libsndfile (like ffmpeg, sox and every DAW) reads the frames that are
present, so the file is mastered; the test pins that the result is complete
and exactly as long as the decodable audio. A WAV cut inside its header
cannot be decoded and must fail as ``bad_media``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import ROOT, write_tone

READABLE = "WAV, FLAC, AIFF"  # part of the "readable formats" hint on decode errors


# -- helpers ----------------------------------------------------------------------
def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files_under(folder: Path) -> list[str]:
    """Every file (hidden ones too) under ``folder``; [] if it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def part_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".sb-probe-")]


def run_master(daemon, inp, out, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = daemon.cli("master", str(inp), "--out", str(out), "--json", *extra)
    try:
        payload = json.loads(result.stdout)  # exactly one JSON object, nothing else
    except json.JSONDecodeError as exc:
        raise AssertionError(f"stdout is not one JSON object ({exc}):\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}") from None
    assert isinstance(payload, dict), payload
    return result, payload


def assert_still_serving(daemon) -> None:
    """A fresh good job on the same daemon succeeds and writes a complete file."""
    assert daemon.alive(), daemon.read_log()
    good = write_tone(daemon.media / f"good-{time.monotonic_ns()}.wav", seconds=2.0)
    out = daemon.media / f"good-out-{time.monotonic_ns()}"
    result, payload = run_master(daemon, good, out, "--no-cache")
    assert result.returncode == 0, (result.stdout, result.stderr, daemon.read_log())
    assert payload["state"] == "succeeded" and not payload.get("error"), payload
    [output] = payload["outputs"]
    data, rate = soundfile.read(output["path"])
    assert rate == 48000 and data.shape == (96000, 2)
    assert part_files(daemon.media) == []


def expect_failure(daemon, inp, out, code: str, *needles: str, extra: tuple = (),
                   input_hash: str | None = None) -> str:
    """Run the CLI, check the four promises, return the error message."""
    inp, out = Path(inp), Path(out)
    before = input_hash if input_hash is not None else (sha(inp) if inp.is_file() else None)
    result, payload = run_master(daemon, inp, out, *extra)
    assert result.returncode != 0, payload
    error = payload.get("error")
    assert error, payload
    assert error["code"] == code, error
    message = error["message"]
    for needle in needles:
        assert needle.lower() in message.lower(), f"{needle!r} not in {message!r}"
    assert "Traceback" not in message and "internal error" not in message, message
    if payload.get("state") is not None:  # a job was queued and failed
        assert payload["state"] == "failed" and payload["outputs"] == [], payload
    assert files_under(out) == [], files_under(out)
    assert part_files(daemon.media) == [], part_files(daemon.media)
    if before is not None and inp.is_file():
        assert sha(inp) == before, "the input file changed"
    assert_still_serving(daemon)
    return message


def queued_jobs(daemon) -> list[dict]:
    with daemon.client() as client:
        return client.list_jobs(100)


# -- files that are not (decodable) audio ------------------------------------------
def test_random_bytes_with_wav_suffix(daemon):
    inp = daemon.media / "noise.wav"
    inp.write_bytes(np.random.default_rng(1).bytes(100_000))
    message = expect_failure(daemon, inp, daemon.media / "out", "bad_media",
                             str(inp), "corrupt", READABLE)
    # libsndfile's text for an unrecognised file is "File does not exist or is
    # not a regular file"; the file does exist, so that must not reach the user.
    assert "does not exist" not in message, message


def test_valid_header_garbage_body_float_wav(daemon):
    """A float WAV header over random bytes: the bytes decode to NaN/Inf/huge values."""
    inp = daemon.media / "garbled.wav"
    write_tone(inp, seconds=1.0, subtype="FLOAT")
    raw = bytearray(inp.read_bytes())
    data_at = raw.index(b"data") + 8
    rng = np.random.default_rng(7)
    raw[data_at:] = rng.bytes(len(raw) - data_at)
    # Make sure at least one sample is a NaN (exponent all ones, mantissa non-zero).
    raw[data_at + 400: data_at + 404] = np.array([np.nan], dtype="<f4").tobytes()
    inp.write_bytes(bytes(raw))
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "frame")


def test_header_only_wav_has_no_frames(daemon):
    inp = daemon.media / "hollow.wav"
    write_tone(daemon.media / "src.wav", seconds=1.0)
    raw = (daemon.media / "src.wav").read_bytes()
    data_at = raw.index(b"data") + 8
    inp.write_bytes(raw[:data_at])
    (daemon.media / "src.wav").unlink()
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "no audio frames",
                   "export")


def test_empty_file(daemon):
    inp = daemon.media / "empty.wav"
    inp.write_bytes(b"")
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "empty", "0 bytes")


def test_text_file_renamed_wav(daemon):
    inp = daemon.media / "notes.wav"
    inp.write_text("These are my mix notes, not audio.\n" * 200)
    message = expect_failure(daemon, inp, daemon.media / "out", "bad_media",
                             str(inp), "not audio", READABLE)
    assert "does not exist" not in message, message


def _png_bytes() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes([x % 256, 0, 255 - x % 256]) * 16 for x in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_png_renamed_wav(daemon):
    inp = daemon.media / "cover.wav"
    inp.write_bytes(_png_bytes())
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "not audio", READABLE)


def test_png_with_its_own_suffix(daemon):
    """Goes the PyAV way (unknown suffix): an image has no audio stream."""
    inp = daemon.media / "cover.png"
    inp.write_bytes(_png_bytes())
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "audio")


def test_jpeg_like_binary(daemon):
    inp = daemon.media / "photo.jpg"
    inp.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + np.random.default_rng(3).bytes(20_000))
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "audio")


def test_video_without_audio_stream(daemon):
    inp = daemon.media / "picture-only.mp4"
    made = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                           "testsrc=duration=1:size=64x48:rate=10", "-an", "-pix_fmt", "yuv420p",
                           str(inp)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "no audio stream",
                   "with sound")


# -- truncated files ---------------------------------------------------------------
def test_wav_cut_inside_its_header_is_bad_media(daemon):
    full = write_tone(daemon.media / "full.wav", seconds=1.0)
    inp = daemon.media / "stub.wav"
    inp.write_bytes(full.read_bytes()[:30])
    full.unlink()
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "truncated")


def test_wav_cut_in_half_masters_what_is_there(daemon):
    """Decision: the frames present are real audio, so mastering them is right.

    libsndfile reads a short data chunk as shorter audio (as ffmpeg, sox and
    DAWs do). The promise that matters is "nothing half-written": the result
    is a complete file exactly as long as the decodable input, and the input
    is untouched. The report warns that the export was cut short.
    """
    full = write_tone(daemon.media / "full.wav", seconds=3.0)
    inp = daemon.media / "half.wav"
    raw = full.read_bytes()
    inp.write_bytes(raw[: len(raw) // 2])
    full.unlink()
    before = sha(inp)
    present = soundfile.info(str(inp)).frames
    assert 0 < present < 3 * 48000
    out = daemon.media / "out"
    result, payload = run_master(daemon, inp, out, "--no-cache")
    assert result.returncode == 0, payload
    assert payload["state"] == "succeeded", payload
    [output] = payload["outputs"]
    data, rate = soundfile.read(output["path"])
    assert rate == 48000 and data.shape == (present, 2)
    assert np.isfinite(data).all()
    assert files_under(out) == [Path(output["path"]).name]
    assert sha(inp) == before
    [warning] = payload["report"]["warnings"]
    assert str(inp) in warning and "truncated" in warning and "declares 3.00 s" in warning
    assert_still_serving(daemon)


# -- content no engine can process ----------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_samples_name_the_frame(daemon, bad):
    inp = daemon.media / "broken.wav"
    rate = 48000
    data = write_tone(daemon.media / "src.wav", seconds=1.0, subtype="FLOAT")
    samples, _ = soundfile.read(str(data), dtype="float32")
    (daemon.media / "src.wav").unlink()
    samples[12_345, 1] = bad
    soundfile.write(str(inp), samples, rate, subtype="FLOAT")
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "frame 12345",
                   "0.257 s", "render it again")


def test_digital_silence_is_an_explicit_error_not_infinite_gain(daemon):
    inp = daemon.media / "silence.wav"
    soundfile.write(str(inp), np.zeros((48000 * 2, 2), np.float32), 48000, subtype="FLOAT")
    message = expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "silence",
                             "-inf LUFS", "infinite gain", "audible content")
    assert "inf dB" not in message.replace("-inf LUFS", "")


def test_clip_shorter_than_one_loudness_block(daemon):
    inp = daemon.media / "blip.wav"
    write_tone(inp, seconds=0.2)
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "0.200 s", "0.4 s")


def test_nine_channels(daemon):
    inp = daemon.media / "wide.wav"
    write_tone(inp, seconds=1.0, channels=9)
    assert soundfile.info(str(inp)).channels == 9
    expect_failure(daemon, inp, daemon.media / "out", "bad_media", str(inp), "9 channels",
                   "at most 8", "fold it down")


# -- paths ------------------------------------------------------------------------
def test_input_outside_the_media_roots(daemon):
    outside = Path(tempfile.mkdtemp(prefix="sb-outside-"))
    try:
        inp = write_tone(outside / "secret.wav", seconds=1.0)
        expect_failure(daemon, inp, daemon.media / "out", "permission_denied", str(inp),
                       "outside the daemon's media roots", str(daemon.media), "--media-root")
        assert len(queued_jobs(daemon)) == 1  # the good job only
        assert not any(str(inp) in json.dumps(j) for j in queued_jobs(daemon)), "refused job was queued"
    finally:
        import shutil

        shutil.rmtree(outside, ignore_errors=True)


def test_symlink_inside_root_pointing_outside_is_refused(daemon):
    outside = Path(tempfile.mkdtemp(prefix="sb-outside-"))
    try:
        target = write_tone(outside / "secret.wav", seconds=1.0)
        link = daemon.media / "innocent.wav"
        link.symlink_to(target)
        expect_failure(daemon, link, daemon.media / "out", "permission_denied", str(link),
                       "outside the daemon's media roots", str(daemon.media), input_hash=sha(target))
        assert sha(target) == sha(link)
    finally:
        import shutil

        shutil.rmtree(outside, ignore_errors=True)


def test_out_folder_symlink_pointing_outside_is_refused(daemon):
    outside = Path(tempfile.mkdtemp(prefix="sb-outside-"))
    try:
        inp = write_tone(daemon.media / "song.wav", seconds=1.0)
        link = daemon.media / "exports"
        link.symlink_to(outside, target_is_directory=True)
        expect_failure(daemon, inp, link, "permission_denied", str(link), "outside", str(daemon.media))
        assert list(outside.iterdir()) == []
    finally:
        import shutil

        shutil.rmtree(outside, ignore_errors=True)


def test_nonexistent_input(daemon):
    inp = daemon.media / "typo.wav"
    expect_failure(daemon, inp, daemon.media / "out", "not_found", str(inp), "does not exist",
                   "check the path")
    [only] = queued_jobs(daemon)  # the good job; the refused one never queued
    assert only["state"] == "succeeded"


def test_output_folder_that_cannot_be_written(daemon):
    """Root ignores mode bits, so use a path below a regular file.

    ``mkdir`` of ``<file>/sub`` fails with ENOTDIR for every user, root
    included, which is what a mode-0500 folder can not guarantee here.
    """
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    blocker = daemon.media / "not-a-folder"
    blocker.write_text("I am a file")
    out = blocker / "sub"
    expect_failure(daemon, inp, out, "permission_denied", str(out), "cannot write",
                   f"'{blocker}' is a file, not a folder", "--out")
    assert blocker.read_text() == "I am a file"
    [only] = queued_jobs(daemon)  # the good job; the refused one never queued
    assert only["state"] == "succeeded"


def test_output_folder_is_an_existing_file(daemon):
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    out = daemon.media / "mix.txt"
    out.write_text("keep me")
    result, payload = run_master(daemon, inp, out)
    assert result.returncode != 0 and payload["error"]["code"] == "permission_denied", payload
    assert f"'{out}' is a file, not a folder" in payload["error"]["message"], payload
    assert "--out" in payload["error"]["message"]
    assert out.read_text() == "keep me"
    assert queued_jobs(daemon) == []
    assert_still_serving(daemon)


def test_out_folder_outside_the_media_roots(daemon):
    outside = Path(tempfile.mkdtemp(prefix="sb-outside-"))
    try:
        inp = write_tone(daemon.media / "song.wav", seconds=1.0)
        out = outside / "renders"
        expect_failure(daemon, inp, out, "permission_denied", str(out), "outside",
                       str(daemon.media), "--media-root")
        assert not out.exists(), "the daemon created a folder outside its roots"
    finally:
        import shutil

        shutil.rmtree(outside, ignore_errors=True)


# -- parameters -------------------------------------------------------------------
def test_unknown_preset_lists_presets_and_queues_nothing(daemon):
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    out = daemon.media / "out"
    result, payload = run_master(daemon, inp, out, "--preset", "loud")
    assert result.returncode != 0
    assert set(payload) == {"error"}, payload  # refused before a job existed
    assert payload["error"]["code"] == "invalid_argument"
    message = payload["error"]["message"]
    for needle in ("preset", "'loud'", "streaming", "apple", "ebu-r128", "atsc-a85"):
        assert needle in message, message
    assert queued_jobs(daemon) == []
    assert files_under(out) == []
    assert_still_serving(daemon)


def test_loudness_target_out_of_range(daemon):
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    out = daemon.media / "out"
    result, payload = run_master(daemon, inp, out, "--lufs", "10")
    assert result.returncode != 0
    assert set(payload) == {"error"}, payload
    assert payload["error"]["code"] == "invalid_argument"
    message = payload["error"]["message"]
    for needle in ("lufs", "10", "-40", "-5", "LUFS"):
        assert needle in message, message
    assert queued_jobs(daemon) == []
    assert files_under(out) == []
    assert_still_serving(daemon)


def test_invalid_argument_cases_leave_input_unchanged(daemon):
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    before = sha(inp)
    for extra in (("--preset", "loud"), ("--lufs", "10"), ("--lufs", "-3"), ("--ceiling", "3"),
                  ("--format", "mp3"), ("--lufs", "-8", "--ceiling", "-6")):
        result, payload = run_master(daemon, inp, daemon.media / "out", *extra)
        assert result.returncode != 0, (extra, payload)
        assert payload["error"]["code"] == "invalid_argument", (extra, payload)
        assert sha(inp) == before
    assert queued_jobs(daemon) == []
    assert files_under(daemon.media / "out") == []
    assert_still_serving(daemon)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_lufs_is_refused_not_dropped(daemon, value):
    """The wire turns non-finite floats into null; `--lufs nan` must not become "default"."""
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    out = daemon.media / "out"
    result, payload = run_master(daemon, inp, out, f"--lufs={value}")
    assert result.returncode != 0, payload
    assert set(payload) == {"error"}, payload
    assert payload["error"]["code"] == "invalid_argument", payload
    message = payload["error"]["message"]
    assert "'lufs'" in message and value in message and "finite" in message, message
    assert files_under(out) == []
    assert queued_jobs(daemon) == []


def test_malformed_number_with_json_still_prints_one_json_object(daemon):
    inp = write_tone(daemon.media / "song.wav", seconds=1.0)
    result, payload = run_master(daemon, inp, daemon.media / "out", "--lufs", "loud")
    assert result.returncode != 0
    assert payload["error"]["code"] == "invalid_argument", payload
    assert "lufs" in payload["error"]["message"] and "'loud'" in payload["error"]["message"]


# -- gRPC level ---------------------------------------------------------------------
def test_submit_with_neither_path_nor_blob(daemon):
    import grpc

    from bridge.v1 import bridge_pb2 as pb
    from bridge.v1 import bridge_pb2_grpc as pb_grpc

    out = daemon.media / "out"
    with grpc.insecure_channel(daemon.addr) as channel:
        stub = pb_grpc.BridgeStub(channel)
        request = pb.SubmitRequest(engine="master", out_dir=str(out))
        request.inputs["audio"].CopyFrom(pb.MediaRef())
        with pytest.raises(grpc.RpcError) as caught:
            stub.Submit(request, timeout=10)
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    assert dict(err.trailing_metadata())["bridge-error-code"] == "invalid_argument"
    assert "neither a path nor a blob" in err.details()
    assert queued_jobs(daemon) == []
    assert files_under(out) == []
    assert_still_serving(daemon)


# -- a client that goes away ----------------------------------------------------------
WATCHER = """
import sys
from bridge.client import Client
client = Client(sys.argv[1])
job = client.submit("master", {"audio": sys.argv[2]}, {}, sys.argv[3], no_cache=True)
print(job["job_id"], flush=True)
for event in client.watch(job["job_id"]):
    if event["state"] == "running":
        print("running", flush=True)
"""


def _wait_running(daemon, job_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    with daemon.client() as client:
        while client.get_job(job_id)["state"] != "running":
            assert time.monotonic() < deadline, client.get_job(job_id)
            time.sleep(0.02)


def _wait_terminal(daemon, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    with daemon.client() as client:
        while True:
            job = client.get_job(job_id)
            if job["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)


def _assert_complete(job: dict, inp: Path, out: Path) -> None:
    assert job["state"] == "succeeded", job
    [output] = job["outputs"]
    assert Path(output["path"]).parent == out
    data, rate = soundfile.read(output["path"])
    assert data.shape == soundfile.read(str(inp))[0].shape
    assert sha(Path(output["path"])) == output["sha256"]
    assert files_under(out) == [Path(output["path"]).name]


def test_watching_client_killed_mid_job(daemon):
    inp = write_tone(daemon.media / "long.wav", seconds=150.0, channels=2)
    before = sha(inp)
    out = daemon.media / "out"
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, daemon.addr, str(inp), str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        job_id = proc.stdout.readline().strip()
        assert job_id, "the watcher did not submit"
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGKILL)  # its Watch stream dies with it
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with daemon.client() as client:
        assert client.get_job(job_id)["state"] == "running", "the job did not outlive its client"
    job = _wait_terminal(daemon, job_id)
    _assert_complete(job, inp, out)
    assert sha(inp) == before
    assert_still_serving(daemon)


def test_cli_killed_mid_job(daemon):
    inp = write_tone(daemon.media / "long.wav", seconds=150.0, channels=2)
    out = daemon.media / "out"
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": daemon.addr}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "master", str(inp), "--out", str(out),
                             "--json", "--no-cache"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not queued_jobs(daemon):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        job_id = queued_jobs(daemon)[0]["job_id"]
        _wait_running(daemon, job_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    job = _wait_terminal(daemon, job_id)
    _assert_complete(job, inp, out)
    assert_still_serving(daemon)


def test_watch_stream_closed_in_process_mid_job(daemon):
    """Closing the client's channel while iterating Watch: the job finishes anyway."""
    inp = write_tone(daemon.media / "long.wav", seconds=150.0, channels=2)
    out = daemon.media / "out"
    client = daemon.client()
    job = client.submit("master", {"audio": str(inp)}, {}, str(out), no_cache=True)
    stream = client.watch(job["job_id"])
    for event in stream:
        if event["state"] == "running":
            break
    client.close()  # cancels the stream on the wire
    finished = _wait_terminal(daemon, job["job_id"])
    _assert_complete(finished, inp, out)
    assert_still_serving(daemon)


def test_output_folder_replaced_by_a_file_mid_job(daemon):
    """The folder was fine at submit and is gone when the result is written."""
    inp = write_tone(daemon.media / "long.wav", seconds=60.0, channels=2)
    out = daemon.media / "out"
    with daemon.client() as client:
        job = client.submit("master", {"audio": str(inp)}, {}, str(out), no_cache=True)
    _wait_running(daemon, job["job_id"])
    assert not out.exists()  # created only when the result is written
    out.write_text("someone put a file here")
    finished = _wait_terminal(daemon, job["job_id"])
    assert finished["state"] == "failed", finished
    assert finished["error"]["code"] == "permission_denied", finished["error"]
    message = finished["error"]["message"]
    assert str(out) in message and "is a file, not a folder" in message and "--out" in message, message
    assert out.read_text() == "someone put a file here"
    assert part_files(daemon.media) == []
    assert_still_serving(daemon)


def test_input_is_a_folder(daemon):
    folder = daemon.media / "album"
    folder.mkdir()
    write_tone(folder / "track.wav", seconds=1.0)
    expect_failure(daemon, folder, daemon.media / "out", "invalid_argument", str(folder),
                   "is a folder", "audio file")
