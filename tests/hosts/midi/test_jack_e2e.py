"""End to end over JACK MIDI: a real jackd (dummy driver), the real daemon with a tiny
MusicGen, `studio-bridge midi` as a subprocess, and a fake controller (mido on JACK)
that sends MIDI clock, pads and a knob and reads the LEDs back."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import soundfile

from tests.conftest import ROOT, running_daemon
from tests.hosts.midi.jack import FakeController, JackTool, MidiClock, jack_backend, jack_connect

pytest.importorskip("omegaconf")  # the generate extra

PADS = """
[[binding]]
name = "drums"
type = "note"
channel = 10
number = 36
action = "generate"
prompt = "dusty drums"
model = "tiny"
bars = 1
seed = 7
out = "gen"

[[binding]]
type = "cc"
channel = 1
number = 21
action = "set"
param = "temperature"
min = 0.5
max = 1.5

[[binding]]
type = "note"
channel = 10
number = 40
action = "cancel"
"""


class Host:
    """`studio-bridge midi` running; its stderr lines are collected as they come."""

    def __init__(self, daemon, *args):
        env = {**os.environ, "STUDIO_BRIDGE_ADDR": daemon.addr, "HF_HUB_OFFLINE": "1",
               "PYTHONFAULTHANDLER": "1"}  # a host that hangs is made to say where (see stop)
        # Ctrl-C as at a terminal: a test run started in the background of a script (a CI step)
        # ignores SIGINT, and so would the host: stop() then timed out (seen here, 6 of 6).
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "midi", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line.rstrip())
            self.lines.put(line.rstrip())

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"host never said {text!r}; it said:\n" + "\n".join(self.log)) from None
            if text in line:
                return line

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            _, err = self.proc.communicate(timeout=10)
            self.log += (err or "").splitlines()
            raise AssertionError("the host did not stop within 20 s of SIGINT; it said:\n"
                                 + "\n".join(self.log)) from None
        assert self.proc.returncode == 0, out + "\n".join(self.log)
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _clock(bpm: float) -> MidiClock:
    """Start, then MIDI clock from a JACK process callback in its own process, steady in wall
    time as a hardware clock is, into the host's input beside the pads. Earlier sources read
    low under load: a Python thread sleeping to deadlines sent ticks late (119.58 for 120); a
    callback in this process at exact JACK frames gave 118.69: when the graph misses cycles
    ticks are lost (the host now counts those: hosts/midi/clock.py), the dummy driver's frames
    fall behind the wall clock (no receiver stamping wall time can undo that) and the callback
    waited for the GIL on this process's threads. See clock_source.py."""
    clock = MidiClock(bpm)
    jack_connect("fakeclock:clock", "studio-bridge:in")
    clock.play()
    return clock


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.models import write_tiny_musicgen

    with running_daemon() as daemon:
        folder = write_tiny_musicgen(tmp_path_factory.mktemp("mg") / "tiny")
        result = daemon.cli("models", "import", str(folder), "--name", "tiny", "--state-dir",
                            str(daemon.state_dir), "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        # load it while the test starts JACK and sends a bar of clock (the first job waits for it)
        loading = threading.Thread(target=lambda: daemon.client(timeout=120).load_model("tiny"), daemon=True)
        loading.start()
        yield daemon
        loading.join(60)


def test_pads_generate_at_the_clock_tempo_with_leds(served, jack):
    import mido

    backend = jack_backend()
    pad = FakeController(backend)
    (served.media / "pads.toml").write_text(PADS)
    host = Host(served, "--map", str(served.media / "pads.toml"), "--in", "fakepad", "--backend", "jack",
                "--blink", "1.2", "--poll", "0.3", "--json")
    dump = clock = None
    sent = []  # what each clock source saw: late ticks, xruns
    try:
        host.expect("listening on MIDI input 'fakepad:pads', LEDs (generic) on 'fakepad-leds:leds'")
        dump = JackTool("jack_midi_dump", port="midi-monitor:input")  # a second, non-Python LED reader
        jack_connect("studio-bridge-leds:leds", "midi-monitor:input")
        hit = mido.Message("note_on", channel=9, note=36, velocity=100)

        # no clock yet: a clear message, no job, the pad stays dark
        pad.send(hit)
        host.expect("no tempo yet")
        time.sleep(0.2)
        assert [m.velocity for m in pad.lights()] == [0]

        for bpm, knob in ((120.0, None), (93.5, 127)):
            clock = _clock(bpm)
            time.sleep(96 * 60 / bpm / 24 + 0.6)  # one bar of clock fills the estimator's window
            if knob is not None:
                pad.send(mido.Message("control_change", channel=0, control=21, value=knob))
                host.expect("temperature = 1.5")
            since = time.monotonic()
            pad.send(hit)
            print(host.expect("generate 'dusty drums' at "))  # the tempo read, should a later step fail
            host.expect("done (generate)", timeout=60)
            sent.append(clock.close())
            clock = None
            time.sleep(1.5)  # blink (1.2 s here) and go dark
            lights = pad.lights(since)
            assert all((m.channel, m.note) == (9, 36) for m in lights)
            velocities = [m.velocity for m in lights]
            # lit while running, then done: on, off, on, off... (0.25 s each), then dark
            assert velocities[:5] == [127, 127, 0, 127, 0] and velocities[-1] == 0, velocities

        # the device goes away and comes back: the host notices and reconnects
        pad.pads.close()
        host.expect("MIDI input 'fakepad:pads' disappeared")
        pad.pads = backend.open_output("pads", client_name="fakepad")
        host.expect("MIDI input 'fakepad:pads' is back; reconnected")
        pad.send(mido.Message("note_on", channel=9, note=40, velocity=100))
        host.expect("cancel: no job of this host is running")
        result = host.stop()
        dumped = dump.stop()
    finally:
        if clock is not None:
            clock.close()
        host.kill()
        pad.close()
        if dump is not None:
            dump.stop()

    assert result["input"] == "fakepad:pads" and result["output"] == "fakepad-leds:leds"
    jobs = result["jobs"]
    assert [(j["state"], j["bpm_source"]) for j in jobs] == [("succeeded", "clock")] * 2, jobs
    for job, true_bpm, source in zip(jobs, (120.0, 93.5), sent):
        bpm = job["params"]["bpm"]
        print(f"clock {true_bpm} BPM: the host read {bpm} (error {bpm - true_bpm:+.3f}); clock source: {source}")
        assert bpm == pytest.approx(true_bpm, abs=0.1)  # the estimate the host reported and used
        (output,) = job["outputs"]
        assert output["path"].startswith(str(served.media / "gen"))
        info = soundfile.info(output["path"])
        assert info.samplerate == 48000
        assert info.frames == round(1 * 4 * 60 / bpm * 48000)  # exactly one bar at that tempo
        assert job["tempo"]["bpm"] == bpm and job["tempo"]["bars"] == 1
    assert "temperature" not in jobs[0]["params"] and jobs[1]["params"]["temperature"] == 1.5
    # jack_midi_dump saw the same lights: note-on channel 10 (0x99), note 36 (0x24), 127 and 0
    assert "99 24 7f" in dumped and "99 24 00" in dumped, dumped
