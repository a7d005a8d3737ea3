"""The Ardour relay against a real daemon: OSC in as Ardour's Lua sends it, result files out.

The Lua side is exercised for real too: ``ardour7-lua`` (Ardour's own Lua with its
LuaOSC) runs the shared script code to send a job and read its result back.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from pythonosc.udp_client import SimpleUDPClient

from hosts.ardour.install import SCRIPTS, common, install, render
from hosts.ardour.relay import Relay

RATE = 48000


@pytest.fixture
def relay(daemon):
    client = daemon.client()
    relay = Relay(client, ("127.0.0.1", 0)).start()
    yield relay
    relay.stop()
    client.close()


def _channels(folder: Path) -> tuple[list[Path], np.ndarray]:
    """A stereo clip stored as Ardour stores it: one mono file per channel."""
    t = np.arange(3 * RATE) / RATE
    left = 0.2 * np.sin(2 * np.pi * 220 * t)
    right = 0.1 * np.sin(2 * np.pi * 330 * t) + 0.05 * np.sign(np.sin(2 * np.pi * 4 * t))
    paths = []
    for name, data in (("take%L.wav", left), ("take%R.wav", right)):
        soundfile.write(str(folder / name), data.astype(np.float32), RATE, subtype="FLOAT")
        paths.append(folder / name)
    return paths, np.stack([left, right], axis=1).astype(np.float32)


def _send(relay, *args) -> None:
    SimpleUDPClient("127.0.0.1", relay.port).send_message("/studio_bridge/job", list(args))


def _result(folder: Path, token: str, timeout: float = 60.0) -> dict:
    """The token's result, read the way the Lua side does: once done.list names it (the
    relay writes the result file first, then lists the token)."""
    path, listing = folder / f"{token}.result", folder / "done.list"
    deadline = time.monotonic() + timeout
    while not (listing.exists() and token in listing.read_text().split()):
        assert time.monotonic() < deadline, f"{token} never listed in {listing}"
        time.sleep(0.05)
    fields: dict = {"output": []}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("\t")
        if key == "output":
            fields["output"].append(value)
        else:
            fields[key] = value
    return fields


def test_a_trimmed_stereo_region_is_cut_from_its_channel_files_and_separated(daemon, relay):
    paths, stereo = _channels(daemon.media)
    session = daemon.media / "song" / "studio-bridge"
    _send(relay, "tok-1", "separate", "audio", "take", str(session), str(session / "results"),
          96000.0, 12000.0, 48000.0, 2.0, str(paths[0]), str(paths[1]), "model", "hpss")
    result = _result(session / "results", "tok-1")
    assert result["state"] == "succeeded", result
    assert result["engine"] == "separate" and result["place"] == "96000" and result["job"]
    assert sorted(Path(p).name for p in result["output"]) == ["take.hpss.harmonic.wav",
                                                              "take.hpss.percussive.wav"]
    clip, rate = soundfile.read(str(session / "clips" / "tok-1" / "take.wav"), dtype="float32")
    assert rate == RATE
    np.testing.assert_array_equal(clip, stereo[12000:60000])  # sample-exact span, channels in order
    for output in result["output"]:
        assert soundfile.info(output).frames == 48000 and soundfile.info(output).channels == 2
    assert (session / "results" / "done.list").read_text() == "tok-1\n"


def test_a_whole_file_region_is_sent_as_is(daemon, relay):
    source = daemon.media / "whole.wav"
    soundfile.write(str(source), np.zeros((4800, 2), np.float32), RATE)
    results = daemon.media / "out" / "results"
    _send(relay, "tok-2", "master", "audio", "whole", str(results.parent), str(results),
          0.0, 0.0, 4800.0, 1.0, str(source), "preset", "streaming")
    result = _result(results, "tok-2")
    assert "state" in result and not (results.parent / "clips").exists()


def test_failures_reach_the_result_file(daemon, relay):
    results = daemon.media / "s" / "results"
    _send(relay, "tok-3", "separate", "audio", "gone", str(results.parent), str(results),
          0.0, 100.0, 200.0, 1.0, str(daemon.media / "missing.wav"), "model", "hpss")
    result = _result(results, "tok-3")
    assert result["state"] == "failed" and "missing.wav" in result["error"]
    _send(relay, "tok-4", "separate", "audio", "x", str(results.parent), str(results),
          0.0, 0.0, 0.0, 0.0, "model", "no-such-model")
    result = _result(results, "tok-4")
    assert result["state"] == "failed" and result["error"]
    _send(relay, "../evil", "separate", "audio")  # malformed: dropped, the relay keeps serving
    _send(relay, "tok-5", "nosuchengine", "", "x", str(results.parent), str(results), 0.0, 0.0, 0.0, 0.0)
    result = _result(results, "tok-5")
    assert result["state"] == "failed" and "nosuchengine" in result["error"]
    assert (results / "done.list").read_text().split() == ["tok-3", "tok-4", "tok-5"]


def test_install_writes_self_contained_scripts(tmp_path):
    written = install(tmp_path / "ardour7", port=50999)
    assert [p.name for p in written] == [f"studio_bridge_{n}.lua" for n in SCRIPTS]
    for path in written:
        text = path.read_text()
        assert "@COMMON@" not in text and "@PORT@" not in text
        assert 'SB.relay = "osc.udp://127.0.0.1:50999"' in text


@pytest.mark.skipif(shutil.which("ardour7-lua") is None, reason="needs Ardour's ardour7-lua")
def test_ardour_lua_sends_a_job_and_reads_its_result(daemon, relay, tmp_path):
    """Ardour's own Lua and LuaOSC run the scripts' shared code against the relay."""
    paths, _ = _channels(daemon.media)
    session = daemon.media / "lua-session"
    for name in SCRIPTS:  # every script must compile in Ardour's Lua
        (tmp_path / f"{name}.lua").write_text(render(name, relay.port))
    names = ", ".join(f"'{n}'" for n in SCRIPTS)
    program = "\n".join([
        f"for _, n in ipairs({{{names}}}) do",
        f"  local f, e = loadfile('{tmp_path}/' .. n .. '.lua'); print('compiled', n, f ~= nil, e)",
        "end",
        "local function run ()",
        common(relay.port),
        f"  SB.dir = function () return [[{session}]] end",
        "  assert (SB.unusable () == nil)",
        "  local token = SB.send ('lua-1', 'separate', 'audio', 'take', 48000, 24000, 24000,",
        f"    {{ [[{paths[0]}]], [[{paths[1]}]] }}, {{ {{ 'model', 'hpss' }}, {{ 'shifts', 1 }} }})",
        "  local deadline = os.time () + 60",
        "  while not SB.is_done (token) and os.time () < deadline do os.execute ('sleep 0.1') end",
        "  local res = SB.read_result (token)",
        "  print ('state', res.state, 'place', res.place, 'outputs', #res.outputs)",
        "  for _, p in ipairs (res.outputs) do print ('output', p) end",
        "  print ('done.list', table.concat (SB.lines (SB.results () .. '/done.list'), ','))",
        "end",
        "run ()",
    ])
    proc = subprocess.run(["ardour7-lua"], check=False, input=program, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout  # ardour7-lua's print separates with spaces
    for name in SCRIPTS:
        assert f"compiled {name} true nil" in out, out + proc.stderr
    assert "state succeeded place 48000 outputs 2" in out, out + proc.stderr
    assert "done.list lua-1" in out
    outputs = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("output ")]
    assert [soundfile.info(p).frames for p in outputs] == [24000, 24000]


def test_result_lines_keep_a_path_as_it_is(tmp_path):
    """A session folder 'Band  Demo' (two spaces) must reach Lua unchanged; only line breaks
    and tabs, which would break the line format, become spaces."""
    from hosts.ardour.relay import write_result

    target = write_result(tmp_path, "tok-1", {"output": ["/s/Band  Demo/a.wav"], "error": ["two\nlines\tand tab"]})
    assert target.read_text(encoding="utf-8").splitlines() == ["output\t/s/Band  Demo/a.wav",
                                                                "error\ttwo lines and tab"]
    assert (tmp_path / "done.list").read_text() == "tok-1\n"


def test_the_python_installer_knows_each_systems_config_folder(tmp_path, monkeypatch):
    from hosts.ardour.install import default_config_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert default_config_dir("linux") == tmp_path / ".config/ardour7"  # none set up: Ardour 7's
    assert default_config_dir("darwin") == tmp_path / "Library/Preferences/Ardour7"
    (tmp_path / "Library/Preferences/Ardour8").mkdir(parents=True)
    assert default_config_dir("darwin") == tmp_path / "Library/Preferences/Ardour8"
    assert default_config_dir("win32") == tmp_path / "Local/Ardour7"
