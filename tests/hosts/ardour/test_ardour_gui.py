"""End to end in the real Ardour 7 GUI (under Xvfb): the installed actions run on a
selected region, jobs go through the relay to a real daemon, results land on new tracks.

A SessionInit driver (the scripts' shared code plus test steps) imports a test WAV at a
known place, trims the region so that it starts inside its source, selects it in the
editor and runs the installed Separate and Master (and, in the slow test, Continue and
Generate) actions; xdotool answers their dialogs; the Collect Results hook imports each
result with ``Editor:do_import``; the session is saved. The saved session XML must hold
each result at the right sample position and length, and the original region as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import soundfile

from hosts.ardour.install import common, install
from hosts.ardour.relay import Relay
from tests.conftest import running_daemon

from .gui import ardour_gui, missing_tools

RATE = 48000
PLACE = 96000  # where the WAV is imported (2 s)
TRIM = 24000  # the region is trimmed to start 0.5 s into its source ...
LENGTH = 72000  # ... and to last 1.5 s
SUPERCLOCK = 282_240_000  # Ardour 7's superclock ticks per second (positions "a<ticks>")

DRIVER = r"""
ardour { ["type"] = "SessionInit", name = "Studio Bridge Test" }

function factory () return function ()
@COMMON@
	local report = {}
	local function finish (status)
		local f = io.open ("@MARKER@", "w")
		f:write (status .. "\n" .. table.concat (report, "\n") .. "\n")
		f:close ()
	end
	-- Run an installed script as Ardour would: its header calls ardour{}, then factory.
	local function script (name)
		ardour = function () end
		assert (loadfile ("@SCRIPTS@/studio_bridge_" .. name .. ".lua")) ()
		return factory
	end
	local function select (region)
		local sl = ArdourUI.SelectionList ()
		if region then sl:push_back (Editor:regionview_from_region (region)) end
		Editor:set_selection (sl, ArdourUI.SelectionOp.Set)
	end
	-- Run one action (its dialog is answered by the test with xdotool), wait for the
	-- relay, then let the collect hook import: ten of its 100 ms timer ticks.
	local function act (name, jobs)
		script (name) () ()
		local deadline = os.time () + @TIMEOUT@
		while #SB.lines (SB.results () .. "/done.list") < jobs and os.time () < deadline do
			os.execute ("sleep 0.2")
		end
		local hook = script ("collect") ()
		for _ = 1, 10 do hook (nil) end  -- (LuaSignal exists only in hooks)
		local token = SB.lines (SB.results () .. "/done.list")[jobs]
		local res = token and SB.read_result (token) or {}
		report[#report + 1] = string.format ("%s %s %s imported %d", name, tostring (res.state),
			tostring (res.error), #SB.lines (SB.results () .. "/imported.list"))
	end
	local ok, err = pcall (function ()
		-- The original: the test WAV at a known place, trimmed to start inside its source.
		SB.import ({ "@WAV@" }, @PLACE@)
		local region
		for route in Session:get_tracks ():iter () do
			for r in route:to_track ():playlist ():region_list ():iter () do region = r end
		end
		assert (region, "the test WAV was not imported")
		region:trim_front (Temporal.timepos_t (@PLACE@ + @TRIM@))
		region:trim_end (Temporal.timepos_t (@PLACE@ + @TRIM@ + @LENGTH@))
		-- The editor makes its track and region views from queued GUI events, which are
		-- handled only once a script yields to the GUI loop: a message dialog's run does.
		LuaDialog.Message ("Studio Bridge Test", "session ready", LuaDialog.MessageType.Info,
			LuaDialog.ButtonType.Close):run ()
		select (region)
		report[#report + 1] = "selected " .. #SB.selected_regions ()
		act ("separate", 1)
		select (region)
		act ("master", 2)
		if @GENERATE@ then
			select (region)
			act ("continue", 3)
			-- Lua cannot set the loop range in Ardour 7.3; the editor's action can.
			select (region)
			Editor:access_action ("Region", "set-loop-from-region")
			select (nil)
			local start, length = SB.target_range ()
			report[#report + 1] = "range " .. tostring (start) .. " " .. tostring (length)
			act ("generate", 4)
		end
		Session:save_state ("")
	end)
	finish (ok and "ok" or ("error " .. tostring (err)))
end end
"""

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {missing_tools()}")


def _test_wav(path: Path) -> np.ndarray:
    """4 s of stereo: a sustained chord (harmonic) and clicks every 0.25 s (percussive)."""
    t = np.arange(4 * RATE) / RATE
    tone = 0.15 * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t))
    clicks = np.zeros_like(t)
    for k in range(16):
        at = int(k * 0.25 * RATE)
        clicks[at:at + 96] = 0.6 * np.exp(-np.arange(96) / 12.0) * np.sign(np.sin(np.arange(96)))
    data = np.stack([tone + clicks, 0.8 * tone + clicks], axis=1).astype(np.float32)
    soundfile.write(str(path), data, RATE, subtype="FLOAT")
    return data


def _samples(value: str) -> int:
    """An Ardour 7 time value in samples: 'a<superclock ticks>' is audio time."""
    assert value.startswith("a"), f"not audio time: {value!r}"
    ticks = int(value[1:])
    assert ticks * RATE % SUPERCLOCK == 0, f"{value} is not a whole sample"
    return ticks * RATE // SUPERCLOCK


def _regions(session_file: Path) -> dict[str, list[dict]]:
    """Playlist name -> its regions (name, position, start, length in samples).

    Ardour 7.3 writes a region's place inside its length, a timecnt_t:
    length="a<length>@a<position>" (older 7.x sessions had a position attribute).
    """
    root = ET.parse(session_file).getroot()
    out = {}
    for playlist in root.find("Playlists").iter("Playlist"):
        regions = []
        for r in playlist.iter("Region"):
            length, _, position = r.get("length").partition("@")
            regions.append({"name": r.get("name"), "position": _samples(r.get("position") or position),
                            "start": _samples(r.get("start")), "length": _samples(length)})
        out[playlist.get("name")] = regions
    return out


def _answer(gui, title: str, marker: Path, fields: list[str] | None = None) -> None:
    """Answer a dialog: Return for a message; for a LuaDialog (one row per field, Cancel
    and OK at the bottom right) type ``fields`` into its first fields, then click OK."""
    dialog = gui.wait_for(lambda: gui.xdo.window(title) or marker.exists(), 120, f"no dialog '{title}'")
    if dialog is True:  # the driver finished (failed) before opening it
        raise AssertionError(f"no dialog '{title}': {marker.read_text()}")
    time.sleep(0.5)
    if fields is None:
        gui.screenshot(title.replace(" ", "-"))
        gui.xdo.run("key", "Return")
        return
    if fields:
        gui.xdo.click(dialog["x"] + dialog["width"] - 80, dialog["y"] + 20)
    for index, text in enumerate(fields):
        if index:
            gui.xdo.run("key", "Tab", "ctrl+a")  # next field; replace what it holds
        gui.xdo.run("type", "--delay", "20", text)
    gui.screenshot(title.replace(" ", "-").replace(":", ""))
    gui.xdo.click(dialog["x"] + dialog["width"] - 61, dialog["y"] + dialog["height"] - 30)


def _find(playlists: dict, name: str) -> list[dict]:
    return [r for regions in playlists.values() for r in regions if r["name"] == name]


def _run(generate: bool):
    """Ardour with the driver, answering its dialogs; returns (report lines, playlists,
    the results folder, the source audio)."""
    began = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="sb-ard-"))  # short paths: the daemon's unix socket
    try:
        with running_daemon(base) as daemon:
            if generate:
                from tests.models import write_tiny_musicgen

                model = write_tiny_musicgen(base / "mg" / "tiny")
                daemon.cli("models", "import", str(model), "--name", "tiny", "--state-dir",
                           str(daemon.state_dir), "--json", check=True, timeout=300)
            wav = daemon.media / "loop.wav"
            source = _test_wav(wav)
            session = daemon.media / "sess"  # under the daemon's media root: results go there
            with daemon.client() as client:
                relay = Relay(client, ("127.0.0.1", 0)).start()
                try:
                    marker = base / "driver.done"
                    gui_dir = base / "gui"
                    scripts = install(gui_dir / "config" / "ardour7", port=relay.port)[0].parent
                    script = (DRIVER.replace("@COMMON@", common(relay.port)).replace("@MARKER@", str(marker))
                              .replace("@WAV@", str(wav)).replace("@PLACE@", str(PLACE))
                              .replace("@TRIM@", str(TRIM)).replace("@LENGTH@", str(LENGTH))
                              .replace("@TIMEOUT@", "120").replace("@GENERATE@", str(generate).lower())
                              .replace("@SCRIPTS@", str(scripts)))
                    (scripts / "studio_bridge_test.lua").write_text(script)
                    with ardour_gui(gui_dir, session, "Studio Bridge Test") as gui:
                        _answer(gui, "Studio Bridge Test", marker)  # the session-ready message
                        _answer(gui, "Studio Bridge: Separate", marker, ["hpss"])
                        _answer(gui, "Studio Bridge: Master", marker, [])  # the default: streaming
                        if generate:
                            _answer(gui, "Studio Bridge: Continue", marker, ["funk bass", "tiny", "2"])
                            _answer(gui, "Studio Bridge: Generate", marker, ["warm chords", "tiny"])
                        gui.wait_for(marker.exists, 240, "the SessionInit driver did not finish")
                        gui.screenshot("done")
                        report = marker.read_text().split("\n")
                finally:
                    relay.stop()
        playlists = _regions(session / "sess.ardour")
        results = session / "studio-bridge"
        stems = {kind: soundfile.read(str(results / f"loop.hpss.{kind}.wav"), dtype="float32")
                 for kind in ("harmonic", "percussive")}
        print(f"ardour end to end: {time.monotonic() - began:.1f} s")
        return report, playlists, stems, source
    finally:
        if not os.environ.get("SB_KEEP_ARDOUR"):  # keep screenshots and logs to look at
            shutil.rmtree(base, ignore_errors=True)


def _check_separate_and_master(report, playlists, stems, source) -> None:
    assert report[:4] == ["ok", "selected 1", "separate succeeded nil imported 1",
                          "master succeeded nil imported 2"], report
    # The original region is untouched, alone on its track.
    assert playlists["loop"] == [{"name": "loop", "position": PLACE + TRIM, "start": TRIM,
                                  "length": LENGTH}], playlists
    # Separate and master: the region's span, at the region's place, each on a new track.
    for name in ("loop.hpss.harmonic", "loop.hpss.percussive", "loop.master.mastered"):
        assert _find(playlists, name) == [{"name": name, "position": PLACE + TRIM, "start": 0,
                                           "length": LENGTH}], (name, playlists)
    # The stems are of the region's span, not the whole file: together they give it back.
    (harmonic, rate), (percussive, _) = stems["harmonic"], stems["percussive"]
    assert rate == RATE and harmonic.shape == (LENGTH, 2)
    assert np.max(np.abs(harmonic + percussive - source[TRIM:TRIM + LENGTH])) < 1e-3


def test_separate_and_master_in_ardour_land_at_the_region():
    """~15 s: the real GUI, the installed actions, the real daemon (hpss and master need no weights)."""
    report, playlists, stems, source = _run(generate=False)
    _check_separate_and_master(report, playlists, stems, source)
    assert len(playlists) == 4, playlists  # the original + 3 new tracks


@pytest.mark.slow  # ~50-60 s: a tiny MusicGen's import and two generations
def test_the_four_actions_in_ardour_land_results_at_the_region():
    """Separate, Master, Continue and Generate from the real GUI; results are new tracks."""
    pytest.importorskip("omegaconf")  # the generate extra, for a tiny MusicGen
    report, playlists, stems, source = _run(generate=True)
    _check_separate_and_master(report, playlists, stems, source)
    assert report[4:7] == ["continue succeeded nil imported 3", f"range {PLACE + TRIM} {LENGTH}",
                           "generate succeeded nil imported 4"], report
    assert len(playlists) == 6, playlists  # the original + 5 new tracks
    # Continue: 2 s right after the region.
    (cont,) = [r for regions in playlists.values() for r in regions if r["name"].startswith("funk-bass")]
    assert (cont["position"], cont["length"]) == (PLACE + TRIM + LENGTH, 2 * RATE), cont
    # Generate into the loop range (the region's extent, 1.5 s): tempo-locked at the
    # session's 120 BPM to the nearest whole bars (1 bar = 2 s), from the range's start.
    (gen,) = [r for regions in playlists.values() for r in regions if r["name"].startswith("warm-chords")]
    assert (gen["position"], gen["length"]) == (PLACE + TRIM, 2 * RATE), gen
