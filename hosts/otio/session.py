"""One otio command's session: the timeline, the daemon, a row per clip.

``Run`` reads IN (refusing to write over it), finds each clip's media, runs
daemon jobs (the same request once), records per-clip outcomes, and writes
OUT plus its ``.otio`` sidecar. The actions in ``jobs`` use it.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

from bridge.client import BridgeError, Unavailable

from .formats import META, TimelineError, declare_canvas, format_for, metadata_branch, url_to_path, writer_losses
from .rates import exact, label
from .timeline import (Candidate, MediaIndex, fill_available_ranges, read_document, relink, relink_by_name,
                       resolve_media, select_clips, write_timeline)

MARKER_COLOR = "PURPLE"  # the one colour every editor format reads back unchanged


@dataclass
class Options:
    """What every action takes (the CLI's shared flags)."""

    input: Path
    output: Path
    media_dir: Path | None = None
    search_paths: tuple = ()
    rate: Fraction | None = None  # EDLs: exact (30000/1001, not 29.97); None: found by reading
    tracks: tuple = ()
    names: tuple = ()
    markers: tuple = ()
    handles: int = 12
    no_cache: bool = False
    sidecar_only: bool = False  # write only the lossless .otio sidecar, not OUT


class ClipProblem(Exception):
    """This clip is skipped or failed; the run goes on."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def sidecar_for(output: Path) -> Path:
    """Where the lossless .otio with every job's details goes."""
    if output.suffix.lower() == ".otio":
        return output.with_name(output.stem + ".studio-bridge.otio")
    return output.with_name(output.name + ".otio")


class Run:
    """One otio command: the timeline, the daemon, a row per clip.

    Args:
        client: a ``bridge.client.Client``.
        progress: called with (clip row so far, job snapshot) while jobs run.
    """

    def __init__(self, client, opts: Options, action: str, progress: Callable | None = None):
        self.client, self.opts, self.action, self.progress = client, opts, action, progress
        self.input, self.output = Path(opts.input).absolute(), Path(opts.output).absolute()
        self.sidecar = sidecar_for(self.output)
        _refuse_overwriting_input(self.input, self.output, self.sidecar)
        _refuse_unwritable(self.output)
        self.out_fmt = format_for(self.output, write=True)
        self.media_dir = Path(opts.media_dir or self.output.parent / f"{self.output.stem}_media").absolute()
        self.search = _search_paths(opts.search_paths)
        self._read(opts.rate)
        media_rate = self._edl_media_rate() if self.doc.rate is not None and opts.rate is None else None
        if media_rate is not None and media_rate != self.doc.rate:
            first = self.doc.rate
            try:  # EDLs store no rate, and many read at several: their media's rate is the one
                self._read(media_rate)
                self.notes.append(f"read at {label(media_rate)} fps, the frame rate of its media (it also "
                                  f"reads at {label(first)}); set --rate if that is wrong")
            except TimelineError:
                self.notes.append(f"its media is {label(media_rate)} fps but the EDL does not read at that "
                                  f"rate: read at {label(first)}; set --rate if that is wrong")
        self.rows: list[dict] = []
        self._jobs: dict[str, dict] = {}
        self.planning = False  # a dry run: jobs answer with placeholder outputs

    def _read(self, rate) -> None:
        """Read IN at ``rate`` (EDLs), relink its media and fill in what the media says."""
        self.doc = read_document(self.input, rate, self._extract_dir)
        self.timeline = self.doc.timeline
        self.notes = list(self.doc.notes)
        relink(self.timeline, self.doc.base_dir, self.search)
        self.relinked = relink_by_name(self.timeline, MediaIndex(self.search)) if self.search else {}
        fill_available_ranges(self.timeline, self.doc.fmt)

    def _edl_media_rate(self):
        """The one frame rate all of an EDL's found video media share, or None."""
        from .probe import probe

        rates = set()
        for clip in self.timeline.find_clips():
            ref = clip.media_reference
            path = Path(url_to_path(getattr(ref, "target_url", "") or ""))
            info = probe(path) if path.is_absolute() and path.is_file() else None
            if info is not None and info.fps:
                rates.add(exact(info.fps))
        return rates.pop() if len(rates) == 1 else None

    def execute(self, apply: Callable[["Run"], tuple[int, int] | None]) -> dict:
        """Run ``apply`` (which processes the clips and returns the canvas, if any) and write
        OUT, once OUT's format is known to hold the result.

        ``apply`` first runs on a copy whose jobs are placeholders: an editor format that
        cannot hold the result (an EDL with stem tracks, FCP X audio with no storyline
        above it) fails here, before any job has run.
        """
        if not self.opts.sidecar_only:
            plan = self._planned()
            canvas = apply(plan)
            plan._check_writable(canvas)
        return self.finish(apply(self))

    def _planned(self) -> "Run":
        import copy

        plan = copy.copy(self)
        plan.timeline = copy.deepcopy(self.timeline)
        plan.doc = copy.copy(self.doc)
        plan.doc.timeline = plan.timeline
        plan.notes, plan.rows, plan._jobs = list(self.notes), [], {}
        plan.planning, plan.progress = True, None
        return plan

    def _check_writable(self, canvas) -> None:
        """Write the planned result in OUT's format (to a temp folder).

        Raises:
            TimelineError: OUT's format cannot hold it; the message names the formats that can.
        """
        if self.out_fmt.all_references or not any(row["status"] == "done" for row in self.rows):
            return  # .otio/.otioz hold anything; with nothing done nothing is written
        if canvas:
            declare_canvas(self.timeline, self.out_fmt, canvas)
        with tempfile.TemporaryDirectory() as folder:
            try:
                write_timeline(self.timeline, Path(folder) / f"check{self.output.suffix}", canvas,
                               shown_as=self.output.name)
            except TimelineError as exc:
                holders = [suffix for suffix in (".otio", ".xml", ".fcpxml", ".kdenlive", ".edl")
                           if suffix != self.output.suffix.lower() and _holds(self.timeline, folder, suffix)]
                raise TimelineError(f"{exc.message}. Nothing was run: {self.out_fmt.label} cannot hold what "
                                    f"{self.action} makes of this timeline; write OUT as "
                                    f"{' or '.join(holders) or '.otio'} instead, or pass --sidecar-only "
                                    f"(only the .otio sidecar is written)", code="unsupported_format") from None

    def _extract_dir(self) -> Path:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{self.input.stem}.otioz-", dir=self.media_dir))

    # -- clips ------------------------------------------------------------------
    def candidates(self, kind: str) -> list[Candidate]:
        """Clips of ``kind`` ("Video"/"Audio") the selectors pick, nested ones included."""
        import opentimelineio as otio

        found = select_clips(self.timeline, kind, self.opts.tracks, self.opts.names, self.opts.markers)
        if self.timeline.find_children(descended_from_type=otio.schema.Transition):
            self.notes.append("transitions are left as they are (not processed)")
        return found

    def each(self, candidates: list[Candidate], work: Callable[[Candidate, dict], None]) -> None:
        """Run ``work(candidate, row)`` per clip; a ClipProblem becomes the row's status."""
        for cand in candidates:
            row = {"name": cand.clip.name, "track": cand.label, "status": "done"}
            if cand.nested:
                row["nested"] = cand.nested  # processed like any clip: its media time is its own
            self.rows.append(row)
            try:
                work(cand, row)
            except ClipProblem as problem:
                row.update(status=problem.status, reason=problem.reason)
            except TimelineError as exc:  # e.g. the clip lies outside its media
                row.update(status="failed", reason=exc.message)
            except Exception as exc:  # OTIO's own errors on an odd clip (e.g. no range anywhere)
                if not _is_otio_error(exc):
                    raise
                row.update(status="failed", reason=f"OpenTimelineIO cannot place this clip: "
                                                    f"{type(exc).__name__}: {exc}; check its in and out points")

    def media_for(self, cand: Candidate, row: dict):
        """The clip's active media reference and its file.

        Raises:
            ClipProblem: no reference, a generator, or the file cannot be found.
        """
        import opentimelineio as otio

        ref, relinked = cand.clip.media_reference, self.relinked.get(id(cand.clip), "")
        if isinstance(ref, otio.schema.MissingReference) or ref is None:
            hint = relinked or "add --search-path DIR to find it by clip or reel name, or relink it in the editor"
            raise ClipProblem("skipped", "no media reference (MissingReference: the timeline names no file): "
                                         + hint)
        if not isinstance(ref, otio.schema.ExternalReference):
            raise ClipProblem("skipped", f"its media is a {ref.schema_name()} "
                                         f"({getattr(ref, 'generator_kind', '') or 'not a file'}), not a file")
        if relinked:
            row["relinked"] = relinked
        path, tried = resolve_media(ref.target_url, self.doc.base_dir, self.search)
        if path is None:
            name = Path(ref.target_url.replace("\\", "/")).name
            raise ClipProblem("failed", f"media not found: '{ref.target_url}'; tried {'; '.join(tried)}; "
                                        f"add --search-path DIR (a folder that holds '{name}')")
        return ref, path

    def job(self, engine: str, inputs: dict, params: dict, row: dict, model: str = "",
            expect: tuple[str, ...] = ()) -> dict:
        """Run one daemon job (the same request twice in one run is sent once).

        ``expect``: the output kinds it will make, for a dry run's placeholders.

        Raises:
            ClipProblem: the daemon refused or failed the job (its message passed on).
            Unavailable: no daemon answers (nothing else can work either).
        """
        key = json.dumps([engine, inputs, params, model], sort_keys=True)
        if self.planning:
            self._jobs[key] = _placeholder(engine, expect, self.media_dir)
        if key not in self._jobs:
            try:
                self._jobs[key] = self.client.run(
                    engine, inputs, params, str(self.media_dir), model=model, no_cache=self.opts.no_cache,
                    client="otio", on_event=(lambda job: self.progress(row, job)) if self.progress else None)
            except Unavailable:
                raise
            except BridgeError as exc:
                raise ClipProblem("failed", f"{engine} refused: {exc.code}: {exc.message}") from None
        job = self._jobs[key]
        if job["state"] != "succeeded":
            error = job.get("error") or {}
            raise ClipProblem("failed", f"{engine} job {job['job_id']} {job['state']}: "
                                        f"{error.get('code', '')}: {error.get('message', '')}".rstrip(": "))
        row["job_id"] = job["job_id"]
        return job

    # -- out ----------------------------------------------------------------------
    def finish(self, canvas: tuple[int, int] | None = None) -> dict:
        """Write OUT and the sidecar if anything was processed; the command's result."""
        done = sum(row["status"] == "done" for row in self.rows)
        result = {"action": self.action, "input": str(self.input), "output": None, "sidecar": None,
                  "format": self.out_fmt.label, "media_dir": str(self.media_dir), "processed": done,
                  "clips": self.rows}
        if canvas:
            result["canvas"] = {"width": canvas[0], "height": canvas[1],
                                "stored": bool(self.out_fmt.canvas) or self.opts.sidecar_only}
            if not self.out_fmt.canvas and not self.opts.sidecar_only:
                self.notes.append(f"{self.out_fmt.label} stores no frame size: set the sequence to "
                                  f"{canvas[0]}x{canvas[1]} in the editor")
            declare_canvas(self.timeline, self.out_fmt, canvas)
        if not self.out_fmt.all_references and not self.opts.sidecar_only:
            self.notes.append(f"{self.out_fmt.label} keeps only the active media of a clip: the "
                              "originals are kept in the sidecar")
        self.notes += [] if self.opts.sidecar_only else writer_losses(self.timeline, self.out_fmt)
        result["notes"] = self.notes
        if not done:
            result["error"] = _nothing_done(self.rows, self.action, self.input)
            return result
        metadata_branch(self.timeline.metadata, META)["run"] = {
            "action": self.action, "input": str(self.input), "clips": self.rows}
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            write_timeline(self.timeline, self.sidecar)  # first: it holds anything, and every result
        except (TimelineError, OSError) as exc:
            why = exc.message if isinstance(exc, TimelineError) else f"{exc.strerror}: {exc.filename}"
            result["error"] = {"code": "write_failed", "message": f"cannot write the sidecar {self.sidecar}: "
                               f"{why}; the {done} results are kept in {self.media_dir}"}
            return result
        result["sidecar"] = str(self.sidecar)
        if self.opts.sidecar_only:
            return result
        try:
            write_timeline(self.timeline, self.output, canvas)
        except TimelineError as exc:
            result["error"] = {"code": "write_failed", "message": f"{exc.message}; the {done} results are "
                               f"kept in {self.media_dir} and the timeline using them in {self.sidecar} "
                               "(open it, or convert it with otioconvert)"}
            return result
        result["output"] = str(self.output)
        return result


def media_played(clip):
    """The part of its media a clip plays: its source range, stretched by a constant speed
    change (LinearTimeWarp: 2.0 plays twice its length), one frame for a freeze frame.

    Raises:
        ClipProblem: reverse or variable speed (a render of one range cannot follow it).
    """
    import math

    from opentimelineio import opentime, schema

    source = source_range(clip)
    rate, scalar = source.duration.rate, 1.0
    for effect in clip.effects:
        if isinstance(effect, schema.LinearTimeWarp):  # FreezeFrame is one, at 0
            scalar *= effect.time_scalar
        elif _is_retime(effect):
            raise ClipProblem("skipped", f"variable speed ({effect.effect_name or effect.name}) is not "
                                         "supported: render the retimed clip in the editor first")
    if scalar < 0:
        raise ClipProblem("skipped", f"it plays in reverse (speed {scalar * 100:g}%), which is not "
                                     "supported: render the reversed clip in the editor first")
    frames = max(1, math.ceil(source.duration.value * scalar - 1e-9))
    return opentime.TimeRange(source.start_time, opentime.RationalTime(frames, rate))


def _is_retime(effect) -> bool:
    """A time effect other than a constant speed (FCP7 Time Remap, FCP X timeMap, ...)."""
    name = f"{effect.effect_name} {effect.name}".lower().replace(" ", "")
    return any(word in name for word in ("timeremap", "timemap", "timewarp", "retime", "speedramp"))


def _search_paths(paths) -> tuple[Path, ...]:
    """--search-path folders, absolute.

    Raises:
        TimelineError: one is not a folder (a typo would make every clip "not found").
    """
    found = tuple(Path(p).expanduser().absolute() for p in paths)
    missing = [str(p) for p in found if not p.is_dir()]
    if missing:
        raise TimelineError(f"--search-path {', '.join(missing)}: no such folder; give folders that hold "
                            "the media", code="not_found")
    return found


def _is_otio_error(exc: Exception) -> bool:
    import opentimelineio as otio

    return isinstance(exc, otio.exceptions.OTIOError)


def _holds(timeline, folder: str, suffix: str) -> bool:
    """Whether ``suffix``'s format writes ``timeline`` (a trial write into ``folder``)."""
    try:
        write_timeline(timeline, Path(folder) / f"holds{suffix}")
    except TimelineError:
        return False
    return True


def _placeholder(engine: str, kinds: tuple[str, ...], media_dir: Path) -> dict:
    """A succeeded job as a dry run sees it: outputs named for their kinds, never written."""
    outputs = [{"kind": kind, "path": str(media_dir / f"planned.{uuid.uuid4().hex}.{engine}.{kind}")}
               for kind in kinds]  # one file per job and kind, as the real jobs make
    return {"job_id": "planned", "state": "succeeded", "outputs": outputs, "report": {}, "model": ""}


def _refuse_unwritable(output: Path) -> None:
    """OUT's folder (or the nearest one that exists, where it will be made) must be writable
    by us: found out now, not after every job has run."""
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise TimelineError(f"cannot write '{output}': {folder} is not a folder this user can write to; "
                            "give -o a path in one", code="permission_denied")


def _refuse_overwriting_input(source: Path, output: Path, sidecar: Path) -> None:
    for target in (output, sidecar):
        if target.resolve() == source.resolve() or (target.exists() and os.path.samefile(target, source)):
            raise TimelineError(f"refusing to write '{target}': it is the input timeline; "
                                "give -o another file", code="invalid_argument")


def _nothing_done(rows: list[dict], action: str, source: Path) -> dict:
    if not rows:
        return {"code": "not_found", "message": f"no clip in '{source.name}' matches what {action} "
                                                "works on and the selectors given (--track, --name, --marker)"}
    reasons = "; ".join(f"{row['name']}: {row.get('reason', row['status'])}" for row in rows[:5])
    return {"code": "nothing_processed", "message": f"no clip could be processed ({reasons}); "
                                                   "nothing was written"}


# -- shared pieces --------------------------------------------------------------------
def attach(clip, ref) -> None:
    """Make ``ref`` the clip's active media and keep the old one beside it as "original"."""
    key = clip.active_media_reference_key
    if clip.source_range is None:
        # A clip without a source range plays all of its media: pin what that was, or the new
        # media (longer by its handles) would lengthen the clip and move what follows.
        clip.source_range = source_range(clip)
    # Clones: OTIO 0.18 crashes (segfault) when set_media_references is handed a
    # reference the clip already owns while Python still holds it.
    refs = {name: old.clone() for name, old in clip.media_references().items()}
    name, n = "original", 2
    while name in refs:
        name, n = f"original_{n}", n + 1
    refs[name] = refs[key]
    refs[key] = ref
    clip.set_media_references(refs, key)


def note_on(clip, text: str, details: dict, at) -> None:
    """Job details on the clip: metadata (kept by .otio) and a marker at ``at`` (kept by
    EDL, FCP7, FCPX; FCP7 also keeps the marker's comment: the files made)."""
    import opentimelineio as otio

    clip.metadata[META] = details
    files = "; ".join(f"{key} {details[key]}" for key in ("render", "keyframes") if details.get(key))
    metadata = {META: details, "fcp_xml": {"comment": files}} if files else {META: details}
    marker = otio.schema.Marker(name=text, color=MARKER_COLOR, metadata=metadata,
                                marked_range=otio.opentime.TimeRange(at, otio.opentime.RationalTime(0, at.rate)))
    clip.markers.append(marker)


def output_of(job: dict, kind: str) -> str:
    return next((o["path"] for o in job["outputs"] if o["kind"] == kind), "")


def source_range(clip):
    """What the clip plays of its media: its source range, else all of its media.

    Raises:
        ClipProblem: neither is known (no source range, and media of unknown length).
    """
    if clip.source_range is not None:
        return clip.source_range
    try:
        return clip.available_range()
    except Exception:  # OTIO raises CannotComputeAvailableRangeError (or others) here
        raise ClipProblem("skipped", "the clip states no source range and its media no length: "
                                     "give the clip in and out points in the editor") from None
