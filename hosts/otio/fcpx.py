"""Reading FCPXML as current Final Cut Pro and DaVinci Resolve write it.

The installed reader (otio-fcpx-xml-adapter 1.0.0) is used for the structure;
what it lacks is added around it here:

- Media: FCPXML 1.9 and later (FCP X 10.4.1 on, Resolve) put an asset's file in
  ``<asset><media-rep kind="original-media" src=...>``; the adapter reads only
  ``<asset src=...>``, so every clip came out offline. Assets are given their
  ``src`` from the media-rep before the adapter reads them.
- Time: the adapter counts at ``int(rate)`` (29 for 29.97, 23 for 23.976) and
  truncates times to frames, so NTSC projects lose 0.1 % of every time and
  timecode drifts. Here rates are exact (30000/1001) and times round to the
  nearest frame.
- Bundles: FCPXML 1.10 and later may be a ``.fcpxmld`` folder holding
  ``Info.fcpxml``; it is read from there.
- Writing: the adapter's writer looks frame durations up by ``int(rate)`` and
  so cannot write 29.97 or 23.976 at all; ``write`` gives it exact ones.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

BUNDLE_SUFFIX = ".fcpxmld"


def document_path(path: Path) -> Path:
    """The FCPXML file itself: ``Info.fcpxml`` inside a ``.fcpxmld`` bundle, else ``path``."""
    return path / "Info.fcpxml" if path.suffix.lower() == BUNDLE_SUFFIX and path.is_dir() else path


def read(text: str):
    """An OpenTimelineIO object from FCPXML ``text`` (any version the adapter knows).

    Raises:
        ET.ParseError: not XML. Anything the adapter raises on XML it cannot follow.
    """
    from otio_fcpx_xml_adapter import fcpx_xml as upstream

    root = ET.fromstring(text)
    media_from_reps(root)
    reader = _exact_reader(upstream)(ET.tostring(root, encoding="unicode"))
    with _exact_times(upstream):
        return reader.to_otio()


def write(timeline) -> str:
    """FCPXML text for ``timeline`` through the adapter's writer, at exact rates.

    The adapter looks frame durations up by ``int(rate)`` (29 for 29.97: not
    found, so it cannot write an NTSC timeline at all) and counts offsets at
    integer rates; here both are exact.
    """
    from otio_fcpx_xml_adapter import fcpx_xml as upstream

    writer = _exact_writer(upstream)(timeline)
    with _exact_times(upstream):
        return writer.to_xml()


def frame_duration(rate: float) -> str:
    """An FCPXML ``frameDuration`` for ``rate`` fps: "1001/30000s" for 29.97, "1/25s", ..."""
    from .rates import exact

    duration = 1 / exact(rate)
    return f"{duration.numerator}/{duration.denominator}s"


def media_from_reps(root) -> int:
    """Give each ``<asset>`` without ``src`` the one of its original media-rep. Returns how many."""
    given = 0
    for asset in root.iter("asset"):
        if asset.get("src"):
            continue
        reps = [r for r in asset.findall("media-rep") if r.get("kind") != "proxy-media"]  # never a proxy
        rep = next((r for r in reps if r.get("kind") == "original-media"), reps[0] if reps else None)
        if rep is not None and rep.get("src"):
            asset.set("src", rep.get("src"))
            given += 1
    return given


def seconds(value: str | None) -> Fraction:
    """An FCPXML time ("1001/30000s", "3600s", "0s") in seconds, exactly."""
    if not value:
        return Fraction(0)
    text = value.strip().removesuffix("s")
    top, _, bottom = text.partition("/")
    return Fraction(top) / Fraction(bottom or 1)


def frame_rate(frame_duration: str | None) -> float:
    """Frames per second from a format's ``frameDuration`` ("1001/30000s" -> 29.97002997...)."""
    duration = seconds(frame_duration)
    return float(1 / duration) if duration else 0.0


def _exact_reader(upstream):
    class ExactFcpxXml(upstream.FcpxXml):
        """The adapter's reader, counting frames at the exact rate."""

        def _format_frame_rate(self, format_id):
            element = self._format_by_id(format_id)
            rate = frame_rate(element.get("frameDuration") if element is not None else None)
            if not rate:  # e.g. FFVideoFormatRateUndefined: the project's own format
                project = self.fcpx_xml.find(".//project/sequence")
                fallback = self._format_by_id(project.get("format")) if project is not None else None
                rate = frame_rate(fallback.get("frameDuration") if fallback is not None else None) or 25.0
            return rate

        def _number_of_frames(self, time_value, format_id):
            return round(seconds(time_value) * Fraction(self._format_frame_rate(format_id)))

    return ExactFcpxXml


def _exact_writer(upstream):
    class ExactFcpxOtio(upstream.FcpxOtio):
        """The adapter's writer, with formats and offsets at the exact rate."""

        @staticmethod
        def _framerate_to_frame_duration(framerate):
            return frame_duration(framerate)

        def _frame_rate_from_element(self, element, default_format_id):
            """The rate of the format ``element`` is in (the adapter's lookup, not int()-ed)."""
            format_id = default_format_id
            if element.tag == "ref-clip":
                format_id = self._media_by_id(element.get("ref")).find("./sequence").get("format")
            elif element.tag in ("clip", "asset-clip"):
                holder = element if element.tag == "asset-clip" else \
                    element.find("./gap/audio") if element.find("./gap") is not None else element.find("./video")
                format_id = self._asset_by_id(holder.get("ref")).get("format")
            found = self.resource_element.find(f"./format[@id='{format_id}']")
            return frame_rate(found.get("frameDuration") if found is not None else None) or 25.0

    return ExactFcpxOtio


@contextlib.contextmanager
def _exact_times(upstream):
    """The adapter's module-level time parser, exact for the length of one read."""
    from opentimelineio import opentime

    def to_rational_time(rational_number, fps):
        return opentime.RationalTime(round(seconds(rational_number) * Fraction(fps)), float(fps))

    original = upstream.to_rational_time
    upstream.to_rational_time = to_rational_time
    try:
        yield
    finally:
        upstream.to_rational_time = original
