"""`studio-bridge midi`: the command line of the MIDI controller host.

Importing this module costs only argparse: ``studio-bridge --help`` builds the
parser; mido and python-rtmidi are imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Play the daemon from a MIDI controller. A TOML map binds notes, CCs and program
changes to actions: generate (tempo from the binding, else from MIDI clock on the
input), regenerate (the last generation, new seed), cancel, separate, master, and
set (a parameter of later generations, e.g. temperature from a knob). Pads light
while their job runs, blink when it is done and go dark on an error. --learn
ACTION records the next control you touch into the map. Example map:

  [[binding]]
  type = "note"        # note | cc | program
  channel = 10         # 1-16
  number = 36
  action = "generate"
  prompt = "dusty boom bap drums"
  bars = 4             # no bpm: follow MIDI clock
  out = "gen"          # relative to the map's folder
  play = true          # and play it in `studio-bridge live` (see --live)
"""


def add_midi_command(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``midi`` to the CLI's subparsers.

    Args:
        sub: the CLI's subparsers action.
        common: the parent parser with --json/--addr/--token-file.
    """
    p = sub.add_parser("midi", parents=[common], help="play the daemon from a MIDI controller "
                       "(pads, knobs, MIDI clock; LED feedback)", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handle)
    p.add_argument("--map", required=True, metavar="FILE.toml", help="the bindings (--learn adds to it)")
    p.add_argument("--in", dest="in_port", default=None, metavar="PORT",
                   help="read this existing MIDI port (exact name or a unique part of it)")
    p.add_argument("--out", dest="out_port", default=None, metavar="PORT",
                   help="send LED feedback to this port (default: the output of the --in device, if "
                        "one matches the same name)")
    p.add_argument("--virtual", default=None, metavar="NAME",
                   help="create ports named NAME for whichever of --in/--out is not given")
    p.add_argument("--backend", default=None, choices=("jack", "alsa", "coremidi", "winmm"),
                   help="the rtmidi API (default: rtmidi's own choice for this system)")
    p.add_argument("--leds", default="generic", choices=("generic", "launchpad", "apcmini"),
                   help="LED palette: generic (velocity 127/0), launchpad (programmer mode colours), "
                        "apcmini (its LED velocities)")
    p.add_argument("--blink", type=float, default=6.0, metavar="SECONDS",
                   help="how long a pad blinks when its job is done (6)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often to look for a device that left or came back (1)")
    p.add_argument("--live", default=None, metavar="[HOST:]PORT",
                   help="the OSC port of `studio-bridge live --osc-port PORT`: bindings with play = true "
                        "hand their result to it, to play from its next bar line (overrides live = in the map)")
    p.add_argument("--learn", default=None, metavar="ACTION",
                   choices=("generate", "regenerate", "cancel", "separate", "master", "set"),
                   help="record the next control touched as a new binding for ACTION, then exit")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="with --learn: a parameter of the new binding, e.g. prompt='lofi keys' bars=4 "
                        "out=gen (repeatable)")
    return p


def handle(args) -> dict | int:
    """Run the parsed midi command; a dict for --json (the CLI prints it), else print and exit code."""
    from .errors import MidiHostError

    try:
        from .host import run

        result = run(args)
    except MidiHostError as exc:
        result = {"error": exc.to_dict()}
    if args.json:
        return result
    print(summary(result), file=sys.stderr if result.get("error") else sys.stdout)
    return 1 if result.get("error") else 0


def summary(result: dict) -> str:
    """A short readable form of the result."""
    if result.get("error"):
        return f"studio-bridge midi: {result['error']['code']}: {result['error']['message']}"
    if "learned" in result:
        return f"added to {result['map']}:\n{result['toml']}"
    lines = [f"{len(result['jobs'])} job(s)"]
    for job in result["jobs"]:
        outputs = ", ".join(o["path"] for o in job["outputs"]) or (job.get("error") or {}).get("message", "")
        lines.append(f"  {job['job_id'] or '-'} {job['action']} {job['state']}: {outputs}")
    return "\n".join(lines)


def parse_param(text: str):
    """'bars=4' -> ('bars', 4): values read as TOML (numbers, booleans), else taken as text."""
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--param '{text}' is not KEY=VALUE")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed
