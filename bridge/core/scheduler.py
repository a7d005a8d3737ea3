"""Scheduler: bounded queues and the workers that drain them.

Model jobs run one at a time per device, because they share its memory; DSP
jobs run in a small pool beside them. The queue is bounded: when it is full,
``submit`` answers Busy at once instead of letting work pile up.

The scheduler owns job state transitions. What running a job means (reading
media, holding a model, writing outputs) is the runner's business.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

from .engine import EngineKind
from .errors import BridgeError, Busy, Cancelled, Internal, Interrupted, NotFound, Unavailable
from .jobs import JobBoard, JobRecord, JobState, JobStore

log = logging.getLogger(__name__)

_STOP = object()
# Progress is published on every tick but stored at most this often.
_SAVE_INTERVAL = 1.0


class Scheduler:
    """Runs jobs through ``run_job(record, progress, cancelled)``.

    Args:
        store: durable job records.
        board: live snapshots for watchers.
        run_job: executes one job, fills ``record.outputs``/``report``,
            raises BridgeError on failure.
        capacity: most jobs waiting (not running) at once.
        dsp_workers: size of the DSP pool.
    """

    def __init__(self, store: JobStore, board: JobBoard,
                 run_job: Callable[[JobRecord, Callable[[float, str], None], Callable[[], bool]], None],
                 capacity: int = 16, dsp_workers: int = 2,
                 settle: Callable[[JobRecord], None] | None = None):
        self.store, self.board, self._run_job = store, board, run_job
        # Called once a job's end is stored, before watchers hear it (drops the
        # temp files of published outputs; undoes them if the job did not succeed).
        self._settle = settle
        self.capacity = capacity
        self._queues = {EngineKind.MODEL: queue.Queue(), EngineKind.DSP: queue.Queue()}
        self._lock = threading.Lock()
        self._waiting = 0
        self._running: dict[str, threading.Event] = {}
        self._cancel_requested: set[str] = set()
        self._stopping = False
        self._threads = [self._spawn(EngineKind.MODEL, "model-0")]
        self._threads += [self._spawn(EngineKind.DSP, f"dsp-{i}") for i in range(dsp_workers)]

    def _spawn(self, kind: EngineKind, name: str) -> threading.Thread:
        thread = threading.Thread(target=self._work, args=(kind,), name=f"sb-{name}", daemon=True)
        thread.start()
        return thread

    # -- public ------------------------------------------------------------
    def enqueue(self, record: JobRecord, kind: EngineKind) -> None:
        """Queue a submitted job, or raise Busy if the queue is full."""
        with self._lock:
            if self._stopping:
                raise Unavailable("the daemon is shutting down; submit again once it is back")
            if self._waiting >= self.capacity:
                raise Busy(
                    f"the daemon's queue is full ({self.capacity} jobs waiting); "
                    f"try again when a job finishes, or cancel one (`studio-bridge jobs`)"
                )
            self._waiting += 1
        self._transition(record, JobState.QUEUED, stage="waiting for a worker")
        self._queues[kind].put(record)

    def cancel(self, record: JobRecord) -> JobRecord:
        """Cancel a queued or running job; a finished job is returned as is."""
        if record.state.terminal:
            return record
        with self._lock:
            event = self._running.get(record.id)
            self._cancel_requested.add(record.id)
        if event is not None:
            event.set()  # the engine stops at its next check; the worker records it
            return record
        self._finish(record, JobState.CANCELLED, error=Cancelled("job cancelled before it started"))
        return record

    def depth(self) -> int:
        with self._lock:
            return self._waiting

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def stop(self, timeout: float = 5.0) -> None:
        """Shut down: no job starts any more, running jobs are told to stop.

        Queued jobs and jobs that stop mid-run end ``interrupted`` (the
        daemon stopped; the client did not cancel), with no output written.
        Waits up to ``timeout`` seconds for the workers.
        """
        with self._lock:
            self._stopping = True
            for event in self._running.values():
                event.set()
        for kind, q in self._queues.items():
            self._interrupt_waiting(q)
            for thread in self._threads:
                if thread.name.startswith("sb-model" if kind is EngineKind.MODEL else "sb-dsp"):
                    q.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _interrupt_waiting(self, q: queue.Queue) -> None:
        while True:
            try:
                record = q.get_nowait()
            except queue.Empty:
                return
            if record is _STOP:
                continue
            with self._lock:
                self._waiting -= 1
                cancelled = record.id in self._cancel_requested
                self._cancel_requested.discard(record.id)
            if not cancelled:
                self._finish(record, JobState.INTERRUPTED, error=Interrupted(
                    "the daemon stopped before this job started; it wrote no output; submit it again"))

    # -- workers -----------------------------------------------------------
    def _work(self, kind: EngineKind) -> None:
        q = self._queues[kind]
        while True:
            record = q.get()
            if record is _STOP:
                return
            with self._lock:
                self._waiting -= 1
                skip = record.id in self._cancel_requested
                stopping = self._stopping
                event = threading.Event()
                if skip or stopping:
                    self._cancel_requested.discard(record.id)
                else:
                    self._running[record.id] = event
            if stopping and not skip:
                self._finish(record, JobState.INTERRUPTED, error=Interrupted(
                    "the daemon stopped before this job started; it wrote no output; submit it again"))
            if skip or stopping:
                continue
            try:
                self._execute(record, event)
            finally:
                with self._lock:
                    self._running.pop(record.id, None)
                    self._cancel_requested.discard(record.id)

    def _execute(self, record: JobRecord, event: threading.Event) -> None:
        record.started_at = time.time()
        self._transition(record, JobState.RUNNING, stage="starting")
        last_save = [time.monotonic()]

        def progress(fraction: float, stage: str) -> None:
            record.progress, record.stage = fraction, stage
            self.board.publish(record)
            if time.monotonic() - last_save[0] > _SAVE_INTERVAL:
                last_save[0] = time.monotonic()
                self.store.save(record)

        try:
            self._run_job(record, progress, event.is_set)
        except Cancelled as exc:
            self._end_cancelled(record, exc)
        except BridgeError as exc:
            self._finish(record, JobState.FAILED, error=exc)
        except Exception as exc:  # a bug: report it, keep serving
            log.exception("job %s failed unexpectedly", record.id)
            self._finish(record, JobState.FAILED,
                         error=Internal(f"internal error: {type(exc).__name__}: {exc}; "
                                        f"please report it with the daemon log"))
        else:
            if event.is_set() and not record.outputs:
                self._end_cancelled(record, Cancelled("job cancelled by the client"))
            else:  # outputs in place: a cancel that came while they were linked is too late
                record.progress = 1.0
                self._finish(record, JobState.SUCCEEDED, stage="done")

    def _end_cancelled(self, record: JobRecord, exc: Cancelled) -> None:
        with self._lock:
            by_client = record.id in self._cancel_requested
            stopping = self._stopping
        if stopping and not by_client:
            self._finish(record, JobState.INTERRUPTED, error=Interrupted(
                "the daemon stopped while this job was running; it did not complete and wrote "
                "no output; submit it again"))
        else:
            self._finish(record, JobState.CANCELLED, error=exc)

    # -- state ---------------------------------------------------------------
    def _transition(self, record: JobRecord, state: JobState, stage: str = "") -> None:
        record.state = state
        record.stage = stage or record.stage
        self.store.save(record)
        self.board.publish(record)

    def _finish(self, record: JobRecord, state: JobState, error: BridgeError | None = None,
                stage: str = "") -> None:
        record.finished_at = time.time()
        if error is not None:
            record.error = error.to_dict()
            record.stage = state.value
            record.outputs = []
        record.state = state
        record.stage = stage or record.stage
        self.store.save(record)
        if self._settle is not None:
            try:
                self._settle(record)
            except Exception:  # the outcome stands; a restart clears what is left
                log.exception("job %s: clean-up after %s failed", record.id, state.value)
        self.board.publish(record)


def require(record: JobRecord | None, job_id: str) -> JobRecord:
    if record is None:
        raise NotFound(f"job '{job_id}' does not exist; list jobs with `studio-bridge jobs`")
    return record
