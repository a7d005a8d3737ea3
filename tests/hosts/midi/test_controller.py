"""The controller's actions and lights, with a stand-in client (no daemon, no MIDI ports)."""

from __future__ import annotations

import threading
import time

import mido
import pytest

from hosts.midi.clock import ClockEstimator
from hosts.midi.controller import Controller
from hosts.midi.leds import Leds
from hosts.midi.mapping import parse_mapping

MAP = """
out = "/tmp/out"

[[binding]]
type = "note"
channel = 1
number = 36
action = "generate"
prompt = "keys"
seed = 3

[[binding]]
type = "note"
channel = 1
number = 37
action = "regenerate"

[[binding]]
type = "cc"
channel = 1
number = 21
action = "set"
param = "top_k"
min = 0
max = 500

[[binding]]
type = "cc"
channel = 1
number = 64
action = "cancel"

[[binding]]
type = "program"
channel = 2
number = 5
action = "master"
input = "/tmp/song.wav"
preset = "streaming"

[[binding]]
type = "note"
channel = 1
number = 38
action = "generate"
prompt = "bass"
bpm = 100
bars = 2
"""


class StubClient:
    """Answers like bridge.client.Client.run; a job can be held until released or cancelled."""

    def __init__(self, hold: bool = False, fail: bool = False):
        self.calls, self.cancelled = [], []
        self.hold, self.fail = hold, fail
        self.release = threading.Event()
        self._n = 0

    def run(self, engine, inputs, params, out_dir, on_event=None, **options):
        self._n += 1
        job_id = f"job{self._n}"
        self.calls.append({"engine": engine, "inputs": inputs, "params": params, "out": out_dir, **options})
        on_event({"job_id": job_id, "state": "queued"})
        if self.hold:
            self.release.wait(10)
        if job_id in self.cancelled:
            return {"job_id": job_id, "state": "cancelled", "outputs": [], "report": {},
                    "error": {"code": "cancelled", "message": "cancelled by its client"}}
        if self.fail:
            from bridge.core.errors import Busy

            raise Busy("the queue is full (16 jobs)")
        return {"job_id": job_id, "state": "succeeded", "outputs": [{"path": f"/tmp/out/{job_id}.wav",
                "kind": "x"}], "report": {"tempo": {"bpm": params.get("bpm")}}, "error": None}

    def cancel(self, job_id):
        self.cancelled.append(job_id)
        self.release.set()


def make(client, clock=None, leds=None):
    said = []
    controller = Controller(parse_mapping(MAP), client, clock or ClockEstimator(), leds, said.append)
    return controller, said


def note(n, channel=0, velocity=100):
    return mido.Message("note_on", channel=channel, note=n, velocity=velocity)


def cc(n, value, channel=0):
    return mido.Message("control_change", channel=channel, control=n, value=value)


def clocked(bpm=120.0) -> ClockEstimator:
    clock = ClockEstimator()
    clock.start(0.0)
    for i in range(96):
        clock.tick(i * 60 / bpm / 24)
    return clock


def test_generate_takes_the_clock_tempo_and_regenerate_repeats_it_with_a_new_seed():
    client = StubClient()
    controller, said = make(client, clocked(120.0))
    controller.handle(note(36), 5.0)
    controller.wait(5)
    controller.handle(cc(21, 127), 5.1)  # top_k knob to the top: later generations only
    controller.handle(note(37), 5.2)
    controller.wait(5)
    first, second = client.calls
    assert first == {"engine": "generate", "inputs": {}, "params": {"prompt": "keys", "bars": 4, "seed": 3,
                     "bpm": 120.0}, "out": "/tmp/out", "model": "", "client": "midi"}
    assert second["params"]["seed"] != 3 and second["params"]["bpm"] == 120.0
    assert "top_k" not in second["params"]  # regenerate = the last generate, only the seed differs
    assert [r.action for r in controller.jobs] == ["generate", "regenerate"]
    assert controller.jobs[0].to_dict()["bpm_source"] == "clock"
    assert any("at 120.00 BPM (clock)" in line for line in said)
    controller.handle(note(36), 6.0)
    controller.wait(5)
    assert client.calls[2]["params"]["top_k"] == 500  # the knob applies to the next generation


def test_without_clock_or_bpm_there_is_no_job_but_a_binding_bpm_needs_no_clock():
    client = StubClient()
    controller, said = make(client)
    controller.handle(note(36), 1.0)
    assert client.calls == [] and "no tempo yet" in said[-1] and "No job started" in said[-1]
    controller.handle(note(37), 1.1)
    assert "nothing to regenerate yet" in said[-1]
    controller.handle(note(38), 1.2)
    controller.wait(5)
    assert client.calls[0]["params"] == {"prompt": "bass", "bars": 2, "bpm": 100}


def test_note_off_and_cc_release_do_nothing_and_a_cc_button_fires_once_per_press():
    client = StubClient(hold=True)
    controller, said = make(client, clocked())
    controller.handle(note(36, velocity=0), 1.0)  # a note-off written as note-on 0
    assert client.calls == []
    controller.handle(note(36), 1.1)
    deadline = time.monotonic() + 5
    while not controller.jobs[0].job_id and time.monotonic() < deadline:
        time.sleep(0.01)
    for value in (127, 127, 0):  # held down (repeats), then released: one cancel
        controller.handle(cc(64, value), 1.2)
    controller.wait(5)
    assert client.cancelled == ["job1"]
    assert controller.jobs[0].state == "cancelled"
    controller.handle(cc(64, 127), 2.0)
    assert said[-1] == "cancel: no job of this host is running"


def test_program_change_masters_and_a_refused_job_is_reported():
    client = StubClient(fail=True)
    controller, said = make(client)
    controller.handle(mido.Message("program_change", channel=1, program=5), 1.0)
    controller.wait(5)
    assert client.calls[0]["engine"] == "master"
    assert client.calls[0]["inputs"] == {"audio": "/tmp/song.wav"}
    assert client.calls[0]["params"] == {"preset": "streaming"}
    (job,) = controller.jobs
    assert job.state == "failed" and job.error == {"code": "busy", "message": "the queue is full (16 jobs)"}
    assert said[-1] == "job job1 failed (master): the queue is full (16 jobs)"


def test_clock_messages_drive_the_estimator():
    controller, _ = make(StubClient())
    controller.handle(mido.Message("start"), 0.0)
    for i in range(96):
        controller.handle(mido.Message("clock"), i * 60 / 93.5 / 24)
    assert controller.clock.bpm == pytest.approx(93.5) and controller.clock.running
    controller.handle(mido.Message("songpos", pos=16), 3.0)
    assert controller.clock.bpm is None and controller.clock.beats(3.0) == 4.0
    controller.handle(mido.Message("stop"), 3.1)
    assert not controller.clock.running


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_leds_generic_lit_blinking_dark():
    sent = []
    clock = Clock()
    leds = Leds(sent.append, "generic", blink_seconds=1.0, clock=clock)
    leds.running(("note", 10, 36))
    leds.done(("note", 10, 36))
    leds._stop.set()
    assert [(m.type, m.channel, m.note, m.velocity) for m in sent] == [("note_on", 9, 36, 127)] * 2
    leds.error(("cc", 1, 20))
    assert (sent[-1].type, sent[-1].control, sent[-1].value) == ("control_change", 20, 0)
    leds.running(("program", 1, 3))  # a program change has no pad
    assert len(sent) == 3


def test_leds_launchpad_and_apc_mini_palettes():
    sent = []
    leds = Leds(sent.append, "launchpad").start()
    try:
        sysex = [m for m in sent if m.type == "sysex"]
        assert [tuple(m.data) for m in sysex] == [(0x00, 0x20, 0x29, 0x02, p, 0x0E, 0x01) for p in (0x0C, 0x0D, 0x0E)]
        leds.running(("note", 3, 81))
        leds.done(("note", 3, 81))
        leds.error(("note", 3, 81))
    finally:
        leds.close()
    pads = [(m.channel + 1, m.note, m.velocity) for m in sent if m.type == "note_on"]
    assert pads[:3] == [(1, 81, 9), (2, 81, 21), (1, 81, 0)]  # orange, green flashing (channel 2), off
    sent.clear()
    apc = Leds(sent.append, "apcmini")
    apc.running(("note", 1, 56))
    apc.done(("note", 1, 56))
    apc.error(("note", 1, 56))
    assert [m.velocity for m in sent] == [5, 2, 0]  # yellow, green blinking, off


def test_generic_blinking_is_on_off_on_then_dark():
    sent = []
    clock = Clock()
    leds = Leds(sent.append, "generic", blink_seconds=1.0, clock=clock).start()
    try:
        leds.done(("note", 1, 36))
        for now in (0.1, 0.3, 0.55, 0.8, 1.05):
            clock.now = now
            time.sleep(0.12)  # the timer looks every 0.05 s
    finally:
        leds.close()
    assert [m.velocity for m in sent] == [127, 0, 127, 0, 0]


class OscInbox:
    """A real OSC UDP server on a free port (python-osc), as the live host has."""

    def __init__(self):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        self.got = []
        self.arrived = threading.Event()
        dispatcher = Dispatcher()
        dispatcher.map("/bridge/live/play", lambda address, *args: (self.got.append(list(args)),
                                                                     self.arrived.set()))
        self.server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


PLAY_MAP = """
out = "/tmp/out"

[[binding]]
type = "note"
channel = 1
number = 36
action = "generate"
prompt = "keys"
bpm = 120
variations = 2
play = true

[[binding]]
type = "note"
channel = 1
number = 37
action = "regenerate"

[[binding]]
type = "note"
channel = 1
number = 38
action = "generate"
prompt = "pad"
bpm = 120
"""


class TwoOutputs(StubClient):
    def run(self, engine, inputs, params, out_dir, on_event=None, **options):
        job = super().run(engine, inputs, params, out_dir, on_event, **options)
        job["outputs"] = [{"path": f"/tmp/out/{job['job_id']}-{n}.wav", "kind": "audio"} for n in (1, 2)]
        return job


def test_play_true_hands_the_result_to_the_live_host_over_osc():
    """The first variation goes to /bridge/live/play; regenerate keeps play; a binding without
    play sends nothing; with no live host named the result stays put and that is said."""
    from hosts.midi.to_live import LiveLink

    inbox = OscInbox()
    try:
        said = []
        link = LiveLink("127.0.0.1", inbox.server.server_address[1])
        controller = Controller(parse_mapping(PLAY_MAP), TwoOutputs(), ClockEstimator(), None, said.append, link)
        controller.handle(note(36), 1.0)
        controller.wait(5)
        assert inbox.arrived.wait(5)
        assert inbox.got == [["/tmp/out/job1-1.wav"]]
        assert any(f"sent to the live host at {link.address}" in line for line in said)
        inbox.arrived.clear()
        controller.handle(note(37), 2.0)
        controller.wait(5)
        assert inbox.arrived.wait(5) and inbox.got[-1] == ["/tmp/out/job2-1.wav"]
        controller.handle(note(38), 3.0)
        controller.wait(5)
        time.sleep(0.3)
        assert len(inbox.got) == 2  # the pad binding has no play
    finally:
        inbox.close()
    said = []
    controller = Controller(parse_mapping(PLAY_MAP), TwoOutputs(), ClockEstimator(), None, said.append)
    controller.handle(note(36), 1.0)
    controller.wait(5)
    assert any("says play = true, but no live host is named" in line and "stays in /tmp/out" in line
               for line in said)


def test_a_replugged_launchpad_gets_programmer_mode_and_running_pads_again_and_close_darkens_them():
    sent = []
    leds = Leds(sent.append, "launchpad").start()
    leds.running(("note", 3, 81))
    leds.running(("note", 3, 82))
    leds.done(("note", 3, 82))
    sent.clear()
    leds.restore()  # what the input/output poll calls when the device is back
    assert [m.type for m in sent][:3] == ["sysex"] * 3
    assert [(m.note, m.velocity) for m in sent if m.type == "note_on"] == [(81, 9)]  # the running one
    sent.clear()
    leds.close()
    assert sorted((m.note, m.velocity) for m in sent if m.type == "note_on") == [(81, 0), (82, 0)]
