"""A MIDI clock on JACK that keeps wall-clock time, as a hardware clock (a drum machine, a
sequencer) does: run as its own process by ``tests.hosts.midi.jack.MidiClock``.

    python -m tests.hosts.midi.clock_source BPM TICKS

It prints ``ready`` once its port ``fakeclock:clock`` exists, sends Start and then tick k at
T0 + k * 60 / (BPM * 24) seconds (``time.monotonic``, the clock JACK stamps with) after the
first line on stdin, and on the second line closes and prints what happened as one JSON
object: ``late`` (ticks written after the cycle they were due in: this client ran late),
``latest`` (the most late one, in seconds) and ``xruns`` (cycles missed in the graph).

Why its own process and wall time: a Python JACK callback needs the GIL; in the test's
process other threads hold it, and a holder descheduled under load made the callback miss
cycles. And a clock placed at JACK frames is not steady in wall time when the graph misses
cycles (the dummy driver's frames then fall behind the wall clock by the stall): a receiver
that only has wall-clock stamps (python-rtmidi) cannot see that master's tempo exactly. This
one, when late, sends the ticks it owes at once and stays on its grid.
"""

from __future__ import annotations

import gc
import json
import sys
import time


def main(argv: list[str]) -> int:
    import jack

    bpm, ticks = float(argv[0]), int(argv[1])
    interval = 60.0 / (bpm * 24)
    client = jack.Client("fakeclock", no_start_server=True)
    port = client.midi_outports.register("clock")
    rate = client.samplerate
    state = {"armed": False, "t0": None, "next": 0, "late": 0, "latest": 0.0, "xruns": 0}

    def process(frames: int) -> None:
        port.clear_buffer()
        if not state["armed"]:
            return
        start = time.monotonic() - client.frames_since_cycle_start / rate  # this cycle's first frame
        end = start + frames / rate
        if state["t0"] is None:
            state["t0"] = start + 0.05  # the first tick a few cycles on, Start now
            port.write_midi_event(0, b"\xfa")
        while state["next"] < ticks:
            due = state["t0"] + state["next"] * interval
            if due >= end:
                break
            offset = round((due - start) * rate)
            if offset < 0:  # owed from a cycle this client was not run in time for: now
                state["late"] += 1
                state["latest"] = max(state["latest"], -offset / rate)
            port.write_midi_event(min(max(offset, 0), frames - 1), b"\xf8")
            state["next"] += 1

    @client.set_xrun_callback
    def xrun(delay: float) -> None:
        state["xruns"] += 1

    client.set_process_callback(process)
    client.activate()
    gc.collect()
    gc.freeze()  # no collection of the imports inside the callback
    print("ready", flush=True)
    sys.stdin.readline()
    state["armed"] = True
    sys.stdin.readline()
    client.deactivate()
    client.close()
    sent = state["next"]
    print(json.dumps({"sent": sent, "late": state["late"], "latest": round(state["latest"], 4),
                      "xruns": state["xruns"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
