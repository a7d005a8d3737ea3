"""Bad input: each problem clip gets a clear row and the rest of the timeline is still processed."""

from __future__ import annotations

import shutil

import opentimelineio as otio
import pytest

from hosts.otio.formats import url_to_path
from tests.hosts.otio.media import RATE, RT, TR, av_timeline, clip, read_back, ref, write_as


def no_range(path):
    """A reference that states no available range (as EDLs give them)."""
    return otio.schema.ExternalReference(target_url=path.as_uri())


def troubled_timeline(files, lost_url: str) -> otio.schema.Timeline:
    timeline = otio.schema.Timeline(name="trouble")
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(clip("good", ref(files.a), 108010, 30))
    v1.append(otio.schema.Transition(name="mix", transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                     in_offset=RT(5, RATE), out_offset=RT(5, RATE)))
    v1.append(clip("lost", ref(files.a, url=lost_url), 108010, 30))
    v1.append(clip("offline", otio.schema.MissingReference(), 0, 20))
    v1.append(clip("bars", otio.schema.GeneratorReference(generator_kind="SMPTEBars"), 0, 20))
    v1.append(clip("sound", no_range(files.tone), 0, 20))
    v1.append(clip("junk", no_range(files.junk), 0, 20))
    v1.append(clip("tiny", no_range(files.tiny), 0, 20))
    v1.append(clip("vfr", no_range(files.vfr), 10, 30))
    nest = otio.schema.Stack(name="nest")
    inner = otio.schema.Track(name="inner", kind=otio.schema.TrackKind.Video)
    inner.extend([otio.schema.Gap(duration=RT(5, RATE)), clip("inside", ref(files.a), 108030, 20)])
    nest.append(inner)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.extend([otio.schema.Gap(duration=RT(30, RATE)), nest])
    timeline.tracks.extend([v1, v2])
    return timeline


@pytest.fixture(scope="module")
def trouble(served):
    """One reframe run over a timeline holding every kind of bad clip."""
    folder = served.media / "trouble"
    (folder / "found").mkdir(parents=True)
    shutil.copy(served.files.a, folder / "found" / "lost.mp4")
    source = write_as(troubled_timeline(served.files, "file:///nowhere/at/all/lost.mp4"), folder / "in.otio")
    code, result = served.otio("reframe", source, "-o", folder / "out.otio")
    return folder, source, code, result


def rows(result) -> dict:
    return {row["name"]: row for row in result["clips"]}


def test_every_bad_clip_says_why_and_the_rest_is_processed(trouble):
    _, _, code, result = trouble
    assert code == 0, result
    got = rows(result)
    assert {name: row["status"] for name, row in got.items()} == {
        "good": "done", "lost": "failed", "offline": "skipped", "bars": "skipped", "sound": "failed",
        "junk": "failed", "tiny": "failed", "vfr": "done", "inside": "done"}
    lost = got["lost"]["reason"]
    assert "media not found" in lost and "/nowhere/at/all/lost.mp4" in lost and "--search-path" in lost
    assert "MissingReference" in got["offline"]["reason"]
    assert "GeneratorReference" in got["bars"]["reason"] and "SMPTEBars" in got["bars"]["reason"]
    # The daemon's own messages, passed through per clip.
    assert "bad_media" in got["sound"]["reason"] and "no video stream" in got["sound"]["reason"]
    assert "bad_media" in got["junk"]["reason"] and "cannot be opened" in got["junk"]["reason"]
    assert "invalid_argument" in got["tiny"]["reason"] and "too small to encode" in got["tiny"]["reason"]
    assert any("variable frame rate" in w for w in got["vfr"]["warnings"])
    assert got["inside"]["nested"] == "nest" and got["inside"]["track"] == "V2"
    assert "transitions are left as they are (not processed)" in result["notes"]


def test_transitions_nesting_and_unprocessed_clips_are_kept(trouble):
    folder, source, _, result = trouble
    before, after = read_back(source), read_back(folder / "out.otio")
    old, new = before.tracks[0], after.tracks[0]
    assert [type(item).__name__ for item in new] == [type(item).__name__ for item in old]
    mix = next(item for item in new if isinstance(item, otio.schema.Transition))
    assert (mix.name, mix.in_offset, mix.out_offset) == ("mix", RT(5, RATE), RT(5, RATE))
    assert [c.range_in_parent() for c in new.find_clips(shallow_search=True)] == \
        [c.range_in_parent() for c in old.find_clips(shallow_search=True)]
    unchanged = {c.name: c.media_reference for c in new.find_clips()}
    assert unchanged["lost"].target_url == "file:///nowhere/at/all/lost.mp4"
    assert isinstance(unchanged["offline"], otio.schema.MissingReference)
    inside = next(c for c in after.find_clips() if c.name == "inside")
    assert inside.parent().parent().name == "nest"
    assert url_to_path(inside.media_reference.target_url) == rows(result)["inside"]["render"]
    assert inside.transformed_time_range(inside.trimmed_range(), after.tracks[1]) == TR(RT(35, RATE), RT(20, RATE))


def test_search_path_finds_media_by_file_name(served, trouble):
    folder, source, _, _ = trouble
    code, result = served.otio("reframe", source, "-o", folder / "found.otio", "--name", "lost",
                               "--search-path", folder / "found")
    assert code == 0, result
    assert rows(result)["lost"]["status"] == "done"
    timeline = read_back(folder / "found.otio")
    lost = next(c for c in timeline.find_clips() if c.name == "lost")
    assert url_to_path(lost.media_references()["original"].target_url) == str(folder / "found" / "lost.mp4")


def test_nothing_processable_is_an_error_and_writes_nothing(served, trouble):
    folder, source, _, _ = trouble
    code, result = served.otio("reframe", source, "-o", folder / "none.otio", "--name", "offline")
    assert code == 1 and result["error"]["code"] == "nothing_processed"
    assert "offline" in result["error"]["message"] and result["output"] is None
    assert not (folder / "none.otio").exists()
    code, result = served.otio("reframe", source, "-o", folder / "none.otio", "--name", "nobody")
    assert code == 1 and result["error"]["code"] == "not_found"


def test_the_input_is_never_the_output(served, trouble):
    folder, source, _, _ = trouble
    before = source.read_bytes()
    code, result = served.otio("reframe", source, "-o", folder / "." / "in.otio")
    assert code == 1 and result["error"]["code"] == "invalid_argument"
    assert "input timeline" in result["error"]["message"]
    assert source.read_bytes() == before


def test_unreadable_and_unwritable_timelines_name_the_format(served, tmp_path):
    folder = served.media / "unreadable"
    folder.mkdir()
    broken = folder / "broken.xml"
    broken.write_text("<xmeml><sequence><media>")
    code, result = served.otio("reframe", broken, "-o", folder / "out.xml")
    assert code == 1 and result["error"]["code"] == "bad_timeline"
    assert "Final Cut Pro 7 XML" in result["error"]["message"] and "fcp_xml" in result["error"]["message"]

    code, result = served.otio("reframe", folder / "cut.foo", "-o", folder / "out.xml")
    assert code == 1 and ".kdenlive (kdenlive)" in result["error"]["message"]

    # EDL holds one video track: refused before any job runs.
    timeline = av_timeline(served.files)
    timeline.tracks.append(otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video))
    two = write_as(timeline, folder / "two.otio")
    code, result = served.otio("reframe", two, "-o", folder / "two.edl", "--media-dir", folder / "renders")
    assert code == 1 and "CMX 3600 EDL" in result["error"]["message"]
    assert "single video track" in result["error"]["message"]
    assert not (folder / "renders").exists() and not (folder / "two.edl").exists()
