"""The daemon's one facade: what every transport translates onto.

It ties the parts together — registry, residency, scheduler, result cache,
job store, blobs, media roots — and checks each request before it queues,
so a bad request fails at once with a clear error and never occupies a
worker. Transports (gRPC, OSC) call these methods and nothing deeper.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import __version__
from ..engines import Registry
from . import device, scratch
from .blobs import BlobStore
from .cache import ResultCache, cache_key
from .config import Config
from .engine import Engine, EngineKind
from .errors import InvalidArgument, NotFound, PermissionDenied
from .jobs import JobBoard, JobRecord, JobState, JobStore, follow
from .media import FileHasher, check_writable_dir, output_name
from .paths import MediaRoots, inside, input_problem, open_regular
from .publish import Publication, remember_user_umask, remove_partials, repair
from .residency import Loaded, Residency
from .runner import JobRunner, commit, settle
from .scheduler import Scheduler, require
from .state import private_dir
from .store import ModelStore

log = logging.getLogger(__name__)


class Service:
    """Everything the daemon does, behind plain methods.

    Args:
        config: the daemon's configuration.
        registry: engines (default: built-ins plus entry points).
        residency: model residency manager (default: real loader and probe).
    """

    def __init__(self, config: Config, registry: Registry | None = None,
                 residency: Residency | None = None):
        self.config = config
        self.started = time.time()
        remember_user_umask()  # before any worker thread: reading the umask sets it
        private_dir(config.state_dir)
        # Requests never reach the state folder (job records, token, cache) but
        # through its outputs folder, where remote hosts' results wait.
        self.roots = MediaRoots([*config.media_roots], private=[config.state_dir])
        self._writable = MediaRoots([*config.media_roots, config.outputs_dir],
                                    private=[config.state_dir])
        self.models_store = ModelStore(config.state_dir / "models")
        self.registry = registry or Registry()
        self.registry.bind_store(self.models_store)
        self.residency = residency or Residency(
            loader=self._load_model, unloader=self._unload_model, probe=device.probe,
            budget_bytes=config.memory_budget, default_keep_alive=config.keep_alive,
            estimate=self._estimate)
        self.store = JobStore(config.state_dir / "jobs.sqlite3")
        self._repair_publications()
        self._clean_after_interrupted(self.store.interrupted)
        self.board = JobBoard()
        self.cache = ResultCache(config.state_dir / "cache", config.cache_bytes)
        self.blobs = BlobStore(config.state_dir / "blobs")
        self.hasher = FileHasher()
        self._live: dict[str, JobRecord] = {}
        self._live_lock = threading.Lock()
        # A killed daemon's scratch arrays are garbage: no job runs yet.
        scratch.clear(config.state_dir / "scratch")
        runner = JobRunner(self.registry, self.residency, self.cache, self._input_path,
                           scratch_root=config.state_dir / "scratch", writable=self._writable,
                           save=self.store.save, private_root=config.outputs_dir,
                           hasher=self.hasher)
        self.scheduler = Scheduler(self.store, self.board, runner,
                                   capacity=config.queue_capacity, dsp_workers=config.dsp_workers,
                                   settle=runner.settle)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="sb-reaper", daemon=True)
        self._reaper.start()

    # -- jobs ----------------------------------------------------------------
    def submit(self, engine: str, inputs: dict[str, dict], params: dict[str, Any] | None = None,
               out_dir: str = "", model: str = "", keep_alive: float | None = None,
               no_cache: bool = False, client: str = "") -> JobRecord:
        """Check a request, then answer from the cache or queue it.

        Raises:
            NotFound, InvalidArgument, PermissionDenied, Unavailable, Busy.
        """
        eng = self.registry.get(engine)
        eng.check_inputs(list(inputs))
        values = eng.validate(params or {})
        model, version = self._model_for(eng, model)
        eng.check_model_params(model, values)
        keep_alive = check_keep_alive(keep_alive)
        hashes = {name: self._input_hash(ref) for name, ref in inputs.items()}
        folder = self._out_dir(out_dir)
        record = JobRecord(engine=engine, inputs=inputs, params=values, out_dir="",
                           model=model, keep_alive=keep_alive, no_cache=no_cache, client=client,
                           input_hashes=hashes)
        record.out_dir = str(folder or self.config.outputs_dir / record.id)
        record.cache_key = cache_key(engine, eng.version, model, version, hashes, values)
        if not no_cache and self._serve_cached(record, eng):
            return record
        self._track(record)
        self.store.save(record)
        self.board.publish(record)
        try:
            self.scheduler.enqueue(record, eng.kind)
        except Exception:
            self._untrack(record)
            self.store.delete(record.id)
            raise
        return record

    def watch(self, job_id: str, after_seq: int = 0, alive=lambda: True) -> Iterator[tuple[int, JobRecord]]:
        require(self.board.latest(job_id) or self.store.get(job_id), job_id)
        return follow(self.board, self.store, job_id, after_seq, alive=alive)

    def cancel(self, job_id: str) -> JobRecord:
        with self._live_lock:
            record = self._live.get(job_id)
        if record is None:
            return require(self.store.get(job_id), job_id)
        self.scheduler.cancel(record)
        return record.copy()

    def get_job(self, job_id: str) -> JobRecord:
        entry = self.board.latest(job_id)
        return entry[1] if entry else require(self.store.get(job_id), job_id)

    def list_jobs(self, limit: int = 50, states: list[JobState] | None = None) -> list[JobRecord]:
        return self.store.list(limit or 50, states)

    # -- media ---------------------------------------------------------------
    def upload(self, chunks: Iterable[bytes], sha256: str = "") -> tuple[str, int]:
        return self.blobs.put(chunks, sha256)

    def open_download(self, path: str = "", blob: str = ""):
        """A file a client may download, open (pinned): a blob, or a file under the
        roots or the daemon's outputs folder. Returns (binary file, size).

        Raises:
            NotFound, InvalidArgument, PermissionDenied.
        """
        if blob:
            handle = open(self.blobs.path(blob), "rb")
        else:
            resolved = self._writable.check(path, "download")
            _refuse_unreadable(resolved, f"cannot download '{path}': it")
            handle = open_regular(resolved)
        return handle, os.fstat(handle.fileno()).st_size

    # -- engines, models, status ----------------------------------------------
    def engines(self) -> list[tuple[str, Engine | None, str]]:
        return self.registry.describe()

    def models(self) -> list[dict]:
        """Every model an engine can load (installed) or pull (catalogue), with residency."""
        return model_rows(self.registry, self.residency.snapshot())

    def load_model(self, name: str, keep_alive: float | None = None) -> dict:
        self.registry.engine_for_model(name)
        self.residency.load(name, check_keep_alive(keep_alive))
        return self._model_info(name)

    def unload_model(self, name: str) -> dict:
        self.registry.engine_for_model(name)
        self.residency.unload(name)
        return self._model_info(name)

    def _model_info(self, name: str) -> dict:
        return next(m for m in self.models() if m["name"] == name)

    def status(self) -> dict:
        memory = device.probe()
        return {"version": __version__, "device": memory.device,
                "memory_total": memory.total_bytes, "memory_available": memory.available_bytes,
                "memory_budget": int(self.residency.budget()),
                "memory_used": int(self.residency.used_bytes()),
                "resident": [m for m in self.models() if m["state"] != "unloaded"],
                "queue_depth": self.scheduler.depth(), "queue_capacity": self.scheduler.capacity,
                "running": self.scheduler.running(), "uptime": time.time() - self.started,
                "media_roots": [str(r) for r in self.roots.roots]}

    def warm_up(self) -> None:
        """Import every engine in the background, so the first job does not wait."""
        threading.Thread(target=self.registry.describe, name="sb-warm-up", daemon=True).start()

    def preload(self) -> None:
        for name in self.config.preload:
            self.load_model(name)

    def stop_jobs(self, timeout: float = 5.0) -> None:
        """Refuse new jobs; running and queued ones end ``interrupted``."""
        if not self._stop.is_set():
            self._stop.set()
            self.scheduler.stop(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the jobs, unload every model, close the job store."""
        self.stop_jobs(timeout)
        self.residency.unload_all()
        self.store.close()

    # -- helpers ---------------------------------------------------------------
    @staticmethod
    def _model_for(eng: Engine, model: str) -> tuple[str, str]:
        """(model name, model version) for a request; ("", "") for DSP engines."""
        if eng.kind is not EngineKind.MODEL:
            if model:
                raise InvalidArgument(f"engine '{eng.name}' uses no model; leave model empty")
            return "", ""
        versions = {m.name: m.version for m in eng.models()}  # one look at the store
        model = model or eng.default_model()
        if model not in versions:
            raise NotFound(
                f"model '{model}' is not installed for engine '{eng.name}'; installed: "
                f"{', '.join(versions) or 'none'}; get one with `studio-bridge models pull NAME`")
        return model, versions[model]

    def _input_path(self, ref: dict) -> Path:
        if ref.get("blob"):
            return self.blobs.path(ref["blob"])
        if not ref.get("path"):
            raise InvalidArgument("an input names neither a path nor a blob; give one")
        path = self.roots.check(ref["path"], "read")
        _refuse_unreadable(path, f"input '{ref['path']}'")
        return path

    def _input_hash(self, ref: dict) -> str:
        if ref.get("blob") and self.blobs.path(ref["blob"]):
            return ref["blob"]
        path = self._input_path(ref)
        try:
            return self.hasher.hash(path)
        except OSError as exc:
            raise PermissionDenied(f"cannot read input '{ref['path']}': {exc.strerror or exc}; "
                                   f"check its permissions") from None

    def _out_dir(self, out_dir: str) -> Path | None:
        if not out_dir:
            return None
        folder = self._writable.check(out_dir, "write to")
        return check_writable_dir(folder)

    def _serve_cached(self, record: JobRecord, eng: Engine) -> bool:
        meta = self.cache.get(record.cache_key)
        if meta is None:
            return False
        clip = _clip_of(record, eng) or meta.get("clip") or record.engine
        publication = Publication(Path(record.out_dir), record.id,
                                  private=inside(Path(record.out_dir), self.config.outputs_dir))
        try:
            for item in meta["outputs"]:
                suffix = "." + item["name"].rsplit(".", 1)[-1]
                publication.stage_file(self.cache.file(record.cache_key, item["file"]),
                                       output_name(clip, record.model or record.engine,
                                                   item["kind"], suffix), item["kind"])
            record.state, record.started_at = JobState.RUNNING, time.time()
            commit(record, publication, self.store.save)
        except BaseException:
            publication.rollback()
            self.store.delete(record.id)
            raise
        record.report, record.cached = meta["report"], True
        record.state, record.progress, record.stage = JobState.SUCCEEDED, 1.0, "done (cached)"
        record.finished_at = time.time()
        self.store.save(record)
        settle(record, publication, self.store.save)
        self._track(record)
        self.board.publish(record)
        return True

    def _repair_publications(self) -> None:
        """Finish or undo outputs a killed daemon was linking into place."""
        for record in self.store.publishing():
            removed, done = repair(record.publishing, record.state is JobState.SUCCEEDED)
            for path in removed:
                log.info("removed %s left by job %s", path, record.id)
            if record.state is not JobState.SUCCEEDED:
                record.outputs = []
            if done:
                record.publishing = []
            else:  # a folder is missing (an unmounted drive?): tried again at the next start
                log.warning("job %s: its output folder is missing; its unfinished outputs are "
                            "removed at a later start", record.id)
            self.store.save(record)

    def _clean_after_interrupted(self, job_ids: list[str]) -> None:
        """Remove the temp files jobs of a killed daemon left in users' folders."""
        for job_id in job_ids:
            record = self.store.get(job_id)
            if record and record.out_dir:
                for path in remove_partials(record.out_dir, job_id):
                    log.info("removed %s left by interrupted job %s", path, job_id)

    def _track(self, record: JobRecord) -> None:
        with self._live_lock:
            self._live[record.id] = record
            finished = [jid for jid, r in self._live.items() if r.state.terminal]
            for jid in finished[:-256]:  # keep memory bounded; the store has them
                self._live.pop(jid, None)
                self.board.forget(jid)

    def _untrack(self, record: JobRecord) -> None:
        with self._live_lock:
            self._live.pop(record.id, None)
        self.board.forget(record.id)

    def _reap(self) -> None:
        ticks = 0
        while not self._stop.wait(1.0):
            ticks += 1
            try:
                self.residency.sweep()
                if ticks % 60 == 1:
                    self.prune_outputs()
            except Exception:  # keep reaping; the failure is in the log
                log.exception("periodic clean-up failed")

    def prune_outputs(self, now: float | None = None) -> list[Path]:
        """Delete the daemon's own output folders (remote hosts' results) past retention."""
        now = time.time() if now is None else now
        removed = []
        root = self.config.outputs_dir
        for folder in (root.iterdir() if root.is_dir() else ()):
            if folder.is_dir() and now - folder.stat().st_mtime > self.config.output_retention \
                    and folder.name not in self.board.live_ids():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    # residency side effects: the real loader goes through the engine
    def _load_model(self, name: str) -> Loaded:
        eng, spec = self.registry.model_spec(name)
        return Loaded(eng.load(name, device.device_name()), spec.size_bytes)

    def _unload_model(self, name: str, handle) -> None:
        self.registry.engine_for_model(name).unload(handle)

    def _estimate(self, name: str) -> int:
        return self.registry.model_spec(name)[1].size_bytes


def _refuse_unreadable(path: Path, what: str) -> None:
    """Raise NotFound / InvalidArgument if ``path`` is missing or not a regular file."""
    problem = input_problem(path)
    if problem:
        error = NotFound if problem.startswith("does not exist") else InvalidArgument
        raise error(f"{what} {problem}")


def check_keep_alive(value: float | None) -> float | None:
    """A keep-alive is a finite number of seconds (negative = forever) or None (default)."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise InvalidArgument(f"keep_alive is {value}; give seconds (e.g. 300), 0 to unload "
                              f"after the job, or -1 to keep the model loaded forever")
    return float(value)


def _clip_of(record: JobRecord, eng: Engine) -> str:
    """The clip that names the outputs: the first input given (an engine's first
    declared input may be optional, as generate's melody is); '' when none is."""
    for spec in eng.inputs:
        ref = record.inputs.get(spec.name)
        if ref:
            return Path(ref.get("filename") or ref.get("path") or "clip").stem
    return ""


def model_rows(registry, resident: list[dict]) -> list[dict]:
    """Installed and pullable models of every engine, with their residency.

    The daemon's ListModels and the CLI's offline `models list` share this.
    """
    by_name = {m["name"]: m for m in resident}
    out = []
    for _, eng, _ in registry.describe():
        if eng is None:
            continue
        installed = eng.models()
        for spec in installed:
            out.append(_model_row(eng.name, spec.name, spec.version, spec.size_bytes, spec.licence,
                                  spec.description, True, by_name))
        names = {spec.name for spec in installed}
        out += [_model_row(eng.name, name, "", 0, "", f"not installed: `studio-bridge models pull {name}`",
                           False, by_name) for name in eng.catalogue() if name not in names]
    return out


def _model_row(engine, name, version, size, licence, description, installed, resident) -> dict:
    state = resident.get(name, {})
    return {"name": name, "engine": engine, "version": version, "size_bytes": size,
            "licence": licence, "description": description, "installed": installed,
            "state": str(state.get("state", "unloaded")), "refcount": state.get("refcount", 0),
            "keep_alive": state.get("keep_alive") or 0.0, "expires_at": state.get("expires_at") or 0.0,
            "loaded_at": state.get("loaded_at") or 0.0, "load_seconds": state.get("load_seconds") or 0.0}
