"""One run of ``studio-bridge midi``: open the ports, then either learn one control or play.

The loop here reads the input every couple of milliseconds (see ports.py for
why not a callback), hands messages to the Controller (which starts job
threads and returns at once) and looks for devices that left or came back.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from .errors import MidiHostError
from .ports import Endpoint, rtmidi_api

LEARNABLE = ("note_on", "control_change", "program_change")
READ_INTERVAL = 0.002  # seconds between reads of the input queue


def say(text: str) -> None:
    print(f"studio-bridge midi: {text}", file=sys.stderr, flush=True)


def run(args) -> dict:
    """Learn one binding (``--learn``) or play the map until Ctrl-C / SIGTERM.

    Returns:
        ``{"learned": ..., "map": ..., "toml": ...}`` or ``{"map", "input", "output", "bpm", "jobs"}``.

    Raises:
        MidiHostError: a bad map, a port that matches nothing, no MIDI backend.
    """
    from . import mapping as mapping_mod

    learn_table = _learn_table(args) if args.learn else None
    if learn_table is None:
        mapping = mapping_mod.load_mapping(args.map)
        if not mapping.bindings:
            raise MidiHostError(f"{args.map} has no [[binding]]; add some, or record them with --learn ACTION")
        live = _live_address(args, mapping)
    api = rtmidi_api(args.backend)
    inp = Endpoint(api, "input", args.in_port, None if args.in_port else args.virtual, say=say)
    out = None
    try:
        if not args.in_port and not args.virtual:
            names = "; ".join(inp.names()) or "none"
            raise MidiHostError(f"say where MIDI comes from: --in PORT (available: {names}) or --virtual NAME",
                                "no_port")
        inp.open()
        if learn_table is not None:
            return _learn(args, learn_table, inp)
        out = _open_output(args, api, inp)
        return _play(args, mapping, inp, out, live)
    finally:
        inp.close()
        if out is not None:
            out.close()


def _open_output(args, api, inp: Endpoint) -> Endpoint | None:
    if args.out_port:
        return Endpoint(api, "output", args.out_port, say=say).open()
    if args.virtual:
        return Endpoint(api, "output", virtual=args.virtual, say=say).open()
    # The lights go to the same device: its output matches what --in said, or the input's
    # client name (the part before ':' in JACK and ALSA port names).
    problem = ""
    for wanted in dict.fromkeys([args.in_port, inp.connected_to.split(":")[0]]):
        out = Endpoint(api, "output", wanted, say=say)
        try:
            return out.open()
        except MidiHostError as exc:
            out.close()
            problem = problem or exc.message
    say(f"no LED feedback: {problem} (give --out PORT)")
    return None


# -- play -------------------------------------------------------------------------------------
def _live_address(args, mapping) -> tuple[str, int] | None:
    """Where results of ``play = true`` bindings go: --live, else the map's ``live``."""
    from .mapping import parse_live

    live = parse_live(args.live) if getattr(args, "live", None) else mapping.live
    playing = [b for b in mapping.bindings if b.params.get("play")]
    if playing and live is None:
        raise MidiHostError(f"{playing[0].label()} says play = true, but no live host is named: start "
                            f"`studio-bridge live --osc-port 9123` and give --live 9123 (or write "
                            f"live = \"127.0.0.1:9123\" at the top of {args.map})")
    return live


def _play(args, mapping, inp: Endpoint, out: Endpoint | None, live: tuple[str, int] | None) -> dict:
    from bridge.client import Client

    from .clock import ClockEstimator
    from .controller import Controller
    from .leds import Leds
    from .to_live import LiveLink

    client = Client(args.addr, args.token)
    try:
        client.health(timeout=3.0)  # no daemon: say so now (exit 3), not at the first pad
        leds = Leds(out.send, args.leds, args.blink).start() if out is not None else None
        if leds is not None:
            out.on_reopen = leds.restore  # a replugged Launchpad needs programmer mode again
        link = LiveLink(*live) if live else None
        controller = Controller(mapping, client, ClockEstimator(resolution=inp.resolution), leds, say, link)
        say(f"listening on MIDI input '{inp.connected_to}'"
            + (f", LEDs ({args.leds}) on '{out.connected_to}'" if out else "")
            + f"; {len(mapping.bindings)} binding(s) from {args.map}"
            + (f"; play = true results go to the live host at {link.address}" if link else "")
            + "; Ctrl-C stops")
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            _loop(args, controller, inp, [e for e in (inp, out) if e is not None], stop)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            if leds is not None:
                leds.close()
        for record in controller.active():
            say(f"job {record.job_id or '(being submitted)'} is still running in the daemon; "
                f"`studio-bridge job {record.job_id}` tells how it ends")
        return {"map": str(Path(args.map).expanduser().resolve()), "input": inp.connected_to,
                "output": out.connected_to if out else None, "bpm": controller.clock.bpm,
                "jobs": [r.to_dict() for r in controller.jobs]}
    finally:
        client.close()


def _loop(args, controller, inp: Endpoint, endpoints, stop: threading.Event) -> None:
    next_poll = time.monotonic() + args.poll
    while not stop.wait(READ_INTERVAL):
        for t, message in inp.receive():
            controller.handle(message, t)
        now = time.monotonic()
        if now >= next_poll:
            for endpoint in endpoints:
                endpoint.poll()
            controller.clock.resolution = inp.resolution  # read again when the input reopened
            next_poll = now + args.poll


# -- learn ------------------------------------------------------------------------------------
def _learn_table(args) -> dict:
    """The new binding's keys from --learn/--param, checked before waiting for a control."""
    from .cli import parse_param
    from .mapping import load_mapping, parse_binding

    defaults = {}
    if Path(args.map).expanduser().exists():
        defaults = load_mapping(args.map).defaults  # a broken map is reported now, not after a pad
    table = {"action": args.learn}
    for text in args.param:
        try:
            key, value = parse_param(text)
        except ValueError as exc:
            raise MidiHostError(str(exc)) from None
        if key in ("type", "channel", "number", "action"):
            raise MidiHostError(f"--param {key} is taken from the control you touch; leave it out")
        table[key] = value
    # Check everything but the control now (a cc `set` needs min/max, a note `set` a value:
    # try both shapes), so nobody presses a pad only to hear the parameters are wrong.
    errors = []
    for probe in ("note", "cc"):
        try:
            parse_binding({"type": probe, "channel": 1, "number": 0, **table}, 1, defaults, Path(args.map).parent,
                          where=f"--learn {args.learn}")
            return table
        except MidiHostError as exc:
            errors.append(exc)
    raise errors[0]


def _learn(args, table: dict, inp: Endpoint) -> dict:
    say(f"learning '{args.learn}': touch a pad, key, knob or program button on '{inp.connected_to}' "
        f"(Ctrl-C gives up)")
    while True:
        time.sleep(0.01)
        for _, message in inp.receive():
            learned = _learn_one(args, table, message)
            if learned is not None:
                return learned


def _learn_one(args, table: dict, message) -> dict | None:
    """Bind this message's control if it is one (and free); None to keep listening."""
    from .mapping import append_binding, binding_toml

    if message.type not in LEARNABLE or (message.type == "note_on" and message.velocity == 0):
        return None  # clock, note-offs, sysex: not controls
    type_, number = {"note_on": ("note", getattr(message, "note", 0)),
                     "control_change": ("cc", getattr(message, "control", 0)),
                     "program_change": ("program", getattr(message, "program", 0))}[message.type]
    full = {"type": type_, "channel": message.channel + 1, "number": number, **table}
    try:
        binding = append_binding(args.map, full)
    except MidiHostError as exc:  # already bound, or this kind of control does not fit the action
        say(f"{exc.message}; touch another control")
        return None
    say(f"added {binding.label()} to {args.map}")
    return {"learned": {"index": binding.index, "type": binding.type, "channel": binding.channel,
                        "number": binding.number, "action": binding.action, "params": binding.params},
            "map": str(Path(args.map).expanduser().resolve()), "toml": binding_toml(full)}
