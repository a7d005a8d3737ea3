"""Timelines in and out: reading and writing by suffix, which clips to process,
where their media is, and which part of it a clip uses.

Media time: OpenTimelineIO puts a clip's source range in its media's own time,
which in most editor files starts at the media's timecode (01:00:00:00 is the
first frame of a camera file), and in Kdenlive at 0. ``media_origin`` finds
the media time of a file's first frame, so ranges convert to seconds of the
file (what the daemon's engines take) and back.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .formats import (Format, TimelineError, edl_drop_frame, format_for, patch_written, prepare_for_writing, quiet,
                      url_to_path)
from . import fcpx
from .rates import exact, label, timecode_rate


@dataclass
class Document:
    """A timeline read from a file, and where relative media paths start from."""

    path: Path
    fmt: Format
    timeline: object  # opentimelineio.schema.Timeline
    base_dir: Path
    notes: list[str] = field(default_factory=list)
    rate: Fraction | None = None  # the rate an EDL was read at


def read_document(path: Path, rate=None, extract_dir=None) -> Document:
    """Read ``path`` with the adapter its suffix names.

    Args:
        rate: frame rate for formats that do not store one (EDL): a number or
            Fraction, taken exactly (29.97 is 30000/1001); None: the first of
            the usual rates the EDL reads at (see ``read_edl``).
        extract_dir: callable returning a fresh folder to unpack a .otioz
            bundle's media into (the daemon must be able to read it).

    Raises:
        TimelineError: unknown suffix, missing file, or the adapter failed.
    """
    import opentimelineio as otio

    fmt = format_for(path)
    if not fcpx.document_path(path).is_file():
        raise TimelineError(f"timeline '{path}' does not exist", code="not_found")
    if fmt.adapter == "cmx_3600":
        result, notes, used = read_edl(path, rate)
        return Document(path, fmt, _one_timeline(result, path, notes), path.parent, notes, used)
    kwargs, notes, base_dir = {}, [], path.parent
    if fmt.adapter == "otioz" and extract_dir is not None:
        base_dir = Path(extract_dir())
        kwargs["extract_to_directory"] = str(base_dir)
        notes.append(f"bundle media unpacked into {base_dir}")
    try:
        with quiet():
            if fmt.adapter == "fcpx_xml":  # media-rep, exact NTSC rates, bundles: see fcpx.py
                result = fcpx.read(_text_of(fcpx.document_path(path)))
            else:
                result = otio.adapters.read_from_file(str(path), adapter_name=fmt.adapter, **kwargs)
    except Exception as exc:  # adapters raise anything from ValueError to their own parse errors
        raise TimelineError(f"cannot read '{path.name}' as {fmt.label} (OpenTimelineIO adapter "
                            f"{fmt.adapter}): {type(exc).__name__}: {exc}") from None
    return Document(path, fmt, _one_timeline(result, path, notes), base_dir, notes)


# Rates an EDL is tried at when none is given, most common first (EDLs store none).
EDL_RATES = (30, 24, 25, Fraction(30000, 1001), Fraction(24000, 1001), 50, Fraction(60000, 1001), 60)


def read_edl(path: Path, rate=None):
    """An EDL at ``rate``, or at the first of EDL_RATES it reads at cleanly.

    An EDL whose record times overlap or disagree with its sources at every rate
    (common in hand-edited lists) is read, as a last resort, with OpenTimelineIO
    placing events by their source durations, and a note says so. A rate given
    that does not fit while another does is an error naming the one that fits.

    Returns:
        (what the adapter read, notes, the rate used).

    Raises:
        TimelineError: it cannot be read at the rate given, or at any rate tried.
    """
    text = _text_of(path)
    rates = [exact(rate)] if rate is not None else [Fraction(r) for r in EDL_RATES]
    failures: list[str] = []
    found = _first_reading(text, rates, False, failures)
    if found is None and rate is not None:
        others = [Fraction(r) for r in EDL_RATES if Fraction(r) != exact(rate)]
        fits = _first_reading(text, others, False, [])
        if fits is not None:
            raise TimelineError(f"cannot read '{path.name}' as CMX 3600 EDL at {label(rate)} fps: "
                                f"{failures[0]}; it reads at {label(fits[2])} fps: give --rate {label(fits[2])}",
                                code="invalid_argument")
    lenient = found is None
    found = found or _first_reading(text, rates, True, failures)
    if found is None:
        shown = "; ".join(dict.fromkeys(failures))
        raise TimelineError(f"cannot read '{path.name}' as CMX 3600 EDL (OpenTimelineIO adapter cmx_3600): "
                            f"{shown[:1500]}; if it is at another rate, give it with --rate")
    result, notes, used = found
    how = "the first usual rate it reads at" if rate is None else "as asked" if used == exact(rate) else \
        f"--rate {label(rate)} taken as {label(used)}: drop-frame timecode exists only there"
    notes.append(f"EDL read at {label(used)} fps ({how}; EDLs store no rate: set it with --rate)")
    if lenient:
        notes.append("its record times overlap or disagree with its source times: events were placed "
                     "by their source durations; check the cut against the editor's")
    return result, notes, used


def _first_reading(text: str, rates, lenient: bool, failures: list[str]):
    """(result, notes, rate) of the first of ``rates`` the EDL reads at, or None; why
    each failed is added to ``failures``."""
    import opentimelineio as otio

    tried = set()
    for candidate in rates:
        try:
            marked, used, notes = edl_drop_frame(text, candidate)
        except TimelineError as exc:
            failures.append(f"at {label(candidate)} fps: {exc.message}")
            continue
        if used in tried:  # a drop-frame EDL reads 30 as 29.97
            continue
        tried.add(used)
        try:
            with quiet():
                result = otio.adapters.read_from_string(marked, adapter_name="cmx_3600", rate=float(used),
                                                        ignore_timecode_mismatch=lenient)
        except Exception as exc:  # the adapter's EDLParseError, ValueError on a bad timecode, ...
            failures.append(f"at {label(used)} fps: {type(exc).__name__}: {exc}")
            continue
        return result, notes, used
    return None


def _text_of(path: Path) -> str:
    """A text timeline's characters (EDLs from older systems are often Latin-1, not UTF-8)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _one_timeline(result, path: Path, notes: list[str]):
    import opentimelineio as otio

    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = list(result.find_children(descended_from_type=otio.schema.Timeline, shallow_search=True)) \
        if hasattr(result, "find_children") else []
    if not timelines:
        raise TimelineError(f"'{path.name}' holds no timeline (found a {type(result).__name__})")
    if len(timelines) > 1:
        notes.append(f"'{path.name}' holds {len(timelines)} sequences; used the first, "
                     f"'{timelines[0].name}' (others: {', '.join(t.name for t in timelines[1:])})")
    return timelines[0]


def write_timeline(timeline, path: Path, canvas: tuple[int, int] | None = None, shown_as: str = "") -> Format:
    """Write ``timeline`` to ``path`` in the format its suffix names, atomically.

    The file appears complete or not at all (temp file + rename); an existing
    file at ``path`` is replaced only once the new one is fully written.
    ``shown_as`` names the file in errors (a trial write names the real target).

    Raises:
        TimelineError: no adapter writes the suffix, or the adapter failed.
    """
    import opentimelineio as otio

    fmt = format_for(path, write=True)
    try:
        prepared = prepare_for_writing(timeline, fmt)
    except Exception as exc:  # OTIO errors on a timeline it cannot measure (clips with no range)
        raise TimelineError(f"cannot write '{shown_as or path.name}' as {fmt.label}: {type(exc).__name__}: "
                            f"{exc}; give every clip in and out points, or write .otio") from None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise TimelineError(f"cannot write '{shown_as or path.name}': {exc.strerror} in {path.parent}",
                            code="permission_denied") from None
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # the otioz adapter refuses to write over an existing file
    kwargs = {}
    if fmt.adapter == "otioz":
        from opentimelineio.adapters.file_bundle_utils import MediaReferencePolicy

        kwargs["media_policy"] = MediaReferencePolicy.MissingIfNotFile  # failed clips keep their place
    try:
        with quiet():
            if fmt.adapter == "fcpx_xml":  # exact NTSC rates: see fcpx.py
                tmp.write_text(fcpx.write(prepared), encoding="utf-8")
            else:
                otio.adapters.write_to_file(prepared, str(tmp), adapter_name=fmt.adapter, **kwargs)
        patch_written(tmp, fmt, prepared, canvas)
        os.replace(tmp, path)
    except TimelineError:
        raise
    except Exception as exc:
        raise TimelineError(f"cannot write '{shown_as or path.name}' as {fmt.label} (OpenTimelineIO adapter "
                            f"{fmt.adapter}): {type(exc).__name__}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return fmt


# -- which clips ----------------------------------------------------------------------
@dataclass
class Candidate:
    """A clip to process and where it sits.

    Attributes:
        track: the top-level track holding it (directly or inside nested stacks).
        label: the track as reported ("V1", or its name).
        nested: names of the nested stacks it is inside ("" = directly on the track).
    """

    clip: object
    track: object
    label: str
    nested: str = ""


def track_labels(timeline) -> list[tuple[object, str, str]]:
    """(track, label, kind-index like "V1"/"A2") for every top-level track."""
    counts: dict[str, int] = {}
    rows = []
    for track in timeline.tracks:
        letter = "A" if track.kind == "Audio" else "V"
        counts[letter] = counts.get(letter, 0) + 1
        index = f"{letter}{counts[letter]}"
        rows.append((track, track.name or index, index))
    return rows


def select_clips(timeline, kind: str, tracks=(), names=(), markers=()) -> list[Candidate]:
    """Clips on tracks of ``kind`` ("Video"/"Audio") matching every given selector.

    Args:
        tracks: track names, kind-indexes ("V2", "A1") or 1-based indexes among
            tracks of ``kind``; any may match.
        names: glob patterns for the clip name; any may match.
        markers: glob patterns (case-insensitive) for the name of a marker on the
            clip, or of a timeline marker overlapping it; any may match.

    Raises:
        TimelineError: a --track selector names no track (the message lists them).
    """
    rows = [row for row in track_labels(timeline) if row[0].kind == kind]
    chosen = [row for row in rows if not tracks or any(_track_matches(t, row, rows) for t in tracks)]
    if tracks and not chosen:
        listing = ", ".join(f"{index} '{track.name}'" if track.name not in ("", index) else index
                            for track, _, index in rows)
        raise TimelineError(f"--track {', '.join(tracks)} matches no {kind.lower()} track; "
                            f"{kind.lower()} tracks: {listing or 'none'}", code="not_found")
    found = []
    for track, label, _ in chosen:
        for clip in track.find_clips():
            if names and not any(fnmatch.fnmatchcase(clip.name or "", n) for n in names):
                continue
            if markers and not _has_marker(timeline, track, clip, markers):
                continue
            found.append(Candidate(clip, track, label, _nesting(clip, track)))
    return found


def _track_matches(selector: str, row, rows) -> bool:
    track, label, index = row
    if selector in (track.name, index) or selector.upper() == index:
        return True
    return selector.isdigit() and 0 < int(selector) <= len(rows) and rows[int(selector) - 1] is row


def _has_marker(timeline, track, clip, patterns) -> bool:
    def hit(marker):
        return any(fnmatch.fnmatch((marker.name or "").lower(), p.lower()) for p in patterns)

    if any(hit(m) for m in clip.markers):
        return True
    try:
        span = clip.transformed_time_range(clip.trimmed_range(), track)
    except Exception:  # no range to place it by (no source range, media of unknown length)
        return False
    return any(hit(m) and _overlaps(m.marked_range, span) for m in timeline.tracks.markers)


def _overlaps(marked, span) -> bool:
    start, end = marked.start_time, marked.end_time_exclusive()
    if marked.duration.value == 0:  # a point marker is inside or not
        return span.start_time <= start < span.end_time_exclusive()
    return start < span.end_time_exclusive() and span.start_time < end


def _nesting(clip, track) -> str:
    names, parent = [], clip.parent()
    while parent is not None and parent is not track:
        if parent.schema_name() == "Stack":
            names.append(parent.name or "(unnamed stack)")
        parent = parent.parent()
    return " > ".join(reversed(names))


# -- where the media is ----------------------------------------------------------------
def resolve_media(url: str, base_dir: Path, search_paths=()) -> tuple[Path | None, list[str]]:
    """Find a media file: absolute path or file:// URL, relative to the timeline's
    folder, or by file name under the search paths.

    Returns:
        (path or None, what was tried, in order).
    """
    tried = []
    local = url_to_path(url)
    if "://" not in local and local:
        raw = Path(local)
        for candidate in ([raw] if raw.is_absolute() else [base_dir / raw]):
            tried.append(str(candidate))
            if candidate.is_file():
                return candidate.resolve(), tried
    name = Path(local.replace("\\", "/")).name
    for folder in search_paths:
        tried.append(f"{name} under {folder}")
        hits = sorted(p for p in Path(folder).rglob(name) if p.is_file()) if name else []
        if hits:
            return hits[0].resolve(), tried
    return None, tried


# What a file found by a clip's name or reel may be (not sidecars, proxies' XML, ...).
VIDEO_SUFFIXES = {".mov", ".mp4", ".m4v", ".mxf", ".avi", ".mkv", ".webm", ".mts", ".m2ts", ".mpg", ".dv",
                  ".r3d", ".braw"}
AUDIO_SUFFIXES = {".wav", ".aif", ".aiff", ".mp3", ".flac", ".m4a", ".aac", ".ogg", ".bwf"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES


class MediaIndex:
    """Media files under the search paths by lower-cased name and stem (walked once)."""

    def __init__(self, search_paths=()):
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for folder in search_paths:
            for path in sorted(Path(folder).rglob("*")):
                if path.suffix.lower() in MEDIA_SUFFIXES and path.is_file():
                    self.by_name.setdefault(path.name.lower(), []).append(path.resolve())
                    self.by_stem.setdefault(path.stem.lower(), []).append(path.resolve())

    def find(self, names, kind: str = "Video") -> tuple[list[Path], str]:
        """Files for the first of ``names`` (clip name, reel, ...) that matches any: by
        file name, else by name without a media suffix. A video clip takes only video
        files; an audio clip prefers audio files to videos of the same name.
        Returns (files, the name matched)."""
        for name in filter(None, (str(n).strip() for n in names)):
            bare = name[:-len(Path(name).suffix)] if Path(name).suffix.lower() in MEDIA_SUFFIXES else name
            hits = self.by_name.get(name.lower()) or self.by_stem.get(bare.lower()) or []
            hits = _of_kind(sorted(set(hits)), kind)
            if hits:
                return hits, name
        return [], ""


def _of_kind(paths: list[Path], kind: str) -> list[Path]:
    videos = [p for p in paths if p.suffix.lower() in VIDEO_SUFFIXES]
    if kind != "Audio":
        return videos
    return [p for p in paths if p.suffix.lower() in AUDIO_SUFFIXES] or videos


def _kind_of(clip) -> str:
    parent = clip.parent()
    while parent is not None and parent.schema_name() != "Track":
        parent = parent.parent()
    return "Audio" if parent is not None and parent.kind == "Audio" else "Video"


def names_of(clip) -> list[tuple[str, str]]:
    """What an offline clip may be found by: (how, name): its clip name (not the event
    number an EDL reader names it by when it has none), its reel, its reference's name."""
    cmx = clip.metadata.get("cmx_3600") if hasattr(clip.metadata, "get") else None
    reel = cmx.get("reel", "") if hasattr(cmx, "get") else ""
    name = clip.name or ""
    rows = ([("clip name", name)] if not name.strip().isdigit() else []) + ([("reel", reel)] if reel else [])
    ref = clip.media_reference
    if getattr(ref, "name", ""):
        rows.append(("reference name", ref.name))
    return rows


def relink_by_name(timeline, index: MediaIndex) -> dict[int, str]:
    """Give clips with no media (MissingReference: EDLs that name a clip or reel, not a
    file) the one file under the search paths with that name.

    Returns:
        {id(clip): why} for every clip tried: how it was found, or why not
        (nothing found, or several files with the name).
    """
    from opentimelineio import schema

    outcome = {}
    for clip in timeline.find_clips():
        if not isinstance(clip.media_reference, schema.MissingReference):
            continue
        tried = names_of(clip)
        hits, matched = index.find((name for _, name in tried), _kind_of(clip))
        how = next((h for h, name in tried if name == matched), "")
        if len(hits) == 1:
            clip.media_reference = schema.ExternalReference(target_url=hits[0].as_uri())
            outcome[id(clip)] = f"relinked by {how} '{matched}' to {hits[0]}"
        elif hits:
            outcome[id(clip)] = (f"{len(hits)} files match its {how} '{matched}': "
                                 f"{', '.join(map(str, hits[:4]))}; give a --search-path that holds only "
                                 "the right one, or relink it in the editor")
        else:
            looked = ", ".join(f"{h} '{n}'" for h, n in tried if n)
            outcome[id(clip)] = f"no file under the search paths matches its {looked or 'name (it has none)'}"
    return outcome


def relink(timeline, base_dir: Path, search_paths=()) -> int:
    """Point every media reference whose file is found at its absolute file:// URL.

    A relative path means "next to the timeline being read": written
    elsewhere it would point nowhere. Returns how many were changed.
    """
    import opentimelineio as otio

    changed = 0
    for clip in timeline.find_clips():
        for ref in clip.media_references().values():
            if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
                continue
            path, _ = resolve_media(ref.target_url, base_dir, search_paths)
            if path is not None and ref.target_url != path.as_uri():
                ref.target_url = path.as_uri()
                changed += 1
    return changed


def fill_available_ranges(timeline, fmt: Format) -> int:
    """Give references that state no media range (EDL) the one their file has.

    Editor writers need it (FCP7 counts clip in/out from it) and it makes
    the media time explicit. Files that cannot be found or read stay as they are.
    Returns how many were filled.
    """
    from opentimelineio import opentime, schema

    from .probe import probe

    filled = 0
    for clip in timeline.find_clips():
        ref, source = clip.media_reference, clip.source_range
        if not isinstance(ref, schema.ExternalReference) or ref.available_range is not None:
            continue
        path = Path(url_to_path(ref.target_url))
        info = probe(path) if path.is_absolute() and path.is_file() else None
        if info is None or (source is None and not info.fps):
            continue
        rate = float(info.fps) if info.fps else source.start_time.rate
        origin = media_origin(fmt, ref, rate, info.timecode, source.start_time if source else None)
        frames = info.frames if info.fps else round(info.duration * rate)
        ref.available_range = opentime.TimeRange(origin, opentime.RationalTime(frames, rate))
        filled += 1
    return filled


# -- which part of the media -----------------------------------------------------------
def media_origin(fmt: Format, ref, fps, timecode: str, source_start):
    """The media time (RationalTime at ``fps``) of the file's first frame.

    Kdenlive counts from the file's start; a reference that states its
    available range starts there; otherwise a clip whose source range lies at
    or past the media's timecode (or that has none: ``source_start`` None)
    counts from the timecode (EDL), else from 0.
    """
    from opentimelineio import opentime

    rate = float(fps)
    if fmt.file_relative:
        return opentime.RationalTime(0, rate)
    if ref.available_range is not None:
        return ref.available_range.start_time.rescaled_to(rate)
    if timecode:
        try:  # counted at the exact SMPTE rate (a file may store 29.97 as 2997/100)
            at = opentime.from_timecode(timecode, timecode_rate(rate)).rescaled_to(rate)
        except ValueError:
            at = None
        if at is not None and (source_start is None or source_start.rescaled_to(rate) >= at):
            return at
    return opentime.RationalTime(0, rate)


@dataclass(frozen=True)
class Window:
    """Frames ``first`` .. ``first + count`` of a file (counted from its first frame)."""

    first: int
    count: int
    warnings: tuple[str, ...] = ()


def render_window(source_range, origin, frames: int, handles: int) -> Window:
    """The media a clip uses plus ``handles`` frames each side, clamped to the file.

    Args:
        source_range: the clip's source range (media time).
        origin: media time of the file's first frame (see ``media_origin``).
        frames: frames in the file (0 = unknown: no clamp at the end).
        handles: extra frames wanted before and after.

    Raises:
        TimelineError: the clip uses none of the file's frames.
    """
    rate = origin.rate
    first = int(round((source_range.start_time.rescaled_to(rate) - origin).value))
    end = first + int(round(source_range.duration.rescaled_to(rate).value))
    if end <= 0 or (frames and first >= frames):
        raise TimelineError(f"the clip uses frames {first}..{end} of its media but the file has "
                            f"{frames or 'unknown'} frames from its start (its timecode and the "
                            f"timeline disagree; for an EDL check --rate)", code="out_of_range")
    warnings = []
    if first < 0 or (frames and end > frames):
        warnings.append(f"the clip uses frames {first}..{end} but the media has 0..{frames}; "
                        "rendered what exists")
    lo = max(0, first - handles)
    hi = min(frames, end + handles) if frames else end + handles
    return Window(lo, hi - lo, tuple(warnings))
