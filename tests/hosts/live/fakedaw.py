"""Real-JACK helpers (tests and bench/live_bench.py): a private jackd, a fake DAW (JACK-Client),
the live CLI as a process, and jack_rec recordings measured against the DAW's frames."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

ROOT = Path(__file__).resolve().parents[3]
RATE = 48000
PERIOD = 512  # a 10.7 ms cycle: a loaded 2-core machine keeps up (256 missed cycles under a full test run)


def have_jack() -> bool:
    try:
        import jack  # noqa: F401
    except (ImportError, OSError):
        return False
    return bool(shutil.which("jackd") and shutil.which("jack_rec"))


class Jackd:
    """``jackd -n <unique> -d dummy -r 48000 -p PERIOD``, stopped by PID."""

    def __init__(self, log_dir: Path):
        self.name = f"sblive{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
        self.log = open(log_dir / "jackd.log", "wb")
        self.proc = subprocess.Popen(["jackd", "-n", self.name, "-d", "dummy", "-r", str(RATE), "-p",
                                      str(PERIOD)], stdout=self.log, stderr=subprocess.STDOUT)
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "HF_HUB_OFFLINE": "1",
                    "JACK_NO_AUDIO_RESERVATION": "1"}
        self._old_env = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name  # for JACK-Client in this process
        import jack

        deadline = time.monotonic() + 10
        while True:
            try:
                jack.Client("probe", no_start_server=True, servername=self.name).close()
                return
            except jack.JackOpenError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jackd did not start: {(log_dir / 'jackd.log').read_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self._old_env is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = self._old_env


def tick_frames(bpm: float, ticks: int) -> np.ndarray:
    """Frames (from the song's start, F0) of the clock ticks: exact times rounded to the sample."""
    period = RATE * 60.0 / (bpm * 24)
    return np.floor(np.arange(ticks) * period + 0.5).astype(np.int64)


def song(bpm: float, seconds: float, seed: int = 1) -> np.ndarray:
    """A stereo send: a held chord (harmonic) and a noise click on every beat (percussive)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    tone = 0.05 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277.2 * t) + np.sin(2 * np.pi * 329.6 * t))
    rng = np.random.default_rng(seed)
    hits = np.zeros(n)
    beat = RATE * 60.0 / bpm
    click = rng.standard_normal(480) * np.exp(-np.arange(480) / 60.0) * 0.2
    for b in np.arange(0, n, beat):
        i = int(round(b))
        hits[i:i + len(click)] += click[:n - i]
    mono = np.clip(tone + hits, -0.9, 0.9).astype(np.float32)  # jack_rec -b 32 wraps at 1.0
    return np.stack([mono, mono * 0.9], axis=1)


SYNC_SCALE = 2 ** 23  # sync value k / 2**23 is exact in float32 and in jack_rec's 32-bit PCM


def sync_frames(channel: np.ndarray) -> np.ndarray:
    """The fake DAW's frame (from F0) on each row of a recorded sync channel; -1 before F0."""
    return np.rint(channel.astype(np.float64) * SYNC_SCALE).astype(np.int64) - 1


class FakeDaw:
    """A JACK client sending MIDI clock, notes and audio at exact frames, plus a sync signal.

    Nothing is sent until ``play()``; then the song's first frame F0 is a few periods ahead, the
    Start message goes just before it and tick k at F0 + tick_frames[k]. The sync port carries
    the DAW's own frame count from F0 on every sample (0 before): a recorder that drops a
    cycle still says on each row which DAW frame it holds (see ``sync_frames``).
    ``midi`` is a list of (frame from F0, bytes) events besides the clock.
    """

    def __init__(self, audio: np.ndarray, ticks: np.ndarray, midi: list[tuple[int, bytes]],
                 stop_clock_at: int | None = None):
        import jack

        self.client = jack.Client("fakedaw", no_start_server=True)
        self.midi_out = self.client.midi_outports.register("clock")
        self.send = [self.client.outports.register(f"send_{i + 1}") for i in range(audio.shape[1])]
        self.sync = self.client.outports.register("sync")
        events = [(-64, b"\xfa")] + [(int(f), b"\xf8") for f in ticks
                                     if stop_clock_at is None or f < stop_clock_at]
        events += list(midi)
        self.events = sorted(events, key=lambda e: e[0])
        self.audio = audio
        self.f0: int | None = None
        self._armed = False
        self._next = 0
        self.gaps: list[tuple[int, int]] = []  # (block frame, timer read - frame) where they differ
        self._last_base: int | None = None
        self.client.set_process_callback(self._process)
        self.client.activate()

    def play(self, lead_frames: int = 4800) -> int:
        self._lead = lead_frames
        self._armed = True
        while self.f0 is None:
            time.sleep(0.001)
        return self.f0

    def wait_until(self, frame: int, timeout: float = 20.0) -> None:
        """Block until the song has played past ``frame`` (from F0), in JACK's own time:
        a wall-clock sleep would race a slow start of the JACK cycle."""
        deadline = time.monotonic() + timeout
        while self.f0 is None or self._last_base is None or self._last_base < self.f0 + frame:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fake DAW did not reach frame {frame} in {timeout} s")
            time.sleep(0.005)

    def _process(self, n: int) -> None:
        # JACK's frame timer, but never behind the previous block: a callback that runs late
        # reads the next cycle's (seen here); a jump forward is a missed cycle (noted in gaps).
        read = self.client.last_frame_time
        base = read if self._last_base is None else max(read, self._last_base + n)
        if self._last_base is not None and base != self._last_base + n:
            self.gaps.append((base, base - self._last_base - n))
        self._last_base = base
        self.midi_out.clear_buffer()
        for port in self.send:
            port.get_array()[:] = 0
        sync = self.sync.get_array()
        sync[:] = 0
        if not self._armed:
            return
        if self.f0 is None:
            self.f0 = base + self._lead
        f0 = self.f0
        while self._next < len(self.events):
            rel, data = self.events[self._next]
            frame = f0 + rel
            if frame >= base + n:
                break
            if frame >= base:
                self.midi_out.write_midi_event(frame - base, data)
            self._next += 1
        rel = np.arange(base - f0, base - f0 + n)
        sync[:] = np.where(rel >= 0, (rel % (SYNC_SCALE // 2) + 1) / SYNC_SCALE, 0.0)  # < 0.5: no wrap
        lo, hi = max(base, f0), min(base + n, f0 + len(self.audio))
        if lo < hi:
            for c, port in enumerate(self.send):
                port.get_array()[lo - base:hi - base] = self.audio[lo - f0:hi - f0, c]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class LiveProc:
    """`python -m bridge live --json ...` as a process; its events arrive on a queue."""

    def __init__(self, env: dict, args: list[str], log_dir: Path):
        self.err = open(log_dir / "live.err", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "live", "--json", *args], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def wait_for(self, name: str, timeout: float = 20.0) -> dict:
        """The next event called ``name`` (others are skipped, kept in ``seen``)."""
        return self.wait_for_any((name,), timeout)

    def wait_for_any(self, names: tuple[str, ...], timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {names} event in {timeout}s; saw {self.seen}")
            try:
                event = self.events.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"live exited {self.proc.returncode}; saw {self.seen}") from None
                continue
            self.seen.append(event)
            if event["event"] in names:
                return event

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)  # every line it printed is on the queue
        self.err.close()
        return self.proc.returncode


def connect(pairs: list[tuple[str, str]]) -> None:
    import jack

    client = jack.Client("connector", no_start_server=True)
    try:
        for a, b in pairs:
            client.connect(a, b)
    finally:
        client.close()


def measure(recording: np.ndarray, played: np.ndarray, expected_index: int, search: int = 4000) -> int:
    """The lag where ``played`` sits in the recording's channel 1, near ``expected_index``."""
    ref = played[:, 0]
    lo = max(0, expected_index - search)
    seg = recording[lo:expected_index + search + len(ref), 1]
    corr = np.correlate(seg, ref, mode="valid")
    return lo + int(np.argmax(corr))


def onset(rec: Path, played: np.ndarray, true_bar: int):
    """(recording, row where ``played`` starts, its offset in samples from ``true_bar``), or None
    when the recorder does not hold the DAW's frames there in order (it ran late: measure again)."""
    recording, rate = soundfile.read(str(rec), dtype="float32", always_2d=True)
    assert rate == RATE
    frames = sync_frames(recording[:, 0])  # the DAW's frame on each recorded row
    rows = np.flatnonzero(frames == true_bar)
    span = slice(rows[0], rows[0] + len(played) + RATE // 2) if len(rows) else None
    if span is None or len(frames[span]) < len(played) + RATE // 2 or np.any(np.diff(frames[span]) != 1):
        jumps = np.flatnonzero((np.diff(frames) != 1) & (frames[:-1] >= 0))
        print(f"the recording does not hold the DAW's frames {true_bar}..+{len(played) + RATE // 2} in "
              f"order ({len(frames)} rows; frame jumps at rows {jumps[:5]}: "
              f"{[(int(frames[j]), int(frames[j + 1])) for j in jumps[:5]]}; jack_rec: {recorder_said(rec)}); "
              f"measured again")
        return None
    lag = measure(recording, played, rows[0])
    return recording, lag, int(frames[lag]) - true_bar


def stop_recording(daw: FakeDaw, recorder: subprocess.Popen, until: int) -> None:
    """Stop jack_rec once the fake DAW has played past ``until`` (frames from F0)."""
    daw.wait_until(until, timeout=30)
    time.sleep(0.5)  # the recorder's disk thread catches up before it is stopped
    recorder.send_signal(signal.SIGINT)
    recorder.wait(10)


def record(jackd: Jackd, path: Path, ports: list[str]) -> subprocess.Popen:
    """jack_rec on ``ports`` until SIGINT, with a 10 s buffer (its default 16384 frames drops
    samples when its disk thread stalls for a third of a second)."""
    with open(path.with_suffix(".err"), "wb") as err:  # the child keeps its own copy
        recorder = subprocess.Popen(["jack_rec", "-f", str(path), "-d", "300", "-b", "32", "-B",
                                     str(10 * RATE), *ports], env=jackd.env, stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(0.3)
    return recorder


def recorder_said(rec: Path) -> str:
    """The end of what jack_rec printed while recording ``rec``."""
    return rec.with_suffix(".err").read_text(errors="replace").strip()[-300:] or "said nothing"
