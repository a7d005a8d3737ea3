"""Per-format canvas sizes and adapter quirks, on files written by the real adapters."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import opentimelineio as otio
import pytest

from bridge.vision.pipeline import target_for
from hosts.otio.formats import (TimelineError, canvas_for, declare_canvas, format_for, parse_aspect,
                                prepare_for_writing, read_canvas)
from hosts.otio.timeline import write_timeline
from tests.hosts.otio.media import RATE, RT, TR, clip, read_back, ref


@pytest.fixture
def timeline(tmp_path):
    """One clip of a (not decoded) file whose media time starts at 01:00:00:00."""
    media = tmp_path / "a.mp4"
    media.write_bytes(b"")
    result = otio.schema.Timeline(name="t", global_start_time=RT(0, RATE))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip("shot", ref(media), 108010, 30, [("here", 108015, "RED")]))
    result.tracks.append(track)
    return result


@pytest.mark.parametrize("size, aspect", [
    ((1920, 1080), "9:16"), ((1920, 1080), "1:1"), ((1920, 1080), "4:5"), ((1920, 1080), "4:3"),
    ((1080, 1920), "16:9"), ((640, 360), "9:16"), ((1280, 720), "1080x1920"), ((1919, 1081), "9:16")])
def test_canvas_is_the_size_the_engine_renders(size, aspect):
    assert canvas_for(size, aspect) == target_for(aspect, *size).size


def test_canvas_examples_and_bad_aspects():
    assert canvas_for((1920, 1080), "9:16") == (608, 1080)
    assert canvas_for((1920, 1080), "1080x1920") == (1080, 1920)
    assert parse_aspect(" 4 : 5 ") == (4, 5, False)
    with pytest.raises(TimelineError, match="like 9:16") as caught:
        parse_aspect("portrait")
    assert caught.value.code == "invalid_argument"


def test_formats_by_suffix_and_unknown_suffixes_list_what_exists(tmp_path):
    assert [format_for(tmp_path / f"x{s}").adapter for s in (".otio", ".otioz", ".xml", ".fcpxml", ".edl",
                                                              ".kdenlive")] == \
        ["otio_json", "otioz", "fcp_xml", "fcpx_xml", "cmx_3600", "kdenlive"]
    with pytest.raises(TimelineError) as caught:
        format_for(tmp_path / "x.doc")
    assert ".edl (cmx_3600)" in caught.value.message and ".fcpxml (fcpx_xml)" in caught.value.message


@pytest.mark.parametrize("suffix", ["otio", "xml", "fcpxml", "kdenlive"])
def test_canvas_is_stored_where_each_format_keeps_it(timeline, tmp_path, suffix):
    path = tmp_path / f"out.{suffix}"
    fmt = format_for(path)
    declare_canvas(timeline, fmt, (608, 1080))
    write_timeline(timeline, path, (608, 1080))
    assert read_canvas(path, fmt, read_back(path)) == (608, 1080)


def test_edl_has_no_canvas(timeline, tmp_path):
    path = tmp_path / "out.edl"
    write_timeline(timeline, path, (608, 1080))
    assert read_canvas(path, format_for(path), read_back(path)) is None


def test_fcpx_sequence_gets_a_format_of_its_own(timeline, tmp_path):
    path = tmp_path / "out.fcpxml"
    write_timeline(timeline, path, (608, 1080))
    root = ET.parse(path).getroot()
    sequence_format = root.find(".//project/sequence").get("format")
    asset_format = root.find("./resources/asset").get("format")
    assert sequence_format != asset_format
    assert root.find(f"./resources/format[@id='{asset_format}']").get("width") is None
    assert read_back(path).tracks  # the adapter still reads the patched file


def test_kdenlive_counts_media_from_the_file_start_and_keeps_clip_markers(timeline, tmp_path, capsys):
    prepared = prepare_for_writing(timeline, format_for(tmp_path / "x.kdenlive"))
    shot = prepared.find_clips()[0]
    assert shot.source_range == TR(RT(10, RATE), RT(30, RATE))
    assert shot.media_reference.available_range.start_time == RT(0, RATE)
    assert shot.markers[0].marked_range.start_time == RT(15, RATE)
    assert timeline.find_clips()[0].source_range.start_time == RT(108010, RATE)  # a copy was changed

    path = tmp_path / "out.kdenlive"
    write_timeline(timeline, path, (1080, 1920))
    assert capsys.readouterr().out == ""  # the adapter's banner is swallowed
    profile = ET.parse(path).getroot().find("profile")
    assert (profile.get("width"), profile.get("height"), profile.get("display_aspect_num"),
            profile.get("display_aspect_den")) == ("1080", "1920", "9", "16")
    producer = next(p for p in ET.parse(path).getroot().iter("producer")
                    if p.findtext("property[@name='resource']", "").endswith("a.mp4"))
    assert json.loads(producer.findtext("property[@name='kdenlive:markers']")) == [
        {"pos": 15, "comment": "here", "type": 6}]
    back = read_back(path).find_clips()[0]
    assert [(m.name, m.marked_range.start_time, m.color) for m in back.markers] == [("here", RT(15, RATE), "RED")]


def test_what_an_adapter_drops_is_noted(timeline):
    from hosts.otio.formats import FORMATS, writer_losses

    track = timeline.tracks[0]
    track.append(otio.schema.Transition(in_offset=RT(2, RATE), out_offset=RT(2, RATE)))
    track.append(clip("after", otio.schema.MissingReference(), 0, 10))
    track.append(otio.schema.Stack(name="nest", children=[otio.schema.Track()]))
    assert len(writer_losses(timeline, FORMATS[".kdenlive"])) == 2
    assert "nested stacks (1)" in writer_losses(timeline, FORMATS[".kdenlive"])[0]
    assert writer_losses(timeline, FORMATS[".fcpxml"]) == [
        "the fcpx_xml adapter drops transitions (1); the cuts stay in place"]
    assert writer_losses(timeline, FORMATS[".xml"]) == writer_losses(timeline, FORMATS[".otio"]) == []


def test_a_missing_adapter_is_named_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(otio.adapters, "available_adapter_names", lambda: ["otio_json", "fcp_xml"])
    with pytest.raises(TimelineError) as caught:
        format_for(tmp_path / "cut.kdenlive")
    assert "adapter 'kdenlive', which is not installed" in caught.value.message
    assert "pip install -e '.[reframe]'" in caught.value.message and ".xml (fcp_xml)" in caught.value.message
