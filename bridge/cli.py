"""studio-bridge: the command line, one more client of the daemon.

Every command takes --json and then prints exactly one JSON object on
stdout; on failure it holds ``error`` {code, message} and the exit code is
non-zero. Job commands print ``job_id``, ``state``, ``outputs`` (absolute
``path`` + ``kind``), ``report``. On a terminal, long jobs draw a progress
bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .core.config import DEFAULT_GRPC_PORT, DEFAULT_OSC_PORT, ENV_ADDR, ENV_TOKEN, ENV_TOKEN_FILE, \
    Config, osc_socket_default, socket_default, state_dir_default
from . import __version__
from .core.errors import BridgeError

EXIT_FAILED = 1
EXIT_UNAVAILABLE = 3


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors honour --json (one JSON object, exit 2)."""

    def error(self, message: str):
        argv = sys.argv[1:] if _ARGV is None else _ARGV
        if "--json" in argv:
            print(json.dumps({"error": {"code": "invalid_argument",
                                        "message": f"{message}; see `{self.prog} --help`"}}, indent=2))
            sys.exit(2)
        super().error(message)


_ARGV: list[str] | None = None


class _TokenOnCommandLine(argparse.Action):
    """A token in argv is readable by every user (/proc/PID/cmdline): refuse it."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"--token on the command line is visible to every user of this machine "
                     f"(in /proc/<pid>/cmdline); put it in ${ENV_TOKEN} or in a file given with "
                     f"--token-file (the local daemon's own token is found by itself)")


def main(argv: list[str] | None = None) -> int:
    global _ARGV
    _ARGV = argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        args.token = _token_of(args)
        result = args.handler(args)
    except BridgeError as exc:
        return _fail(args, exc)
    except KeyboardInterrupt:
        return 130
    if isinstance(result, int):
        return result
    return _emit(args, result)


# -- parser ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print exactly one JSON object")
    common.add_argument("--addr", default=None,
                        help=f"daemon address: unix:///path or host:port (default: ${ENV_ADDR} "
                             f"or the user's socket)")
    common.add_argument("--token-file", default=None, metavar="FILE",
                        help=f"read the daemon's token from FILE (default: ${ENV_TOKEN}, "
                             f"${ENV_TOKEN_FILE}, else the local daemon's own token file)")
    common.add_argument("--token", action=_TokenOnCommandLine, help=argparse.SUPPRESS)

    parser = _Parser(prog="studio-bridge", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"studio-bridge {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND", parser_class=_Parser)

    def command(name, handler, help_text):
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    from . import commands

    serve = command("serve", commands.serve, "run the daemon in the foreground")
    _serve_args(serve)
    command("status", commands.status, "device, memory, resident models and queue")
    jobs = command("jobs", commands.jobs, "recent jobs")
    jobs.add_argument("--limit", type=int, default=20)
    job = command("job", commands.job, "one job's record")
    job.add_argument("job_id")
    watch = command("watch", commands.watch, "follow a job to its end")
    watch.add_argument("job_id")
    cancel = command("cancel", commands.cancel, "cancel a queued or running job")
    cancel.add_argument("job_id")
    command("engines", commands.engines, "engines and the parameters they take")
    models = command("models", commands.models, "list, pull, import, remove, load or unload models")
    models.add_argument("action", nargs="?", default="list",
                        choices=("list", "pull", "import", "remove", "load", "unload"))
    models.add_argument("name", nargs="?", help="model name (for import: the checkpoint or folder)")
    models.add_argument("--name", dest="as_name", default=None, help="import under this name")
    models.add_argument("--engine", default=None, help="import for this engine (default: whichever accepts it)")
    models.add_argument("--keep-alive", type=parse_duration, default=None,
                        help="how long the model stays loaded when idle: 30s, 10m, 1h, -1 = forever")
    models.add_argument("--state-dir", default=str(state_dir_default()),
                        help="the daemon's state dir, where pull/import/remove install models")

    master = command("master", commands.master, "master a file to a loudness target")
    master.add_argument("input", help="audio file: WAV, FLAC, AIFF, OGG, MP3, M4A")
    master.add_argument("--out", required=True, help="folder for the result (created if missing)")
    master.add_argument("--preset", default=None,
                        help="streaming (-14 LUFS/-1 dBTP, default), apple (-16/-1), ebu-r128 (-23/-1), "
                             "atsc-a85 (-24/-2)")
    master.add_argument("--lufs", type=float, default=None, help="integrated loudness target (LUFS)")
    master.add_argument("--ceiling", type=float, default=None, help="true-peak ceiling (dBTP)")
    master.add_argument("--reference", default=None, help="match this track's tone and loudness")
    master.add_argument("--no-eq", action="store_true", help="skip the EQ/glue stage")
    master.add_argument("--best-effort", action="store_true",
                        help="when the target cannot be reached under the ceiling, deliver the loudest "
                             "result instead of failing (the report says by how much it missed)")
    master.add_argument("--format", default=None,
                        help="auto, wav16, wav24, float, flac16, flac24 (default: auto)")
    master.add_argument("--no-cache", action="store_true", help="recompute even if cached")

    separate = command("separate", commands.separate, "split a file into stems (demucs, or hpss)")
    separate.add_argument("input", help="audio file: WAV, FLAC, AIFF, OGG, MP3, M4A")
    separate.add_argument("--out", required=True, help="folder for the stems (created if missing)")
    separate.add_argument("--model", default="", help="htdemucs, htdemucs_ft, htdemucs_6s, ... or hpss "
                          "(default: htdemucs if installed, else hpss); see `studio-bridge models`")
    separate.add_argument("--stems", default=None, help="write only these, e.g. vocals,drums")
    separate.add_argument("--two-stems", default=None, metavar="STEM",
                          help="STEM and everything else (no_STEM), e.g. vocals")
    separate.add_argument("--segment", type=float, default=None, help="seconds per segment (model's default)")
    separate.add_argument("--overlap", type=float, default=None, help="overlap between segments (0.25)")
    separate.add_argument("--shifts", type=int, default=None, help="random shifts averaged (1; 0 = none)")
    separate.add_argument("--seed", type=int, default=None, help="seed for the shifts (0)")
    separate.add_argument("--segments-per-pass", type=int, default=None, metavar="N",
                          help="segments per forward pass (0 = auto: 4 on CUDA, 1 on CPU)")
    separate.add_argument("--precision", default=None, help="auto, float32 or half "
                          "(auto = half on CUDA where the model allows, float32 on CPU)")
    separate.add_argument("--format", default=None, help="auto, wav16, wav24, float, flac16, flac24")
    separate.add_argument("--keep-alive", type=parse_duration, default=None,
                          help="keep the model loaded this long after the job (default 5m)")
    separate.add_argument("--no-cache", action="store_true", help="recompute even if cached")

    generate = command("generate", commands.generate, "make music from a prompt (MusicGen), "
                       "tempo-locked to whole bars")
    generate.add_argument("prompt", help="what to generate, e.g. 'warm rhodes chords, lo-fi'")
    generate.add_argument("--out", required=True, help="folder for the result (created if missing)")
    generate.add_argument("--model", default="", help="musicgen-small, musicgen-melody, ... "
                          "(default: musicgen-small if installed); see `studio-bridge models`")
    generate.add_argument("--bpm", type=float, default=None, help="tempo: with --bars, exact bars")
    generate.add_argument("--bars", type=int, default=None, help="whole bars to generate")
    generate.add_argument("--beats-per-bar", type=int, default=None, help="time signature (4)")
    generate.add_argument("--loop", action="store_true", default=None,
                          help="loopable: the end runs into the start without a click")
    generate.add_argument("--duration", type=float, default=None,
                          help="seconds, when no --bpm/--bars (10)")
    generate.add_argument("--variations", type=int, default=None, help="how many, in one batch (1)")
    clip = generate.add_mutually_exclusive_group()
    clip.add_argument("--melody", default=None, metavar="FILE",
                      help="follow this clip's melody (melody models)")
    clip.add_argument("--continue", dest="continue_from", default=None, metavar="FILE",
                      help="continue from this clip; the result is what follows it")
    generate.add_argument("--seed", type=int, default=None, help="same seed, same music "
                          "(default: random, reported)")
    generate.add_argument("--temperature", type=float, default=None, help="sampling temperature (1.0)")
    generate.add_argument("--top-k", type=int, default=None, help="top-k sampling (250; 0 = off)")
    generate.add_argument("--top-p", type=float, default=None, help="nucleus sampling (0 = off)")
    generate.add_argument("--cfg", type=float, default=None, help="prompt guidance (3.0)")
    generate.add_argument("--sample-rate", type=int, default=None,
                          help="output rate in Hz (default: the clip's, else 48000)")
    generate.add_argument("--format", default=None, help="auto, wav16, wav24, float, flac16, flac24")
    generate.add_argument("--keep-alive", type=parse_duration, default=None,
                          help="keep the model loaded this long after the job (default 5m)")
    generate.add_argument("--no-cache", action="store_true", help="recompute even if cached")

    reframe = command("reframe", commands.reframe, "cut a video to another shape around its "
                      "subject (9:16, 1:1, 4:5, ...), with crop keyframes")
    reframe.add_argument("input", help="video file: MP4, MOV, MKV, ... (H.264, HEVC, ProRes, ...)")
    reframe.add_argument("--aspect", required=True,
                         help="9:16, 1:1, 4:5, 4:3, 16:9, ... or WxH (e.g. 1080x1920: scaled to it)")
    reframe.add_argument("--out", required=True, help="folder for the video and its keyframes")
    reframe.add_argument("--track", default=None, choices=("auto", "faces", "saliency", "center"),
                         help="what the crop follows (auto: faces, else saliency, else motion)")
    reframe.add_argument("--start", type=float, default=None, help="seconds into the clip to start")
    reframe.add_argument("--duration", type=float, default=None, help="seconds to render (0 = to the end)")
    reframe.add_argument("--codec", default=None, choices=("auto", "h264", "hevc", "prores"),
                         help="encoder (auto: the source's family)")
    reframe.add_argument("--crf", type=int, default=None, help="H.264/HEVC quality (18)")
    reframe.add_argument("--preset", default=None, help="H.264/HEVC preset (veryfast)")
    reframe.add_argument("--no-cache", action="store_true", help="recompute even if cached")

    from hosts.otio.cli import add_otio_command  # argparse only; OpenTimelineIO loads when it runs

    add_otio_command(sub, common, commands.otio)

    from hosts.live.cli import add_live_command  # argparse only; pyo and JACK load when it runs

    add_live_command(sub, common)

    from hosts.midi.cli import add_midi_command  # argparse only; mido and python-rtmidi load when it runs

    add_midi_command(sub, common)

    relay = command("ardour-relay", commands.ardour_relay, "pass Ardour's Studio Bridge Lua actions "
                    "to the daemon and leave results where the scripts pick them up")
    relay.add_argument("--port", type=int, default=50553, help="UDP port on 127.0.0.1 the scripts send to")

    demo = command("demo", commands.demo, "start a daemon, make music, master it, report")
    demo.add_argument("--out", default="studio-bridge-demo", help="folder for the demo files")
    demo.add_argument("--seconds", type=float, default=12.0)

    command("doctor", commands.doctor, "check ffmpeg, the device, engines, weights and ports")

    service = command("service", commands.service, "run the daemon at login: a systemd user unit "
                      "(Linux) or launchd agent (macOS); install takes serve's options")
    service.add_argument("action", choices=("install", "uninstall", "status"))
    _serve_args(service)
    return parser


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grpc", default=f"127.0.0.1:{DEFAULT_GRPC_PORT}",
                   help="gRPC TCP HOST:PORT ('' = off; port 0 = any free)")
    p.add_argument("--socket", default=str(socket_default()), help="gRPC unix socket path ('' = off)")
    p.add_argument("--osc", default=f"127.0.0.1:{DEFAULT_OSC_PORT}",
                   help="OSC UDP+TCP HOST:PORT ('' = off)")
    p.add_argument("--osc-allow", action="append", default=[], metavar="HOST",
                   help="a non-loopback OSC peer allowed to send (repeatable)")
    p.add_argument("--osc-socket", default=None, metavar="PATH",
                   help=f"OSC unix datagram socket, mode 0600: liblo's osc.unix://PATH, for one-shot "
                        f"senders such as oscsend ('' = off; default: {osc_socket_default() or 'off'} "
                        f"unless --osc '')")
    p.add_argument("--osc-trust-loopback", action="store_true",
                   help="serve every loopback OSC sender unchecked: without it loopback UDP is refused "
                        "(no system can say which user sent a datagram) and TCP is served only from your "
                        "own user's sockets (Linux). For single-user machines; macOS and Windows need it "
                        "for UDP/TCP (the unix socket always works)")
    p.add_argument("--state-dir", default=str(state_dir_default()),
                   help="job records, cache, uploads")
    p.add_argument("--media-root", action="append", default=[], metavar="DIR",
                   help="a folder the daemon may read and write (repeatable; default: your home)")
    p.add_argument("--keep-alive", type=parse_duration, default=300.0,
                   help="default model keep-alive: 30s, 5m, 1h; -1 = forever; 0 = unload after each job")
    p.add_argument("--memory-budget", type=parse_size, default=None,
                   help="memory models may use, e.g. 8G (default: 80%% of the device's)")
    p.add_argument("--preload", action="append", default=[], metavar="MODEL", help="load at start")
    p.add_argument("--queue", type=int, default=16, help="most jobs waiting at once")
    p.add_argument("--cache-size", type=parse_size, default=4 << 30,
                   help="disk the result cache may use, e.g. 4G (default); 0 keeps nothing")
    p.add_argument("--keep-outputs", type=parse_duration, default=24 * 3600.0,
                   help="how long results of jobs without --out (remote hosts) are kept: default 24h")
    p.add_argument("--grace", type=float, default=5.0, help="seconds to finish RPCs on SIGTERM")
    p.add_argument("--log-level", default="INFO")


def _token_of(args) -> str | None:
    """--token-file's token; None lets the client find one (environment, own file)."""
    from .core.state import read_token

    return read_token(args.token_file) if getattr(args, "token_file", None) else None


def config_from_args(args) -> Config:
    """serve's options; the token: --token-file, else $STUDIO_BRIDGE_TOKEN, else the daemon's own."""
    token = getattr(args, "token", None) or os.environ.get(ENV_TOKEN, "")
    return Config(
        state_dir=Path(args.state_dir).expanduser(),
        media_roots=[Path(r).expanduser() for r in args.media_root] or [Path.home()],
        grpc=args.grpc, socket=args.socket, osc=args.osc, osc_allow=args.osc_allow,
        osc_socket=(args.osc_socket if args.osc_socket is not None
                    else osc_socket_default() if args.osc else ""),
        osc_trust_loopback=args.osc_trust_loopback,
        token=token, keep_alive=args.keep_alive, memory_budget=args.memory_budget,
        preload=args.preload, queue_capacity=args.queue, output_retention=args.keep_outputs,
        cache_bytes=args.cache_size)


def parse_duration(text: str) -> float:
    """'30s', '10m', '1h', '-1', '0', 'forever' -> seconds (negative = forever)."""
    text = str(text).strip().lower()
    if text in ("forever", "inf", "never"):
        return -1.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].lstrip("-").replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration; use e.g. 30s, 10m, 1h, -1") from None


def parse_size(text: str) -> int:
    text = str(text).strip().upper().rstrip("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if text and text[-1] in scale:
            return int(float(text[:-1]) * scale[text[-1]])
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size; use e.g. 512M or 8G") from None


# -- output ---------------------------------------------------------------------
def _emit(args, result: dict) -> int:
    failed = bool(result.get("error"))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        print(human(result))
    return EXIT_FAILED if failed else 0


def _fail(args, exc: BridgeError) -> int:
    result = {"error": exc.to_dict()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"studio-bridge: {exc.code}: {exc.message}", file=sys.stderr)
    return EXIT_UNAVAILABLE if exc.code == "unavailable" else EXIT_FAILED


def human(result: dict) -> str:
    """A short readable form of a command's result."""
    if "job_id" in result:
        lines = [f"job {result['job_id']}: {result['state']}"]
        if result.get("input"):
            lines.append(f"  input: {result['input']}")
        lines += [f"  {o['kind']}: {o['path']}" for o in result.get("outputs", [])]
        if result.get("error"):
            lines.append(f"  error ({result['error']['code']}): {result['error']['message']}")
        report = result.get("report") or {}
        lines += [f"  warning: {w}" for w in report.get("warnings", [])]
        for side in ("before", "after"):
            if side in report:
                r = report[side]
                lines.append(f"  {side:6}  {r.get('integrated_lufs', float('nan')):7.2f} LUFS  "
                             f"{r.get('true_peak_dbtp', float('nan')):6.2f} dBTP  "
                             f"LRA {r.get('loudness_range_lu', float('nan')):5.2f} LU  "
                             f"peak {r.get('sample_peak_dbfs', float('nan')):6.2f} dBFS")
        return "\n".join(lines)
    if "checks" in result:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        return "\n".join(f"{marks[c['status']]}  {c['name']:14} {c['detail']}"
                         + (f"\n      -> {c['fix']}" if c["fix"] and c["status"] != "ok" else "")
                         for c in result["checks"])
    return json.dumps(result, indent=2)


def run() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())


if __name__ == "__main__":
    run()
