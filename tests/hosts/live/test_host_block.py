"""The live host's audio-thread logic, block by block, with pyo's manual server and MIDI fed
at exact frames (no JACK): what happens to a result across Stop, Start and a newer result."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, soundfile
    from hosts.live.host import LiveHost, Options, _import_pyo
    from hosts.live.ring import FrameRing

    pyo = _import_pyo()
    block, rate, tick = 512, 48000, 1000  # 120 BPM: a tick every 1000 frames, a bar every 96000
    server = pyo.Server(sr=rate, nchnls=2, buffersize=block, duplex=0, audio="manual")
    server.deactivateMidi(); server.setVerbosity(1); server.boot(); server.start()
    host = LiveHost(Options(bars=1))
    host._pyo, host.rate, host.block = pyo, rate, block
    host._ring, host._input = FrameRing(rate * 10, 2), np.zeros((block, 2), np.float32)
    class Jack: xruns, xrun_frames, skipped = 0, [], 0
    host._jack = Jack()
    path = sys.argv[1]
    soundfile.write(path, np.full((rate, 2), 0.25, np.float32), rate, subtype="FLOAT")
    frame, next_tick, clock_on, seen = 0, None, False, []

    def run(until):
        global frame, next_tick
        while frame < until:
            while clock_on and next_tick < frame + block:
                host._on_midi(next_tick, b"\\xf8"); next_tick += tick
            host._block(frame); server.process(); frame += block
            while not host._rt_events.empty():
                seen.append(host._rt_events.get())

    def start(at):
        global clock_on, next_tick
        run(at); host._on_midi(at, b"\\xfa"); clock_on, next_tick = True, at

    def stop(at):
        global clock_on
        run(at); host._on_midi(at, b"\\xfc"); clock_on = False

    out = {}
    start(0)
    stop(37 * 24 * tick + 1)                    # 37 beats, then Stop
    host._arm(path, rate, "armed-while-stopped")   # a result arrives while stopped
    out["armed_beat"] = host._pending.target_beat
    restart = 1_000_000
    start(restart)
    run(restart + 96000 + 8 * block)              # a few blocks into the result
    out["played_at"] = [e["frame"] - restart for e in seen if e["event"] == "playing"]
    out["voices_playing"] = len(host._voices)
    stop(frame + 100)                            # Stop silences a one-shot result
    run(frame + 4 * block)
    out["voices_after_stop"] = len(host._voices)
    start(frame + 1000)
    run(frame + 96000 * 2)                       # tempo from the fit again
    long = path.replace(".wav", "-long.wav")  # 5 s: still playing at the next bar line
    soundfile.write(long, np.full((5 * rate, 2), 0.25, np.float32), rate, subtype="FLOAT")
    host._arm(long, 5 * rate, "first")
    while not any(e.get("job_id") == "first" and e["event"] == "playing" for e in seen):
        run(frame + block)
    first = host._voices[-1]
    host._arm(long, 5 * rate, "second")
    while not any(e.get("job_id") == "second" and e["event"] == "playing" for e in seen):
        run(frame + block)
    run(frame + 4 * block)
    out["first_faded_for_second"] = first.fading and first not in host._voices
    out["voices_now"] = len(host._voices)
    server.stop(); server.shutdown()
    print(json.dumps(out))
""")


def test_results_follow_start_stop_and_newer_results(tmp_path):
    pytest.importorskip("pyo")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "result.wav")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["armed_beat"] == 40  # the next bar line of where the song stopped ...
    # ... but Start moved the song to bar 1: it plays from bar 2 of the new run, not beat 40
    assert out["played_at"] == [96000]
    assert out["voices_playing"] == 1 and out["voices_after_stop"] == 0
    assert out["first_faded_for_second"] and out["voices_now"] == 1
