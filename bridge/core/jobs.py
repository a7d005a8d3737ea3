"""Jobs: their states, their durable records, and their event stream.

A job moves submitted -> queued -> running -> succeeded | failed | cancelled.
Records persist in SQLite in the state dir, so after a restart a client can
still ask what became of its job; a job the daemon was running (or had
queued) when it stopped reads ``interrupted``, never done.

Events are full snapshots with a per-job sequence number. A watcher asks for
anything newer than the last seq it saw and gets the latest snapshot, so a
slow client never makes the daemon buffer every progress tick.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

SCHEMA = "Job.1"  # bump when the stored record's shape changes


class JobState(str, enum.Enum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED}


@dataclass
class JobRecord:
    """Everything known about one job; the unit stored and streamed."""

    engine: str
    inputs: dict[str, dict]  # name -> {"path": ...} | {"blob": ..., "filename": ...}
    params: dict[str, Any]
    out_dir: str
    model: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    state: JobState = JobState.SUBMITTED
    progress: float = 0.0
    stage: str = ""
    outputs: list[dict] = field(default_factory=list)  # {path, kind, size, sha256}
    report: dict = field(default_factory=dict)
    error: dict | None = None  # {code, message}
    created_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    cached: bool = False
    client: str = ""
    keep_alive: float | None = None
    no_cache: bool = False
    cache_key: str = ""
    input_hashes: dict[str, str] = field(default_factory=dict)  # content at submit
    # Outputs being linked into place ({folder, temp, name}); a restart undoes them.
    publishing: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "JobRecord":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["state"] = JobState(known["state"])
        return cls(**known)

    def copy(self) -> "JobRecord":
        return JobRecord.from_dict(json.loads(json.dumps(self.to_dict())))


class JobStore:
    """Job records in SQLite (``<state_dir>/jobs.sqlite3``).

    Opening the store marks every job left unfinished by a previous daemon
    as interrupted.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        _private(self.path)  # job records name every path a host sent: owner only
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at REAL, "
            "state TEXT, schema TEXT, data TEXT)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at)")
        self.interrupted = self._interrupt_leftovers()

    def _interrupt_leftovers(self) -> list[str]:
        live = [s.value for s in JobState if not s.terminal]
        rows = self._db.execute(
            f"SELECT data FROM jobs WHERE state IN ({','.join('?' * len(live))})", live
        ).fetchall()
        ids = []
        for (data,) in rows:
            record = JobRecord.from_dict(json.loads(data))
            was = record.state.value
            record.state = JobState.INTERRUPTED
            record.finished_at = time.time()
            record.outputs = []
            record.error = {
                "code": "interrupted",
                "message": f"the daemon stopped while this job was {was}; it did not "
                f"complete and wrote no output; submit it again",
            }
            self.save(record)
            ids.append(record.id)
        return ids

    def publishing(self) -> list[JobRecord]:
        """Records whose outputs were being linked when a daemon stopped."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM jobs WHERE data LIKE '%\"publishing\": [{%'").fetchall()
        records = [JobRecord.from_dict(json.loads(r[0])) for r in rows]
        return [r for r in records if r.publishing]

    def save(self, record: JobRecord) -> None:
        data = json.dumps(record.to_dict())
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, created_at, state, schema, data) VALUES (?,?,?,?,?)",
                (record.id, record.created_at, record.state.value, SCHEMA, data),
            )

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM jobs WHERE id=?", (job_id,)).fetchone()
        return JobRecord.from_dict(json.loads(row[0])) if row else None

    def list(self, limit: int = 50, states: list[JobState] | None = None) -> list[JobRecord]:
        query, args = "SELECT data FROM jobs", []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args = [s.value for s in states]
        query += " ORDER BY created_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, [*args, limit]).fetchall()
        return [JobRecord.from_dict(json.loads(r[0])) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _private(db: Path) -> None:
    """The database and its WAL/shared-memory files, mode 0600."""
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            os.chmod(path, 0o600)
        except FileNotFoundError:
            pass


class JobBoard:
    """Live jobs and their latest snapshot, with waiting for changes."""

    def __init__(self):
        self._cond = threading.Condition()
        self._latest: dict[str, tuple[int, JobRecord]] = {}

    def publish(self, record: JobRecord) -> int:
        """Store a snapshot of ``record`` and wake watchers; returns its seq."""
        with self._cond:
            seq = self._latest.get(record.id, (0, None))[0] + 1
            self._latest[record.id] = (seq, record.copy())
            self._cond.notify_all()
            return seq

    def latest(self, job_id: str) -> tuple[int, JobRecord] | None:
        with self._cond:
            return self._latest.get(job_id)

    def wait(self, job_id: str, after_seq: int, timeout: float) -> tuple[int, JobRecord] | None:
        """Return the newest snapshot with seq > after_seq, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._latest.get(job_id)
                if entry and entry[0] > after_seq:
                    return entry
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def forget(self, job_id: str) -> None:
        with self._cond:
            self._latest.pop(job_id, None)

    def live_ids(self) -> list[str]:
        with self._cond:
            return [jid for jid, (_, rec) in self._latest.items() if not rec.state.terminal]


def follow(board: JobBoard, store: JobStore, job_id: str, after_seq: int = 0,
           poll: float = 0.5, alive=lambda: True) -> Iterator[tuple[int, JobRecord]]:
    """Yield (seq, snapshot) for a job until it ends or ``alive()`` is False.

    A job not on the board (finished before a restart) yields its stored
    record once.
    """
    entry = board.latest(job_id)
    if entry is None:
        record = store.get(job_id)
        if record is not None:
            yield (max(after_seq, 0) + 1, record)
        return
    seq = after_seq
    while alive():
        entry = board.wait(job_id, seq, poll)
        if entry is None:
            continue
        seq, record = entry
        yield entry
        if record.state.terminal:
            return
