"""Model residency: the one owner of which models are loaded, and for how long.

The semantics follow Ollama's scheduler (``server/sched.go``), not its code:

* A model is loaded once and stays resident. Each model has a record with an
  explicit :class:`ModelState`: ``UNLOADED -> LOADING -> RESIDENT ->
  UNLOADING -> UNLOADED``. Loading and unloading run outside the lock (they
  take seconds) with the transitional state visible; a request for a model
  that is ``LOADING`` waits for that load (never a second one), and a request
  for a model that is ``UNLOADING`` waits and then loads it again.
* :meth:`Residency.acquire` returns a :class:`Lease`; while any lease is held
  (refcount > 0) the model is never evicted or unloaded.
* Keep-alive applies when the last lease is released (or at an explicit
  :meth:`Residency.load`): ``> 0`` seconds until it expires, ``< 0`` never
  expires, ``0`` unloads at once. A request without a keep-alive keeps the
  model's current one (default 300 s); the most recent request's keep-alive
  wins. :meth:`Residency.sweep` unloads the expired idle models.
* Memory budget: ``budget_bytes`` or ``budget_fraction`` of the probed device
  memory (GPU memory on CUDA, RAM otherwise). Before a load, idle models are
  evicted least-recently-used first until ``used + estimate <= budget``. If
  the estimate still does not fit and other models are in use, the request
  fails with :class:`ResourceExhausted`; if nothing else is resident the load
  is tried anyway (estimates can be pessimistic).
* Out of memory on load (``MemoryError`` or any exception whose class name
  contains ``OutOfMemory``, e.g. ``torch.cuda.OutOfMemoryError``): evict every
  idle model and retry once, then fail with :class:`ResourceExhausted`. Any
  other loader error puts the model back to ``UNLOADED`` and propagates; the
  requests that were waiting for that load get the same error.
* An explicit :meth:`Residency.unload` of a model in use (or still loading)
  marks it to unload when its last lease is released.

The loader, unloader, memory probe, size estimate and clocks are injected, so
tests drive all of this without a GPU and without sleeping.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterable

from .errors import InvalidArgument, NotFound, ResourceExhausted

__all__ = [
    "Lease",
    "Loaded",
    "MemoryInfo",
    "ModelRecord",
    "ModelState",
    "Residency",
]

log = logging.getLogger(__name__)

DEFAULT_KEEP_ALIVE = 300.0


class ModelState(str, enum.Enum):
    """Where a model is in its lifecycle."""

    UNLOADED = "unloaded"
    LOADING = "loading"
    RESIDENT = "resident"
    UNLOADING = "unloading"


@dataclass(frozen=True)
class Loaded:
    """What a loader returns: the loaded model and the memory it occupies."""

    handle: Any
    size_bytes: int


@dataclass(frozen=True)
class MemoryInfo:
    """What the memory probe returns for the device models are loaded on."""

    total_bytes: int
    available_bytes: int
    device: str


@dataclass(frozen=True)
class ModelRecord:
    """A read-only view of one model's residency.

    Times (``expires_at``, ``last_used``) are on the injected ``clock``;
    :meth:`Residency.snapshot` converts them to wall-clock unix seconds.
    ``expires_at`` is None when the model never expires or is in use.
    """

    name: str
    state: ModelState
    size_bytes: int
    refcount: int
    keep_alive: float
    expires_at: float | None
    last_used: float
    load_seconds: float
    loaded_at: float
    unload_on_release: bool


class _Entry:
    """The mutable record behind a ModelRecord; guarded by Residency's lock.

    A new entry is made for every load, so an entry that reaches UNLOADED
    stays UNLOADED: waiters holding it can tell the load they waited for
    ended (``error`` says how, if it failed).
    """

    def __init__(self, name: str, keep_alive: float, size_bytes: int, now: float):
        self.name = name
        self.state = ModelState.LOADING
        self.size_bytes = size_bytes  # the estimate while loading
        self.refcount = 0
        self.keep_alive = keep_alive
        self.expires_at: float | None = None
        self.last_used = now
        self.load_seconds = 0.0
        self.loaded_at = 0.0  # clock time the load finished: proves a model was not reloaded
        self.unload_on_release = False
        self.handle: Any = None
        self.error: BaseException | None = None

    @property
    def idle(self) -> bool:
        return self.state is ModelState.RESIDENT and self.refcount == 0

    def record(self) -> ModelRecord:
        return ModelRecord(**{f.name: getattr(self, f.name) for f in fields(ModelRecord)})


class Lease:
    """A hold on a resident model; the model is not unloaded while held.

    Use as a context manager, or call :meth:`release` (idempotent).

    Attributes:
        name: the model's name.
        handle: what the loader returned; do not use it after release.
    """

    def __init__(self, owner: "Residency", entry: _Entry):
        self.name = entry.name
        self.handle = entry.handle
        self._owner = owner
        self._entry = entry
        self._released = False

    def release(self) -> None:
        """Give the model back; the last release starts its keep-alive.

        Raises:
            Exception: whatever the unloader raises, when keep-alive 0 or a
                pending unload makes this release unload the model.
        """
        self._owner._release(self)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lease {self.name!r}{' released' if self._released else ''}>"


class Residency:
    """Keeps models loaded, evicts idle ones, and never drops one in use.

    Args:
        loader: ``loader(name) -> Loaded``; may take seconds.
        unloader: ``unloader(name, handle)``; frees the model's memory.
        probe: ``probe() -> MemoryInfo`` of the device models load on.
        clock: monotonic seconds, for keep-alive and LRU.
        wall_clock: unix seconds, only for reporting expiry times.
        budget_bytes: the memory budget; overrides ``budget_fraction``.
        budget_fraction: share of the probed total memory used as budget.
        default_keep_alive: seconds a model stays after its last use.
        estimate: ``estimate(name) -> bytes`` before loading; 0 = unknown
            (then the size of its previous load, if any, is used).

    Raises:
        InvalidArgument: a budget that is not positive.
    """

    def __init__(
        self,
        loader: Callable[[str], Loaded],
        unloader: Callable[[str, Any], None],
        probe: Callable[[], MemoryInfo],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        budget_bytes: int | None = None,
        budget_fraction: float = 0.8,
        default_keep_alive: float = DEFAULT_KEEP_ALIVE,
        estimate: Callable[[str], int] | None = None,
    ):
        if budget_bytes is not None and budget_bytes <= 0:
            raise InvalidArgument(f"memory budget must be positive; got {budget_bytes} bytes")
        if not 0 < budget_fraction <= 1:
            raise InvalidArgument(
                f"memory budget fraction must be in (0, 1]; got {budget_fraction}"
            )
        self._loader = loader
        self._unloader = unloader
        self._probe = probe
        self._clock = clock
        self._wall_clock = wall_clock
        self._budget_bytes = budget_bytes
        self._budget_fraction = budget_fraction
        self._default_keep_alive = float(default_keep_alive)
        self._estimate = estimate or (lambda name: 0)
        self._entries: dict[str, _Entry] = {}
        self._last_sizes: dict[str, int] = {}
        self._cond = threading.Condition(threading.Lock())

    # ---- public API -------------------------------------------------------

    def acquire(self, name: str, keep_alive: float | None = None) -> Lease:
        """Return a lease on ``name``, loading it first if needed.

        Args:
            name: the model to use.
            keep_alive: seconds to stay resident after the last release
                (< 0 forever, 0 unload at once); None keeps the current one.

        Returns:
            A :class:`Lease`; release it (or leave its ``with`` block).

        Raises:
            ResourceExhausted: the model does not fit beside those in use, or
                ran out of memory even after evicting every idle model.
            Exception: whatever the loader raised (also to concurrent
                requests that waited for the same load).
        """
        entry, _ = self._ensure_resident(name, keep_alive, lease=True)
        return Lease(self, entry)

    def load(self, name: str, keep_alive: float | None = None) -> ModelRecord:
        """Make ``name`` resident without using it (preload, LoadModel).

        Args:
            name: the model to load.
            keep_alive: as for :meth:`acquire`, counted from now.

        Returns:
            The model's record (UNLOADED again if keep_alive was 0).

        Raises:
            ResourceExhausted, Exception: as for :meth:`acquire`.
        """
        entry, unload_now = self._ensure_resident(name, keep_alive, lease=False)
        if unload_now:
            self._unload_entries([entry], reason="keep-alive 0")
        with self._cond:
            return entry.record()

    def unload(self, name: str) -> ModelRecord:
        """Unload ``name`` now, or when its last lease is released if in use.

        Args:
            name: a resident (or loading) model.

        Returns:
            The model's record: UNLOADED, or still in use and marked
            ``unload_on_release``.

        Raises:
            NotFound: the model is not resident; the message lists what is.
            Exception: whatever the unloader raised.
        """
        with self._cond:
            entry = self._entries.get(name)
            if entry is None:
                raise NotFound(
                    f"model '{name}' is not loaded; resident: {self._names_locked()}"
                )
            if entry.state is ModelState.UNLOADING:
                self._wait_while(entry, ModelState.UNLOADING)
                return entry.record()
            if not entry.idle:
                entry.unload_on_release = True
                log.info("model %s in use; it will unload when released", name)
                return entry.record()
            entry.state = ModelState.UNLOADING
        self._unload_entries([entry], reason="requested")
        return entry.record()

    def unload_all(self) -> list[str]:
        """Unload every idle model; mark models in use to unload on release.

        Returns:
            The names unloaded now.

        Raises:
            Exception: whatever the unloader raised.
        """
        with self._cond:
            idle = []
            for entry in self._entries.values():
                if entry.idle:
                    entry.state = ModelState.UNLOADING
                    idle.append(entry)
                elif entry.state is not ModelState.UNLOADING:
                    entry.unload_on_release = True
        self._unload_entries(idle, reason="shutdown")
        return [entry.name for entry in idle]

    def sweep(self) -> list[str]:
        """Unload every idle model whose keep-alive has expired.

        Returns:
            The names unloaded.

        Raises:
            Exception: whatever the unloader raised.
        """
        with self._cond:
            now = self._clock()
            expired = [
                e
                for e in self._entries.values()
                if e.idle and e.expires_at is not None and e.expires_at <= now
            ]
            for entry in expired:
                entry.state = ModelState.UNLOADING
        self._unload_entries(expired, reason="keep-alive expired")
        return [entry.name for entry in expired]

    def seconds_until_next_expiry(self) -> float | None:
        """Seconds until the next idle model expires (0 if overdue), or None."""
        with self._cond:
            times = [e.expires_at for e in self._entries.values() if e.idle]
            times = [t for t in times if t is not None]
            return max(0.0, min(times) - self._clock()) if times else None

    def state(self, name: str) -> ModelState:
        """The state of ``name`` (UNLOADED for a model never loaded)."""
        with self._cond:
            entry = self._entries.get(name)
            return entry.state if entry is not None else ModelState.UNLOADED

    def snapshot(self) -> list[dict]:
        """JSON-friendly records of every model not UNLOADED, by name.

        Returns:
            One dict per model; ``expires_at`` and ``last_used`` are
            wall-clock unix seconds (``expires_at`` None = never or in use),
            ``state`` is the state's string value.
        """
        with self._cond:
            now, wall = self._clock(), self._wall_clock()
            out = []
            for name in sorted(self._entries):
                row = asdict(self._entries[name].record())
                row["state"] = row["state"].value
                row["last_used"] = wall + (row["last_used"] - now)
                row["loaded_at"] = wall + (row["loaded_at"] - now) if row["loaded_at"] else 0.0
                if row["expires_at"] is not None:
                    row["expires_at"] = wall + (row["expires_at"] - now)
                out.append(row)
            return out

    def used_bytes(self) -> int:
        """Bytes held by models not UNLOADED (estimates while loading)."""
        with self._cond:
            return self._used_locked()

    def budget(self) -> int:
        """The memory budget in bytes (the device is probed once)."""
        with self._cond:
            return self._budget_locked()

    # ---- loading ----------------------------------------------------------

    def _ensure_resident(
        self, name: str, keep_alive: float | None, lease: bool
    ) -> tuple[_Entry, bool]:
        """Return the resident entry (leased or settled) and whether to unload it now."""
        keep_alive = _check_keep_alive(keep_alive)
        with self._cond:
            while True:
                entry = self._entries.get(name)
                if entry is None:
                    plan = self._plan_load(name)
                    if plan is not None:
                        entry, victims = plan
                        break
                elif entry.state is ModelState.RESIDENT:
                    return entry, self._settle(entry, keep_alive, lease)
                else:
                    self._wait_while(entry, entry.state)
                    if entry.error is not None:
                        raise entry.error
        try:
            self._unload_entries(victims, reason="evicted (least recently used)")
            loaded, seconds = self._load_with_retry(entry)
        except BaseException as exc:
            with self._cond:
                self._fail(entry, exc)
            raise
        with self._cond:
            entry.handle, entry.size_bytes = loaded.handle, int(loaded.size_bytes)
            entry.load_seconds = seconds
            entry.loaded_at = self._clock()
            entry.state = ModelState.RESIDENT
            self._last_sizes[name] = entry.size_bytes
            self._cond.notify_all()
            log.info("loaded model %s (%s) in %.1f s", name, _fmt(entry.size_bytes), seconds)
            return entry, self._settle(entry, keep_alive, lease)

    def _plan_load(self, name: str) -> tuple[_Entry, list[_Entry]] | None:
        """Reserve ``name`` as LOADING and pick idle victims; None = waited, re-plan."""
        estimate = self._estimate(name) or self._last_sizes.get(name, 0)
        budget = self._budget_locked()
        used = self._used_locked()
        victims: list[_Entry] = []
        for entry in self._idle_lru_locked():
            if used + estimate <= budget:
                break
            victims.append(entry)
            used -= entry.size_bytes
        if used + estimate > budget:
            if any(e.state is not ModelState.RESIDENT for e in self._entries.values()):
                # A load or unload in flight changes the picture: wait, then re-plan.
                self._cond.wait()
                return None
            in_use = [e for e in self._entries.values() if e.refcount > 0]
            if in_use:
                raise ResourceExhausted(self._no_room_message(name, estimate, budget, in_use))
            # Nothing else in use: the estimate may be pessimistic; let the OOM path decide.
        entry = _Entry(name, self._default_keep_alive, estimate, self._clock())
        self._entries[name] = entry
        for victim in victims:
            victim.state = ModelState.UNLOADING
        return entry, victims

    def _load_with_retry(self, entry: _Entry) -> tuple[Loaded, float]:
        """Call the loader; on OOM evict every idle model and retry once."""
        try:
            return self._timed_load(entry.name)
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            log.warning("out of memory loading model %s; evicting idle models, retrying",
                        entry.name)
        with self._cond:
            victims = self._idle_lru_locked()
            for victim in victims:
                victim.state = ModelState.UNLOADING
        self._unload_entries(victims, reason="evicted (out of memory)")
        try:
            return self._timed_load(entry.name)
        except Exception as exc:
            if not _is_out_of_memory(exc):
                raise
            with self._cond:
                message = self._oom_message(entry)
            raise ResourceExhausted(message) from exc

    def _timed_load(self, name: str) -> tuple[Loaded, float]:
        log.info("loading model %s", name)
        start = self._clock()
        loaded = self._loader(name)
        return loaded, self._clock() - start

    def _fail(self, entry: _Entry, exc: BaseException) -> None:
        """Put a failed load back to UNLOADED and hand waiters its error."""
        entry.state = ModelState.UNLOADED
        entry.error = exc
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        self._cond.notify_all()
        log.warning("loading model %s failed: %s", entry.name, exc)

    # ---- leases and keep-alive ----------------------------------------------

    def _settle(self, entry: _Entry, keep_alive: float | None, lease: bool) -> bool:
        """Apply a request to a RESIDENT entry; True = unload it now."""
        if keep_alive is not None:
            entry.keep_alive = keep_alive  # the most recent request wins
        entry.last_used = self._clock()
        if lease:
            entry.refcount += 1
            entry.expires_at = None
            return False
        return entry.refcount == 0 and self._start_idle(entry)

    def _start_idle(self, entry: _Entry) -> bool:
        """Start the keep-alive of an entry whose refcount reached 0; True = unload now."""
        if entry.unload_on_release or entry.keep_alive == 0:
            entry.state = ModelState.UNLOADING
            entry.expires_at = None
            return True
        entry.expires_at = None if entry.keep_alive < 0 else self._clock() + entry.keep_alive
        return False

    def _release(self, lease: Lease) -> None:
        with self._cond:
            if lease._released:
                return
            lease._released = True
            entry = lease._entry
            entry.refcount -= 1
            entry.last_used = self._clock()
            unload_now = entry.refcount == 0 and self._start_idle(entry)
            self._cond.notify_all()
        if unload_now:
            self._unload_entries([entry], reason="released")

    # ---- unloading ----------------------------------------------------------

    def _unload_entries(self, entries: list[_Entry], reason: str) -> None:
        """Unload entries already marked UNLOADING, outside the lock.

        On an unloader error, that entry is still dropped (its handle is
        released), the entries not yet unloaded go back to RESIDENT, and the
        error propagates.
        """
        for index, entry in enumerate(entries):
            try:
                log.info("unloading model %s (%s): %s", entry.name, _fmt(entry.size_bytes), reason)
                self._unloader(entry.name, entry.handle)
            except BaseException:
                with self._cond:
                    for rest in entries[index + 1:]:
                        rest.state = ModelState.RESIDENT
                    self._cond.notify_all()
                raise
            finally:
                with self._cond:
                    self._drop(entry)

    def _drop(self, entry: _Entry) -> None:
        entry.state = ModelState.UNLOADED
        entry.handle = None
        entry.refcount = 0
        entry.expires_at = None
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        self._cond.notify_all()

    # ---- helpers (call with the lock held) ------------------------------------

    def _wait_while(self, entry: _Entry, state: ModelState) -> None:
        while entry.state is state:
            self._cond.wait()

    def _idle_lru_locked(self) -> list[_Entry]:
        return sorted((e for e in self._entries.values() if e.idle), key=lambda e: e.last_used)

    def _used_locked(self) -> int:
        return sum(e.size_bytes for e in self._entries.values())

    def _budget_locked(self) -> int:
        if self._budget_bytes is None:
            info = self._probe()
            self._budget_bytes = int(info.total_bytes * self._budget_fraction)
            log.info(
                "memory budget %s (%.0f%% of %s on %s)",
                _fmt(self._budget_bytes), self._budget_fraction * 100,
                _fmt(info.total_bytes), info.device,
            )
        return self._budget_bytes

    def _names_locked(self) -> str:
        return ", ".join(sorted(self._entries)) or "none"

    def _describe_locked(self, entries: Iterable[_Entry]) -> str:
        parts = []
        for e in sorted(entries, key=lambda e: e.name):
            status = f"in use by {e.refcount}" if e.refcount else e.state.value
            parts.append(f"{e.name} ({_fmt(e.size_bytes)}, {status})")
        return ", ".join(parts) or "none"

    def _no_room_message(self, name: str, estimate: int, budget: int, in_use: list[_Entry]) -> str:
        return (
            f"model '{name}' (estimated {_fmt(estimate)}) does not fit in the memory budget of "
            f"{_fmt(budget)} beside the models in use: {self._describe_locked(in_use)} "
            f"({_fmt(self._used_locked())} used); wait for those jobs to finish, unload models, "
            "or raise --memory-budget"
        )

    def _oom_message(self, entry: _Entry) -> str:
        others = [e for e in self._entries.values() if e is not entry]
        return (
            f"out of memory loading model '{entry.name}' (estimated {_fmt(entry.size_bytes)}), "
            f"even after evicting every idle model; memory budget {_fmt(self._budget_locked())}; "
            f"resident: {self._describe_locked(others)}; unload models or wait for the jobs "
            "using them, or raise --memory-budget"
        )


def _check_keep_alive(keep_alive: float | None) -> float | None:
    if keep_alive is None:
        return None
    try:
        value = float(keep_alive)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value):
        raise InvalidArgument(
            f"keep_alive must be a number of seconds (< 0 forever, 0 unload after use); "
            f"got {keep_alive!r}"
        )
    return value


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for MemoryError and e.g. torch.cuda.OutOfMemoryError (without importing torch)."""
    return isinstance(exc, MemoryError) or any(
        "OutOfMemory" in cls.__name__ for cls in type(exc).__mro__
    )


def _fmt(size: int) -> str:
    """Bytes as a short human size."""
    if size <= 0:
        return "unknown size"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"
