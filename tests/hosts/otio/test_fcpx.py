"""FCPXML as current Final Cut Pro writes it (corpus files; sources in corpus/SOURCES.md)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from hosts.otio import fcpx
from hosts.otio.formats import TimelineError, format_for
from hosts.otio.timeline import read_document

CORPUS = Path(__file__).with_name("corpus")
MEDIA_REP = ["23.98.fcpxml", "25i.fcpxml", "29.97d.fcpxml", "24With25Media.fcpxml"]


def sequence(path: Path):
    return ET.parse(path).getroot().find(".//project/sequence")


@pytest.mark.parametrize("name", MEDIA_REP)
def test_media_reps_are_the_clips_media(name):
    """FCPXML 1.9+ names media only in <media-rep>: every clip has its file, none is offline."""
    path = CORPUS / name
    reps = {rep.get("src") for rep in ET.parse(path).getroot().iter("media-rep")}
    clips = list(read_document(path).timeline.find_clips())
    assert clips and all(isinstance(c.media_reference, otio.schema.ExternalReference) for c in clips)
    assert {c.media_reference.target_url for c in clips} <= reps


def test_ntsc_times_are_exact():
    """29.97 drop-frame project: the storyline lasts what the sequence says, to the frame
    (the adapter alone counts 29 frames a second: 0.7 s too long here)."""
    path = CORPUS / "29.97d.fcpxml"
    spine = read_document(path).timeline.tracks[0]
    assert spine.duration().rate == pytest.approx(30000 / 1001, abs=1e-9)
    want = fcpx.seconds(sequence(path).get("duration"))
    assert abs(spine.duration().to_seconds() - float(want)) < 0.5 * 1001 / 30000


@pytest.mark.parametrize("value,expected", [("1001/30000s", Fraction(1001, 30000)), ("3600s", Fraction(3600)),
                                            ("0s", Fraction(0)), (None, Fraction(0)),
                                            ("8648640000/2400000s", Fraction(18018, 5))])
def test_fcpxml_times_read_exactly(value, expected):
    assert fcpx.seconds(value) == expected


def test_a_bundle_is_read_from_its_info_file_and_written_as_a_file(tmp_path):
    bundle = tmp_path / "Cut.fcpxmld"
    bundle.mkdir()
    shutil.copy(CORPUS / "29.97d.fcpxml", bundle / "Info.fcpxml")
    assert len(list(read_document(bundle).timeline.find_clips())) == 12
    with pytest.raises(TimelineError, match="write 'Cut.fcpxml' instead"):
        format_for(bundle, write=True)
