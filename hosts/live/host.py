"""The live host: one JACK client whose audio is processed by pyo, timed by MIDI clock.

Time base: frames counted in this client's own process callback. MIDI events
(with their offsets in the block), the input audio and pyo's output are all
handled in that one callback, so a bar line computed from the clock fit lands
on the same sample of the same block the audio is in, whatever JACK's global
frame timer says.

Why not pyo's own JACK client (``Server(audio='jack', midi='jack')``) with
``RawMidi``, as first planned (all tried here):
- ``RawMidi`` hands Python (status, data1, data2) without the event's offset
  in the block (pyo's ``RawMidi_compute_next_data_frame``), so ticks are known
  only to the 256-frame period; a least-squares fit over such times puts the
  bar line ~30 samples off typically and up to ~450 at tempos whose tick is
  near a multiple of the period (simulated over 60-200 BPM).
- Timing the MIDI in a second JACK client and mapping pyo's blocks to JACK
  frames by reading ``jack_last_frame_time`` in pyo's block callback played
  results exactly on the bar in quiet runs but 256 or 512 samples off in runs
  with xruns: a callback that runs late reads the next cycle's frame time.

So the JACK client is made with JACK-Client, and pyo runs in ``audio='manual'``
mode inside its process callback: the inputs are copied into pyo's input
buffer, ``Server.process()`` runs one block, pyo's output buffer goes to the
output ports. A result starts on its bar line's sample: Trig -> SDelay(offset
in the block) -> Count -> TableIndex, created just before that block is
processed so they run in order, instead of at the next block boundary.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hosts.midi.clock import ClockEstimator

from . import schedule
from .jobs import prepare_playback, process_capture, warm_up
from .modes import build_request, parse_mode
from .ring import FrameRing

log = logging.getLogger(__name__)

FADE_MS = 3.0
WORKERS = 2
NOTE_ON = 0x90


@dataclass
class Options:
    """Everything `studio-bridge live` is told."""

    bars: int = 2
    beats_per_bar: int = 4
    mode: str = "separate"
    loop: bool = False
    trigger_note: int | None = 36
    osc_port: int | None = None
    media_dir: str = "~/studio-bridge-live"
    name: str = "studio-bridge-live"
    channels: int = 2
    addr: str | None = None
    token: str | None = None
    separate_model: str = "htdemucs"
    stems: str = "drums"
    generate_model: str = ""
    prompt: str = ""
    seed: int | None = None
    connect_midi: list[str] = field(default_factory=list)
    connect_in: list[str] = field(default_factory=list)
    connect_out: list[str] = field(default_factory=list)


class JackIO:
    """The JACK client: MIDI in, audio in and out; calls ``on_block`` once per period.

    Args:
        name: JACK client name.
        channels: audio ports each way.
        on_midi: called with (frame, bytes) for each MIDI event, in time order.
        on_block: called with (frame, inputs, outputs) after the MIDI of the block;
            inputs/outputs are lists of float32 arrays (one per channel).
        on_missed: called with the first frame of cycles this client was not run for
            (their MIDI and audio never reach it), before the next block's MIDI.
    """

    def __init__(self, name: str, channels: int, on_midi, on_block, on_missed):
        import jack

        try:
            self.client = jack.Client(name, no_start_server=True)
        except jack.JackError as exc:
            raise RuntimeError(f"cannot open JACK client '{name}' ({exc}); is jackd running "
                               f"(JACK_DEFAULT_SERVER names which one)?") from None
        self.midi = self.client.midi_inports.register("midi_in")
        self.inputs = [self.client.inports.register(f"input_{i + 1}") for i in range(channels)]
        self.outputs = [self.client.outports.register(f"output_{i + 1}") for i in range(channels)]
        self.frame = 0  # the host's one time base: the frame after the last block processed
        self._last_frames = 0
        self.xruns = 0
        self.skipped = 0  # frames of cycles this client was not run for
        self.xrun_frames: list[int] = []
        self._clock = schedule.BlockClock()

        @self.client.set_xrun_callback
        def xrun(delay):
            self.xruns += 1
            self.xrun_frames.append(self.frame)

        @self.client.set_process_callback
        def process(frames):
            base, skipped = self._clock.next(self.client.last_frame_time, frames)
            if skipped:
                self.skipped += skipped
                on_missed(base - skipped - self._last_frames)  # the last block's MIDI may be off too
            self._last_frames = frames
            for offset, data in self.midi.incoming_midi_events():
                on_midi(base + offset, bytes(data))
            on_block(base, [p.get_array() for p in self.inputs], [p.get_array() for p in self.outputs])
            self.frame = base + frames

    def activate(self) -> None:
        self.client.activate()

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class Voice:
    """One result playing from a table: Trig -> SDelay -> Count -> TableIndex (pyo objects)."""

    def __init__(self, pyo, table, length: int, offset: int, rate: int, block: int, loop: bool):
        self.trig = pyo.Trig()  # fires at sample 0 of this block ...
        self.delay = pyo.SDelay(self.trig, delay=schedule.delay_seconds(offset, rate),
                                maxdelay=(block + 2) / rate)  # ... moved to the bar line's sample
        self.count = pyo.Count(self.delay, min=0, max=length - 1 if loop else 0)
        self.gain = pyo.SigTo(1.0, time=FADE_MS / 1000.0, init=1.0)
        self.reader = pyo.TableIndex(table, self.count, mul=self.gain).out()
        self.table = table
        self.ends_at: int | None = None  # the frame after which it is stopped (None: loops on)
        self.fading = False

    def fade_out(self, frame: int, rate: int) -> None:
        self.gain.value = 0.0
        self.fading = True
        end = frame + int(rate * FADE_MS / 1000.0 * 4) + 1
        self.ends_at = end if self.ends_at is None else min(self.ends_at, end)

    def stop(self) -> None:
        for obj in (self.reader, self.gain, self.count, self.delay, self.trig):
            obj.stop()


@dataclass
class Pending:
    path: Path
    table: object
    length: int
    target_beat: float
    job_id: str
    relocations: int  # the clock's Start/Continue/Song Position count when it was armed


class LiveHost:
    """The running live host.

    Args:
        options: see ``Options``.
        on_status: called with one dict per thing that happens (``event`` key:
            ready, trigger, captured, job, playing, error, ...). From several threads.
    """

    def __init__(self, options: Options, on_status: Callable[[dict], None] | None = None):
        self.options = options
        self._status = on_status or (lambda event: None)
        self._rt_events: queue.SimpleQueue = queue.SimpleQueue()  # the audio thread never prints
        self._pool = None
        self.clock = ClockEstimator(beats_per_bar=options.beats_per_bar)
        self._triggers: queue.Queue = queue.Queue()
        self._pending: Pending | None = None
        self._voices: list[Voice] = []
        self._run_since: float | None = None  # seconds: start of the current uninterrupted run
        self._stop_voices = False
        self._stopping = threading.Event()
        self._block_frame = 0
        self._server = None
        self._jack = None
        self._osc = None
        self._worker = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Open the JACK client, boot pyo inside it, open the OSC port, start listening.

        Raises:
            RuntimeError: no JACK server to connect to.
        """
        from concurrent.futures import ProcessPoolExecutor

        self._pyo = _import_pyo()
        pyo = self._pyo
        # Jobs run in worker processes (see jobs.py), spawned and warmed up (their imports hold
        # their own GIL, not ours) before the JACK callback starts needing the GIL every period.
        # Two: a file sent to play does not wait behind a long daemon job.
        self._pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn"))
        for warming in [self._pool.submit(warm_up) for _ in range(WORKERS)]:
            warming.result()
        o = self.options
        self._jack = JackIO(o.name, o.channels, self._on_midi, self._on_block,
                            lambda frame: self.clock.missed(frame / self.rate))
        self.rate = self._jack.client.samplerate
        self.block = self._jack.client.blocksize
        server = pyo.Server(sr=self.rate, nchnls=o.channels, buffersize=self.block, duplex=1,
                            audio="manual")
        server.setIchnls(o.channels)
        server.setVerbosity(1)
        server.deactivateMidi()  # MIDI comes through JackIO, with frame offsets
        server.boot()
        server.start()
        self._server = server
        self._ring = FrameRing(int(self.rate * 60.0 / 30.0 * o.beats_per_bar * (o.bars + 2)),
                               o.channels)  # enough for N+2 bars down to 30 BPM
        self._input = _view(server.getInputAddr(), self.block, o.channels)
        self._output = _view(server.getOutputAddr(), self.block, o.channels)
        # A full garbage collection started by the audio thread's own allocations walks every
        # object imported so far (grpc, protobuf, numpy, pyo): freeze them out of its reach.
        gc.collect()
        gc.freeze()
        self._jack.activate()
        self._worker = threading.Thread(target=self._work, name="live-jobs", daemon=True)
        self._worker.start()
        threading.Thread(target=self._relay, name="live-events", daemon=True).start()
        if o.osc_port is not None:
            self._start_osc(o.osc_port)
        self._connect()
        self._status({"event": "ready", "client": o.name, "midi_in": self._jack.midi.name,
                      "inputs": [f"{o.name}:input_{i + 1}" for i in range(o.channels)],
                      "outputs": [f"{o.name}:output_{i + 1}" for i in range(o.channels)],
                      "osc_port": self._osc.server_address[1] if self._osc else None,
                      "rate": self.rate, "block": self.block})

    def close(self) -> None:
        """Stop everything this host started (idempotent)."""
        self._stopping.set()
        self._triggers.put(None)
        self._rt_events.put(None)
        if self._osc is not None:
            self._osc.shutdown()
            self._osc.server_close()
            self._osc = None
        if self._jack is not None:
            self._xruns = self._jack.xruns
            self._jack.close()
            self._jack = None
        if self._server is not None:
            self._server.stop()
            self._server.shutdown()
            self._server = None
        if self._pool is not None:
            # A worker in a daemon job would hold the exit until the job ends (minutes for a
            # generation): stop it. The daemon's job runs on; its result stays in the media folder.
            self._pool.shutdown(wait=False, cancel_futures=True)
            for child in multiprocessing.active_children():
                child.terminate()
            self._pool = None

    @property
    def xruns(self) -> int:
        """JACK xruns seen so far (cycles this client or another missed)."""
        return self._jack.xruns if self._jack is not None else getattr(self, "_xruns", 0)

    def __enter__(self) -> "LiveHost":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def trigger(self, mode: str | None = None, frame: int | None = None, source: str = "api") -> None:
        """Ask for the last N bars to be processed in ``mode`` (default: the configured one)."""
        if frame is None:
            frame = self._jack.frame
        self._triggers.put((mode or self.options.mode, frame, source))

    def play(self, paths: list[str], source: str = "api") -> None:
        """Play these audio files (mixed) from the next bar line, as a job's result is played.

        For results made elsewhere: `studio-bridge midi` sends a pad's generation here.
        """
        self._triggers.put(("play", list(paths), source))

    # --- JACK MIDI thread ------------------------------------------------------------------
    def _on_midi(self, frame: int, data: bytes) -> None:
        if not data:
            return
        t = frame / self.rate
        status = data[0]
        if status == 0xF8:
            self.clock.tick(t)
        elif status == 0xFA:
            self.clock.start(t)
            self._run_since = t
        elif status == 0xFB:
            self.clock.continue_(t)
            self._run_since = t
        elif status == 0xFC:
            self.clock.stop(t)
            self._run_since = None
            self._stop_voices = True
        elif status == 0xF2 and len(data) >= 3:
            self.clock.song_position(data[1] | (data[2] << 7), t)
            self._run_since = None if not self.clock.running else t
        elif (status & 0xF0) == NOTE_ON and len(data) >= 3 and data[2] > 0 \
                and self.options.trigger_note is not None and data[1] == self.options.trigger_note:
            self._triggers.put((self.options.mode, frame, "midi"))

    # --- pyo's audio thread -----------------------------------------------------------------
    def _on_block(self, frame: int, inputs: list, outputs: list) -> None:
        for c, array in enumerate(inputs):
            self._input[:, c] = array
        try:
            self._block(frame)
        except Exception as exc:  # noqa: BLE001 - pyo would print it and go on; say it once
            if not getattr(self, "_block_failed", False):
                self._block_failed = True
                self._rt_events.put({"event": "error", "code": "internal",
                                     "message": f"audio callback: {exc!r}"})
        self._server.process()
        for c, array in enumerate(outputs):
            array[:] = self._output[:, c]

    def _block(self, frame: int) -> None:
        self._block_frame = frame
        self._ring.write(frame, self._input)
        if self._stop_voices:
            self._stop_voices = False
            self._fade_all(frame)
        for voice in [v for v in self._voices if v.ends_at is not None and v.ends_at <= frame]:
            voice.stop()
            self._voices.remove(voice)
        pending = self._pending
        if pending is None or not self.clock.running:
            return
        bpm = self.clock.tempo  # right after Start: the fit so far, else the tempo before it
        if not bpm:
            return
        t = frame / self.rate
        now_beats = self.clock.beats(t)
        if pending.relocations != self.clock.relocations:  # the song moved since it was armed
            pending.relocations = self.clock.relocations
            pending.target_beat = schedule.next_bar_beat(now_beats, self.options.beats_per_bar)
        target = schedule.to_frame(schedule.beat_time(pending.target_beat, now_beats, t, bpm), self.rate)
        if target < frame:  # missed (clock jumped): take the next bar line
            pending.target_beat = schedule.next_bar_beat(now_beats, self.options.beats_per_bar)
            return
        offset = schedule.block_offset(target, frame, self.block)
        if offset is None:
            return
        self._fade_all(frame + offset)
        self._voices.append(Voice(self._pyo, pending.table, pending.length, offset, self.rate,
                                  self.block, self.options.loop))
        if not self.options.loop:
            self._voices[-1].ends_at = target + pending.length + self.block
        if self._pending is pending:  # else a newer one was armed meanwhile: keep it
            self._pending = None
        self._rt_events.put({"event": "playing", "frame": target, "bar_beat": pending.target_beat,
                      "block_frame": frame, "offset_in_block": offset, "path": str(pending.path),
                      "job_id": pending.job_id, "loop": self.options.loop, "bpm": bpm,
                      "beats_at_block": now_beats, "xruns": self._jack.xruns,
                      "xrun_frames": self._jack.xrun_frames[-20:], "skipped_frames": self._jack.skipped})

    def _fade_all(self, frame: int) -> None:
        """Fade out every voice not fading yet, from ``frame`` (Stop, or a newer result starting)."""
        for voice in self._voices:
            if not voice.fading:
                voice.fade_out(frame, self.rate)

    def _relay(self) -> None:
        while True:
            event = self._rt_events.get()
            if event is None:
                return
            self._status(event)

    # --- the job thread -----------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            item = self._triggers.get()
            if item is None:
                return
            mode, what, source = item
            try:
                if mode == "play":
                    self._play_files(what, source)
                else:
                    self._handle(mode, what, source)
            except Exception as exc:  # noqa: BLE001 - a failed trigger must not end the host
                log.debug("trigger failed", exc_info=True)
                self._status({"event": "error", "mode": mode, "message": str(exc),
                              "code": getattr(exc, "code", "internal")})

    def _handle(self, mode: str, frame: int, source: str) -> None:
        o = self.options
        parse_mode(mode)
        t = frame / self.rate
        self._status({"event": "trigger", "mode": mode, "frame": frame, "source": source})
        if not self.clock.running:
            raise _Refused("clock stopped: no MIDI clock is running, so there are no bars to send; "
                           "no job")
        bpm = self.clock.bpm
        if not bpm:
            raise _Refused("no tempo yet: the clock needs one full bar of ticks (96) after start; no job")
        start_s, end_s, first_beat = schedule.last_bars(self.clock.beats(t), t, bpm, o.bars,
                                                        o.beats_per_bar)
        tick = 60.0 / bpm / self.clock.ppqn  # the fit may put bar 1 a little before Start
        if first_beat < 0 or self._run_since is None or start_s < self._run_since - tick / 2:
            raise _Refused(f"the clock has not run through the last {o.bars} bar(s) "
                           f"(started or stopped inside them{self._xrun_note(start_s - 2 * (end_s - start_s))}); "
                           f"no job")
        start, end = schedule.to_frame(start_s, self.rate), schedule.to_frame(end_s, self.rate)
        self._wait_for_frame(end)
        if not self.clock.running or self._run_since is None or self._run_since > start_s + tick / 2:
            raise _Refused(f"clock stopped during the captured bars{self._xrun_note(start_s)}; no job")
        try:
            audio = self._ring.read(start, end)
        except LookupError:
            span = self._ring.span
            raise _Refused(f"the input has a gap inside the captured bars (this client missed JACK "
                           f"cycles: {self._jack.xruns} xruns so far; input held from frame "
                           f"{span[0] if span else None}); no job") from None
        folder = Path(o.media_dir).expanduser() / time.strftime("%Y%m%d-%H%M%S")
        folder.mkdir(parents=True, exist_ok=True)
        first_bar = int(first_beat // o.beats_per_bar) + 1
        wav = folder / f"bars-{first_bar}-{first_bar + o.bars - 1}.{frame}.wav"
        self._status({"event": "captured", "frame": self._block_frame, "path": str(wav),
                      "start_frame": start, "end_frame": end, "bpm": bpm, "bars": o.bars,
                      "first_bar": first_bar})
        try:
            request = build_request(mode, str(wav), bpm, o.bars, o.beats_per_bar, vars(o))
        except ValueError as exc:
            raise _Refused(f"{exc}; no job") from None
        # The bars are in hand: the next trigger is handled while this job runs.
        self._pool.submit(process_capture, audio, self.rate, str(wav), vars(request), o.channels, FADE_MS,
                          o.addr, o.token).add_done_callback(lambda done: self._finished(done, mode))

    def _finished(self, done, mode: str) -> None:
        """A worker's answer (in the pool's thread): arm the result, or say why there is none."""
        try:
            result = done.result()
            if not result["ok"]:
                raise _Refused(result["message"], result["code"])
            if "engine" in result:
                self._status({"event": "job", "job_id": result["job_id"], "engine": result["engine"],
                              "outputs": result["outputs"]})
            self._arm(result["played"], result["length"], result.get("job_id", ""))
        except Exception as exc:  # noqa: BLE001 - said, never lost in the pool's thread
            if self._stopping.is_set():
                return
            self._status({"event": "error", "mode": mode, "message": str(exc) or type(exc).__name__,
                          "code": getattr(exc, "code", "internal")})

    def _play_files(self, paths: list[str], source: str) -> None:
        self._status({"event": "play", "paths": paths, "source": source})
        if not paths:
            raise _Refused("play: no file given; send /bridge/live/play with one or more audio paths",
                           "invalid_argument")
        played = Path(self.options.media_dir).expanduser() / "played" / f"{Path(paths[0]).stem}.live.wav"
        self._pool.submit(prepare_playback, paths, self.rate, self.options.channels, FADE_MS,
                          str(played)).add_done_callback(lambda done: self._finished(done, "play"))

    def _arm(self, played: str, length: int, job_id: str) -> None:
        """Load a prepared result; the audio thread starts it on the next bar line (with the
        clock stopped: the first bar line after it runs again)."""
        table = self._pyo.SndTable(played)
        now = self._block_frame / self.rate
        lead = 4 * self.block / self.rate * (self.clock.bpm or 120.0) / 60.0
        target = schedule.next_bar_beat(self.clock.beats(now), self.options.beats_per_bar, lead)
        self._pending = Pending(Path(played), table, length, target, job_id, self.clock.relocations)
        self._status({"event": "armed", "path": played, "bar_beat": target, "job_id": job_id,
                      "frame": self._block_frame, "clock_running": self.clock.running})

    def _xrun_note(self, seconds: float) -> str:
        """', or this client missed JACK cycles ...' when it did after ``seconds``: missed MIDI
        clock can make the bars look cut short (said, so the message does not mislead)."""
        frames = [f for f in self._jack.xrun_frames if f >= seconds * self.rate]
        return (f", or this client missed JACK cycles in them ({len(frames)} xruns), which loses clock ticks"
                if frames else "")

    def _wait_for_frame(self, frame: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self._block_frame < frame:
            if time.monotonic() > deadline:
                raise _Refused("the audio input stopped arriving (is the JACK graph running?)")
            time.sleep(0.005)

    # --- OSC and connections ------------------------------------------------------------
    def _start_osc(self, port: int) -> None:
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import ThreadingOSCUDPServer

        dispatcher = Dispatcher()
        dispatcher.map("/bridge/live/trigger",
                       lambda address, *args: self.trigger(str(args[0]) if args else None, source="osc"))
        dispatcher.map("/bridge/live/play",
                       lambda address, *args: self.play([str(a) for a in args], source="osc"))
        self._osc = ThreadingOSCUDPServer(("127.0.0.1", port), dispatcher)
        threading.Thread(target=self._osc.serve_forever, name="live-osc", daemon=True).start()

    def _connect(self) -> None:
        """--connect-*: raises ValueError naming the ports there are when one does not exist."""
        import jack

        o, client = self.options, self._jack.client
        pairs = [(source, self._jack.midi.name, "midi") for source in o.connect_midi]
        pairs += [(source, f"{o.name}:input_{i + 1}", "audio") for i, source in enumerate(o.connect_in)]
        pairs += [(f"{o.name}:output_{i + 1}", dest, "audio") for i, dest in enumerate(o.connect_out)]
        for source, dest, kind in pairs:
            try:
                client.connect(source, dest)
            except jack.JackError as exc:
                there = [p.name for p in client.get_ports(is_midi=kind == "midi", is_audio=kind == "audio")
                         if not p.name.startswith(f"{o.name}:")]
                raise ValueError(f"cannot connect {source} to {dest} ({exc}); JACK {kind} ports there "
                                 f"are: {', '.join(there) or 'none'}") from None


def _view(address: str, frames: int, channels: int) -> np.ndarray:
    """pyo's interleaved float32 buffer at ``address`` (from getInputAddr/getOutputAddr) as (frames, channels)."""
    raw = (ctypes.c_float * (frames * channels)).from_address(int(address, 16))
    return np.frombuffer(raw, dtype=np.float32).reshape(frames, channels)


def _import_pyo():
    """pyo, imported without its GUI banner reaching stdout (which --json keeps for JSON)."""
    import contextlib
    import os
    import sys

    os.environ.setdefault("PYO_GUI_WX", "0")
    with contextlib.redirect_stdout(sys.stderr):
        import pyo
    return pyo


class _Refused(Exception):
    """A trigger that cannot become a job (said to the user, the host runs on)."""

    def __init__(self, message: str, code: str = "failed_precondition"):
        super().__init__(message)
        self.code = code
