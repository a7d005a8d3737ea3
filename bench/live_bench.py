"""Live and MIDI host timing on a real JACK graph (jackd's dummy backend, 512-frame period).

Two tables:

1. Bar-line offset of `studio-bridge live`: a fake DAW (a JACK-Client process callback)
   sends MIDI clock at exact frames; a one-bar file is sent over OSC /bridge/live/play
   again and again, each playing from the next bar line; jack_rec records the DAW's frame
   count beside the host's output, so every onset is measured in samples against the true
   bar line. The host's own tempo estimate (its `playing` event) is listed too.
2. Tempo read by `studio-bridge midi`'s path (hosts/midi/ports.Endpoint polled as the host
   polls it, times from python-rtmidi's deltas, hosts/midi/clock.ClockEstimator) from the
   same exact clock: rtmidi stamps every event of a JACK cycle with that cycle's wake-up
   time, so this is the jitter a real controller setup sees.

Usage (idle machine): .venv/bin/python bench/live_bench.py [--tempos 93.5,120,123,174]
    [--plays 6] [--seconds 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.hosts.live.fakedaw import (  # noqa: E402 - after the path is set
    PERIOD,
    RATE,
    FakeDaw,
    Jackd,
    LiveProc,
    connect,
    onset,
    record,
    song,
    stop_recording,
    tick_frames,
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bar_frames(bpm: float) -> float:
    return 4 * RATE * 60.0 / bpm


def live_offsets(jackd: Jackd, bpm: float, plays: int, folder: Path) -> list[dict]:
    """Play a one-bar file ``plays`` times from successive bar lines; one row per play."""
    from pythonosc.udp_client import SimpleUDPClient

    bar = bar_frames(bpm)
    clip = folder / "bar.wav"
    noise = np.random.default_rng(1).uniform(-0.5, 0.5, (int(bar * 0.75), 2)).astype(np.float32)
    soundfile.write(str(clip), noise, RATE, subtype="FLOAT")
    bars = 3 + 2 * plays
    live = LiveProc(jackd.env, ["--name", "sbb", "--osc-port", "0", "--media-dir", str(folder / "media"),
                                "--addr", f"unix://{folder}/none.sock"], folder)
    daw = recorder = None
    events = []
    try:
        ready = live.wait_for("ready")
        daw = FakeDaw(song(bpm, bars * bar / RATE), tick_frames(bpm, bars * 96), [])
        connect([("fakedaw:clock", "sbb:midi_in")])
        recorder = record(jackd, folder / "rec.wav", ["fakedaw:sync", "sbb:output_1", "sbb:output_2"])
        daw.play()
        daw.wait_until(int(1.3 * bar))
        osc = SimpleUDPClient("127.0.0.1", ready["osc_port"])
        for n in range(plays):
            osc.send_message("/bridge/live/play", [str(clip)])
            armed = live.wait_for("armed", 10)
            playing = live.wait_for("playing", 10)
            events.append((armed, playing))
            true_bar = int(np.floor(playing["bar_beat"] * 24 * RATE * 60.0 / (bpm * 24) + 0.5))
            daw.wait_until(true_bar + int(bar) + PERIOD)  # this one has played: the next bar is free
        last = events[-1][1]
        stop_recording(daw, recorder, int(np.floor(last["bar_beat"] * RATE * 60.0 / bpm)) + int(2 * bar))
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        if daw is not None:
            daw.close()
        live.stop()
    gaps = list(daw.gaps) if daw is not None else []
    rows = []
    for armed, playing in events:
        played, _ = soundfile.read(armed["path"], dtype="float32", always_2d=True)
        true_bar = int(np.floor(playing["bar_beat"] * RATE * 60.0 / bpm + 0.5))
        found = onset(folder / "rec.wav", played, true_bar)
        rows.append({"bar_beat": playing["bar_beat"], "offset": None if found is None else found[2],
                     "bpm": playing["bpm"], "xruns": playing["xruns"], "daw_gaps": len(gaps)})
    return rows


def midi_tempo(bpm: float, seconds: float) -> list[float]:
    """The tempo the MIDI host's input path reads, once a second after the first bar."""
    from hosts.midi.clock import ClockEstimator
    from hosts.midi.ports import Endpoint, rtmidi_api

    clock = ClockEstimator()
    # The rtmidi port exists before the fake DAW's Python callback runs, and is wired by
    # jack_connect: no JACK client opens in this process while that callback needs the GIL.
    inp = Endpoint(rtmidi_api("jack"), "input", virtual="bench-in").open()
    daw = None
    readings = []
    try:
        daw = FakeDaw(np.zeros((1, 1), np.float32), tick_frames(bpm, int((seconds + 2) * bpm / 60 * 24)), [])
        subprocess.run(["jack_connect", "fakedaw:clock", "studio-bridge:bench-in"], check=True,
                       capture_output=True, timeout=10)  # Jackd set JACK_DEFAULT_SERVER
        daw.play()
        start = time.monotonic()
        next_read = start + 96 * 60.0 / bpm / 24 + 0.5
        while time.monotonic() - start < seconds:
            for t, message in inp.receive():
                if message.type == "clock":
                    clock.tick(t)
                elif message.type == "start":
                    clock.start(t)
            if time.monotonic() >= next_read and clock.bpm:
                readings.append(clock.bpm)
                next_read += 1.0
            time.sleep(0.002)  # the host's READ_INTERVAL
    finally:
        if daw is not None:
            daw.close()
        inp.close()
    return readings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tempos", default="93.5,120,123,174")
    parser.add_argument("--plays", type=int, default=6, help="results played per tempo (live)")
    parser.add_argument("--seconds", type=float, default=8.0, help="clock per tempo (midi)")
    args = parser.parse_args()
    tempos = [float(t) for t in args.tempos.split(",")]
    with tempfile.TemporaryDirectory(prefix="sb-live-bench-") as tmp:
        jackd = Jackd(Path(tmp))
        try:
            live_rows, midi_rows = {}, {}
            for bpm in tempos:
                folder = Path(tmp) / f"live-{bpm}"
                folder.mkdir()
                log(f"live at {bpm} BPM ...")
                live_rows[bpm] = live_offsets(jackd, bpm, args.plays, folder)
                log(f"midi at {bpm} BPM ...")
                midi_rows[bpm] = midi_tempo(bpm, args.seconds)
        finally:
            jackd.stop()
    print(f"jackd -d dummy -r {RATE} -p {PERIOD}; clock sent at exact frames by a JACK-Client callback\n")
    print("live: onset of a result against the true bar line (samples at 48 kHz; None: the recorder "
          "missed that cycle)")
    print(f"{'BPM':>6}  {'plays':>5}  {'offsets':<32} {'max |off|':>9}  {'host BPM error':>14}  xruns")
    for bpm, rows in live_rows.items():
        offsets = [r["offset"] for r in rows]
        measured = [abs(o) for o in offsets if o is not None]
        errors = [abs(r["bpm"] - bpm) for r in rows]
        print(f"{bpm:>6}  {len(rows):>5}  {str(offsets):<32} {max(measured) if measured else '-':>9}  "
              f"{max(errors):>14.4f}  {rows[-1]['xruns']} (DAW gaps {rows[-1]['daw_gaps']})")
    print("\nmidi: tempo read through python-rtmidi on JACK (once a second after the first bar)")
    print(f"{'BPM':>6}  {'readings':>8}  {'min':>8}  {'max':>8}  {'max |error|':>11}")
    for bpm, readings in midi_rows.items():
        if not readings:
            print(f"{bpm:>6}  {0:>8}  -  -  -")
            continue
        worst = max(abs(r - bpm) for r in readings)
        print(f"{bpm:>6}  {len(readings):>8}  {min(readings):>8.3f}  {max(readings):>8.3f}  {worst:>11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
