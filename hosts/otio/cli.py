"""`studio-bridge otio reframe|separate|master IN -o OUT`: the command line of the otio host.

Importing this module costs only argparse: ``studio-bridge --help`` builds the
parser, and OpenTimelineIO is imported when an otio command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

FORMATS_HELP = ("IN and OUT: .otio, .otioz, FCP7 .xml, .fcpxml, .edl, .kdenlive (or any suffix an "
                "installed OpenTimelineIO adapter handles), chosen by suffix")


def add_otio_command(sub, common: argparse.ArgumentParser, handler) -> argparse.ArgumentParser:
    """Add ``otio`` and its actions to the CLI's subparsers.

    Args:
        sub: the CLI's subparsers action.
        common: the parent parser with --json/--addr/--token-file.
        handler: the function the CLI calls with the parsed args.
    """
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument("input", metavar="IN", help="the timeline to read (never modified)")
    shared.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="the timeline to write (its suffix picks the format)")
    shared.add_argument("--media-dir", default=None, metavar="DIR",
                        help="folder for the results (default: <OUT stem>_media next to OUT)")
    shared.add_argument("--search-path", action="append", default=[], metavar="DIR",
                        help="look for media not found where the timeline says by file name under DIR "
                             "(repeatable)")
    shared.add_argument("--rate", type=_rate, default=None,
                        help="frame rate to read an EDL at, as editors type it: 23.976, 25, 29.97, "
                             "30000/1001, ... (EDLs store none; default: the first of 30, 24, 25, 29.97, "
                             "23.976, 50, 59.94, 60 it reads at; drop-frame comes from the EDL)")
    shared.add_argument("--track", action="append", default=[], metavar="NAME|INDEX",
                        help="only clips on this track: its name, V2/A1, or 1-based index (repeatable)")
    shared.add_argument("--name", action="append", default=[], metavar="GLOB",
                        help="only clips whose name matches (repeatable)")
    shared.add_argument("--marker", action="append", default=[], metavar="NAME",
                        help="only clips carrying a marker with this name (glob, any case), or under a "
                             "timeline marker with it (repeatable)")
    shared.add_argument("--no-cache", action="store_true", help="recompute even if the daemon has it cached")
    shared.add_argument("--sidecar-only", action="store_true",
                        help="write only the lossless .otio sidecar (OUT.otio), not OUT: for results OUT's "
                             "format cannot hold (an EDL holds one video and two audio tracks)")

    otio = sub.add_parser("otio", parents=[common], help="reframe, separate or master the clips of an editor "
                          "timeline (OpenTimelineIO)", description=FORMATS_HELP)
    actions = otio.add_subparsers(dest="otio_action", metavar="ACTION", parser_class=type(otio))

    def action(name, help_text):
        p = actions.add_parser(name, parents=[common, shared], help=help_text,
                               description=f"{help_text}. {FORMATS_HELP}.")
        p.set_defaults(handler=handler)
        return p

    reframe = action("reframe", "reframe every video clip to another shape; the sequence gets the new size")
    reframe.add_argument("--aspect", default="9:16",
                         help="9:16 (default), 1:1, 4:5, 4:3, 16:9, or a size WxH such as 1080x1920")
    reframe.add_argument("--follow", default="auto", choices=("auto", "faces", "saliency", "center"),
                         help="what the crop follows (the engine's `track` parameter)")
    reframe.add_argument("--handles", type=_frames, default=12, metavar="FRAMES",
                         help="extra frames rendered before and after each clip's used range (default 12)")

    separate = action("separate", "split every audio clip into stems, each on a new track under its clip")
    separate.add_argument("--stems", default=None, help="only these stems, e.g. vocals or vocals,drums")
    separate.add_argument("--two-stems", default=None, metavar="STEM", help="STEM and everything else")
    separate.add_argument("--model", default="", help="htdemucs, ... or hpss (default: the daemon's)")

    master = action("master", "master every audio clip; each plays its mastered file")
    master.add_argument("--preset", default=None, help="streaming (default), apple, ebu-r128, atsc-a85")
    master.add_argument("--lufs", type=float, default=None, help="integrated loudness target (LUFS)")
    master.add_argument("--ceiling", type=float, default=None, help="true-peak ceiling (dBTP)")
    return otio


def _rate(text: str):
    from .rates import RateError, parse_rate

    try:
        return parse_rate(text)
    except RateError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _frames(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; give 0 or more frames")
    return value


def run(args, client) -> dict | int:
    """Run the parsed otio command; a dict for --json (the CLI prints it), else print and exit code."""
    from .formats import TimelineError

    try:
        result = _dispatch(args, client)
    except TimelineError as exc:
        result = {"error": exc.to_dict()}
    except ImportError as exc:
        result = {"error": {"code": "unavailable", "message": f"the otio host needs OpenTimelineIO and its "
                            f"adapters ({exc}); install them with `pip install -e '.[reframe]'`"}}
    if args.json:
        return result
    print(summary(result), file=sys.stderr if result.get("error") and not result.get("clips") else sys.stdout)
    return 1 if result.get("error") else 0


def _dispatch(args, client) -> dict:
    from . import jobs

    options = jobs.Options(input=args.input, output=args.output, media_dir=args.media_dir,
                           search_paths=tuple(args.search_path), rate=args.rate, tracks=tuple(args.track),
                           names=tuple(args.name), markers=tuple(args.marker),
                           handles=getattr(args, "handles", 12), no_cache=args.no_cache,
                           sidecar_only=args.sidecar_only)
    progress = Progress(enabled=not args.json)
    try:
        if args.otio_action == "reframe":
            return jobs.reframe(client, options, args.aspect, args.follow, progress)
        if args.otio_action == "separate":
            return jobs.separate(client, options, args.stems, args.two_stems, args.model, progress)
        return jobs.master(client, options, args.preset, args.lufs, args.ceiling, progress)
    finally:
        progress.close()


class Progress:
    """One line on stderr per running clip (terminal only)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()
        self._shown = False

    def __call__(self, row: dict, job: dict) -> None:
        if self.enabled:
            sys.stderr.write(f"\r{row['track']:>6} {row['name'][:30]:30} {job['state']:9} "
                             f"{job['progress'] * 100:5.1f}% {job['stage'][:30]:30}")
            sys.stderr.flush()
            self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")


def summary(result: dict) -> str:
    """The result for people: what was written, then a line per clip."""
    lines = []
    if result.get("output") or result.get("sidecar"):
        lines.append(f"{result['action']}: {result['processed']} of {len(result['clips'])} clips -> "
                     f"{result.get('output') or result['sidecar']}")
        if result.get("output"):
            lines.append(f"  sidecar: {result['sidecar']}")
        if result.get("canvas"):
            canvas = result["canvas"]
            lines.append(f"  canvas: {canvas['width']}x{canvas['height']}"
                         + ("" if canvas["stored"] else " (not stored by this format)"))
    for row in result.get("clips", []):
        what = row.get("render") or ", ".join(row.get("stems", {}).values()) or row.get("reason", "")
        lines.append(f"  {row['status']:7} {row['track']} {row['name']}: {what}")
    lines += [f"  note: {note}" for note in result.get("notes", [])]
    if result.get("error"):
        lines.append(f"studio-bridge otio: {result['error']['code']}: {result['error']['message']}")
    return "\n".join(lines) if lines else json.dumps(result, indent=2)
