"""A private JACK server (dummy driver) for MIDI tests, a fake controller and a MIDI clock on it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest


@contextlib.contextmanager
def jack_server():
    """Start ``jackd -d dummy`` under a unique server name; yields the name (also set as
    JACK_DEFAULT_SERVER for this process and its children) and stops it by PID."""
    if not shutil.which("jackd"):
        pytest.skip("jackd is not installed (Debian: jackd2)")
    name = f"sbmidi{os.getpid()}{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", "48000", "-p", "256"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    previous = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"  # a client must never start a server of its own
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["jack_lsp", "-s", name], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                pytest.fail(f"jackd did not start: {output}")
            time.sleep(0.1)
        yield name
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def jack_backend():
    mido = pytest.importorskip("mido")
    pytest.importorskip("rtmidi")
    backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
    if "UNIX_JACK" not in backend.module.get_api_names():
        pytest.skip("this python-rtmidi was built without JACK")
    return backend


class FakeController:
    """A controller on JACK: an output port the host reads (pads; mido) and an input
    port that records the LED messages the host sends back.

    The LED port is python-rtmidi polled from a thread, parsed with mido: a mido input
    always installs a Python callback, which runs in JACK's process thread and needs the
    GIL; while this process opens or closes a JACK client (holding the GIL and waiting for
    the server) that stalls the server's cycle, and both wait for ever.
    """

    def __init__(self, backend, name: str = "fakepad"):
        import rtmidi

        self.received: list[tuple[float, object]] = []
        self._lock = threading.Lock()
        self.backend, self.name = backend, name
        self.pads = backend.open_output("pads", client_name=name)
        self.leds = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name=f"{name}-leds")
        self.leds.ignore_types(sysex=False, timing=False, active_sense=True)
        self.leds.open_virtual_port("leds")
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="fake-leds")
        self._reader.start()

    def _read(self) -> None:
        import mido

        while not self._stop.wait(0.002):
            while (item := self.leds.get_message()) is not None:
                with self._lock:
                    self.received.append((time.monotonic(), mido.Message.from_bytes(item[0])))

    def lights(self, since: float = 0.0) -> list:
        with self._lock:
            return [m for t, m in self.received if t >= since and m.type in ("note_on", "control_change")]

    def send(self, message) -> None:
        self.pads.send(message)

    def close(self) -> None:
        self._stop.set()
        self._reader.join()
        self.pads.close()
        self.leds.close_port()
        self.leds.delete()


class JackTool:
    """A JACK example client (jack_midiseq, jack_midi_dump) as a subprocess, stopped by PID."""

    def __init__(self, *cmd: str, port: str):
        if not shutil.which(cmd[0]):
            pytest.skip(f"{cmd[0]} is not installed (Debian: jackd2)")
        self.proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 10
        while port not in subprocess.run(["jack_lsp"], capture_output=True, text=True).stdout:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{cmd[0]} did not register {port}: {self.output}")
            time.sleep(0.05)
        self.output = ""

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.output = self.proc.communicate(timeout=5)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output = self.proc.communicate()[0]
        return self.output


def jack_connect(source: str, dest: str) -> None:
    subprocess.run(["jack_connect", source, dest], check=True, capture_output=True, timeout=10)


class MidiClock:
    """MIDI clock at ``bpm`` from its own process (``clock_source.py``: a JACK client that keeps
    wall-clock time, as a hardware clock does), on ``fakeclock:clock``; ``play()`` sends Start
    and the ticks, ``close()`` stops it and returns what it saw (late ticks, xruns)."""

    def __init__(self, bpm: float, seconds: float = 120.0):
        pytest.importorskip("jack")  # JACK-Client
        self.bpm = bpm
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hosts.midi.clock_source", str(bpm),
                                      str(int(seconds * bpm / 60 * 24))],
                                     cwd=Path(__file__).resolve().parents[3], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            pytest.fail(f"the clock source did not start (said {line!r}, exit {self.proc.wait()})")
        self.stats: dict | None = None

    def play(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def close(self) -> dict:
        if self.stats is None:
            try:
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()
                self.stats = json.loads(self.proc.communicate(timeout=10)[0].strip().splitlines()[-1])
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
                self.stats = {}
        return self.stats
