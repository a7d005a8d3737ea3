"""MIDI ports through python-rtmidi: pick the API, find ports by name, reopen them, time messages.

``--backend jack|alsa|coremidi|winmm`` picks the rtmidi API (the ones mido's
``mido.backends.rtmidi/UNIX_JACK`` etc. name); the default is rtmidi's own
choice (ALSA on Linux, CoreMIDI on macOS, WinMM on Windows). Port names are
matched exactly, else as a unique substring (any case), and an error lists
what exists. Messages are mido Messages.

Inputs are read by polling rtmidi's queue, never through a callback: a
Python callback runs in the MIDI API's thread and needs the GIL, and on JACK
that thread is part of the server's process cycle, so a callback waiting for
the GIL while this process opens, closes or lists ports (which holds the GIL
and waits for the server) stalls the whole JACK graph. Polling loses nothing
in timing: each message carries rtmidi's delta time (from the MIDI API's own
clock), and times are rebuilt from those deltas. On JACK those are the times
rtmidi's process callback ran (one per cycle for every event in it; the event's
frame in the cycle is dropped), so they are good to one JACK period, however
late this loop reads them: ``Endpoint.resolution`` says how coarse (the clock
estimator uses it to tell a lost tick from jitter).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from pathlib import Path

from .errors import MidiHostError

BACKENDS = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
CLIENT_NAME = "studio-bridge"


def rtmidi_api(name: str | None) -> int:
    """The rtmidi API constant for a backend name (None: rtmidi's default).

    Raises:
        MidiHostError: mido or python-rtmidi is missing, the name is unknown, or
            this python-rtmidi was built without that API.
    """
    try:
        import mido  # noqa: F401  (messages)
        import rtmidi
    except ImportError as exc:
        raise MidiHostError(f"the midi host needs mido and python-rtmidi ({exc}); install them with "
                            f"`pip install -e '.[midi]'`", "unavailable") from None
    if name is None:
        return rtmidi.API_UNSPECIFIED
    if name not in BACKENDS:
        raise MidiHostError(f"unknown MIDI backend '{name}'; use one of {', '.join(BACKENDS)}",
                            "invalid_argument")
    api = getattr(rtmidi, f"API_{BACKENDS[name]}")
    compiled = rtmidi.get_compiled_api()
    if api not in compiled:
        have = ", ".join(k for k, v in BACKENDS.items() if getattr(rtmidi, f"API_{v}") in compiled) or "none"
        raise MidiHostError(f"this python-rtmidi has no {name} support; it has: {have}", "unavailable")
    return api


def jack_period() -> float | None:
    """The running JACK server's period in seconds (buffer size / sample rate), or None.

    Asked through the libjack python-rtmidi uses (its wheel bundles one; else the system's)
    with a short-lived client that has no callbacks, so it cannot stall the server.
    """
    lib = _libjack()
    if lib is None:
        return None
    status = ctypes.c_int()
    client = lib.jack_client_open(f"{CLIENT_NAME}-probe".encode(), 0x01, ctypes.byref(status))  # JackNoStartServer
    if not client:
        return None
    try:
        rate = lib.jack_get_sample_rate(client)
        return lib.jack_get_buffer_size(client) / rate if rate else None
    finally:
        lib.jack_client_close(client)


def _libjack():
    try:
        import rtmidi
    except ImportError:
        return None
    bundled = sorted(Path(rtmidi.__file__).resolve().parent.parent.glob("python_rtmidi*/libjack*.so*"))
    name = str(bundled[0]) if bundled else ctypes.util.find_library("jack")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_get_buffer_size.argtypes = lib.jack_get_sample_rate.argtypes = [ctypes.c_void_p]
    lib.jack_get_buffer_size.restype = lib.jack_get_sample_rate.restype = ctypes.c_uint32
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    return lib


def resolve(wanted: str, names: list[str], kind: str) -> str:
    """The one port name ``wanted`` designates: exact, else a unique case-insensitive substring.

    Raises:
        MidiHostError: no port or several match; the message lists the ports.
    """
    if wanted in names:
        return wanted
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(names) if names else "none"
    if not matches:
        raise MidiHostError(f"no MIDI {kind} port matches '{wanted}'; available {kind} ports: {listing}", "no_port")
    raise MidiHostError(f"MIDI {kind} port '{wanted}' is ambiguous, it matches: {'; '.join(matches)}; "
                        f"give more of the name", "no_port")


class Endpoint:
    """One input or output: a named existing port (reopened when it returns) or a virtual one.

    Args:
        api: an rtmidi API constant (``rtmidi_api``).
        kind: "input" or "output".
        wanted: the name asked for (``--in``/``--out``), or None with ``virtual``.
        virtual: the name of a port to create instead (``--virtual``).
        say: reports connects and disconnects (one line of text).
    """

    def __init__(self, api: int, kind: str, wanted: str | None = None, virtual: str | None = None,
                 say=lambda text: None):
        import rtmidi

        self.kind, self.wanted, self.virtual, self.say = kind, wanted, virtual, say
        self.connected_to: str | None = None
        self.is_open = False
        self.resolution: float | None = None  # how coarse message times are (s); None: unknown
        self._t: float | None = None  # the time of the last message read, rebuilt from deltas
        self.on_reopen = None  # called after the device came back and was reopened
        client = CLIENT_NAME if kind == "input" else f"{CLIENT_NAME}-leds"
        try:
            self._rt = (rtmidi.MidiIn if kind == "input" else rtmidi.MidiOut)(rtapi=api, name=client)
        except Exception as exc:  # rtmidi.SystemError: e.g. no ALSA sequencer, no JACK server
            raise MidiHostError(f"cannot open the {rtmidi.get_api_name(api) if api else 'default'} MIDI API "
                                f"here ({exc}); pick another with --backend (jack needs a running jackd)",
                                "unavailable") from None
        if kind == "input":
            self._rt.ignore_types(sysex=False, timing=False, active_sense=True)
        self._jack = self._rt.get_current_api() == rtmidi.API_UNIX_JACK  # also when rtmidi chose it

    def names(self) -> list[str]:
        """Ports this endpoint could connect to (an input lists the other side's outputs)."""
        return list(self._rt.get_ports())

    def open(self) -> Endpoint:
        """Open now; a named port that matches nothing raises (listing what exists)."""
        if self.virtual:
            self._rt.open_virtual_port(self.virtual)
            self.connected_to, self.is_open = self.virtual, True
            self._probe()
            return self
        self._open(resolve(self.wanted, self.names(), self.kind))
        return self

    def _open(self, name: str) -> None:
        self._rt.open_port(self.names().index(name), "in" if self.kind == "input" else "leds")
        self.connected_to, self.is_open, self._t = name, True, None
        self._probe()

    def _probe(self) -> None:
        # JACK stamps per cycle: the period, read when the port (re)opens. A period changed
        # later (jack_bufsize) is not seen until the port reopens.
        if self._jack and self.kind == "input":
            self.resolution = jack_period()

    def poll(self) -> None:
        """Notice a device that left or came back (named ports only); reopen it when it returns."""
        if self.virtual:
            return
        try:
            names = self.names()
        except Exception:  # the MIDI server itself went away; try again next poll
            return
        if self.is_open and self.connected_to not in names:
            self.say(f"MIDI {self.kind} '{self.connected_to}' disappeared; waiting for it to return")
            self._close_port()
        elif not self.is_open:
            try:
                name = resolve(self.wanted, names, self.kind)
            except MidiHostError:
                return
            try:
                self._open(name)
            except Exception as exc:
                self.say(f"MIDI {self.kind} '{name}' is back but did not open ({exc}); retrying")
                return
            self.say(f"MIDI {self.kind} '{name}' is back; reconnected")
            if self.on_reopen is not None:
                self.on_reopen()

    def receive(self) -> list:
        """Every message waiting on an input, as (time, mido.Message), times on ``time.monotonic``'s scale."""
        import mido

        got = []
        while True:
            item = self._rt.get_message()
            if item is None:
                return got
            data, delta = item
            now = time.monotonic()
            # rebuilt from the API's deltas; a time ahead of now means a lost anchor: re-anchor
            self._t = now if self._t is None else min(self._t + delta, now)
            try:
                got.append((self._t, mido.Message.from_bytes(data)))
            except ValueError:
                continue  # a malformed message: skip it, keep the stream

    def send(self, message) -> None:
        """Send a mido message on an output; nothing while the device is away."""
        if self.is_open:
            self._rt.send_message(message.bytes())

    def _close_port(self) -> None:
        self.is_open = False
        try:
            self._rt.close_port()
        except Exception:
            pass  # already gone with its device

    def close(self) -> None:
        self._close_port()
        self._rt.delete()
