"""`studio-bridge midi` through the real CLI: errors, learning a control over JACK, no daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import mido
import pytest

from tests.conftest import ROOT
from tests.hosts.midi.jack import FakeController, JackTool, jack_backend


def midi(*args, timeout=30, addr="unix:///nonexistent/studio-bridge.sock"):
    env = {**os.environ, "STUDIO_BRIDGE_ADDR": addr}
    result = subprocess.run([sys.executable, "-m", "bridge", "midi", *map(str, args), "--json"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, json.loads(result.stdout)


def test_a_bad_map_is_refused_before_any_port_opens(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_text('[[binding]]\ntype = "note"\nchannel = 17\nnumber = 36\naction = "generate"\n')
    code, result = midi("--map", path, "--backend", "jack")
    assert code == 1 and result["error"]["code"] == "bad_mapping"
    assert "binding 1 (note 36 on channel 17, generate): channel must be 1-16" in result["error"]["message"]
    code, result = midi("--map", tmp_path / "none.toml")
    assert code == 1 and "does not exist" in result["error"]["message"]
    path.write_text('[[binding]]\ntype = "note"\nchannel = 1\nnumber = 36\naction = "generate"\n'
                    'prompt = "keys"\nout = "gen"\nplay = true\n')
    code, result = midi("--map", path, "--backend", "jack")
    assert code == 1 and "says play = true, but no live host is named" in result["error"]["message"]
    assert "--live 9123" in result["error"]["message"]
    code, result = midi("--map", path, "--backend", "jack", "--live", "nine")
    assert code == 1 and "--live must be the live host's OSC port" in result["error"]["message"]


@pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has ALSA MIDI")
def test_no_alsa_here_says_to_pick_another_backend(tmp_path):
    path = tmp_path / "pads.toml"
    path.write_text('[[binding]]\ntype = "note"\nchannel = 1\nnumber = 36\naction = "cancel"\n')
    code, result = midi("--map", path, "--virtual", "x", "--backend", "alsa")
    assert code == 1 and result["error"]["code"] == "unavailable"
    assert "ALSA" in result["error"]["message"] and "--backend" in result["error"]["message"]


def test_ports_by_name_and_no_daemon(tmp_path, jack):
    pad = FakeController(jack_backend())
    path = tmp_path / "pads.toml"
    path.write_text('[[binding]]\ntype = "note"\nchannel = 1\nnumber = 36\naction = "cancel"\n')
    try:
        code, result = midi("--map", path, "--in", "launchkey", "--backend", "jack")
        assert code == 1 and result["error"]["code"] == "no_port"
        assert result["error"]["message"] == ("no MIDI input port matches 'launchkey'; available input "
                                              "ports: fakepad:pads")
        code, result = midi("--map", path, "--in", "fakepad", "--out", "nothing", "--backend", "jack")
        assert "no MIDI output port matches 'nothing'; available output ports: fakepad-leds:leds" \
            in result["error"]["message"]
        code, result = midi("--map", path, "--in", "fakepad", "--backend", "jack")
        assert code == 3 and result["error"]["code"] == "unavailable"  # ports fine, no daemon
    finally:
        pad.close()


def test_learn_records_the_next_control_that_fits(tmp_path, jack):
    pad = FakeController(jack_backend())
    path = tmp_path / "pads.toml"
    path.write_text("# my controller\n")
    env = {**os.environ}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "midi", "--map", str(path), "--in", "fakepad",
                             "--backend", "jack", "--learn", "set", "--param", "param=temperature",
                             "--param", "min=0.2", "--param", "max=1.8", "--json"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "learning 'set'" in line, line + proc.stderr.read()
        time.sleep(0.2)
        pad.send(mido.Message("clock"))  # not a control
        pad.send(mido.Message("note_on", channel=3, note=60, velocity=90))  # a note cannot scale min/max
        time.sleep(0.2)
        pad.send(mido.Message("control_change", channel=3, control=74, value=12))
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        pad.close()
    assert proc.returncode == 0, out + err
    assert "a note 'set' needs 'value'" in err and "touch another control" in err
    result = json.loads(out)
    assert result["learned"] == {"index": 1, "type": "cc", "channel": 4, "number": 74, "action": "set",
                                 "params": {"param": "temperature", "min": 0.2, "max": 1.8}}
    text = path.read_text()
    assert text.startswith("# my controller\n")
    assert tomllib.loads(text)["binding"] == [{"type": "cc", "channel": 4, "number": 74, "action": "set",
                                               "param": "temperature", "max": 1.8, "min": 0.2}]


def test_learn_refuses_parameters_that_cannot_make_a_binding(tmp_path):
    code, result = midi("--map", tmp_path / "p.toml", "--learn", "generate", "--param", "out=gen",
                        "--backend", "jack")
    assert code == 1 and result["error"]["message"] == "--learn generate: action 'generate' needs 'prompt'"
    # the map's top-level out is the new binding's folder too: the check passes, on to the ports
    (tmp_path / "p.toml").write_text('out = "gen"\n')
    code, result = midi("--map", tmp_path / "p.toml", "--learn", "generate", "--param", "prompt=keys",
                        "--backend", "jack")
    assert code == 1 and "needs 'out'" not in result["error"]["message"], result


def test_learn_a_pad_from_jack_midiseq(tmp_path, jack):
    """jack_midiseq (JACK's own example sequencer) plays note 64 on channel 1 every half second."""
    seq = JackTool("jack_midiseq", "seq", "24000", "0", "64", "1000", port="seq:out")
    path = tmp_path / "pads.toml"
    try:
        code, result = midi("--map", path, "--in", "seq:out", "--backend", "jack", "--learn", "generate",
                            "--param", "prompt=lofi keys", "--param", "bars=2", "--param", "out=gen")
    finally:
        seq.stop()
    assert code == 0, result
    assert result["learned"]["type"] == "note" and result["learned"]["number"] == 64
    assert result["learned"]["channel"] == 1
    assert result["learned"]["params"] == {"prompt": "lofi keys", "bars": 2, "out": str(tmp_path / "gen")}
    assert 'prompt = "lofi keys"' in path.read_text()
