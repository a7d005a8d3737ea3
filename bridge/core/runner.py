"""Running one job: media in, engine on arrays, outputs out atomically.

The scheduler decides when; this decides how. Inputs are decoded here, the
model is held through the residency manager for exactly the run, and every
output is written through a temp file and renamed into the host's folder.
An existing file is never overwritten: a second result gets a numbered name,
so a file already placed in a DAW session never changes under it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .cache import ResultCache
from .engine import Engine, EngineKind, MediaFile, Output, RunContext
from .errors import MediaError
from .jobs import JobRecord
from .media import (OUTPUT_FORMATS, copy_file_atomic, output_name, read_audio, sha256_file,
                    write_audio_atomic, write_bytes_atomic)
from .residency import Residency
from .scratch import Scratch, job_folder


class JobRunner:
    """Callable the scheduler gives each job to."""

    def __init__(self, registry, residency: Residency, cache: ResultCache,
                 resolve: Callable[[dict], Path], scratch_root: Path | None = None):
        self.registry, self.residency, self.cache = registry, residency, cache
        self._resolve = resolve  # input ref -> readable path (roots/blobs checked)
        self._scratch_root = scratch_root  # long media go to disk here, per job

    def __call__(self, record: JobRecord, progress, cancelled) -> None:
        folder = job_folder(self._scratch_root, record.id) if self._scratch_root else None
        with Scratch(folder) as scratch:
            self._run(record, RunContext(progress, cancelled, scratch))

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
        record.outputs = [self._write(o, record, clip, inputs) for o in result.outputs]
        record.report = result.report
        warnings = [w for media in inputs.values() for w in media.warnings]
        if warnings:
            record.report = {**record.report,
                             "warnings": warnings + list(record.report.get("warnings", []))}
        if record.cache_key:
            self.cache.put(record.cache_key, record.outputs, record.report)

    def _read_inputs(self, engine: Engine, record: JobRecord, scratch: Scratch) -> dict:
        """Audio inputs decoded to arrays; video inputs as their paths (read while processed)."""
        kinds = {spec.name: spec.kind for spec in engine.inputs}
        inputs = {}
        for name, ref in record.inputs.items():
            path = self._resolve(ref)
            if kinds.get(name) == "video":
                media = MediaFile(path, path.stem)
            else:
                media = read_audio(path, scratch)
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

    def _write(self, output: Output, record: JobRecord, clip: str, inputs) -> dict:
        folder = Path(record.out_dir)
        if output.audio is not None:
            fmt = _format_for(record.params.get("format", "auto"), inputs)
            name = output_name(clip, record.model or record.engine, output.kind, OUTPUT_FORMATS[fmt][2])
            path = write_audio_atomic(folder, name, output.audio, fmt, tag=record.id)
        elif output.path is not None:  # rendered by the engine in its scratch folder
            name = output_name(clip, record.model or record.engine, output.kind, output.suffix)
            path = copy_file_atomic(output.path, folder, name, tag=record.id, move=True)
        else:
            name = output_name(clip, record.model or record.engine, output.kind, output.suffix)
            path = write_bytes_atomic(folder, name, output.data or b"", tag=record.id)
        return {"path": str(path), "kind": output.kind, "size": path.stat().st_size,
                "sha256": sha256_file(path)}


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
