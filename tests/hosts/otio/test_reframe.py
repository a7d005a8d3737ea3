"""`studio-bridge otio reframe` end to end: real editor files, a real daemon, real melt.

Each format's round trip: a timeline built with OpenTimelineIO, written in that
format, reframed through the CLI, and OUT read back: clip names, timing, markers,
media pointing at the renders, and the canvas size where the format holds one.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import numpy as np
import opentimelineio as otio
import pytest

from hosts.otio.formats import url_to_path
from tests.hosts.otio.media import (RATE, av_timeline, clip, gray_frames, melt_render, read_back, ref,
                                    video_clips, write_as)

FORMATS = ["xml", "fcpxml", "edl", "kdenlive", "otio", "otioz"]


def declared_canvas(path: Path):
    """The sequence size as the file itself says it (parsed here, not by the host)."""
    if path.suffix == ".xml":
        chars = ET.parse(path).find(".//sequence/media/video/format/samplecharacteristics")
        return int(chars.findtext("width")), int(chars.findtext("height"))
    if path.suffix == ".fcpxml":
        root = ET.parse(path).getroot()
        fmt = root.find(f"./resources/format[@id='{root.find('.//project/sequence').get('format')}']")
        return int(fmt.get("width")), int(fmt.get("height"))
    if path.suffix == ".kdenlive":
        profile = ET.parse(path).getroot().find("profile")
        return int(profile.get("width")), int(profile.get("height"))
    timeline = read_back(path)  # kept alive while its metadata is read
    canvas = timeline.metadata["studio_bridge"]["canvas"]
    return canvas["width"], canvas["height"]


def frame(seconds: float) -> int:
    return int(round(seconds * RATE))


@pytest.mark.parametrize("suffix", FORMATS)
def test_round_trip_keeps_timing_names_markers_and_points_at_renders(served, suffix):
    folder = served.media / f"rt_{suffix}"
    folder.mkdir()
    source = write_as(av_timeline(served.files), folder / f"in.{suffix}")
    before, original_bytes = read_back(source), source.read_bytes()
    out = folder / f"out.{suffix}"

    code, result = served.otio("reframe", source, "-o", out, "--aspect", "9:16")

    assert code == 0, result
    assert result["processed"] == 2 and [r["status"] for r in result["clips"]] == ["done", "done"]
    assert source.read_bytes() == original_bytes  # the input is never touched
    after, rows = read_back(out), {row["name"]: row for row in result["clips"]}
    old, new = video_clips(before), video_clips(after)
    assert [c.name for c in new] == [c.name for c in old] == ["shotA", "shotB"]
    for was, now in zip(old, new):
        row = rows[now.name]
        assert now.range_in_parent() == was.range_in_parent()  # record position and length
        # MLT counts media frames from the file's start: in Kdenlive the source range
        # moves by where the render starts in its source; elsewhere it stays in media time.
        shift = frame(row["range"]["start"]) if suffix == "kdenlive" else 0
        assert now.source_range.start_time.value == was.source_range.start_time.value - shift
        assert now.source_range.duration == was.source_range.duration
        target = url_to_path(now.media_reference.target_url)
        if suffix == "otioz":
            assert Path(target).name == Path(row["render"]).name  # bundled inside the .otioz
        else:
            assert target == row["render"] and Path(target).is_file()
        if now.media_reference.available_range is not None:  # EDL stores none
            assert now.media_reference.available_range.contains(now.source_range)
        kept = {(m.name.lower(), m.marked_range.start_time.value) for m in now.markers}
        for marker in was.markers:
            assert (marker.name.lower(), marker.marked_range.start_time.value - shift) in kept
        ours = [m for m in now.markers if m.name.lower().startswith("studio-bridge reframe 9:16 job")]
        assert len(ours) == 1 and row["job_id"] in ours[0].name.lower()
        if suffix == "xml":  # FCP7 keeps the marker's comment: the files made
            assert row["render"] in ours[0].metadata["fcp_xml"]["comment"]
    if suffix == "edl":
        assert result["canvas"] == {"width": 202, "height": 360, "stored": False}  # from the media
    else:
        assert declared_canvas(out) == (608, 1080) == (result["canvas"]["width"], result["canvas"]["height"])


def test_otio_keeps_the_original_media_and_the_sidecar_holds_job_details(served):
    folder = served.media / "sidecar"
    folder.mkdir()
    source = write_as(av_timeline(served.files), folder / "in.otio")
    code, result = served.otio("reframe", source, "-o", folder / "out.otio", "--handles", "5",
                               "--media-dir", folder / "renders")
    assert code == 0, result
    assert result["sidecar"] == str(folder / "out.studio-bridge.otio")
    written = read_back(folder / "out.otio")
    shot_a = video_clips(written)[0]
    refs = shot_a.media_references()
    assert sorted(refs) == ["DEFAULT_MEDIA", "original"]
    assert url_to_path(refs["original"].target_url) == str(served.files.a)
    assert url_to_path(refs["DEFAULT_MEDIA"].target_url).startswith(str(folder / "renders"))
    # Handles: shotA uses +10..+40 of a.mp4; 5 frames each side.
    assert refs["DEFAULT_MEDIA"].available_range == otio.opentime.TimeRange(
        otio.opentime.RationalTime(108005, RATE), otio.opentime.RationalTime(40, RATE))
    with av.open(url_to_path(refs["DEFAULT_MEDIA"].target_url)) as render:
        assert render.streams.video[0].metadata["timecode"] == "01:00:00:05"  # the same media time
        assert render.streams.video[0].frames == 40

    edl = folder / "out.edl"
    code, result = served.otio("reframe", source, "-o", edl)
    assert code == 0 and result["sidecar"] == str(folder / "out.edl.otio")
    sidecar = read_back(Path(result["sidecar"]))
    details = video_clips(sidecar)[1].metadata["studio_bridge"]
    assert details["engine"] == "reframe" and details["job_id"] == result["clips"][1]["job_id"]
    assert details["params"]["aspect"] == "9:16" and details["params"]["start"] == pytest.approx(8 / 30, abs=1e-5)
    assert Path(details["render"]).is_file() and Path(details["keyframes"]).is_file()
    assert details["shots"] and {"start", "end", "mode", "subject"} <= set(details["shots"][0])
    keyframes = json.loads(Path(details["keyframes"]).read_text())
    assert keyframes["version"] == 1 and len(keyframes["frames"]) == result["clips"][1]["range"]["frames"]


def test_kdenlive_project_renders_headless_in_melt_at_the_new_size(served, tmp_path):
    folder = served.media / "melt"
    folder.mkdir()
    source = write_as(av_timeline(served.files), folder / "in.kdenlive")
    out = folder / "out.kdenlive"
    code, result = served.otio("reframe", source, "-o", out, "--aspect", "1080x1920")
    assert code == 0, result
    assert declared_canvas(out) == (1080, 1920)

    rendered = tmp_path / "melt.mp4"
    melt = melt_render(out, rendered, frames=80)  # shotA 30, gap 10, shotB 40
    assert melt.returncode == 0, melt.stderr[-2000:]
    with av.open(str(rendered)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1080, 1920)
    timeline = gray_frames(rendered)
    assert len(timeline) == 80
    assert min(f.std() for f in timeline[:30] + timeline[40:]) > 10  # pictures, not blank
    assert max(f.mean() for f in timeline[31:39]) < 5  # the gap is black: the cuts are in place

    # Timeline frame t shows the frame of the render the clip's source range says.
    for name, record, used in (("shotA", 0, 10), ("shotB", 40, 20)):
        row = next(r for r in result["clips"] if r["name"] == name)
        render = gray_frames(Path(row["render"]))
        first = frame(row["range"]["start"])
        for t in (2, 17, 28):
            diffs = [np.abs(timeline[record + t] - picture).mean() for picture in render]
            assert int(np.argmin(diffs)) == used + t - first, (name, t)


def test_selection_by_track_name_and_marker(served):
    folder = served.media / "select"
    folder.mkdir()
    timeline = av_timeline(served.files)
    timeline.tracks.append(otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video))
    source = write_as(timeline, folder / "in.otio")
    code, result = served.otio("reframe", source, "-o", folder / "name.otio", "--name", "*B")
    assert code == 0 and [r["name"] for r in result["clips"]] == ["shotB"]
    code, result = served.otio("reframe", source, "-o", folder / "marker.otio", "--marker", "LOOK*")
    assert code == 0 and [r["name"] for r in result["clips"]] == ["shotA"]
    code, result = served.otio("reframe", source, "-o", folder / "track.otio", "--track", "V2")
    assert code == 1 and result["error"]["code"] == "not_found"  # V2 exists but holds no clip
    code, result = served.otio("reframe", source, "-o", folder / "track.otio", "--track", "V9")
    assert code == 1 and "video tracks: V1, V2" in result["error"]["message"]
    assert not (folder / "track.otio").exists()


def test_edl_in_fcp7_out_gets_media_ranges_from_the_files(served):
    """An EDL states no media ranges; the FCP7 writer needs them: they come from the files."""
    folder = served.media / "edl_to_xml"
    folder.mkdir()
    timeline = av_timeline(served.files)
    source = write_as(otio.schema.Timeline(name="cut", tracks=[timeline.tracks[0].clone()]), folder / "in.edl")
    code, result = served.otio("reframe", source, "-o", folder / "out.xml", "--name", "shotB", "--handles", "0")
    assert code == 0, result
    after = read_back(folder / "out.xml")
    shot_a, shot_b = video_clips(after)
    assert url_to_path(shot_a.media_reference.target_url) == str(served.files.a)  # not selected
    assert shot_a.media_reference.available_range == otio.opentime.TimeRange(
        otio.opentime.RationalTime(108000, RATE), otio.opentime.RationalTime(90, RATE))  # from a.mp4 itself
    assert shot_b.media_reference.available_range.start_time.value == 10 * 3600 * RATE + 20
    assert shot_b.source_range == video_clips(timeline)[1].source_range


def test_the_subject_is_where_the_keyframes_say_in_melts_render(served, tmp_path):
    """A walking subject with per-frame ground truth, reframed to 1080x1920 through the
    Kdenlive project, rendered by melt: in every checked frame of melt's picture the face
    is found where the ground truth, moved by the keyframes' crop and scaled, puts it."""
    import cv2

    from tests.vision.clips import Shot, linear, make_clip

    folder = served.media / "melt_truth"
    folder.mkdir()
    walk = folder / "walk.mp4"
    truth = make_clip(walk, [Shot(90, linear((20, 100), (440, 100)), "testsrc2")],
                      timecode="01:00:00:00", audio=False)
    timeline = otio.schema.Timeline(name="walk", global_start_time=otio.opentime.RationalTime(108000, RATE))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip("walker", ref(walk, frames=truth.frames), 108000 + 15, 60))
    timeline.tracks.append(track)
    source = write_as(timeline, folder / "in.kdenlive")
    out = folder / "out.kdenlive"
    code, result = served.otio("reframe", source, "-o", out, "--aspect", "1080x1920")
    assert code == 0, result
    row = result["clips"][0]
    keys = json.loads(Path(row["keyframes"]).read_text())
    first = frame(row["range"]["start"])  # the render's first frame, in source frames
    rendered = tmp_path / "melt.mp4"
    assert melt_render(out, rendered, frames=60).returncode == 0

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    scale = 1080 / keys["crop"]["width"]
    with av.open(str(rendered)) as container:
        pictures = [f.to_ndarray(format="gray", width=270, height=480) for f in container.decode(video=0)]
    assert len(pictures) == 60
    for t in (0, 20, 40, 59):
        source_frame = 15 + t
        crop = keys["frames"][source_frame - first]
        want = (truth.face_centres[source_frame, 0] - crop["x"]) * scale  # in melt's 1080 px
        faces = cascade.detectMultiScale(pictures[t], 1.1, 5)
        assert len(faces) == 1, t
        got = (faces[0][0] + faces[0][2] / 2) * 4  # detected at quarter size
        assert abs(got - want) < 40, (t, got, want)
