"""The CLI as a user runs it: a real daemon, real files, one JSON object out."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_tone
from tests.loudness import measure


def one_json(result: subprocess.CompletedProcess) -> dict:
    """stdout must be exactly one JSON object."""
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_master_prints_one_json_object_and_hits_the_target(daemon):
    src = write_tone(daemon.media / "song.wav", seconds=8, level=0.05)
    result = daemon.cli("master", str(src), "--preset", "streaming", "--out", str(daemon.media / "out"), "--json")
    assert result.returncode == 0, result.stderr
    job = one_json(result)
    assert set(job) >= {"job_id", "state", "outputs", "report", "error"}
    assert job["state"] == "succeeded" and job["error"] is None
    (output,) = job["outputs"]
    assert output["kind"] == "mastered" and Path(output["path"]).is_absolute()
    assert output["path"] == str(daemon.media / "out" / "song.master.mastered.wav")
    measured = measure(output["path"])
    assert abs(measured["integrated_lufs"] + 14.0) <= 0.1
    assert measured["true_peak_dbtp"] <= -1.0
    source = measure(src)
    assert (measured["frames"], measured["rate"], measured["channels"]) == \
        (source["frames"], source["rate"], source["channels"])
    for side in ("before", "after"):
        assert set(job["report"][side]) >= {"integrated_lufs", "loudness_range_lu",
                                            "true_peak_dbtp", "sample_peak_dbfs"}
    assert abs(job["report"]["before"]["integrated_lufs"] - source["integrated_lufs"]) < 0.05
    assert "warnings" not in job["report"]


def test_lufs_and_ceiling_override_the_preset(daemon):
    src = write_tone(daemon.media / "song.wav", seconds=6, rate=44100, channels=1)
    job = one_json(daemon.cli("master", str(src), "--lufs", "-18", "--ceiling", "-2",
                              "--out", str(daemon.media), "--json", check=True))
    measured = measure(job["outputs"][0]["path"])
    assert abs(measured["integrated_lufs"] + 18) <= 0.1 and measured["true_peak_dbtp"] <= -2.0
    assert measured["channels"] == 1 and measured["rate"] == 44100


def test_status_jobs_job_engines_models(daemon):
    src = write_tone(daemon.media / "a.wav", seconds=3)
    job = one_json(daemon.cli("master", str(src), "--out", str(daemon.media), "--json", check=True))
    status = one_json(daemon.cli("status", "--json", check=True))
    assert status["device"] == "cpu" and status["queue_capacity"] == 16
    assert isinstance(status["memory_total"], int) and status["memory_total"] > 0
    assert status["media_roots"] == [str(daemon.media)]
    jobs = one_json(daemon.cli("jobs", "--json", check=True))["jobs"]
    assert [j["job_id"] for j in jobs] == [job["job_id"]]
    again = one_json(daemon.cli("job", job["job_id"], "--json", check=True))
    assert again["outputs"] == job["outputs"] and again["state"] == "succeeded"
    engines = one_json(daemon.cli("engines", "--json", check=True))["engines"]
    master = next(e for e in engines if e["name"] == "master")
    preset = next(p for p in master["params"] if p["name"] == "preset")
    assert preset["choices"] == ["streaming", "apple", "ebu-r128", "atsc-a85"]
    models = one_json(daemon.cli("models", "--json", check=True))["models"]
    hpss = next(m for m in models if m["name"] == "hpss")
    assert hpss["installed"] and hpss["engine"] == "separate" and not hpss["resident"]
    assert "not a neural" in hpss["description"].lower() or "dsp" in hpss["description"].lower()
    pullable = {m["name"] for m in models if not m["installed"]}
    assert {"htdemucs", "htdemucs_ft", "htdemucs_6s"} <= pullable


def test_repeat_request_is_served_from_the_cache(daemon):
    src = write_tone(daemon.media / "a.wav", seconds=3)
    first = one_json(daemon.cli("master", str(src), "--out", str(daemon.media / "x"), "--json", check=True))
    second = one_json(daemon.cli("master", str(src), "--out", str(daemon.media / "y"), "--json", check=True))
    assert not first["cached"] and second["cached"]
    assert Path(first["outputs"][0]["path"]).read_bytes() == Path(second["outputs"][0]["path"]).read_bytes()


def test_unknown_job_and_bad_option_fail_with_json_error(daemon):
    result = daemon.cli("job", "0123456789abcdef", "--json")
    assert result.returncode == 1
    assert one_json(result)["error"]["code"] == "not_found"
    result = daemon.cli("master", str(daemon.media / "x.wav"), "--out", str(daemon.media),
                        "--preset", "loud", "--json")
    error = one_json(result)["error"]
    assert result.returncode == 1 and error["code"] == "invalid_argument"
    assert "streaming, apple, ebu-r128, atsc-a85" in error["message"]


def test_no_daemon_is_a_clear_error(tmp_path):
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": f"unix://{tmp_path}/none.sock"}
    result = subprocess.run([sys.executable, "-m", "bridge", "status", "--json"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "unavailable" and "studio-bridge serve" in error["message"]
    assert f"{tmp_path}/none.sock" in error["message"]


def test_addr_flag_wins_over_environment(daemon, tmp_path):
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": f"unix://{tmp_path}/none.sock",
           "STUDIO_BRIDGE_TOKEN_FILE": str(daemon.state_dir / "token")}
    result = subprocess.run([sys.executable, "-m", "bridge", "status", "--json", "--addr", daemon.tcp],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert one_json(result)["device"] == "cpu"


def test_remote_host_uploads_and_downloads(daemon, tmp_path):
    """A client that does not share the daemon's files: media crosses as streams."""
    from bridge.client import Client

    src = write_tone(tmp_path / "remote.wav", seconds=4)  # outside the media roots on purpose
    with Client(daemon.tcp, local=False, token=daemon.token) as client:
        job = client.run("master", {"audio": str(src)}, {"preset": "ebu-r128"}, out_dir=str(tmp_path / "got"))
    assert job["state"] == "succeeded"
    local = Path(job["outputs"][0]["path"])
    assert local.parent == tmp_path / "got" and local.name == "remote.master.mastered.wav"
    assert abs(measure(local)["integrated_lufs"] + 23) <= 0.1


def test_progress_bar_only_on_a_terminal(daemon):
    src = write_tone(daemon.media / "long.wav", seconds=60)
    leader, follower = pty.openpty()
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": daemon.addr}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "master", str(src), "--out", str(daemon.media)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    out, _ = proc.communicate(timeout=120)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    bar = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "%" in bar and "[" in bar and "\r" in bar
    assert "succeeded" in out.decode() and "%" not in out.decode()


@pytest.mark.parametrize("args", [["--help"], ["master", "--help"], ["serve", "--help"]])
def test_help_runs_without_a_daemon(args):
    result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "usage: studio-bridge" in result.stdout


def test_relative_paths_resolve_against_the_callers_folder(daemon):
    """`studio-bridge master song.wav --out out/` as typed in a project folder."""
    write_tone(daemon.media / "song.wav", seconds=4)
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": daemon.addr, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "bridge", "master", "song.wav", "--preset", "streaming",
                             "--out", "out/", "--json"], cwd=daemon.media, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    job = one_json(result)
    assert job["outputs"][0]["path"] == str(daemon.media / "out" / "song.master.mastered.wav")
    assert abs(measure(job["outputs"][0]["path"])["integrated_lufs"] + 14) <= 0.1


@pytest.mark.parametrize("suffix,codec", [(".mp3", ["-c:a", "libmp3lame"]), (".m4a", ["-c:a", "aac"]),
                                          (".flac", ["-c:a", "flac"]), (".aiff", []), (".ogg", ["-c:a", "libvorbis"])])
def test_master_reads_every_format_and_keeps_the_decoded_shape(daemon, suffix, codec):
    wav = write_tone(daemon.media / "src.wav", seconds=5, rate=44100, level=0.1)
    src = daemon.media / f"clip{suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), *codec, str(src)], check=True)
    job = one_json(daemon.cli("master", str(src), "--out", str(daemon.media / "o"), "--json", check=True))
    out = measure(job["outputs"][0]["path"])
    from bridge.core.media import read_audio

    decoded = read_audio(src)
    assert (out["frames"], out["rate"], out["channels"]) == (decoded.frames, 44100, 2)
    assert abs(out["integrated_lufs"] + 14) <= 0.1 and out["true_peak_dbtp"] <= -1.0


def test_doctor_checks_what_the_daemon_needs(daemon):
    report = one_json(daemon.cli("doctor", "--json", "--addr", daemon.addr, check=True))
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert checks["ffmpeg"]["status"] == "ok" and "ffmpeg version" in checks["ffmpeg"]["detail"]
    assert checks["device"]["detail"].startswith("cpu")
    assert checks["engine master"]["status"] == "ok"
    # installed --no-deps beside torch 2.13 by setup.sh: doctor proves it imports
    assert checks["audiocraft"]["status"] == "ok", checks["audiocraft"]
    assert "audiocraft 1.3.0 imports with torch 2.13.0" in checks["audiocraft"]["detail"]
    # one cv2, the 4.x contrib build: Haar cascades and saliency both present
    assert checks["opencv"]["status"] == "ok", checks["opencv"]
    assert "face cascades ok; saliency ok" in checks["opencv"]["detail"]
    assert checks["daemon"]["status"] == "ok" and "SERVING" in checks["daemon"]["detail"]
    assert {"python", "weights", "state dir", "grpc port", "osc port"} <= set(checks)
    # no daemon is a warning, not a failure (the check alone: the rest was run above)
    from bridge.doctor import _daemon

    missing = _daemon("unix:///nonexistent/s.sock", None)
    assert missing["status"] == "warn" and "studio-bridge serve" in missing["fix"]
