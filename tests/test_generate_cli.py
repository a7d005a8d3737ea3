"""Generated music back to hosts: the CLI and OSC against a real daemon with a tiny MusicGen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import build_msg

from tests.conftest import ROOT, running_daemon, write_tone
from tests.models import write_tiny_musicgen
from tests.transport.oscwire import UnixPeer

pytest.importorskip("omegaconf")  # the generate extra


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with running_daemon() as daemon:
        folder = write_tiny_musicgen(tmp_path_factory.mktemp("mg") / "tiny")
        result = cli("models", "import", str(folder), "--name", "tiny", "--state-dir",
                     str(daemon.state_dir), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["model"]["engine"] == "generate"
        yield daemon


def cli(*args, addr=None):
    env = {**os.environ, **({"STUDIO_BRIDGE_ADDR": addr} if addr else {})}
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def generate(daemon, *args):
    result = cli("generate", *args, "--json", addr=daemon.addr)
    return result.returncode, json.loads(result.stdout)


def test_four_bars_at_92_bpm_loop_exactly(served):
    out = served.media / "gen"
    code, job = generate(served, "warm rhodes chords", "--model", "tiny", "--bpm", "92",
                         "--bars", "4", "--loop", "--seed", "5", "--out", str(out))
    assert code == 0, job
    (output,) = job["outputs"]
    assert output["path"] == str(out / "warm-rhodes-chords.tiny.5.wav") and output["kind"] == "5"
    info = soundfile.info(output["path"])
    assert (info.frames, info.samplerate) == (round(4 * 4 * 60 / 92 * 48000), 48000)
    assert job["report"]["tempo"] == {"bpm": 92.0, "bars": 4, "beats_per_bar": 4,
                                      "frames": info.frames, "seconds": round(info.frames / 48000, 6),
                                      "loop": True}
    assert job["report"]["seed"] == 5


def test_variations_and_a_reported_random_seed(served):
    code, job = generate(served, "bass line", "--model", "tiny", "--duration", "1",
                         "--variations", "2", "--out", str(served.media / "var"))
    assert code == 0, job
    seed = job["report"]["seed"]
    assert sorted(o["kind"] for o in job["outputs"]) == [f"{seed}-1", f"{seed}-2"]


def test_bad_requests_name_what_is_allowed_and_the_daemon_keeps_serving(served):
    code, job = generate(served, "x", "--model", "tiny", "--bpm", "1000", "--bars", "4",
                         "--out", str(served.media / "bad"))
    assert code == 1 and job["error"]["code"] == "invalid_argument" and "bpm" in job["error"]["message"]
    code, job = generate(served, "x", "--model", "musicgen-huge", "--out", str(served.media / "bad"))
    assert code == 1 and job["error"]["code"] == "not_found" and "tiny" in job["error"]["message"]
    code, job = generate(served, "  ", "--model", "tiny", "--out", str(served.media / "bad"))
    assert code == 1 and "prompt is empty" in job["error"]["message"]
    write_tone(served.media / "tune.wav", seconds=1.0, rate=44100, channels=1)
    code, job = generate(served, "x", "--model", "tiny", "--melody", str(served.media / "tune.wav"),
                         "--duration", "1", "--out", str(served.media / "bad"))
    assert code == 1 and job["error"]["code"] == "invalid_argument"
    assert "has no melody conditioning" in job["error"]["message"]
    assert not (served.media / "bad").exists()
    code, job = generate(served, "still here", "--model", "tiny", "--duration", "0.5",
                         "--out", str(served.media / "ok"))
    assert code == 0, job


def osc_roundtrip(daemon, address: str, args: list) -> list[tuple[str, list]]:
    """Send one message to the daemon's OSC unix socket from a bound one of the test's own
    (replies come back to its path); collect the replies until done or error."""
    replies = []
    with UnixPeer(daemon.osc_socket) as peer:
        peer.send(build_msg(address, args).dgram)
        while not replies or replies[-1][0] not in ("/bridge/done", "/bridge/error"):
            message = OscMessage(peer.recv(60))
            replies.append((message.address, list(message.params)))
    return replies


def test_osc_generate_replies_done_with_the_file(served):
    out = served.media / "osc"
    replies = osc_roundtrip(served, "/bridge/generate", ["drum loop", 120.0, 1.0, str(out),
                                                         "model", "tiny", "seed", 3])
    done = [r for r in replies if r[0] == "/bridge/done"]
    assert done, replies
    path = done[0][1][1]
    assert path == str(out / "drum-loop.tiny.3.wav")
    assert soundfile.info(path).frames == 96000  # one bar at 120 BPM, 48 kHz


def test_the_same_generation_twice_comes_from_the_cache(served):
    """Found on main: the second ask crashed Submit (KeyError: 'melody', an optional input)."""
    out = served.media / "again"
    args = ("same again", "--model", "tiny", "--bpm", "120", "--bars", "1", "--seed", "5",
            "--out", str(out))
    code, first = generate(served, *args)
    assert code == 0 and not first["cached"], first
    code, second = generate(served, *args)
    assert code == 0 and second["cached"], second
    [one], [two] = first["outputs"], second["outputs"]
    assert one["path"] == str(out / "same-again.tiny.5.wav")
    assert two["path"] == str(out / "same-again.tiny.5.2.wav")  # never over the first
    assert open(one["path"], "rb").read() == open(two["path"], "rb").read()
    clip = write_tone(served.media / "intro.wav", seconds=1.0)
    cont = ("more", "--model", "tiny", "--continue", str(clip), "--duration", "0.5", "--seed", "2",
            "--out", str(out))
    assert generate(served, *cont)[0] == 0
    code, again = generate(served, *cont)
    assert code == 0 and again["cached"] and again["outputs"][0]["path"].startswith(str(out / "intro."))
    for _ in range(2):  # and over OSC the host hears done both times
        replies = osc_roundtrip(served, "/bridge/generate", ["osc again", 120.0, 1.0, str(out),
                                                             "model", "tiny", "seed", 9])
        assert replies[-1][0] == "/bridge/done", replies
