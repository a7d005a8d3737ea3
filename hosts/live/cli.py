"""`studio-bridge live`: the command line of the live host.

Importing this module costs only argparse; pyo and JACK load when it runs.
It runs until Ctrl-C / SIGTERM. With --json every event is one JSON object on
its own line of stdout (ready, trigger, captured, job, armed, playing, error).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def add_live_command(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``live`` to the CLI's subparsers (``common`` has --json/--addr/--token-file)."""
    p = sub.add_parser("live", parents=[common], help="a JACK client that follows MIDI clock, keeps the "
                       "last bars of a DAW send and plays the daemon's result from the next bar line",
                       description="Connect the DAW's MIDI clock to <name>-midi:midi_in, its send to "
                       "<name>:input_N and <name>:output_N back to a return. A trigger (MIDI note, or "
                       "OSC /bridge/live/trigger ,s MODE) sends the last --bars bars. MODE: separate"
                       "[:STEM,..], a stem name (drums), continue, melody.")
    p.add_argument("--bars", type=int, default=2, help="bars to capture and send (default 2)")
    p.add_argument("--beats-per-bar", type=int, default=4)
    p.add_argument("--mode", default="separate", help="what a MIDI note trigger asks for (default separate)")
    p.add_argument("--loop", action="store_true", help="loop the result until the next one or Stop")
    p.add_argument("--trigger-note", type=int, default=36, help="MIDI note that triggers (-1: none)")
    p.add_argument("--osc-port", type=int, default=None, help="UDP port for OSC: /bridge/live/trigger [MODE] and /bridge/live/play PATH... (a file made elsewhere, e.g. by `studio-bridge midi`, played from the next bar line); 0: any free port")
    p.add_argument("--media-dir", default="~/studio-bridge-live",
                   help="folder (under the daemon's media root) for captured bars and results")
    p.add_argument("--name", default="studio-bridge-live", help="JACK client name")
    p.add_argument("--channels", type=int, default=2, help="audio inputs and outputs (default 2)")
    p.add_argument("--model", dest="separate_model", default="htdemucs",
                   help="separation model (hpss needs no weights: stems harmonic, percussive)")
    p.add_argument("--stems", default="drums", help="stems to play back for separate (default drums)")
    p.add_argument("--generate-model", default="", help="MusicGen model for continue/melody")
    p.add_argument("--prompt", default="", help="text prompt for continue/melody")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--connect-midi", action="append", default=[], metavar="PORT",
                   help="JACK MIDI port to take clock and notes from (repeatable)")
    p.add_argument("--connect-in", action="append", default=[], metavar="PORT",
                   help="JACK audio port for input N, in order (repeatable)")
    p.add_argument("--connect-out", action="append", default=[], metavar="PORT",
                   help="JACK audio port for output N, in order (repeatable)")
    p.set_defaults(handler=run)
    return p


def run(args) -> int:
    """Run the live host until interrupted; returns the exit code."""
    from bridge.client import InvalidArgument

    from .host import LiveHost, Options
    from .modes import parse_mode

    for flag, value, low, high in (("--bars", args.bars, 1, 64), ("--beats-per-bar", args.beats_per_bar, 1, 32),
                                   ("--channels", args.channels, 1, 32), ("--trigger-note", args.trigger_note, -1, 127),
                                   ("--osc-port", 0 if args.osc_port is None else args.osc_port, 0, 65535)):
        if not low <= value <= high:
            raise InvalidArgument(f"{flag} must be {low}-{high}, got {value}")
    try:
        kind, arg = parse_mode(args.mode)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    if kind in ("continue", "melody") and not (arg or args.prompt):
        raise InvalidArgument(f"--mode {kind} needs --prompt 'TEXT' (or --mode '{kind}:TEXT'): "
                              "MusicGen is steered by text even when it continues the captured bars")
    options = Options(bars=args.bars, beats_per_bar=args.beats_per_bar, mode=args.mode, loop=args.loop,
                      trigger_note=None if args.trigger_note < 0 else args.trigger_note,
                      osc_port=args.osc_port, media_dir=args.media_dir, name=args.name,
                      channels=args.channels, addr=args.addr, token=args.token,
                      separate_model=args.separate_model, stems=args.stems,
                      generate_model=args.generate_model, prompt=args.prompt, seed=args.seed,
                      connect_midi=args.connect_midi, connect_in=args.connect_in,
                      connect_out=args.connect_out)
    lock = threading.Lock()

    def show(event: dict) -> None:
        with lock:
            if args.json:
                print(json.dumps(event), flush=True)
            else:
                fields = " ".join(f"{k}={v}" for k, v in event.items() if k != "event")
                print(f"{event['event']}: {fields}", file=sys.stderr if event["event"] == "error" else
                      sys.stdout, flush=True)

    # Python's JACK callbacks need the GIL every 5.3 ms; the default 5 ms switch interval lets a
    # busy thread (writing a WAV, talking gRPC) hold it through a whole period and cause xruns.
    sys.setswitchinterval(0.0005)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    host = LiveHost(options, show)
    try:
        host.start()
    except RuntimeError as exc:  # no JACK server
        from bridge.client import Unavailable

        host.close()
        raise Unavailable(str(exc)) from None
    except OSError as exc:  # the OSC port
        host.close()
        raise InvalidArgument(f"cannot listen for OSC on 127.0.0.1:{args.osc_port} ({exc.strerror}); pick "
                              f"another --osc-port (0: any free port)") from None
    except ValueError as exc:  # --connect-*
        host.close()
        raise InvalidArgument(str(exc)) from None
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        host.close()
    show({"event": "stopped", "xruns": host.xruns})
    return 0
