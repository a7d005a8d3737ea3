"""Pad lights on the controller's output port: lit while a job runs, blinking when done, off on error.

Palettes say which message lights a pad on which device:

- ``generic``: note-on velocity 127 = on, 0 = off (or the CC's value for CC buttons);
  blinking is done here by switching on and off twice a second.
- ``launchpad``: Novation Launchpad X / Mini MK3 / Pro MK3 in programmer mode
  (entered at start by SysEx): running = orange (velocity 9) on channel 1,
  done = green (21) flashing by the device itself (channel 2), off = 0.
- ``apcmini``: Akai APC mini (mk1) grid: running = yellow (5), done = green
  blinking (2, the device blinks), off = 0.

A light is only sent for a binding on a note or a cc; programs have no pad.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Programmer mode SysEx for Launchpad X (0C), Mini MK3 (0D), Pro MK3 (0E); each device
# ignores the others' product id.
LAUNCHPAD_PROGRAMMER = [[0x00, 0x20, 0x29, 0x02, product, 0x0E, 0x01] for product in (0x0C, 0x0D, 0x0E)]


@dataclass(frozen=True)
class Palette:
    """Velocities (or CC values) per state, and how 'done' blinks.

    Attributes:
        running, done, off: the value sent for each state.
        done_channel: channel (1-16) for 'done' when the device blinks by itself
            (0: the binding's channel).
        self_blinking: the device blinks 'done' itself; otherwise it is blinked here.
        fixed_channel: send on this channel (1-16) whatever the binding's (0: the binding's).
    """

    name: str
    running: int
    done: int
    off: int
    done_channel: int = 0
    self_blinking: bool = False
    fixed_channel: int = 0
    init_sysex: tuple = ()


PALETTES = {
    "generic": Palette("generic", running=127, done=127, off=0),
    "launchpad": Palette("launchpad", running=9, done=21, off=0, done_channel=2, self_blinking=True,
                         fixed_channel=1, init_sysex=tuple(tuple(s) for s in LAUNCHPAD_PROGRAMMER)),
    "apcmini": Palette("apcmini", running=5, done=2, off=0, self_blinking=True, fixed_channel=1),
}


class Leds:
    """Drives pad lights from job states; thread-safe, never blocks on the device.

    Args:
        send: sends one mido message (the output port's ``send``; a no-op when
            there is no output port). Exceptions from it are the caller's to see
            in ``errors``, they never stop a job.
        palette: a Palette or its name.
        blink_seconds: how long 'done' blinks before the pad goes dark.
        clock: a monotonic clock (tests inject one).
    """

    BLINK_PERIOD = 0.25  # on/off half-period for blinking done here

    def __init__(self, send: Callable, palette: Palette | str = "generic", blink_seconds: float = 6.0,
                 clock: Callable[[], float] = time.monotonic):
        self._send = send
        self.palette = PALETTES[palette] if isinstance(palette, str) else palette
        self.blink_seconds = blink_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._blinking: dict[tuple, tuple[float, float]] = {}  # control -> (blinking since, until)
        self._running: set[tuple] = set()  # pads lit for a running job
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> Leds:
        """Initialise the device (Launchpad: programmer mode) and start the blink timer."""
        self._init_device()
        self._thread = threading.Thread(target=self._loop, name="midi-leds", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop blinking and turn every pad this host lit off (running or blinking)."""
        self._stop.set()
        if self._thread:
            self._thread.join(1.0)
        with self._lock:
            controls = list(self._blinking) + list(self._running)
            self._blinking.clear()
            self._running.clear()
        for control in controls:
            self._emit(self._message(control, self.palette.off))

    def restore(self) -> None:
        """The device came back (replugged): initialise it again and relight running jobs' pads
        (a Launchpad returns in its own mode, with its pads dark)."""
        self._init_device()
        with self._lock:
            running = list(self._running)
        for control in running:
            self._emit(self._message(control, self.palette.running))

    def _init_device(self) -> None:
        import mido

        for data in self.palette.init_sysex:
            self._emit(mido.Message("sysex", data=list(data)))

    # -- states ----------------------------------------------------------------------------
    def running(self, control: tuple) -> None:
        with self._lock:
            self._blinking.pop(control, None)
            self._running.add(control)
        self._emit(self._message(control, self.palette.running))

    def done(self, control: tuple) -> None:
        now = self._clock()
        with self._lock:
            self._running.discard(control)
            self._blinking[control] = (now, now + self.blink_seconds)
        channel = self.palette.done_channel if self.palette.self_blinking else 0
        self._emit(self._message(control, self.palette.done, channel))

    def error(self, control: tuple) -> None:
        with self._lock:
            self._blinking.pop(control, None)
            self._running.discard(control)
        self._emit(self._message(control, self.palette.off))

    # -- internals ---------------------------------------------------------------------------
    def _message(self, control: tuple, value: int, channel: int = 0):
        import mido

        type_, binding_channel, number = control
        if type_ == "program":
            return None  # a program change has no pad to light
        channel = channel or self.palette.fixed_channel or binding_channel
        if type_ == "cc":
            return mido.Message("control_change", channel=channel - 1, control=number, value=value)
        return mido.Message("note_on", channel=channel - 1, note=number, velocity=value)

    def _emit(self, message) -> None:
        if message is None:
            return
        try:
            self._send(message)
        except Exception as exc:  # a device that vanished must not take the host down
            self.errors.append(str(exc))

    def _loop(self) -> None:
        shown: dict[tuple, bool] = {}  # what a software-blinked pad shows now
        while not self._stop.wait(self.BLINK_PERIOD / 5):
            now = self._clock()
            with self._lock:
                ended = [c for c, (_, until) in self._blinking.items() if until <= now]
                for control in ended:
                    del self._blinking[control]
                blinking = dict(self._blinking)
            for control in ended:
                shown.pop(control, None)
                self._emit(self._message(control, self.palette.off))
            if self.palette.self_blinking:
                continue
            for control, (since, _) in blinking.items():
                lit = int((now - since) / self.BLINK_PERIOD) % 2 == 0  # on (as 'done' sent it), off, on...
                if shown.get(control, True) != lit:
                    shown[control] = lit
                    self._emit(self._message(control, self.palette.done if lit else self.palette.off))
            for control in [c for c in shown if c not in blinking]:
                del shown[control]
