"""The Ardour relay: takes jobs from Ardour's Lua scripts over OSC, leaves results in files.

Ardour's Lua can send OSC (``ARDOUR.LuaOSC.Address(url):send``) but not receive
it, and it cannot know a job id the daemon has not told it. So the scripts send
each job here with a token they chose; the relay cuts the region's span out of
its source files when the region is not the whole file, submits the job through
``bridge.client``, waits for it, and writes ``<result_dir>/<token>.result``
(atomically: a temp file renamed into place) for the scripts to poll and import.

Why a relay that submits rather than pointing the daemon's OSC replies here:
the daemon keys ``/bridge/reply_port`` by host, so Ardour setting it on
127.0.0.1 would take the replies of every other OSC client on the machine;
replies carry the daemon's job id, which Lua never learns; and a region is a
span of one or more mono source files, which the daemon's OSC addresses cannot
name.

In (UDP, from the Lua scripts):
  /studio_bridge/job  token engine input clip_name out_dir result_dir place start length n
                      path_1 .. path_n [name value]...
      input: the engine input the region feeds ("audio", "continue", ...; "" for
      none, e.g. generate into a range); place: the timeline sample the result
      goes to (echoed back in the result); start/length: the region's span in
      samples within its sources (length 0: the whole file); paths: one per
      channel; name/value pairs: "model" or engine parameters.

Result files: UTF-8 lines ``key<TAB>value``: ``state`` (succeeded, failed,
cancelled, interrupted), ``engine``, ``place``, ``job`` (the daemon's id, if it started), ``output``
(one line per output path, in the daemon's order), ``error`` (one line).
Lua reads these with ``io.lines``; it has no JSON parser. Each finished
token is then appended to ``<result_dir>/done.list``: Lua has no directory
listing, so that is how a script finds results it did not send itself (the
editor hook that collects them runs in its own Lua state).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import soundfile
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer

from bridge.client import Client

from . import DEFAULT_PORT

log = logging.getLogger(__name__)
HEADER = 10  # token engine input clip_name out_dir result_dir place start length n


class Job:
    """One request from Ardour, parsed from the OSC arguments."""

    def __init__(self, args: tuple):
        if len(args) < HEADER:
            raise ValueError(f"/studio_bridge/job takes at least {HEADER} arguments; got {len(args)}")
        (self.token, self.engine, self.input, self.clip_name, self.out_dir,
         self.result_dir) = (str(a) for a in args[:6])
        self.place, self.start, self.length, count = (round(float(a)) for a in args[6:10])
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", self.token):
            raise ValueError(f"token {self.token!r} must be 1-80 letters, digits, '_', '.' or '-'")
        self.paths = [str(a) for a in args[HEADER:HEADER + count]]
        pairs = args[HEADER + count:]
        if len(self.paths) != count or len(pairs) % 2:
            raise ValueError(f"expected {count} paths then name/value pairs; got {len(args)} arguments")
        self.model = ""
        self.params: dict = {}
        for name, value in zip(pairs[0::2], pairs[1::2]):
            if str(name) == "model":
                self.model = str(value)
            elif isinstance(value, float) and value.is_integer():
                self.params[str(name)] = int(value)  # Lua numbers arrive as doubles
            else:
                self.params[str(name)] = value


class Relay:
    """Listens for /studio_bridge/* on UDP and runs each job on a thread.

    Args:
        client: a ``bridge.client.Client`` (shared; gRPC channels are thread-safe).
        addr: host and port to listen on (port 0 picks a free one).
    """

    def __init__(self, client: Client, addr: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT)):
        self.client = client
        dispatcher = Dispatcher()
        dispatcher.map("/studio_bridge/job", self._job)
        self.server = ThreadingOSCUDPServer(addr, dispatcher)
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> Relay:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="ardour-relay", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _job(self, address, *args):
        try:
            job = Job(args)
        except (ValueError, TypeError) as exc:
            log.warning("bad %s from Ardour: %s", address, exc)
            if len(args) >= 6 and re.fullmatch(r"[A-Za-z0-9_.-]{1,80}", str(args[0])):
                write_result(Path(str(args[5])), str(args[0]), {"state": ["failed"], "error": [str(exc)]})
            return
        threading.Thread(target=self.run, args=(job,), name=f"ardour-job-{job.token}", daemon=True).start()

    def run(self, job: Job) -> dict:
        """Run one job to its end and write its result file; returns the fields written."""
        fields: dict[str, list[str]]
        try:
            inputs = {}
            if job.input:
                inputs[job.input] = str(region_clip(job))
            record = self.client.submit(job.engine, inputs, job.params, out_dir=job.out_dir,
                                        model=job.model, client="ardour")
            if record["state"] not in ("succeeded", "failed", "cancelled", "interrupted"):
                record = self.client.wait(record["job_id"])
            fields = {"state": [record["state"]], "engine": [job.engine], "place": [str(job.place)],
                      "name": [job.clip_name], "job": [record["job_id"]],
                      "output": [o["path"] for o in record.get("outputs", [])]}
            if record.get("error"):
                fields["error"] = [record["error"].get("message", "")]
        except Exception as exc:  # noqa: BLE001 - the script must hear of every failure, not wait forever
            log.warning("Ardour job %s failed: %s", job.token, exc)
            fields = {"state": ["failed"], "engine": [job.engine], "place": [str(job.place)],
                      "name": [job.clip_name], "error": [getattr(exc, "message", None) or str(exc)]}
        write_result(Path(job.result_dir), job.token, fields)
        return fields


def region_clip(job: Job) -> Path:
    """The region's audio as one file: its source itself when the region is all of
    one file, else the span [start, start+length) of each channel's source
    interleaved into ``<out_dir>/clips/<token>/<clip_name>.wav`` at the source's rate."""
    if not job.paths:
        raise ValueError(f"engine input '{job.input}' needs the region's source files; none were sent")
    infos = [soundfile.info(p) for p in job.paths]
    if len(job.paths) == 1 and job.start == 0 and job.length in (0, infos[0].frames):
        return Path(job.paths[0])
    length = job.length or infos[0].frames - job.start
    channels, taken = [], {}
    for path, info in zip(job.paths, infos):
        # An embedded multi-channel file is named once per channel: take them in order.
        index = taken.get(path, 0)
        taken[path] = index + 1
        data, _ = soundfile.read(path, start=job.start, frames=length, dtype="float32", always_2d=True)
        if data.shape[0] < length:
            data = np.pad(data, ((0, length - data.shape[0]), (0, 0)))
        channels.append(data[:, min(index, data.shape[1] - 1)])
    # A folder per job keeps the clip's own name, so outputs are named after the
    # region (<region>.<model>.<stem>.wav; the daemon numbers repeats).
    clip_dir = Path(job.out_dir) / "clips" / job.token
    clip_dir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w-]+", "_", job.clip_name).strip("_") or "region"
    target = clip_dir / f"{name}.wav"
    tmp = clip_dir / f".{target.name}.tmp"
    soundfile.write(str(tmp), np.stack(channels, axis=1), infos[0].samplerate, subtype="FLOAT", format="WAV")
    os.replace(tmp, target)
    return target


_LIST_LOCK = threading.Lock()


def _one_line(value) -> str:
    return str(value).replace("\r", " ").replace("\n", " ").replace("\t", " ")


def write_result(result_dir: Path, token: str, fields: dict[str, list[str]]) -> Path:
    """Write ``<result_dir>/<token>.result`` atomically (Lua must never read half a
    file), then list the token in ``done.list``."""
    result_dir.mkdir(parents=True, exist_ok=True)
    # one line per value: only line breaks and tabs are replaced (a path may hold double spaces)
    lines = [f"{key}\t{_one_line(value)}" for key, values in fields.items() for value in values]
    fd, tmp = tempfile.mkstemp(dir=result_dir, prefix=f".{token}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    target = result_dir / f"{token}.result"
    os.replace(tmp, target)
    with _LIST_LOCK, open(result_dir / "done.list", "a", encoding="utf-8") as listing:
        listing.write(token + "\n")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m hosts.ardour.relay [--port N] [--addr DAEMON]``: run until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m hosts.ardour.relay", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"UDP port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--addr", default=None,
                        help="daemon address (default: STUDIO_BRIDGE_ADDR or the default socket)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    with Client(args.addr) as client:
        try:
            relay = Relay(client, ("127.0.0.1", args.port))
        except OSError as exc:
            print(f"cannot listen on UDP 127.0.0.1:{args.port}: {exc.strerror}; pick another with --port",
                  file=sys.stderr)
            return 1
        print(f"ardour relay on osc.udp://127.0.0.1:{relay.port} -> daemon {client.addr}",
              file=sys.stderr, flush=True)
        try:
            relay.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            relay.server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
