"""Soak: hundreds of jobs of every kind through one daemon; memory, fds and threads stay flat.

Starts ``python -m bridge serve`` and runs N jobs in a fixed rotation (seeded):
a fresh master job, a cache hit, an hpss separation, a job cancelled mid-run, a
refused request (bad parameter), and an OSC submission over a TCP
connection. After every ``--every`` jobs it reads the daemon's
``/proc/PID/status`` (VmRSS, RssAnon, Threads) and counts ``/proc/PID/fd``.
Growth is judged after a warm-up (the first samples carry lazy imports and
allocator arenas): the table prints each sample and the change from the
first sample after warm-up to the last.

Usage: .venv/bin/python bench/soak.py [--jobs 200] [--every 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
KINDS = ("master", "cached", "separate", "cancel", "refused", "osc")


def proc_numbers(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
            "anon_mib": int(fields["RssAnon"].split()[0]) / 1024,
            "threads": int(fields["Threads"]), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def start(base: Path) -> tuple[subprocess.Popen, dict]:
    (base / "state").mkdir()
    (base / "media").mkdir()
    log = open(base / "daemon.log", "w")
    proc = subprocess.Popen([PY, "-m", "bridge", "serve", "--grpc", "127.0.0.1:0", "--socket",
                             str(base / "s.sock"), "--osc", "127.0.0.1:0", "--osc-socket",
                             str(base / "s.osc"), "--state-dir",
                             str(base / "state"), "--media-root", str(base / "media"),
                             "--log-level", "WARNING"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    info = base / "state" / "daemon.json"
    deadline = time.monotonic() + 60
    while not info.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((base / "daemon.log").read_text()[-2000:])
        time.sleep(0.02)
    return proc, json.loads(info.read_text())


def osc_job(port: int, song: Path, out: Path) -> str:
    """/bridge/submit over an OSC TCP connection (OSC 1.0 framing); replies come back on it
    (loopback UDP is not served: a datagram's sender cannot be known)."""
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import build_msg

    with socket.create_connection(("127.0.0.1", port), timeout=120) as sender:
        packet = build_msg("/bridge/submit", ["master", str(song), str(out)]).dgram
        sender.sendall(len(packet).to_bytes(4, "big") + packet)
        with sender.makefile("rb") as replies:
            while len(head := replies.read(4)) == 4:
                reply = OscMessage(replies.read(int.from_bytes(head, "big")))
                if reply.address in ("/bridge/done", "/bridge/error"):
                    return "succeeded" if reply.address == "/bridge/done" else "failed"
    return "connection closed"


def one(kind: str, index: int, client, info: dict, media: Path, song: Path, long: Path) -> str:
    from bridge.core.errors import BridgeError

    out = media / "out" / f"{index:04d}-{kind}"
    if kind == "master":
        return client.run("master", {"audio": str(song)}, {}, str(out), no_cache=True)["state"]
    if kind == "cached":
        return client.run("master", {"audio": str(song)}, {}, str(out))["state"]
    if kind == "separate":
        return client.run("separate", {"audio": str(song)}, {}, str(out), model="hpss",
                          no_cache=True)["state"]
    if kind == "cancel":
        job = client.submit("master", {"audio": str(long)}, {}, str(out), no_cache=True)
        time.sleep(0.2)
        client.cancel(job["job_id"])
        return client.wait(job["job_id"])["state"]
    if kind == "refused":
        try:
            client.submit("master", {"audio": str(song)}, {"lufs": 99}, str(out))
        except BridgeError as exc:
            return exc.code
        return "accepted?!"
    return osc_job(int(info["osc"].rpartition(":")[2]), song, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=50, help="jobs before the baseline sample")
    args = parser.parse_args()

    from bridge.client import Client
    from tests.conftest import write_tone

    base = Path(tempfile.mkdtemp(prefix="sbsoak-"))
    proc, info = start(base)
    media = base / "media"
    song = write_tone(media / "song.wav", seconds=3.0)
    long = write_tone(media / "long.wav", seconds=60.0)
    rng = random.Random(0)
    rows, outcomes, started = [], {}, time.monotonic()
    try:
        with Client(info["socket"], timeout=120) as client:
            rows.append((0, "start", proc_numbers(proc.pid)))
            for index in range(1, args.jobs + 1):
                kind = KINDS[index % len(KINDS)] if index % 7 else rng.choice(KINDS)
                state = one(kind, index, client, info, media, song, long)
                outcomes[(kind, state)] = outcomes.get((kind, state), 0) + 1
                if index % 10 == 0:
                    shutil.rmtree(media / "out", ignore_errors=True)  # the disk is not the subject
                if index % args.every == 0:
                    rows.append((index, f"{time.monotonic() - started:.0f} s", proc_numbers(proc.pid)))
                    print(f"{index} jobs: {rows[-1][2]}", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(base, ignore_errors=True)

    print("| jobs | elapsed | VmRSS MiB | RssAnon MiB | threads | fds |")
    print("|---:|---:|---:|---:|---:|---:|")
    for index, elapsed, n in rows:
        print(f"| {index} | {elapsed} | {n['rss_mib']:.1f} | {n['anon_mib']:.1f} | {n['threads']} | {n['fds']} |")
    base_row = next((r for r in rows if r[0] >= args.warmup), rows[0])
    last = rows[-1]
    print(f"\nFrom job {base_row[0]} to job {last[0]}: VmRSS {last[2]['rss_mib'] - base_row[2]['rss_mib']:+.1f} MiB, "
          f"RssAnon {last[2]['anon_mib'] - base_row[2]['anon_mib']:+.1f} MiB, threads "
          f"{last[2]['threads'] - base_row[2]['threads']:+d}, fds {last[2]['fds'] - base_row[2]['fds']:+d}.")
    print("\nOutcomes: " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
