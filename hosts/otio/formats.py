"""What each timeline file format holds, and the quirks of its OpenTimelineIO adapter.

A format is chosen by the file's suffix. Editor formats keep only a clip's
active media reference and lose custom metadata; clip markers survive EDL,
FCP7 and FCPX (EDL upper-cases their names). Where a format stores the
sequence's frame size ("canvas") this module reads and sets it, working
around adapters that do not: the FCPX adapter writes formats without a size,
and the Kdenlive adapter hard-codes a 1920x1080 profile and drops clip markers,
so both files are patched after writing.

Nothing here imports OpenTimelineIO at module level: ``studio-bridge --help``
must not pay for it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

# Our key in timeline/clip/marker metadata (.otio keeps it; editor formats drop it).
META = "studio_bridge"
DEFAULT_CANVAS = (1920, 1080)

# Kdenlive's marker categories, in its own order (Kdenlive's definitions.h).
KDENLIVE_MARKER_TYPES = ("PURPLE", "CYAN", "BLUE", "GREEN", "YELLOW", "ORANGE", "RED", "PINK", "MAGENTA")


class TimelineError(Exception):
    """A timeline cannot be read, written or used; ``code`` is stable for --json."""

    def __init__(self, message: str, code: str = "bad_timeline"):
        super().__init__(message)
        self.message = message
        self.code = code

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Format:
    """One timeline file format.

    Attributes:
        suffix: the file suffix that selects it.
        adapter: the OpenTimelineIO adapter name.
        label: what people call it.
        canvas: where the frame size lives: "otio" (timeline metadata),
            "fcp_xml", "fcpx", "kdenlive", or "" (the format has none).
        all_references: keeps every media reference of a clip, not only the active one.
        file_relative: media time counts from the file's first frame (MLT), not
            from the media's timecode.
        read_only: read here, not written (write the format's single-file form).
    """

    suffix: str
    adapter: str
    label: str
    canvas: str = ""
    all_references: bool = False
    file_relative: bool = False
    read_only: bool = False


FORMATS = {f.suffix: f for f in (
    Format(".otio", "otio_json", "OpenTimelineIO", canvas="otio", all_references=True),
    Format(".otioz", "otioz", "OpenTimelineIO bundle", canvas="otio", all_references=True),
    Format(".xml", "fcp_xml", "Final Cut Pro 7 XML", canvas="fcp_xml"),
    Format(".fcpxml", "fcpx_xml", "Final Cut Pro X XML", canvas="fcpx"),
    Format(".fcpxmld", "fcpx_xml", "Final Cut Pro X XML bundle", canvas="fcpx", read_only=True),
    Format(".edl", "cmx_3600", "CMX 3600 EDL"),
    Format(".kdenlive", "kdenlive", "Kdenlive project", canvas="kdenlive", file_relative=True),
)}


def format_for(path: Path, write: bool = False) -> Format:
    """The format of ``path`` by its suffix; other suffixes go to whichever adapter claims them.

    Raises:
        TimelineError: no installed adapter handles the suffix.
    """
    import opentimelineio as otio

    suffix = path.suffix.lower()
    if suffix in FORMATS:
        fmt = FORMATS[suffix]
        if write and fmt.read_only:
            raise TimelineError(f"'{path.name}': {fmt.label}s are read, not written, here; write "
                                f"'{path.stem}.fcpxml' instead (Final Cut Pro and Resolve import it)",
                                code="invalid_argument")
        if fmt.adapter not in otio.adapters.available_adapter_names():
            raise TimelineError(f"'{path.name}': {fmt.label} needs the OpenTimelineIO adapter '{fmt.adapter}', "
                                f"which is not installed (`pip install -e '.[reframe]'`); formats: "
                                f"{adapters_summary()}")
        return fmt
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except Exception:  # OTIO raises its own NoKnownAdapterForExtensionError (and others) here
        adapter = None
    if adapter is None or not adapter.has_feature("write" if write else "read"):
        raise TimelineError(f"'{path.name}': no OpenTimelineIO adapter {'writes' if write else 'reads'} "
                            f"'{suffix or '(no suffix)'}' files here; formats: {adapters_summary()}")
    return Format(suffix, adapter.name, adapter.name)


def adapters_summary() -> str:
    """Suffixes and adapters that are installed, for error messages."""
    import opentimelineio as otio

    rows = []
    for adapter in otio.adapters.available_adapter_names():
        try:
            suffixes = otio.plugins.ActiveManifest().from_name(adapter).suffixes
        except Exception:  # a plugin that fails to load is simply not listed
            continue
        rows += [f".{s} ({adapter})" for s in suffixes]
    return ", ".join(sorted(rows)) + " (more with `pip install -e '.[reframe]'`)"


@contextlib.contextmanager
def quiet():
    """Swallow what adapters print (the Kdenlive adapter prints a banner to stdout)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def url_to_path(url: str) -> str:
    """A media URL as a local path string (file:// URLs decoded; other schemes as written)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return url


# -- canvas -------------------------------------------------------------------------
def parse_aspect(aspect: str) -> tuple[int, int, bool]:
    """``"9:16"`` -> (9, 16, False); ``"1080x1920"`` -> (1080, 1920, True).

    Raises:
        TimelineError: neither a ratio nor a size.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([:x])\s*(\d+)\s*", aspect.lower())
    if not match or int(match[1]) <= 0 or int(match[3]) <= 0:
        raise TimelineError(f"aspect '{aspect}' is not a ratio like 9:16 or a size like 1080x1920; "
                            "common: 9:16, 1:1, 4:5, 4:3, 16:9", code="invalid_argument")
    return int(match[1]), int(match[3]), match[2] == "x"


def canvas_for(size: tuple[int, int], aspect: str) -> tuple[int, int]:
    """The new sequence size: the largest even-sized crop of ``size`` with the asked shape,
    or the exact size asked (rounded the way the reframe engine rounds its crop)."""
    a, b, exact = parse_aspect(aspect)
    if exact:
        return a & ~1, b & ~1
    width, height = size
    if width * b >= height * a:
        return int(round(height * a / b)) & ~1, height & ~1
    return width & ~1, int(round(width * b / a)) & ~1


def read_canvas(path: Path, fmt: Format, timeline) -> tuple[int, int] | None:
    """The sequence size the file declares, or None where it declares none."""
    if fmt.canvas == "otio":
        size = _dig(timeline.metadata, META, "canvas")
        if _size(size.get("width"), size.get("height")):
            return _size(size.get("width"), size.get("height"))
    if fmt.canvas in ("otio", "fcp_xml"):
        chars = _dig(timeline.metadata, "fcp_xml", "media", "video", "format", "samplecharacteristics")
        size = _size(chars.get("width"), chars.get("height"))
        if size:
            return size
    if fmt.canvas == "fcpx":
        from .fcpx import document_path

        return _fcpx_canvas(ET.parse(document_path(path)).getroot())
    if fmt.canvas == "kdenlive":
        profile = ET.parse(path).getroot().find("profile")
        if profile is not None:
            return _size(profile.get("width"), profile.get("height"))
    return None


def _dig(mapping, *keys) -> dict:
    """``mapping[k1][k2]...``, or {} where a level is missing or not a mapping (an
    empty element such as ``<format/>`` reads as None)."""
    for key in keys:
        mapping = mapping.get(key) if hasattr(mapping, "get") else None
    return mapping if hasattr(mapping, "get") else {}


def _size(width, height) -> tuple[int, int] | None:
    """A frame size from text attributes, or None where either is missing or not a size."""
    try:
        size = int(float(width)), int(float(height))
    except (TypeError, ValueError):
        return None
    return size if size[0] > 0 and size[1] > 0 else None


def metadata_branch(mapping, *keys) -> dict:
    """``mapping[k1][k2]...``, made (or replacing a None or text leaf) where missing."""
    for key in keys:
        if not hasattr(mapping.get(key), "setdefault"):
            mapping[key] = {}
        mapping = mapping[key]
    return mapping


def _fcpx_canvas(root) -> tuple[int, int] | None:
    sequence = root.find(".//project/sequence")
    if sequence is None:
        return None
    element = root.find(f"./resources/format[@id='{sequence.get('format')}']")
    return None if element is None else _size(element.get("width"), element.get("height"))


def declare_canvas(timeline, fmt: Format, size: tuple[int, int]) -> None:
    """Put the canvas where the adapter writes it from (timeline metadata)."""
    width, height = size
    metadata_branch(timeline.metadata, META)["canvas"] = {"width": width, "height": height}
    if fmt.canvas == "fcp_xml" or "fcp_xml" in timeline.metadata:
        # The FCP7 adapter rebuilds <media><video><format> from this metadata.
        chars = metadata_branch(timeline.metadata, "fcp_xml", "media", "video", "format",
                                "samplecharacteristics")
        chars.update({"width": str(width), "height": str(height)})


# -- before and after the adapters write --------------------------------------------
def writer_losses(timeline, fmt: Format) -> list[str]:
    """What ``fmt``'s adapter leaves out of ``timeline`` (for the run's notes)."""
    import opentimelineio as otio

    stacks = len(timeline.tracks.find_children(descended_from_type=otio.schema.Stack))
    transitions = len(timeline.find_children(descended_from_type=otio.schema.Transition))
    notes = []
    if fmt.adapter == "kdenlive" and stacks:
        notes.append(f"the Kdenlive adapter drops nested stacks ({stacks}) and what follows one on its "
                     "track moves earlier: flatten them first, or write .otio or FCP7 .xml")
    if fmt.adapter in ("kdenlive", "fcpx_xml") and transitions:
        notes.append(f"the {fmt.adapter} adapter drops transitions ({transitions}); the cuts stay in place")
    return notes



def prepare_for_writing(timeline, fmt: Format):
    """A copy of ``timeline`` the adapter writes correctly.

    MLT addresses a clip by frames counted from the file's start, while
    OpenTimelineIO media time often starts at the media's timecode: for
    Kdenlive every clip's source range and markers are shifted to count from
    its media's first frame.
    """
    import copy

    import opentimelineio as otio

    timeline = copy.deepcopy(timeline)
    if fmt.adapter == "fcp_xml":
        _complete_for_fcp7(timeline)
    if not fmt.file_relative:
        return timeline
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or ref.available_range is None:
            continue
        origin = ref.available_range.start_time
        if origin.value == 0:
            continue
        source = clip.source_range or ref.available_range
        clip.source_range = otio.opentime.TimeRange(source.start_time - origin, source.duration)
        for marker in clip.markers:
            marker.marked_range = otio.opentime.TimeRange(marker.marked_range.start_time - origin,
                                                          marker.marked_range.duration)
        ref.available_range = otio.opentime.TimeRange(origin - origin, ref.available_range.duration)
    return timeline


def _complete_for_fcp7(timeline) -> None:
    """The FCP7 writer needs a sequence start and every clip's media range: give
    the ones missing (EDL timelines have neither) the neutral values."""
    import opentimelineio as otio

    if timeline.global_start_time is None:
        timeline.global_start_time = otio.opentime.RationalTime(0, timeline.duration().rate)
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if ref is not None and ref.available_range is None and clip.source_range is not None:
            ref.available_range = clip.source_range


def patch_written(path: Path, fmt: Format, timeline, size: tuple[int, int] | None) -> None:
    """Fix what the adapter left out of the file it wrote (``timeline``: what it was given)."""
    if fmt.canvas == "fcpx" and size:
        _patch_fcpx(path, size)
    elif fmt.canvas == "kdenlive":
        _patch_kdenlive(path, timeline, size)


def _patch_fcpx(path: Path, size: tuple[int, int]) -> None:
    """Give the project's sequence a format of its own with the canvas size.

    The adapter makes one <format> per frame rate, shared by sequence and
    assets, without width/height; a dedicated one leaves the assets alone.
    """
    root = ET.parse(path).getroot()
    resources = root.find("resources")
    for sequence in root.iter("sequence"):
        if root.find(".//project/sequence") is not sequence:
            continue
        shared = resources.find(f"./format[@id='{sequence.get('format')}']")
        taken = {int(e.get("id")[1:]) for e in resources if (e.get("id") or "")[1:].isdigit()}
        new_id = f"r{max(taken, default=0) + 1}"
        attrs = {"id": new_id, "name": "FFVideoFormatRateUndefined",
                 "width": str(size[0]), "height": str(size[1])}
        if shared is not None and shared.get("frameDuration"):
            attrs["frameDuration"] = shared.get("frameDuration")
        resources.insert(0, ET.Element("format", attrs))
        sequence.set("format", new_id)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + body + "\n",
                    encoding="utf-8")


def _patch_kdenlive(path: Path, timeline, size: tuple[int, int] | None) -> None:
    """Set the MLT profile to the canvas and put clip markers back on their producers."""
    root = ET.parse(path).getroot()
    profile = root.find("profile")
    if size and profile is not None:
        width, height = size
        g = math.gcd(width, height)
        fps = float(profile.get("frame_rate_num", "25")) / float(profile.get("frame_rate_den", "1"))
        profile.attrib.update({"width": str(width), "height": str(height),
                               "display_aspect_num": str(width // g), "display_aspect_den": str(height // g),
                               "sample_aspect_num": "1", "sample_aspect_den": "1",
                               "description": f"{width}x{height} {fps:g} fps"})
    markers = _kdenlive_markers(timeline)
    for producer in root.iter("producer"):
        resource = producer.findtext("property[@name='resource']")
        if resource in markers and producer.find("property[@name='kdenlive:markers']") is None:
            prop = ET.SubElement(producer, "property", {"name": "kdenlive:markers"})
            prop.text = json.dumps(markers[resource])
    ET.indent(root)
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n",
                    encoding="utf-8")


def _kdenlive_markers(timeline) -> dict[str, list[dict]]:
    """Clip markers by media path, in Kdenlive's JSON form (it keeps them per bin clip)."""
    import opentimelineio as otio

    found: dict[str, list[dict]] = {}
    for clip in timeline.find_clips():
        if not isinstance(clip.media_reference, otio.schema.ExternalReference) or not clip.markers:
            continue
        rows = found.setdefault(url_to_path(clip.media_reference.target_url), [])
        for marker in clip.markers:
            color = str(marker.color).upper()
            row = {"pos": int(round(marker.marked_range.start_time.value)), "comment": marker.name,
                   "type": KDENLIVE_MARKER_TYPES.index(color) if color in KDENLIVE_MARKER_TYPES else 0}
            if row not in rows:
                rows.append(row)
    return found


# -- EDL: the frame count mode ------------------------------------------------------
_EVENT = re.compile(r"^\s*\d+\s")
_TIMECODE = re.compile(r"\b(\d{1,2}:\d{2}:\d{2})[:;.,](\d{2,3})\b")


def edl_drop_frame(text: str, rate):
    """An EDL's text with its drop-frame timecodes marked as such, and the rate to read it at.

    EDLs say ``FCM: DROP FRAME`` and often still write ``01:00:00:00``; the
    adapter reads only ``;`` as drop-frame. Events under a DROP FRAME line
    get ``;``; a drop-frame EDL is read at 29.97 or 59.94 (it cannot be 30).

    Returns:
        (text, rate, notes).

    Raises:
        TimelineError: a DROP FRAME EDL at a rate that has no drop-frame timecode.
    """
    from fractions import Fraction

    from .rates import label

    lines, drop, seen_drop = [], False, False
    for line in text.splitlines(keepends=True):
        mode = line.strip().upper()
        if mode.startswith("FCM:"):
            drop = "NON" not in mode and "DROP" in mode
            seen_drop |= drop
        elif drop and _EVENT.match(line):
            line = _TIMECODE.sub(r"\1;\2", line)
        elif mode.startswith("M2"):  # the adapter reads only ':' here, and only the speed from it
            line = _TIMECODE.sub(r"\1:\2", line)
        lines.append(line)
    if not seen_drop:
        return "".join(lines), rate, []
    ntsc = {Fraction(30): Fraction(30000, 1001), Fraction(60): Fraction(60000, 1001)}
    if rate in ntsc:
        rate = ntsc[rate]
    if rate not in ntsc.values():
        raise TimelineError(f"the EDL says FCM: DROP FRAME but is read at {label(rate)} fps; drop-frame "
                            "timecode exists only at 29.97 and 59.94: give --rate 29.97 (or 59.94)",
                            code="invalid_argument")
    return "".join(lines), rate, [f"drop-frame timecode (FCM: DROP FRAME) at {label(rate)} fps"]
