"""Stems back to hosts: the CLI and OSC against a real daemon with an imported tiny demucs model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import soundfile
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from tests.conftest import ROOT, running_daemon, write_tone
from tests.models import write_tiny_demucs_repo
from tests.transport.oscwire import UnixPeer

STEMS = ["bass", "drums", "other", "vocals"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One daemon with the tiny model imported through the real CLI."""
    with running_daemon() as daemon:
        repo = write_tiny_demucs_repo(tmp_path_factory.mktemp("repo"), name="tiny", segment=4)
        result = cli("models", "import", str(repo), "--name", "tiny", "--state-dir", str(daemon.state_dir),
                     "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        daemon.song = write_tone(daemon.media / "song.wav", seconds=6, rate=44100, channels=2, level=0.2)
        yield daemon


def cli(*args, addr=None):
    env = {"STUDIO_BRIDGE_ADDR": addr} if addr else {}
    import os

    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180)


def separate(daemon, *args):
    result = cli("separate", str(daemon.song), "--json", *args, addr=daemon.addr)
    return result.returncode, json.loads(result.stdout)


def tiny(daemon) -> dict:
    with daemon.client() as client:
        return next(m for m in client.models() if m["name"] == "tiny")


def test_every_stem_comes_back_with_the_source_shape(served):
    code, job = separate(served, "--model", "tiny", "--out", str(served.media / "stems"))
    assert code == 0, job
    assert sorted(o["kind"] for o in job["outputs"]) == STEMS and job["model"] == "tiny"
    source = soundfile.info(str(served.song))
    for output in job["outputs"]:
        assert output["path"] == str(served.media / "stems" / f"song.tiny.{output['kind']}.wav")
        info = soundfile.info(output["path"])
        assert (info.frames, info.samplerate, info.channels) == (source.frames, 44100, 2)


def test_second_job_does_not_reload_the_model(served):
    separate(served, "--model", "tiny", "--out", str(served.media / "a"), "--no-cache")
    first = tiny(served)
    assert first["state"] == "resident" and first["loaded_at"] > 0
    code, job = separate(served, "--model", "tiny", "--stems", "vocals,drums", "--out",
                         str(served.media / "b"), "--no-cache")
    assert code == 0 and sorted(o["kind"] for o in job["outputs"]) == ["drums", "vocals"]
    assert abs(tiny(served)["loaded_at"] - first["loaded_at"]) < 0.01  # still the same load


def test_two_stems(served):
    code, job = separate(served, "--model", "tiny", "--two-stems", "vocals", "--out", str(served.media / "two"))
    assert code == 0 and sorted(o["kind"] for o in job["outputs"]) == ["no_vocals", "vocals"]


def test_batching_and_precision_reach_the_engine(served):
    code, job = separate(served, "--model", "tiny", "--segments-per-pass", "2", "--precision",
                         "half", "--out", str(served.media / "half"))
    assert code == 0, job
    assert job["report"]["segments_per_pass"] == 2 and job["report"]["precision"] == "half"
    code, job = separate(served, "--model", "tiny", "--precision", "quarter", "--out",
                         str(served.media / "q"))
    assert code == 1 and "allowed: auto, float32, half" in job["error"]["message"]


def test_unknown_model_and_stem_say_what_exists(served):
    code, job = separate(served, "--model", "htdemux", "--out", str(served.media / "x"))
    assert code == 1 and job["error"]["code"] == "not_found"
    assert "tiny" in job["error"]["message"] and "models pull" in job["error"]["message"]
    code, job = separate(served, "--model", "tiny", "--stems", "voxals", "--out", str(served.media / "x"))
    assert code == 1 and job["error"]["code"] == "invalid_argument"
    assert "vocals" in job["error"]["message"]
    assert not (served.media / "x").exists()


def test_a_rate_the_model_cannot_resample_fails_clearly_and_the_daemon_goes_on(served):
    odd = write_tone(served.media / "odd.wav", seconds=1, rate=44099, channels=2, level=0.2)
    result = cli("separate", str(odd), "--model", "tiny", "--out", str(served.media / "odd"),
                 "--json", addr=served.addr)
    job = json.loads(result.stdout)
    assert result.returncode == 1 and "convert the file to a standard rate" in job["error"]["message"]
    assert not (served.media / "odd").exists()  # a failed job leaves no folder
    code, job = separate(served, "--model", "tiny", "--out", str(served.media / "after"))
    assert code == 0, job


def test_hpss_needs_no_weights(served):
    code, job = separate(served, "--model", "hpss", "--out", str(served.media / "hp"))
    assert code == 0, job
    assert sorted(o["kind"] for o in job["outputs"]) == ["harmonic", "percussive"]


def test_osc_separate_replies_done_with_every_stem(served):
    out = served.media / "osc"
    with UnixPeer(served.osc_socket) as peer:  # bound: replies come back to its path
        peer.send(build_msg("/bridge/separate", [str(served.song), "tiny", str(out)]).dgram)
        while True:
            message = OscMessage(peer.recv(60))
            if message.address in ("/bridge/done", "/bridge/error"):
                break
    assert message.address == "/bridge/done", message.params
    paths = message.params[1:]
    assert sorted(p.rsplit(".", 2)[-2] for p in paths) == STEMS
    assert all(p.startswith(str(out)) for p in paths)
