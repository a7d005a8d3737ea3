"""Running one job: media in, engine on arrays, outputs out all together.

The scheduler decides when; this decides how. Inputs are decoded here, the
model is held through the residency manager for exactly the run, and the
outputs are published all or none (``bridge.core.publish``): each is written
to a temp file in the host's folder, the plan is saved in the job record,
then all are linked into place. An existing file is never overwritten: a
second result gets a numbered name, so a file already placed in a DAW
session never changes under it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from .cache import ResultCache
from .engine import Engine, EngineKind, MediaFile, Output, RunContext
from .errors import BridgeError, MediaError
from .jobs import JobRecord, JobState
from .media import OUTPUT_FORMATS, output_name, read_audio, stage_audio
from .paths import MediaRoots, inside, open_regular
from .publish import Publication
from .residency import Residency
from .scratch import Scratch, job_folder

log = logging.getLogger(__name__)


class JobRunner:
    """Callable the scheduler gives each job to."""

    def __init__(self, registry, residency: Residency, cache: ResultCache,
                 resolve: Callable[[dict], Path], scratch_root: Path | None = None,
                 writable: MediaRoots | None = None, save: Callable[[JobRecord], None] | None = None,
                 private_root: Path | None = None, hasher=None):
        self.registry, self.residency, self.cache = registry, residency, cache
        self._resolve = resolve  # input ref -> readable path (roots/blobs checked)
        self._scratch_root = scratch_root  # long media go to disk here, per job
        self._writable = writable  # out_dir is checked again when the job writes
        self._save = save or (lambda record: None)  # persists the publishing plan
        self._private_root = private_root  # the daemon's own outputs: files 0600
        self._hasher = hasher  # media.FileHasher: the content each job decodes
        self._read_hashes: dict[str, dict[str, str]] = {}
        self._pending: dict[str, Publication] = {}
        self._lock = threading.Lock()

    def __call__(self, record: JobRecord, progress, cancelled) -> None:
        folder = job_folder(self._scratch_root, record.id) if self._scratch_root else None
        with Scratch(folder) as scratch:
            self._run(record, RunContext(progress, cancelled, scratch))

    def settle(self, record: JobRecord) -> None:
        """After the record holds the job's end: drop the temp files (undo all
        if the job did not succeed). The scheduler calls it for every job."""
        with self._lock:
            publication = self._pending.pop(record.id, None)
            self._read_hashes.pop(record.id, None)
        if publication is not None:
            settle(record, publication, self._save)

    def _run(self, record: JobRecord, ctx: RunContext) -> None:
        engine = self.registry.get(record.engine)
        ctx.progress(0.0, "reading input")
        inputs = self._read_inputs(engine, record, ctx.scratch)
        ctx.check()
        try:
            result = self._run_engine(engine, record, inputs, ctx)
        except MediaError as exc:
            raise _naming_file(exc, record) from None
        ctx.check()  # a cancel during the last chunk still writes nothing
        ctx.progress(1.0, "writing output")
        clip = result.name or _clip_name(engine, inputs)
        report = result.report
        warnings = [w for media in inputs.values() for w in media.warnings] + self._changed(record)
        if warnings:
            report = {**report, "warnings": warnings + list(report.get("warnings", []))}
        publication = self._stage(record, clip, inputs, result.outputs, ctx)
        with self._lock:
            self._pending[record.id] = publication
        try:
            commit(record, publication, self._save)
        except BaseException:
            with self._lock:
                self._pending.pop(record.id, None)  # rolled back already
            raise
        record.report = report
        if record.cache_key:
            try:
                sources = [lambda s=staged: publication.open_staged(s) for staged in publication.staged]
                self.cache.put(record.cache_key, record.outputs, record.report, clip, sources)
            except (OSError, BridgeError) as exc:  # the result is delivered; a repeat is just slower
                log.warning("job %s: result not cached: %s", record.id, exc)

    def _read_inputs(self, engine: Engine, record: JobRecord, scratch: Scratch) -> dict:
        """Audio inputs decoded to arrays; video inputs as their paths (read while processed).

        Each audio file is hashed from the same open file it is decoded from, so
        the content the cache key names is the content the job used.
        """
        kinds = {spec.name: spec.kind for spec in engine.inputs}
        inputs, read = {}, {}
        with self._lock:
            self._read_hashes[record.id] = read
        for name, ref in record.inputs.items():
            path = self._resolve(ref)
            if kinds.get(name) == "video":
                media = MediaFile(path, path.stem)
            else:
                with open_regular(path) as handle:
                    if not ref.get("blob") and self._hasher is not None:
                        read[name] = self._hasher.hash_open(handle)
                    media = read_audio(path, scratch, handle)
            if ref.get("filename"):
                media.name = Path(ref["filename"]).stem
            inputs[name] = media
        return inputs

    def _run_engine(self, engine: Engine, record: JobRecord, inputs, ctx):
        if engine.kind is not EngineKind.MODEL:
            return engine.run(None, inputs, record.params, ctx)
        ctx.progress(0.0, f"loading {record.model}")
        with self.residency.acquire(record.model, record.keep_alive) as lease:
            return engine.run(lease.handle, inputs, record.params, ctx)

    def _stage(self, record: JobRecord, clip: str, inputs, outputs: list[Output], ctx) -> Publication:
        """Every output in a temp file in the (re-checked, pinned) output folder."""
        folder = Path(record.out_dir)
        if self._writable is not None:
            folder = self._writable.check(record.out_dir, "write to")
        private = self._private_root is not None and inside(folder, self._private_root)
        publication = Publication(folder, record.id, private=private)
        try:
            for output in outputs:
                ctx.check()
                self._stage_one(publication, output, record, clip, inputs, ctx)
        except BaseException:
            publication.rollback()
            raise
        return publication

    @staticmethod
    def _stage_one(publication: Publication, output: Output, record: JobRecord, clip: str,
                   inputs, ctx) -> None:
        namer = record.model or record.engine
        if output.audio is not None:
            fmt = _format_for(record.params.get("format", "auto"), inputs)
            name = output_name(clip, namer, output.kind, OUTPUT_FORMATS[fmt][2])
            stage_audio(publication, name, output.kind, output.audio, fmt, ctx.check)
        elif output.path is not None:  # rendered by the engine in its scratch folder
            name = output_name(clip, namer, output.kind, output.suffix)
            publication.stage_file(output.path, name, output.kind, move=True)
        else:
            name = output_name(clip, namer, output.kind, output.suffix)
            publication.stage(name, output.kind, lambda handle: handle.write(output.data or b""))

    def _changed(self, record: JobRecord) -> list[str]:
        """Inputs whose content is no longer what was hashed at submit: the result
        is of what was read, so it must not be cached under the old content's key."""
        with self._lock:
            read = self._read_hashes.pop(record.id, {})
        changed = [name for name, digest in read.items()
                   if record.input_hashes.get(name) not in (None, digest)]
        if not changed or not record.cache_key:
            return []
        record.cache_key = ""
        return [f"input '{name}' changed after the job was submitted; the result is of its new "
                f"content and was not cached" for name in changed]


def commit(record: JobRecord, publication: Publication, save: Callable[[JobRecord], None]) -> None:
    """Save the plan, then link every staged output into place (all or none); the
    plan is saved again after each link, so a crash between two is undone exactly."""
    def saved() -> None:
        record.publishing = publication.plan()
        save(record)

    saved()  # a crash from here on is undone at the next start from this plan
    try:
        paths = publication.commit(linked=saved)
    except BaseException:
        publication.rollback()
        record.publishing = []
        raise
    record.outputs = [{"path": str(path), "kind": staged.kind, "size": staged.size,
                       "sha256": staged.sha256} for path, staged in zip(paths, publication.staged)]


def settle(record: JobRecord, publication: Publication, save: Callable[[JobRecord], None]) -> None:
    """The record holds the job's end: keep the outputs of a success, undo any other."""
    if record.state is JobState.SUCCEEDED:
        publication.discard()
    else:
        publication.rollback()
        record.outputs = []
    if record.publishing:
        record.publishing = []
        save(record)


def _clip_name(engine: Engine, inputs: dict) -> str:
    """The first input clip's name (its file's stem), for output names."""
    for spec in engine.inputs:
        if spec.name in inputs:
            return inputs[spec.name].name
    return engine.name


def _format_for(requested: str, inputs: dict) -> str:
    """"auto": float sources stay float; everything else becomes 24-bit WAV."""
    if requested != "auto":
        return requested
    first = next(iter(inputs.values()), None)
    return "float" if getattr(first, "subtype", "") in ("FLOAT", "DOUBLE") else "wav24"


def _naming_file(exc: MediaError, record: JobRecord) -> MediaError:
    """Engines name an input by its role ("audio has ..."); add which file it is."""
    for name, ref in record.inputs.items():
        label = ref.get("filename") or ref.get("path")
        if label and exc.message.startswith(name + " "):
            return MediaError(f"{name} '{label}'{exc.message[len(name):]}")
    return exc
