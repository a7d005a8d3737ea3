"""`studio-bridge demo`: the main job end to end on material made on the spot.

It renders a short piece with pyo's offline server (drums, bass and a pad in
A minor at 110 BPM), starts a real daemon as a subprocess, masters the piece
through the client like any host would, stops the daemon, and returns the
job with the loudness report.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .client import Client
from .core.errors import Unavailable

BPM = 110.0
# A minor: Am - F - C - G, one chord per bar (MIDI note numbers).
CHORDS = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]


def render_song(path: Path, seconds: float = 12.0, rate: int = 48000) -> Path:
    """Render the demo piece to a 24-bit stereo WAV at ``path``.

    Raises:
        Unavailable: pyo is not installed (the `demo` extra).
    """
    tmp = path.with_name(f".{path.name}.part")
    with _quiet() as chatter:  # chatter["text"]: what pyo printed
        try:
            import pyo
        except ImportError:
            raise Unavailable("the demo needs pyo: pip install 'studio-bridge[demo]' "
                              "(installers/setup.sh does this)") from None
        server = pyo.Server(sr=rate, nchnls=2, duplex=0, audio="offline", verbosity=1).boot()
        server.recordOptions(dur=seconds, filename=str(tmp), fileformat=0, sampletype=1)
        voices = _band(pyo)  # keep references: pyo stops objects that are garbage collected
        server.start()  # offline: renders the whole duration, then returns
        server.shutdown()
        del voices
    if not tmp.exists():
        raise Unavailable(f"pyo rendered nothing: {chatter['text'][-2000:]}")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _quiet():
    """Send pyo's console chatter (C printf and Python print) to a temp file.

    The CLI's --json promises exactly one JSON object on stdout.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    chatter = {"text": ""}
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            with contextlib.redirect_stdout(sink):
                yield chatter
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            chatter["text"] = sink.read()


def _band(pyo) -> list:
    beat = 60.0 / BPM
    bar = pyo.Metro(time=4 * beat).play()
    eighths = pyo.Metro(time=beat / 2).play()
    quarters = pyo.Metro(time=beat).play()
    notes = [pyo.Iter(bar, choice=[pyo.midiToHz(chord[i]) for chord in CHORDS]) for i in range(3)]
    pad = [pyo.SuperSaw(freq=pyo.SigTo(n, time=0.05), detune=0.4, bal=0.7, mul=0.05) for n in notes]
    pad_mix = pyo.ButLP(pyo.Mix(pad, voices=2), freq=2500)
    bass_env = pyo.TrigEnv(eighths, table=pyo.ExpTable([(0, 0), (64, 1), (8191, 0)], exp=3),
                           dur=beat / 2 * 0.95, mul=0.35)
    bass = pyo.Sine(freq=pyo.SigTo(notes[0] / 2, time=0.01), mul=bass_env)
    kick_pitch = pyo.TrigEnv(quarters, table=pyo.ExpTable([(0, 1), (8191, 0)], exp=6),
                             dur=0.12, mul=110, add=45)
    kick = pyo.Sine(freq=kick_pitch, mul=pyo.TrigEnv(
        quarters, table=pyo.ExpTable([(0, 1), (8191, 0)], exp=4), dur=0.35, mul=0.6))
    hat = pyo.ButHP(pyo.Noise(mul=pyo.TrigEnv(
        eighths, table=pyo.ExpTable([(0, 1), (8191, 0)], exp=8), dur=0.06, mul=0.12)), freq=7000)
    room = pyo.Freeverb(pad_mix, size=0.6, damp=0.6, bal=0.25)
    mix = [room.out(), pyo.Pan(bass, outs=2, pan=0.5).out(), pyo.Pan(kick, outs=2, pan=0.5).out(),
           pyo.Pan(hat, outs=2, pan=0.65).out()]
    return [bar, eighths, quarters, notes, pad, pad_mix, bass_env, bass, kick_pitch, kick, hat, mix]


def run_demo(out: str, seconds: float = 12.0, json_mode: bool = False) -> dict:
    """Render, serve, master; returns the CLI's job JSON plus `input`."""
    folder = Path(out).expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    song = render_song(folder / "demo-song.wav", seconds)
    runtime = Path(tempfile.mkdtemp(prefix="sb-demo-"))  # short path: unix sockets allow ~100 chars
    daemon = _start_daemon(folder, runtime)
    try:
        with Client(f"unix://{runtime / 's.sock'}") as client:
            client.wait_until_serving(timeout=20)
            job = client.run("master", {"audio": str(song)}, {"preset": "streaming"},
                             out_dir=str(folder), client="demo", no_cache=True)
    finally:
        _stop_daemon(daemon)
        shutil.rmtree(runtime, ignore_errors=True)
    return {"job_id": job["job_id"], "state": job["state"], "engine": job["engine"],
            "input": str(song), "outputs": [{"path": o["path"], "kind": o["kind"]} for o in job["outputs"]],
            "report": job["report"], "error": job["error"], "cached": job["cached"]}


def _start_daemon(folder: Path, runtime: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bridge", "serve", "--grpc", "", "--osc", "",
           "--socket", str(runtime / "s.sock"), "--state-dir", str(runtime / "state"),
           "--media-root", str(folder), "--log-level", "WARNING"]
    log = open(runtime / "daemon.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not (runtime / "state" / "daemon.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise Unavailable(f"the demo daemon did not start: "
                              f"{(runtime / 'daemon.log').read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return proc


def _stop_daemon(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    print(json.dumps(run_demo(sys.argv[1] if len(sys.argv) > 1 else "studio-bridge-demo"), indent=2))
