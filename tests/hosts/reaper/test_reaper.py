"""The REAPER adapter against an in-memory REAPER (every call checked against
hosts/reaper/api_table.py) and a real daemon doing the jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from hosts.reaper import actions
from hosts.reaper.api import Reaper
from hosts.reaper.api_table import SIGNATURES, arg_count, result_shape
from tests.conftest import ROOT, running_daemon, write_tone
from tests.hosts.reaper.fake_reaper import ApiMisuse, FakeReaper

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RATE = 48000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A daemon; a tiny MusicGen is imported and loaded beside the first tests (``served.musicgen()`` waits)."""
    with running_daemon() as daemon:
        pytest.importorskip("omegaconf")
        from tests.models import write_tiny_musicgen

        folder = write_tiny_musicgen(tmp_path_factory.mktemp("mg") / "tiny")
        importing = subprocess.Popen(
            [sys.executable, "-m", "bridge", "models", "import", str(folder), "--name", "tiny", "--state-dir",
             str(daemon.state_dir), "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        loaded = {}

        def load():
            loaded["output"] = importing.communicate(timeout=120)[0]
            if importing.returncode == 0:
                with daemon.client(timeout=120) as client:
                    loaded["model"] = client.load_model("tiny")

        thread = threading.Thread(target=load)
        thread.start()

        def musicgen():
            thread.join(150)
            assert "model" in loaded, loaded.get("output")
        daemon.musicgen = musicgen
        yield daemon
        thread.join(150)


class Session:
    """A fake REAPER project, the adapter's API over it, and a driver for the idle loop."""

    def __init__(self, media: Path, addr: str):
        self.fake = FakeReaper(media / "project")
        self.ns: dict = {}
        self.api = Reaper(self.fake.functions(), self.ns)
        self.options = {"python": sys.executable, "addr": addr}

    def run(self, action, *answers, timeout: float = 60.0):
        self.fake.answers = list(answers)
        runner = action(self.api, self.options)
        self.fake.run_deferred(self.ns, timeout)
        return runner


def session(daemon) -> Session:
    return Session(daemon.media, daemon.addr)


def clip(path: Path, seconds: float, channels: int = 2) -> Path:
    """A tone with clicks: both hpss parts have something in them."""
    write_tone(path, seconds=seconds, rate=RATE, channels=channels)
    data, _ = soundfile.read(str(path), dtype="float64")
    data[:: RATE // 4] += 0.5
    soundfile.write(str(path), data, RATE, subtype="PCM_24")
    return path


def undo_pairs(fake) -> list[str]:
    assert fake.undo_depth == 0, fake.undo
    return [entry[1] for entry in fake.undo if entry[0] == "end"]


# -- the table and the fake ---------------------------------------------------------------
def test_every_call_the_adapter_makes_is_in_the_table_with_the_bindings_shapes():
    source = "".join(p.read_text() for p in (ROOT / "hosts" / "reaper").glob("*.py"))
    called = set(re.findall(r'call\("(\w+)"', source)) | {"defer"}
    assert called <= set(SIGNATURES), called - set(SIGNATURES)
    # shapes as REAPER's generated binding answers them
    assert (arg_count("GetMediaSourceFileName"), result_shape("GetMediaSourceFileName")) == (3, 3)
    assert (arg_count("GetUserInputs"), result_shape("GetUserInputs")) == (5, 6)
    assert (arg_count("TimeMap_GetTimeSigAtTime"), result_shape("TimeMap_GetTimeSigAtTime")) == (5, 5)
    assert (arg_count("GetSet_LoopTimeRange2"), result_shape("GetSet_LoopTimeRange2")) == (6, 6)
    assert (arg_count("GetMediaSourceLength"), result_shape("GetMediaSourceLength")) == (2, 3)
    assert (arg_count("GetSetMediaItemTakeInfo_String"), result_shape("GetSetMediaItemTakeInfo_String")) == (4, 5)
    assert result_shape("GetMediaItemInfo_Value") == "value" and result_shape("InsertTrackAtIndex") == "none"


def test_the_fake_refuses_what_the_binding_would_mishandle(tmp_path):
    fake = FakeReaper(tmp_path)
    fns = fake.functions()
    track = fake.add_track("A")
    item = fake.add_item(track, str(clip(tmp_path / "a.wav", 0.5)), 0.0, 0.5)
    with pytest.raises(ApiMisuse, match="takes 2 arguments"):
        fns["RPR_GetMediaItemInfo_Value"](item.ptr)
    with pytest.raises(ApiMisuse, match="got a MediaTrack"):
        fns["RPR_GetMediaItemInfo_Value"](track.ptr, "D_POSITION")
    with pytest.raises(ApiMisuse, match="wrong type for ctypes"):
        fns["RPR_GetTrack"](0, 1.0)
    answer = fns["RPR_GetMediaSourceFileName"](fns["RPR_GetMediaItemTake_Source"](item.active.ptr), "", 4096)
    assert answer == (item.active.source.ptr, str(tmp_path / "a.wav"), 4096)
    assert fns["RPR_GetActiveTake"](fns["RPR_AddMediaItemToTrack"](track.ptr)).endswith("0x0000000000000000")
    fake.delete_item(item)
    with pytest.raises(ApiMisuse, match="no longer exists"):
        fns["RPR_GetMediaItemInfo_Value"](item.ptr, "D_LENGTH")
    assert fns["RPR_ValidatePtr2"](0, item.ptr, "MediaItem*") == 0


def test_the_reaper_side_needs_only_the_standard_library():
    code = ("import sys, hosts.reaper.entry, hosts.reaper.jobs; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('bridge', 'grpc', 'numpy', 'google')); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)


# -- separate -----------------------------------------------------------------------------
def test_separate_puts_sample_exact_stems_in_a_folder_and_mutes_the_original(served):
    s = session(served)
    song = clip(served.media / "song.wav", 3.0)
    s.fake.add_track("Group", depth=1)
    vocals = s.fake.add_track("Vox", depth=-1)  # the last child: closes Group
    s.fake.add_track("After")
    item = s.fake.add_item(vocals, str(song), position=2.0, length=1.2, offset=0.5, rate=1.25, name="song")
    s.fake.add_item(vocals, None, 5.0, 1.0, midi=True)
    s.fake.add_item(vocals, None, 7.0, 1.0)  # empty item

    s.run(actions.separate, ["", "", "hpss"])

    assert s.fake.parents() == {"Group": None, "Vox": "Group", "song stems": "Group", "harmonic": "song stems",
                                "percussive": "song stems", "After": None}
    assert [t.depth for t in s.fake.tracks] == [1, 0, 1, 0, -2, 0]
    assert item.values["B_MUTE"] == 1.0 and item.active.name == "song"  # status text restored
    mix, _ = soundfile.read(str(song), dtype="float64")
    first, count = round(0.5 * RATE), round(1.2 * 1.25 * RATE)  # what the item plays, in source samples
    total = np.zeros((count, 2))
    for name in ("harmonic", "percussive"):
        (stem,) = s.fake.track(name).items
        assert stem.values["D_POSITION"] == 2.0 and stem.values["D_LENGTH"] == 1.2
        take = stem.active
        assert take.values["D_STARTOFFS"] == 0.5 and take.values["D_PLAYRATE"] == 1.25
        assert take.name == f"song {name}" and Path(take.source.path).parent == Path(s.fake.media_folder) / "studio-bridge"
        data, rate = soundfile.read(take.source.path, dtype="float64")
        assert rate == RATE and data.shape == mix.shape  # same length: offsets mean the same samples
        total += data[first:first + count]
    np.testing.assert_allclose(total, mix[first:first + count], atol=1e-4)
    assert undo_pairs(s.fake) == ["Studio Bridge: separate 1 item(s) into stems"]
    assert s.fake.changes_outside_undo == []
    assert any("MIDI item" in line and "empty item" in line for line in s.fake.console), s.fake.console


def test_stems_follow_an_item_moved_and_slipped_while_it_was_separated(served):
    s = session(served)
    song = clip(served.media / "moved.wav", 3.0)
    track = s.fake.add_track("T")
    item = s.fake.add_item(track, str(song), position=1.0, length=1.0, offset=0.25, name="moved")
    s.fake.answers = [["", "", "hpss"]]
    actions.separate(s.api, s.options)
    item.values["D_POSITION"] = 4.0  # the user drags it on ...
    item.active.values["D_STARTOFFS"] = 0.5  # ... and slips its content while the job runs
    s.fake.run_deferred(s.ns, 60)
    for name in ("harmonic", "percussive"):
        (stem,) = s.fake.track(name).items
        assert stem.values["D_POSITION"] == 4.0 and stem.active.values["D_STARTOFFS"] == 0.5


def test_two_items_on_one_track_share_one_folder_and_nothing_selected_says_so(served):
    s = session(served)
    song = clip(served.media / "two.wav", 1.0, channels=1)
    drums = s.fake.add_track("Drums")
    s.fake.add_item(drums, str(song), 0.0, 1.0, name="a")
    s.fake.add_item(drums, str(song), 1.0, 0.5, offset=0.25, name="b")
    s.run(actions.separate, ["", "", "hpss"])
    assert [(t.name, t.depth) for t in s.fake.tracks] == [("Drums", 0), ("Drums stems", 1), ("harmonic", 0),
                                                           ("percussive", -1)]
    assert [i.values["D_POSITION"] for i in s.fake.track("harmonic").items] == [0.0, 1.0]
    assert len(undo_pairs(s.fake)) == 1

    empty = session(served)
    empty.fake.add_track("T")
    assert empty.run(actions.separate) is None
    assert empty.fake.messages == ["Select one or more audio items to separate."] and not empty.fake.undo


# -- master -------------------------------------------------------------------------------
def test_master_adds_an_active_take_and_keeps_the_original(served):
    s = session(served)
    song = clip(served.media / "mix.wav", 8.0)
    track = s.fake.add_track("Mix")
    item = s.fake.add_item(track, str(song), 1.0, 6.0, offset=2.0, rate=0.5, name="mix")
    original = item.active
    original.values["D_VOL"] = 2.0  # +6 dB on the take: not carried onto the mastered one
    s.run(actions.master, ["streaming"])
    assert len(item.takes) == 2 and item.takes[0] is original and original.source.path == str(song)
    new = item.active
    assert new is item.takes[1] and new.name == "mix (mastered)"
    # what the item plays - 6 s at rate 0.5 from 2 s in: 3 s of the source - mastered from its start
    assert new.values["D_STARTOFFS"] == 0.0 and new.values["D_PLAYRATE"] == 0.5 and new.values["D_VOL"] == 1.0
    assert soundfile.info(new.source.path).frames == 3 * RATE
    assert not list(Path(new.source.path).parent.glob(".*heard*"))  # the cut span is gone
    assert item.values["D_POSITION"] == 1.0 and item.values["D_LENGTH"] == 6.0 and item.values["B_MUTE"] == 0
    assert undo_pairs(s.fake) == ["Studio Bridge: master 1 item(s)"] and s.fake.changes_outside_undo == []


def test_an_action_script_runs_as_reaper_runs_it(served, monkeypatch):
    """The script file itself, exec'd with RPR_* in its globals and RPR_defer taking code strings."""
    monkeypatch.setenv("STUDIO_BRIDGE_ADDR", served.addr)
    monkeypatch.setenv("STUDIO_BRIDGE_PYTHON", sys.executable)
    fake = FakeReaper(served.media / "project")
    song = clip(served.media / "script.wav", 1.0)
    item = fake.add_item(fake.add_track("T"), str(song), 0.0, 1.0, name="script")
    fake.answers = [["apple"]]
    script = ROOT / "hosts" / "reaper" / "scripts" / "Studio Bridge - Master selected item.py"
    namespace = {**fake.functions(), "__file__": str(script), "__name__": "__main__"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)  # noqa: S102 - as REAPER runs it
    assert fake.deferred and all(re.fullmatch(r"_studio_bridge_deferred_\d+_\d\(\)", c) for c in fake.deferred)
    fake.run_deferred(namespace, 30)
    assert [t.name for t in item.takes] == ["script", "script (mastered)"] and item.active is item.takes[1]
    assert fake.ext[("StudioBridge", "master_preset")] == "apple" and not fake.messages[1:]


def test_results_wait_until_their_project_tab_is_active_again(served):
    s = session(served)
    song = clip(served.media / "tab.wav", 1.0)
    item = s.fake.add_item(s.fake.add_track("T"), str(song), 0.0, 1.0, name="tab")
    s.fake.answers = [["streaming"]]
    actions.master(s.api, s.options)
    s.fake.active_project = s.fake.other_project  # the user switches tabs while the job runs
    deadline = time.monotonic() + 30
    while not any("switch back" in line for line in s.fake.console):
        assert time.monotonic() < deadline and s.fake.deferred
        exec(s.fake.deferred.pop(0), s.ns)  # noqa: S102 - what REAPER does with deferred code
    assert len(item.takes) == 1 and not s.fake.undo  # nothing placed into the wrong project
    s.fake.active_project = s.fake.project
    s.fake.run_deferred(s.ns, 10)
    assert len(item.takes) == 2 and item.active.name == "tab (mastered)" and len(undo_pairs(s.fake)) == 1


# -- the daemon away ------------------------------------------------------------------------
def test_no_daemon_says_so_and_changes_nothing(tmp_path):
    (tmp_path / "media").mkdir()
    s = Session(tmp_path / "media", f"unix://{tmp_path}/none.sock")
    song = clip(tmp_path / "media" / "x.wav", 0.5)
    track = s.fake.add_track("T")
    items = [s.fake.add_item(track, str(song), 0.0, 0.5, name="x"), s.fake.add_item(track, str(song), 1, 0.5, name="y")]
    s.run(actions.master, ["streaming"], timeout=30)
    (message,) = s.fake.messages[1:]
    assert "daemon is not running (nothing was changed)" in message and "studio-bridge serve" in message
    assert [i.active.name for i in items] == ["x", "y"] and [len(i.takes) for i in items] == [1, 1]
    assert not s.fake.undo and len(s.fake.tracks) == 1


def test_a_worker_python_that_is_not_there_or_lacks_the_packages_says_what_to_set(tmp_path):
    (tmp_path / "media").mkdir()
    song = clip(tmp_path / "media" / "x.wav", 0.5)
    for python, said in (("/nonexistent/python3", "cannot start the worker Python '/nonexistent/python3'"),
                         ("/usr/bin/python3", "No module named")):
        if not Path(python).exists() and python.startswith("/usr"):
            continue
        s = Session(tmp_path / "media", f"unix://{tmp_path}/none.sock")
        s.options["python"] = python
        item = s.fake.add_item(s.fake.add_track("T"), str(song), 0.0, 0.5, name="x")
        s.run(actions.master, ["streaming"], timeout=30)
        message = s.fake.messages[-1]
        assert said in message and "STUDIO_BRIDGE_PYTHON" in message and "installers/setup.sh" in message, message
        assert item.active.name == "x" and len(item.takes) == 1 and not s.fake.undo


def test_a_daemon_restarted_mid_job_is_reported_and_nothing_hangs(tmp_path):
    with running_daemon(tmp_path, extra=["--grace", "0.5"]) as daemon:
        s = session(daemon)
        song = clip(daemon.media / "long.wav", 30.0)
        track = s.fake.add_track("T")
        item = s.fake.add_item(track, str(song), 0.0, 30.0, name="long")
        s.fake.answers = [["", "", "hpss"]]
        actions.separate(s.api, s.options)
        deadline = time.monotonic() + 30
        while "separating" not in item.active.name:  # the job runs: its progress shows in the take's name
            assert time.monotonic() < deadline, item.active.name
            exec(s.fake.deferred.pop(0), s.ns)  # noqa: S102 - what REAPER does with deferred code
        assert re.fullmatch(r"long \[separate \d+% separating\]", item.active.name), item.active.name
        daemon.stop()
        daemon.start()
        s.fake.run_deferred(s.ns, 30)
    assert item.active.name == "long" and item.values["B_MUTE"] == 0 and len(s.fake.tracks) == 1
    (message,) = s.fake.messages[1:]
    assert "'long': the daemon stopped or restarted while it ran (job interrupted)" in message, message
    assert not s.fake.undo


# -- generate -----------------------------------------------------------------------------
def test_generate_fills_a_whole_bar_selection_at_the_project_tempo(served):
    served.musicgen()
    s = session(served)
    s.fake.add_track("Keys", selected=True)
    s.fake.add_track("Bass")
    s.fake.tempo = [(0.0, 120.0, 4, 4), (4.0, 90.0, 6, 8)]
    s.fake.time_selection = (6.0, 8.0)  # 1 bar of 6/8 at 90 (quarter) BPM = 2 s
    s.run(actions.generate, ["warm rhodes, lo-fi", "tiny"])
    assert [t.name for t in s.fake.tracks] == ["Keys", "Generated: warm rhodes, lo-fi", "Bass"]
    (item,) = s.fake.track("Generated: warm rhodes, lo-fi").items
    assert item.values["D_POSITION"] == 6.0 and item.values["D_LENGTH"] == 2.0
    info = soundfile.info(item.active.source.path)
    assert info.frames == 2 * RATE and info.samplerate == RATE  # the selection's length, sample exact
    assert item.active.name == "warm rhodes, lo-fi"
    assert undo_pairs(s.fake) == ["Studio Bridge: generate into time selection"]
    assert s.fake.changes_outside_undo == []


def test_generate_refuses_a_selection_that_is_not_whole_bars(served):
    s = session(served)
    s.fake.time_selection = (2.0, 5.1)  # 1.55 bars of 4/4 at 120
    assert s.run(actions.generate) is None
    (message,) = s.fake.messages
    assert "1.55 bars of 4/4 at 120 BPM" in message and "nearest is 2 bars (4.000 s, from 2.000 s to 6.000 s)" in message
    s.fake.messages.clear()
    s.fake.time_selection = (0.0, 0.0)
    assert s.run(actions.generate) is None and "time selection" in s.fake.messages[0]


# -- continue -----------------------------------------------------------------------------
def test_continue_places_the_result_right_after_the_item(served):
    served.musicgen()
    s = session(served)
    riff = clip(served.media / "riff.wav", 2.0)
    track = s.fake.add_track("Riff")
    item = s.fake.add_item(track, str(riff), 1.0, 2.0, name="riff")
    s.run(actions.continue_item, ["same groove", "1", "tiny"])
    assert len(track.items) == 2
    new = track.items[1]
    assert new.values["D_POSITION"] == 3.0
    info = soundfile.info(new.active.source.path)
    assert new.values["D_LENGTH"] == info.frames / info.samplerate and info.frames == 2 * RATE  # 1 bar at 120
    assert new.active.name == "riff (continued)" and item.values["B_MUTE"] == 0
    assert undo_pairs(s.fake) == ["Studio Bridge: continue 'riff'"]


def test_continue_sends_only_what_the_item_plays(served):
    """The last 2 s of a 60 s bounce: only those go to MusicGen (60 s is far past what it can
    continue); an item played at another rate is refused before any job."""
    served.musicgen()
    s = session(served)
    bounce = clip(served.media / "bounce.wav", 60.0)
    track = s.fake.add_track("Bounce")
    item = s.fake.add_item(track, str(bounce), 10.0, 2.0, offset=58.0, name="tail")
    s.run(actions.continue_item, ["same groove", "1", "tiny"])
    assert len(track.items) == 2, s.fake.messages + s.fake.console
    assert track.items[1].values["D_POSITION"] == 12.0
    assert not list(Path(track.items[1].active.source.path).parent.glob(".*heard*"))
    item.active.values["D_PLAYRATE"] = 1.5
    s.run(actions.continue_item, ["same groove", "1", "tiny"])
    assert "plays at rate 1.5" in s.fake.messages[-1] and len(track.items) == 2
