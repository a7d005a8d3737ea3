"""What a control does: MIDI messages in, daemon jobs out, lights back.

``Controller.handle`` runs on the host's MIDI loop and never waits on the
daemon: every request (submit, follow, cancel) runs in its own thread, and
the loop only reads the clock, looks bindings up and starts threads.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import ClockEstimator
from .mapping import SETTABLE, Binding, Mapping, scaled

DEFAULT_BARS = 4
_GENERATE_KEYS = ("bars", "bpm", "beats_per_bar", "seed", "temperature", "top_k", "top_p", "cfg",
                  "loop", "variations", "sample_rate")


@dataclass
class JobRecord:
    """One job this host started, for the summary and for cancel."""

    binding: Binding
    action: str
    engine: str
    params: dict
    model: str
    out: str
    bpm_source: str = ""
    play: bool = False  # hand the result to the live host
    job_id: str = ""
    state: str = "submitting"
    outputs: list = field(default_factory=list)
    report: dict = field(default_factory=dict)
    error: dict | None = None
    thread: threading.Thread | None = None

    def to_dict(self) -> dict:
        row = {"binding": self.binding.index, "control": self.binding.label(), "action": self.action,
               "engine": self.engine, "job_id": self.job_id, "state": self.state, "model": self.model,
               "params": self.params, "out": self.out, "outputs": self.outputs, "error": self.error}
        if self.bpm_source:
            row["bpm_source"] = self.bpm_source
        if self.report.get("tempo"):
            row["tempo"] = self.report["tempo"]
        return row


class Controller:
    """Turns controls into daemon jobs.

    Args:
        mapping: the bindings.
        client: a ``bridge.client.Client`` (thread-safe; shared by every job thread).
        clock: the tempo from MIDI clock on the input.
        leds: the pad lights (``hosts.midi.leds.Leds``) or None.
        say: reports what happens, one line at a time.
        live: a ``to_live.LiveLink`` for bindings that say ``play = true``, or None.
    """

    SET_REPORT_INTERVAL = 0.25  # a fader sweep is reported at most this often per parameter

    def __init__(self, mapping: Mapping, client, clock: ClockEstimator | None = None, leds=None,
                 say: Callable[[str], None] = lambda text: None, live=None):
        self.mapping, self.client, self.leds, self.say, self.live = mapping, client, leds, say, live
        self.clock = clock or ClockEstimator()
        self.overrides: dict = {}   # set by `set` bindings, applied to later generations
        self.jobs: list[JobRecord] = []
        self._last_generate: JobRecord | None = None
        self._lock = threading.Lock()
        self._cc_values: dict[tuple, int] = {}
        self._set_reported: dict[str, float] = {}

    # -- MIDI in ---------------------------------------------------------------------------------
    def handle(self, message, t: float) -> None:
        """One incoming mido message, received at time ``t`` (seconds, monotonic)."""
        kind = message.type
        if kind == "clock":
            self.clock.tick(t)
        elif kind == "start":
            self.clock.start(t)
        elif kind == "continue":
            self.clock.continue_(t)
        elif kind == "stop":
            self.clock.stop(t)
        elif kind == "songpos":
            self.clock.song_position(message.pos, t)
        elif kind == "note_on" and message.velocity > 0:
            self._control("note", message.channel + 1, message.note, message.velocity)
        elif kind == "control_change":
            self._control("cc", message.channel + 1, message.control, message.value)
        elif kind == "program_change":
            self._control("program", message.channel + 1, message.program, 127)

    def _control(self, type_: str, channel: int, number: int, value: int) -> None:
        binding = self.mapping.find(type_, channel, number)
        if type_ == "cc":
            previous = self._cc_values.get((channel, number), 0)
            self._cc_values[(channel, number)] = value
            # a CC button fires once per press (rising through 64); a `set` follows every value
            if binding is not None and binding.action != "set" and not (value >= 64 > previous):
                return
        if binding is not None:
            self.trigger(binding, value)

    # -- actions ---------------------------------------------------------------------------------
    def trigger(self, binding: Binding, value: int = 127) -> JobRecord | None:
        """Do what ``binding`` says; returns the job record when a job starts."""
        action = binding.action
        if action == "set":
            self._set(binding, value)
            return None
        if action == "cancel":
            self._cancel()
            return None
        if action == "generate":
            return self._generate(binding)
        if action == "regenerate":
            return self._regenerate(binding)
        p = binding.params
        if action == "separate":
            params = {k: p[k] for k in ("stems", "two_stems") if k in p}
            return self._start(binding, "separate", {"audio": p["input"]}, params, p.get("model", ""), p["out"])
        inputs = {"audio": p["input"], **({"reference": p["reference"]} if "reference" in p else {})}
        params = {k: p[k] for k in ("preset", "lufs", "ceiling") if k in p}
        return self._start(binding, "master", inputs, params, "", p["out"])

    def _generate(self, binding: Binding) -> JobRecord | None:
        p = binding.params
        params = {"prompt": p["prompt"], "bars": DEFAULT_BARS,
                  **{k: p[k] for k in _GENERATE_KEYS if k in p}}
        params.update(self.overrides)  # a `set` control wins over what the binding says
        if "bpm" in self.overrides:
            source = "set"
        elif "bpm" in p:
            source = "binding"
        else:
            bpm = self.clock.bpm
            if bpm is None:
                self.say(f"{binding.label()}: no tempo yet — no MIDI clock on the input (it takes "
                         f"{self.clock.window_ticks} clock ticks, {self.clock.window_ticks // self.clock.ppqn} "
                         f"beats, to measure); start the clock and press again, or give the binding a bpm. "
                         f"No job started.")
                if self.leds and binding.type != "program":
                    self.leds.error(binding.control)
                return None
            params["bpm"] = round(bpm, 3)
            source = "clock"
        record = self._start(binding, "generate", {}, params, p.get("model", ""), p["out"], source)
        self._last_generate = record
        return record

    def _regenerate(self, binding: Binding) -> JobRecord | None:
        last = self._last_generate
        if last is None:
            self.say(f"{binding.label()}: nothing to regenerate yet; generate something first")
            return None
        params = {**last.params, "seed": secrets.randbelow(2 ** 31)}
        out = binding.params.get("out", last.out)
        record = self._start(binding, "generate", {}, params, last.model, out, last.bpm_source, action="regenerate",
                             play=binding.params.get("play", last.play))
        self._last_generate = record
        return record

    def _set(self, binding: Binding, value: int) -> None:
        param = binding.params["param"]
        new = scaled(binding, value)
        if self.overrides.get(param) == new:
            return
        self.overrides[param] = new
        now = time.monotonic()
        if now - self._set_reported.get(param, 0.0) >= self.SET_REPORT_INTERVAL:
            self._set_reported[param] = now
            shown = f"{new:.3g}" if SETTABLE[param] is float else str(new)
            self.say(f"{param} = {shown} for the next generations")

    def _cancel(self) -> None:
        with self._lock:
            active = [r for r in self.jobs if r.state in ("submitting", "queued", "running") and r.job_id]
        if not active:
            self.say("cancel: no job of this host is running")
            return
        for record in active:
            threading.Thread(target=self._cancel_one, args=(record,), daemon=True,
                             name=f"midi-cancel-{record.job_id}").start()

    def _cancel_one(self, record: JobRecord) -> None:
        try:
            self.client.cancel(record.job_id)
            self.say(f"cancel: asked the daemon to cancel job {record.job_id}")
        except Exception as exc:
            self.say(f"cancel: job {record.job_id} could not be cancelled: {_message(exc)}")

    # -- jobs --------------------------------------------------------------------------------------
    def _start(self, binding: Binding, engine: str, inputs: dict, params: dict, model: str, out: str,
               bpm_source: str = "", action: str | None = None, play: bool | None = None) -> JobRecord:
        play = binding.params.get("play", False) if play is None else play
        record = JobRecord(binding, action or binding.action, engine, params, model, out, bpm_source, play)
        with self._lock:
            self.jobs.append(record)
        if self.leds and binding.type != "program":
            self.leds.running(binding.control)
        tempo = f" at {params['bpm']:.2f} BPM ({bpm_source})" if "bpm" in params else ""
        what = f"'{params['prompt']}'" if "prompt" in params else inputs.get("audio", "")
        self.say(f"{binding.label()}: {record.action} {what}{tempo} -> {out}")
        record.thread = threading.Thread(target=self._run, args=(record, inputs), daemon=True,
                                         name=f"midi-job-{binding.index}")
        record.thread.start()
        return record

    def _run(self, record: JobRecord, inputs: dict) -> None:
        def follow(job: dict) -> None:
            record.job_id = job["job_id"]
            record.state = job["state"]

        try:
            job = self.client.run(record.engine, inputs, record.params, record.out, on_event=follow,
                                  model=record.model, client="midi")
        except Exception as exc:  # the daemon refused or is gone: the pad goes dark, the host goes on
            record.state = "failed"
            record.error = {"code": getattr(exc, "code", "internal"), "message": _message(exc)}
        else:
            record.job_id, record.state = job["job_id"], job["state"]
            record.outputs = [{"path": o["path"], "kind": o["kind"]} for o in job["outputs"]]
            record.report, record.error = job.get("report") or {}, job.get("error")
        control = record.binding.control
        lit = self.leds is not None and record.binding.type != "program"
        if record.state == "succeeded":
            if lit:
                self.leds.done(control)
            paths = ", ".join(o["path"] for o in record.outputs)
            self.say(f"job {record.job_id} done ({record.action}): {paths}")
            if record.play:
                self._hand_to_live(record)
        else:
            if lit:
                self.leds.error(control)
            error = record.error or {}
            self.say(f"job {record.job_id or '-'} {record.state} ({record.action}): "
                     f"{error.get('message', '')}".rstrip(": "))

    def _hand_to_live(self, record: JobRecord) -> None:
        # A generation with variations plays its first; stems and masters play together.
        outputs = record.outputs[:1] if record.engine == "generate" else record.outputs
        if self.live is None:
            self.say(f"job {record.job_id}: {record.binding.label()} says play = true, but no live host "
                     f"is named (--live PORT, or live = \"127.0.0.1:PORT\" in the map); the result "
                     f"stays in {record.out}")
            return
        try:
            self.live.play([o["path"] for o in outputs])
        except OSError as exc:
            self.say(f"job {record.job_id}: could not reach the live host at {self.live.address} ({exc}); "
                     f"the result stays in {record.out}")
            return
        self.say(f"job {record.job_id}: sent to the live host at {self.live.address}, which plays it "
                 f"from its next bar line")

    def active(self) -> list[JobRecord]:
        with self._lock:
            return [r for r in self.jobs if r.thread is not None and r.thread.is_alive()]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for this host's job threads; True if all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for record in self.active():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            record.thread.join(left)
        return not self.active()


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__
