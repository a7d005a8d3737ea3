"""Memory of a real daemon mastering long files: does it stay bounded?

Starts ``python -m bridge serve`` (temp state dir and media root; the unix
socket is read from ``<state-dir>/daemon.json``), warms the master engine on
a 1 s clip, then masters N minutes of synthesised stereo music (kick, hats,
bass, chords, sections 12 dB apart: real crest factor and loudness range)
written block by block as a float WAV. One job per length, each on a fresh
daemon (VmHWM is a per-process peak); the daemon's ``/proc/PID/status`` is
sampled every 50 ms:

* ``RssAnon`` - private memory (heap, numpy arrays): what must stay bounded.
* ``VmHWM`` - peak resident set, which also counts pages of files the daemon
  maps (long inputs, intermediates and the result are disk-backed arrays in
  its scratch folder); the kernel drops those pages under pressure.

The result is read back block by block and measured with libebur128 here
too, so the table's LUFS/TP are not only the engine's word.

Usage: .venv/bin/python bench/master_memory.py [--minutes 2 10 20] [--rate 48000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
sys.path.insert(0, str(ROOT))
BLOCK_S = 10  # seconds synthesised / read back per step
sys.path.insert(0, str(ROOT / "bench"))
from separate_memory import Sampler, status_mib  # noqa: E402  (the same /proc sampling)


def synth(start: int, frames: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """``frames`` frames of a 120 BPM groove from absolute frame ``start``.

    Everything is a function of absolute time (the noise aside), so blocks
    join without seams. Sections alternate every 30 s between full level and
    -12 dB, so the limiter and the gated loudness both have work to do.
    """
    t = (start + np.arange(frames)) / rate
    beat = t % 0.5
    kick = np.sin(2 * np.pi * (50 * beat + 100 / 30 * (1 - np.exp(-30 * beat)))) * np.exp(-8 * beat)
    eighth = t % 0.25
    hats = rng.standard_normal((frames, 2)) * np.exp(-60 * eighth)[:, None] * 0.15
    roots = np.array([110.0, 87.31, 130.81, 98.0])[(t // 2).astype(int) % 4]
    bass = 0.35 * np.sin(2 * np.pi * roots * t) * (0.6 + 0.4 * np.exp(-4 * beat))
    chord = sum(np.sin(2 * np.pi * roots * k * t + k) for k in (2, 2.5, 3, 4)) * 0.08
    section = np.where((t // 30) % 2 == 0, 1.0, 0.25)
    left = 0.5 * kick + bass + 1.2 * chord
    right = 0.5 * kick + bass + 0.8 * chord
    mix = np.stack([left, right], axis=1) + hats
    return (0.3 * section[:, None] * mix).astype(np.float32)


def write_music(path: Path, minutes: float, rate: int) -> float:
    """Float WAV written block by block (this process stays small); MiB."""
    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * rate)
    step = rate * BLOCK_S
    with soundfile.SoundFile(path, "w", rate, 2, subtype="FLOAT") as handle:
        for start in range(0, frames, step):
            handle.write(synth(start, min(step, frames - start), rate, rng))
    return frames * 2 * 4 / 2**20


def measure_file(path: Path) -> tuple[float, float, int, int]:
    """(integrated LUFS, true peak dBTP, frames, rate) of a file, read block by block."""
    import pyebur128 as ebur

    mode = ebur.MeasurementMode.MODE_I | ebur.MeasurementMode.MODE_TRUE_PEAK
    with soundfile.SoundFile(path) as handle:
        state = ebur.R128State(handle.channels, handle.samplerate, mode)
        for block in handle.blocks(handle.samplerate * BLOCK_S, dtype="float64", always_2d=True):
            state.add_frames(np.ascontiguousarray(block).ravel(), block.shape[0])
        peak = max(ebur.get_true_peak(state, c) for c in range(handle.channels))
        return (ebur.get_loudness_global(state), 20 * np.log10(peak), handle.frames,
                handle.samplerate)


class Daemon:
    """``python -m bridge serve`` in a subprocess with its own state dir and media root."""

    def __init__(self, base: Path):
        self.base = base
        self.state, self.media = base / "state", base / "media"
        self.state.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        from bridge.client import Client

        self._log = open(self.base / "daemon.log", "w")
        self.proc = subprocess.Popen(
            [PY, "-m", "bridge", "serve", "--grpc", "127.0.0.1:0", "--socket",
             str(self.base / "s.sock"), "--osc", "", "--state-dir", str(self.state),
             "--media-root", str(self.media), "--log-level", "WARNING"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._log)
        info_path, deadline = self.state / "daemon.json", time.monotonic() + 60
        while not info_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: "
                                   f"{(self.base / 'daemon.log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("daemon never wrote daemon.json")
            time.sleep(0.01)
        info = json.loads(info_path.read_text())
        self.client = Client(info["socket"], timeout=600)  # the unix socket needs no token
        self.client.wait_until_serving(60)

    def master(self, clip: Path, params: dict) -> tuple[dict, float]:
        """One job (no result cache); (finished job, wall seconds submit -> done)."""
        t0 = time.perf_counter()
        job = self.client.run("master", {"audio": str(clip)}, params, str(self.media / "out"),
                              no_cache=True)
        wall = time.perf_counter() - t0
        if job["state"].upper() != "SUCCEEDED":
            raise RuntimeError(f"job {job['state']}: {job['error']}")
        return job, wall

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._log.close()


def one(base: Path, minutes: float, rate: int, params: dict) -> dict:
    daemon = Daemon(base)
    daemon.start()
    try:
        warm = daemon.media / "warm.wav"
        soundfile.write(warm, synth(0, rate, rate, np.random.default_rng(1)), rate, subtype="FLOAT")
        daemon.master(warm, params)  # imports numpy/scipy/pedalboard: idle = engine loaded
        clip = daemon.media / f"long-{minutes:g}.wav"
        mix_mib = write_music(clip, minutes, rate)
        idle = status_mib(daemon.proc.pid)
        sampler = Sampler(daemon.proc.pid)
        sampler.start()
        job, wall = daemon.master(clip, params)
        sampler.done.set()
        sampler.join()
        after = status_mib(daemon.proc.pid)
        out = Path(job["outputs"][0]["path"])
        lufs, peak, frames, out_rate = measure_file(out)
        same = frames == int(minutes * 60 * rate) and out_rate == rate
        out.unlink()
        clip.unlink()
        return {"minutes": minutes, "wall": wall, "mix": mix_mib, "idle": idle["RssAnon"],
                "peak": sampler.peak_anon, "hwm": after["VmHWM"], "lufs": lufs, "tp": peak,
                "same": same, "report": job["report"]}
    finally:
        daemon.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0, 20.0])
    parser.add_argument("--rate", type=int, default=48000)
    parser.add_argument("--no-eq", action="store_true", help="master with eq=false")
    args = parser.parse_args()
    params = {"preset": "streaming"} | ({"eq": False} if args.no_eq else {})
    rows = []
    with tempfile.TemporaryDirectory(prefix="sbmm-") as tmp:
        for minutes in args.minutes:
            print(f"[master_memory] {minutes:g} min at {args.rate} Hz", file=sys.stderr)
            rows.append(one(Path(tmp) / f"d{len(rows)}", minutes, args.rate, params))
    print(f"Input: synthesised stereo float WAV at {args.rate} Hz; master {json.dumps(params)} "
          f"(-14 LUFS / -1 dBTP); result float WAV; load average {os.getloadavg()[0]:.2f}.\n")
    print("| minutes | input (MiB) | job wall (s) | realtime | RssAnon idle, engine loaded (MiB) "
          "| peak RssAnon during job (MiB) | peak - idle (MiB) | VmHWM incl. mapped files (MiB) "
          "| LUFS / dBTP (libebur128 on the file) | limiter passes | exact length |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")
    for r in rows:
        print(f"| {r['minutes']:g} | {r['mix']:.0f} | {r['wall']:.1f} | "
              f"{r['minutes'] * 60 / r['wall']:.1f}x | {r['idle']:.0f} | {r['peak']:.0f} | "
              f"{r['peak'] - r['idle']:.0f} | {r['hwm']:.0f} | {r['lufs']:.3f} / {r['tp']:.3f} | "
              f"{r['report']['limiter']['passes']} | {'yes' if r['same'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
