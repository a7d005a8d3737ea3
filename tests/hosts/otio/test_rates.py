"""Broadcast rates end to end: `--rate` as editors type it, and renders whose timecode is the
timecode of the range they cover (read back by ffprobe), at NTSC rates and drop-frame."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import opentimelineio as otio
import pytest

from hosts.otio.rates import RateError, parse_rate
from tests.hosts.otio.media import make_video, read_back, video_clips, write_as

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange


@pytest.mark.parametrize("typed,rate", [("23.976", Fraction(24000, 1001)), ("23.98", Fraction(24000, 1001)),
                                        ("29.97", Fraction(30000, 1001)), ("30000/1001", Fraction(30000, 1001)),
                                        ("24000/1001", Fraction(24000, 1001)), ("59.94", Fraction(60000, 1001)),
                                        ("25", Fraction(25)), (" 50 fps", Fraction(50)), ("12.5", Fraction(25, 2))])
def test_rates_are_read_as_editors_type_them(typed, rate):
    assert parse_rate(typed) == rate


@pytest.mark.parametrize("typed", ["", "0", "-25", "1/0", "thirty", "29,97", "2000"])
def test_a_rate_that_is_not_one_says_what_is(typed):
    with pytest.raises(RateError, match="23.976, 24, 25, 29.97"):
        parse_rate(typed)


def ffprobe_timecode(path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream_tags=timecode", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return next(s["tags"]["timecode"] for s in json.loads(out)["streams"] if s.get("tags", {}).get("timecode"))


# (rate, media timecode, the render's timecode: the clip starts 20 frames in, 5 handles)
RENDERS = [
    ("24000/1001", "01:00:00:00", "01:00:00:15"),
    ("30000/1001", "01:00:59;20", "01:01:00;07"),  # ;00 and ;01 of minute 1 do not exist
    ("30000/1001", "01:00:59:20", "01:01:00:05"),
    ("60000/1001", "01:00:59;50", "01:01:00;09"),  # ;00 to ;03 do not exist
]


@pytest.mark.parametrize("rate,timecode,expected", RENDERS, ids=["23.976", "29.97DF", "29.97NDF", "59.94DF"])
def test_a_render_carries_the_timecode_of_its_range(served, tmp_path, rate, timecode, expected):
    """An FCP7 XML sequence at the rate (written as editors write it: timebase and ntsc)."""
    fps, tmp_path = Fraction(rate), served.media / tmp_path.name  # results go under the media root
    tmp_path.mkdir()
    media = make_video(served.media / f"tc-{rate.replace('/', '_')}-{timecode[-5:].replace(';', 'd')}.mov",
                       seconds=2.5, size=(320, 180), rate=rate, timecode=timecode, audio=False)
    origin = otio.opentime.from_timecode(timecode, float(fps))
    ref = otio.schema.ExternalReference(target_url=media.as_uri(),
                                        available_range=TR(origin, RT(int(2.5 * fps), float(fps))))
    timeline = otio.schema.Timeline(name="ntsc", global_start_time=RT(0, float(fps)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(otio.schema.Clip(name="shot", media_reference=ref,
                                  source_range=TR(origin + RT(20, float(fps)), RT(24, float(fps)))))
    timeline.tracks.append(track)
    source = write_as(timeline, tmp_path / "ntsc.xml", canvas=(320, 180))

    code, result = served.otio("reframe", source, "-o", tmp_path / "out.otio", "--handles", "5",
                               "--aspect", "1:1", "--follow", "center")
    assert code == 0, json.dumps(result, indent=1)
    assert result["clips"][0]["timecode"] == expected
    render_ref = video_clips(read_back(tmp_path / "out.otio"))[0].media_reference
    render = otio.url_utils.filepath_from_url(render_ref.target_url)
    assert ffprobe_timecode(render) == expected
    start = render_ref.available_range.start_time
    assert otio.opentime.to_timecode(start, start.rate, ";" in timecode) == expected


def reframe_one_event_edl(served, tmp_path, rate: str, timecode: str, fcm: str, event: str, *flags) -> dict:
    """A one-event EDL over a made clip (``rate``, ``timecode``), reframed with no handles."""
    folder = served.media / tmp_path.name  # results go under the media root
    folder.mkdir()
    media = make_video(folder / "shot.mov", seconds=2.5, size=(320, 180), rate=rate, timecode=timecode,
                       audio=False)
    edl = folder / "cut.edl"
    edl.write_text(f"TITLE: ONE EVENT\nFCM: {fcm}\n\n001  AX       V     C        {event}\n"
                   f"* FROM CLIP NAME: shot\n* FROM FILE: {media}\n")
    code, result = served.otio("reframe", edl, "-o", folder / "out.otio", "--handles", "0", "--aspect", "1:1",
                               "--follow", "center", *flags)
    assert code == 0, result
    return result


def test_a_drop_frame_edl_is_read_at_2997_with_its_timecode(served, tmp_path):
    """Avid writes FCM: DROP FRAME above events with ':' timecodes; --rate 29.97 as typed."""
    result = reframe_one_event_edl(served, tmp_path, "30000/1001", "01:00:59;20", "DROP FRAME",
                                   "01:00:59:28 01:01:00:24 00:00:00:00 00:00:00:24", "--rate", "29.97")
    assert any("drop-frame" in note for note in result["notes"]), result["notes"]
    # 59;28 is 8 frames into the media; 01:01:00;24 is 24 frames after it (;00 and ;01 skipped)
    row = result["clips"][0]
    assert row["timecode"] == "01:00:59;28" and row["range"]["frames"] == 24, row
    assert ffprobe_timecode(row["render"]) == "01:00:59;28"


def test_an_edl_without_a_rate_takes_its_medias(served, tmp_path):
    """A 25 fps list reads at 30 too (no frame field past 24): the media's 25 decides."""
    result = reframe_one_event_edl(served, tmp_path, "25", "01:00:00:00", "NON-DROP FRAME",
                                   "01:00:00:12 01:00:01:12 00:00:00:00 00:00:01:00")
    assert any("read at 25 fps, the frame rate of its media" in note for note in result["notes"]), result["notes"]
    row = result["clips"][0]
    assert row["range"] == {"start": 0.48, "duration": 1.0, "frames": 25}, row  # at 30 it was 0.4 s in
    assert row["timecode"] == "01:00:00:12"
