"""Nothing half done: OUT's format is checked before any job, a failed write keeps the
results and says where, and no clip changes length."""

from __future__ import annotations

from pathlib import Path

import opentimelineio as otio

from hosts.otio.formats import FORMATS, read_canvas
from tests.hosts.otio.media import RATE, RT, TR, clip, read_back, ref, write_as
from tests.hosts.otio.test_audio import music_timeline

CORPUS = Path(__file__).with_name("corpus")


def job_count(daemon) -> int:
    with daemon.client() as client:
        return len(client.list_jobs(1000))


def layout(timeline) -> list[tuple]:
    """Every item of every track: (track, kind, name, place on the track, source range)."""
    rows = []
    for index, track in enumerate(timeline.tracks):
        for item in track:
            rows.append((index, type(item).__name__, item.name, item.range_in_parent(),
                         getattr(item, "source_range", None)))
    return rows


def test_an_edl_cannot_hold_stem_tracks_and_nothing_runs(served, tmp_path):
    folder = served.media / tmp_path.name
    folder.mkdir()
    timeline = music_timeline(served.files)
    timeline.tracks.remove(timeline.tracks[2])  # an EDL holds one video and two audio tracks
    source = write_as(timeline, folder / "cut.otio")
    before = job_count(served)
    code, result = served.otio("separate", source, "-o", folder / "stems.edl", "--model", "hpss")
    assert code == 1 and result["error"]["code"] == "unsupported_format", result
    message = result["error"]["message"]
    assert "No more than 2 audio tracks" in message and "Nothing was run" in message
    assert ".otio or .xml or .fcpxml" in message and "--sidecar-only" in message
    assert job_count(served) == before  # the check came before the first job
    assert sorted(p.name for p in folder.iterdir()) == ["cut.otio"]  # and wrote nothing

    code, result = served.otio("separate", source, "-o", folder / "stems.edl", "--model", "hpss", "--sidecar-only")
    assert code == 0, result
    assert result["output"] is None and result["sidecar"] == str(folder / "stems.edl.otio")
    assert not (folder / "stems.edl").exists()
    written = read_back(folder / "stems.edl.otio")
    assert [t.name for t in written.tracks] == ["V1", "A1", "A1 harmonic", "A1 percussive"]


def test_a_write_that_fails_after_the_jobs_keeps_the_results_and_says_where(served, tmp_path):
    folder = served.media / tmp_path.name
    folder.mkdir()
    source = write_as(music_timeline(served.files), folder / "cut.xml")
    (folder / "mastered.xml").mkdir()  # OUT cannot be replaced: it is a folder
    code, result = served.otio("master", source, "-o", folder / "mastered.xml")
    assert code == 1 and result["error"]["code"] == "write_failed", result
    sidecar = folder / "mastered.xml.otio"
    assert result["sidecar"] == str(sidecar) and str(sidecar) in result["error"]["message"]
    assert result["output"] is None and result["processed"] == 3
    for row in result["clips"]:
        assert row["status"] == "done" and Path(row["render"]).is_file()
    renders = {Path(row["render"]) for row in result["clips"]}
    played = {Path(otio.url_utils.filepath_from_url(c.media_reference.target_url))
              for c in read_back(sidecar).find_clips() if c.name != "shotA"}
    assert played == renders  # the sidecar is the finished timeline


def test_a_clip_without_a_source_range_keeps_its_length(served, tmp_path):
    """It plays all the media its reference declares (30 frames of a 90-frame file): the
    render, longer by its handles, must not lengthen it."""
    folder = served.media / tmp_path.name
    folder.mkdir()
    timeline = otio.schema.Timeline(name="whole", global_start_time=RT(0, RATE))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    whole = otio.schema.Clip(name="whole", media_reference=ref(served.files.a, origin=108000, frames=30))
    track.extend([whole, clip("after", ref(served.files.b, origin=10 * 3600 * RATE), 10 * 3600 * RATE, 20)])
    timeline.tracks.append(track)
    source = write_as(timeline, folder / "whole.otio")
    code, result = served.otio("reframe", source, "-o", folder / "out.otio", "--handles", "12")
    assert code == 0, result
    assert result["clips"][0]["range"]["frames"] == 30 + 12  # the render has its handles (none before
    # the file's first frame)...
    after = read_back(folder / "out.otio")
    assert layout(after)[0][3] == TR(RT(0, RATE), RT(30, RATE))  # ...the clip does not
    assert [row[3] for row in layout(after)] == [row[3] for row in layout(read_back(source))]


def test_an_empty_format_from_otios_own_fcp7_writer_is_no_canvas():
    """OpenTimelineIO's fcp_xml writer leaves `<format/>` empty: no size, and no crash."""
    path = CORPUS / "otio_fcp_writer_screening_example.xml"
    timeline = otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    assert read_canvas(path, FORMATS[".xml"], timeline) is None


SPEED_EDL = """TITLE: SPEED CHANGES
FCM: NON-DROP FRAME

001  AX       V     C        01:00:00:10 01:00:01:10 00:00:00:00 00:00:00:15
M2   AX       060.0                01:00:00:10
* FROM CLIP NAME: fast
* FROM FILE: {media}
002  AX       V     C        01:00:01:00 01:00:01:01 00:00:00:15 00:00:00:25
* FROM CLIP NAME: still
* FROM FILE: {media}
* FREEZE FRAME
003  AX       V     C        01:00:02:00 01:00:02:10 00:00:00:25 00:00:01:15
M2   AX       -015.0                01:00:02:00
* FROM CLIP NAME: back
* FROM FILE: {media}
"""


def test_retimed_clips_get_media_for_what_they_play(served, tmp_path):
    """2x plays twice its length of media, a freeze one frame; reverse is said, not guessed."""
    folder = served.media / tmp_path.name
    folder.mkdir()
    source = folder / "speed.edl"
    source.write_text(SPEED_EDL.format(media=served.files.a))
    code, result = served.otio("reframe", source, "-o", folder / "out.otio", "--handles", "0", "--aspect", "1:1",
                               "--follow", "center")
    assert code == 0, result
    rows = {row["name"]: row for row in result["clips"]}
    assert rows["fast"]["status"] == "done" and rows["fast"]["range"]["frames"] == 30  # 15 frames at 2x
    assert rows["fast"]["range"]["start"] == round(10 / RATE, 6)
    assert rows["still"]["status"] == "done" and rows["still"]["range"]["frames"] == 1
    assert rows["back"]["status"] == "skipped" and "reverse" in rows["back"]["reason"]
    before, after = read_back(source), read_back(folder / "out.otio")
    assert [row[3] for row in layout(after)] == [row[3] for row in layout(before)]  # 15, 10, 20 frames
    fast = next(c for c in after.find_clips() if c.name == "fast")
    assert fast.effects[0].time_scalar == 2.0
    assert fast.media_reference.available_range.duration.value == 30  # the render covers what it plays


NAMES_EDL = """TITLE: NAMES ONLY
FCM: NON-DROP FRAME

001  VERSE    A     C        00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00
* FROM CLIP NAME: verse take 2.wav
002  DRUMS    A     C        00:00:00:00 00:00:01:00 00:00:01:00 00:00:02:00
003  DUP      A     C        00:00:00:00 00:00:01:00 00:00:02:00 00:00:03:00
* FROM CLIP NAME: dup
004  GONE     A     C        00:00:00:00 00:00:01:00 00:00:03:00 00:00:04:00
* FROM CLIP NAME: gone
"""


def test_clips_named_by_clip_or_reel_are_relinked_under_search_paths(served, tmp_path):
    """Avid-style EDLs name clips and reels, not files: found by name, or said why not."""
    from tests.conftest import write_tone

    folder = served.media / tmp_path.name
    (folder / "cards" / "a").mkdir(parents=True)
    (folder / "cards" / "b").mkdir()
    for path in ("cards/a/verse take 2.wav", "cards/b/DRUMS.wav", "cards/a/dup.wav", "cards/b/dup.WAV"):
        write_tone(folder / path, seconds=2.0)
    (folder / "cards" / "gone.xml").write_text("<not media/>")  # a name match that is not media
    source = folder / "names.edl"
    source.write_text(NAMES_EDL)
    code, result = served.otio("master", source, "-o", folder / "out.otio", "--search-path", folder / "cards")
    assert code == 0, result
    rows = {row["name"]: row for row in result["clips"]}
    assert rows["verse take 2.wav"]["status"] == "done"
    assert "by clip name 'verse take 2.wav'" in rows["verse take 2.wav"]["relinked"]
    drums = next(row for name, row in rows.items() if "DRUMS" in row.get("relinked", ""))
    assert drums["status"] == "done" and "by reel 'DRUMS'" in drums["relinked"]
    assert rows["dup"]["status"] == "skipped" and "2 files match its clip name 'dup'" in rows["dup"]["reason"]
    assert rows["gone"]["status"] == "skipped" and "no file under the search paths" in rows["gone"]["reason"]
    verse = next(c for c in read_back(folder / "out.otio").find_clips() if c.name == "verse take 2.wav")
    original = otio.url_utils.filepath_from_url(verse.media_references()["original"].target_url)
    assert original == str(folder / "cards" / "a" / "verse take 2.wav")  # the relinked file, kept


def test_an_audio_clip_past_the_end_of_its_file_fails_before_its_job(served, tmp_path):
    """The reference claims 10 s; the file has 3: a result would point at nothing."""
    folder = served.media / tmp_path.name
    folder.mkdir()
    timeline = otio.schema.Timeline(name="long claim", global_start_time=RT(0, RATE))
    track = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    track.extend([clip("fits", ref(served.files.tone, origin=0, frames=300), 0, 60),
                  clip("past", ref(served.files.tone, origin=0, frames=300), 60, 90)])
    timeline.tracks.append(track)
    source = write_as(timeline, folder / "claim.otio")
    before = job_count(served)
    code, result = served.otio("master", source, "-o", folder / "out.otio")
    assert code == 0, result
    rows = {row["name"]: row for row in result["clips"]}
    assert rows["fits"]["status"] == "done"
    assert rows["past"]["status"] == "failed" and "plays 2.000..5.000 s of its media" in rows["past"]["reason"]
    assert "has 0..3.000 s" in rows["past"]["reason"]
    assert job_count(served) == before + 1


def test_clips_with_no_range_anywhere_are_reasons_not_tracebacks(served, tmp_path):
    """No source range, and media of unknown length: OTIO cannot place them; each command
    says so per clip (with --marker too), and the run ends in one JSON error."""
    from tests.hosts.otio.test_corpus import check_result, otio_cli

    folder = served.media / tmp_path.name
    folder.mkdir()
    timeline = otio.schema.Timeline(name="unplaced")
    for kind in (otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio):
        track = otio.schema.Track(name=kind[0] + "1", kind=kind)
        track.extend([otio.schema.Clip(name="nowhere", media_reference=otio.schema.ExternalReference(
            target_url=(folder / "gone.mov").as_uri())), clip("after", ref(served.files.a), 108000, 10)])
        timeline.tracks.append(track)
    source = folder / "unplaced.otio"
    otio.adapters.write_to_file(timeline, str(source))
    for action in ("reframe", "separate", "master"):
        for extra in ([], ["--marker", "x"]):
            code, result = otio_cli(served, action, source, "-o", folder / f"{action}.xml", *extra)
            check_result(code, result, source)


def test_an_out_folder_that_cannot_be_written_is_refused_before_any_job(served, tmp_path):
    """OUT under a file (not a folder): said at once, before any job, nothing written."""
    folder = served.media / tmp_path.name
    folder.mkdir()
    source = write_as(music_timeline(served.files), folder / "cut.otio")
    (folder / "notes.txt").write_text("a file, not a folder")
    before = job_count(served)
    code, result = served.otio("master", source, "-o", folder / "notes.txt" / "mixes" / "out.xml")
    assert code == 1 and result["error"]["code"] == "permission_denied", result
    assert "is not a folder this user can write to" in result["error"]["message"]
    assert job_count(served) == before
    assert sorted(p.name for p in folder.iterdir()) == ["cut.otio", "notes.txt"]
