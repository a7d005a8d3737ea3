"""Reading and writing by suffix, clip selection, media resolution and range math (no daemon)."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio
import pytest

from hosts.otio.formats import FORMATS, TimelineError
from hosts.otio.timeline import (media_origin, read_document, relink, render_window, resolve_media, select_clips,
                                 write_timeline)
from tests.hosts.otio.media import RATE, RT, TR, av_timeline, clip, make_video, read_back, ref


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real media for the tests that read files (module-scoped: made once)."""
    from tests.hosts.otio.media import make_media

    return make_media(tmp_path_factory.mktemp("media"))


def test_media_is_found_by_path_url_relative_path_or_search(tmp_path):
    (tmp_path / "with space").mkdir()
    media = make_video(tmp_path / "with space" / "a b.mp4", seconds=0.2, audio=False)
    assert resolve_media(str(media), tmp_path) == (media, [str(media)])
    assert resolve_media(media.as_uri(), tmp_path)[0] == media  # file:// with %20
    assert resolve_media("with space/a b.mp4", tmp_path)[0] == media  # next to the timeline
    deep = tmp_path / "library" / "x" / "y"
    deep.mkdir(parents=True)
    (deep / "lost.mp4").write_bytes(b"x")
    found, tried = resolve_media("file:///gone/away/lost.mp4", tmp_path, [tmp_path / "library"])
    assert found == deep / "lost.mp4" and tried == ["/gone/away/lost.mp4", f"lost.mp4 under {tmp_path / 'library'}"]
    found, tried = resolve_media(r"C:\media\lost2.mp4", tmp_path, [tmp_path / "library"])
    assert found is None and tried[-1] == f"lost2.mp4 under {tmp_path / 'library'}"


def test_relative_media_is_relinked_to_absolute_urls(tmp_path):
    media = make_video(tmp_path / "a.mp4", seconds=0.2, audio=False)
    timeline = otio.schema.Timeline()
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip("x", otio.schema.ExternalReference(target_url="a.mp4"), 0, 5))
    track.append(clip("y", otio.schema.ExternalReference(target_url="missing.mp4"), 0, 5))
    timeline.tracks.append(track)
    assert relink(timeline, tmp_path) == 1
    assert [c.media_reference.target_url for c in timeline.find_clips()] == [media.as_uri(), "missing.mp4"]


def test_selection_by_track_name_index_clip_name_and_markers(files):
    timeline = av_timeline(files)
    second = otio.schema.Track(name="", kind=otio.schema.TrackKind.Video)
    nest = otio.schema.Stack(name="nest")
    nest.append(otio.schema.Track(kind=otio.schema.TrackKind.Video, children=[clip("deep", ref(files.a), 108000, 5)]))
    second.extend([otio.schema.Gap(duration=RT(42, RATE)), nest])
    timeline.tracks.append(second)
    timeline.tracks.markers.append(otio.schema.Marker(name="Vertical", marked_range=TR(RT(45, RATE), RT(3, RATE))))

    def names(**selectors):
        return [(c.clip.name, c.label, c.nested) for c in select_clips(timeline, "Video", **selectors)]

    assert names() == [("shotA", "V1", ""), ("shotB", "V1", ""), ("deep", "V2", "nest")]
    assert names(tracks=["V2"]) == names(tracks=["2"]) == [("deep", "V2", "nest")]
    assert names(tracks=["V1"], names=["shot?"]) == [("shotA", "V1", ""), ("shotB", "V1", "")]
    assert names(names=["*B"]) == [("shotB", "V1", "")]
    assert names(markers=["LOOK HERE"]) == [("shotA", "V1", "")]  # a clip marker, any case
    # A timeline marker at 45..48 lies over shotB (40..80) and the nested clip (42..47).
    assert names(markers=["vert*"]) == [("shotB", "V1", ""), ("deep", "V2", "nest")]
    assert [c.clip.name for c in select_clips(timeline, "Audio", tracks=["A1"])] == ["shotA"]
    with pytest.raises(TimelineError, match="audio tracks: A1$"):
        select_clips(timeline, "Audio", tracks=["Dialog"])


def test_media_origin_per_format_and_reference():
    at = RT(108010, RATE)
    with_range, without = ref(None, url="file:///a.mp4"), otio.schema.ExternalReference(target_url="file:///a.mp4")
    assert media_origin(FORMATS[".xml"], with_range, RATE, "01:00:00:00", at) == RT(108000, RATE)
    assert media_origin(FORMATS[".kdenlive"], with_range, RATE, "01:00:00:00", RT(10, RATE)) == RT(0, RATE)
    assert media_origin(FORMATS[".edl"], without, RATE, "01:00:00:00", at) == RT(108000, RATE)
    assert media_origin(FORMATS[".edl"], without, RATE, "01:00:00:00", RT(10, RATE)) == RT(0, RATE)
    assert media_origin(FORMATS[".edl"], without, 25, "", RT(10, RATE)) == RT(0, 25)


def window(*args) -> tuple[int, int]:
    result = render_window(*args)
    return result.first, result.count


def test_render_window_adds_handles_inside_the_file():
    origin = RT(108000, RATE)
    assert window(TR(RT(108020, RATE), RT(30, RATE)), origin, 90, 12) == (8, 54)
    assert window(TR(RT(108005, RATE), RT(30, RATE)), origin, 90, 12) == (0, 47)  # clamped at 0
    assert window(TR(RT(108070, RATE), RT(20, RATE)), origin, 90, 12) == (58, 32)  # at the end
    assert window(TR(RT(108070, RATE), RT(20, RATE)), origin, 0, 12) == (58, 44)  # length unknown
    # 24 fps clip of 48 fps media: counted in the media's frames.
    assert window(TR(RT(10, 24), RT(12, 24)), RT(0, 48), 480, 4) == (16, 32)
    partly = render_window(TR(RT(108080, RATE), RT(20, RATE)), origin, 90, 0)
    assert (partly.first, partly.count) == (80, 10) and "rendered what exists" in partly.warnings[0]
    with pytest.raises(TimelineError, match="timecode and the timeline disagree") as caught:
        render_window(TR(RT(10, RATE), RT(20, RATE)), origin, 90, 12)
    assert caught.value.code == "out_of_range"


def test_an_edl_without_a_rate_is_read_at_the_first_usual_rate_it_fits():
    """OTIO's screening example (corpus) is a 24 fps list: at 30 its source and record
    durations disagree, so it is read at 24 and the note says so."""
    doc = read_document(Path(__file__).with_name("corpus") / "screening_example.edl")
    assert "EDL read at 24 fps (the first usual rate it reads at" in doc.notes[-1]
    assert len(list(doc.timeline.find_clips())) == 9


def test_reading_names_the_format_and_notes_what_it_assumed(files, tmp_path):
    edl = tmp_path / "cut.edl"
    write_timeline(otio.schema.Timeline(tracks=[av_timeline(files).tracks[0].clone()]), edl)
    doc = read_document(edl, rate=30)
    assert doc.fmt.adapter == "cmx_3600" and "EDL read at 30 fps" in doc.notes[0]
    with pytest.raises(TimelineError, match="at 25 fps: .* it reads at 30 fps: give --rate 30"):
        read_document(edl, rate=25)
    with pytest.raises(TimelineError, match="does not exist") as caught:
        read_document(tmp_path / "nope.otio")
    assert caught.value.code == "not_found"

    both = otio.schema.SerializableCollection(children=[otio.schema.Timeline(name="one"),
                                                        otio.schema.Timeline(name="two")])
    otio.adapters.write_to_file(both, str(tmp_path / "two.otio"))
    doc = read_document(tmp_path / "two.otio")
    assert doc.timeline.name == "one" and "used the first, 'one' (others: two)" in doc.notes[0]


def test_otioz_is_unpacked_where_the_daemon_can_read_it(files, tmp_path):
    bundle = tmp_path / "cut.otioz"
    write_timeline(av_timeline(files), bundle)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    doc = read_document(bundle, extract_dir=lambda: unpacked)
    assert doc.base_dir == unpacked
    url = doc.timeline.find_clips()[0].media_reference.target_url
    assert resolve_media(url, doc.base_dir)[0] == unpacked / "media" / "a.mp4"


def test_writing_is_atomic_and_a_failed_write_keeps_the_old_file(files, tmp_path):
    out = tmp_path / "cut.edl"
    write_timeline(otio.schema.Timeline(tracks=[av_timeline(files).tracks[0].clone()]), out)
    before = out.read_text()
    two_video_tracks = av_timeline(files)
    two_video_tracks.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    with pytest.raises(TimelineError, match="CMX 3600 EDL .*single video track"):
        write_timeline(two_video_tracks, out)
    assert out.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.edl"]  # no temp files left
    assert read_back(out).tracks[0][0].name == "shotA"
