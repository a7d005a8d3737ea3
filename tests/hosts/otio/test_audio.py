"""`otio separate` and `otio master` against a real daemon (hpss: a weight-free split)."""

from __future__ import annotations

import opentimelineio as otio
import pytest
import soundfile

from hosts.otio.formats import url_to_path
from tests.hosts.otio.media import RATE, RT, TR, clip, read_back, ref, write_as


def music_timeline(files) -> otio.schema.Timeline:
    """V1: shotA. A1: verse (tone +0..+30), 15-frame gap, chorus (tone +30..+75).
    A2: dialog, the sound of a.mp4 (media time from its timecode)."""
    timeline = otio.schema.Timeline(name="music", global_start_time=RT(0, RATE))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    video.append(clip("shotA", ref(files.a), 108000, 75))
    music = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    tone = ref(files.tone, origin=0, frames=90)
    music.extend([clip("verse", tone, 0, 30, [("verse", 5, "BLUE")]),
                  otio.schema.Gap(duration=RT(15, RATE)), clip("chorus", tone.clone(), 30, 45)])
    dialog = otio.schema.Track(name="A2", kind=otio.schema.TrackKind.Audio)
    dialog.append(clip("dialog", ref(files.a), 108010, 30))
    timeline.tracks.extend([video, music, dialog])
    return timeline


@pytest.fixture(scope="module")
def music(served):
    folder = served.media / "music"
    folder.mkdir()
    return folder, write_as(music_timeline(served.files), folder / "in.xml")


def clips_by_name(timeline) -> dict:
    return {c.name: c for c in timeline.find_clips()}


def test_separate_puts_each_stem_on_a_new_track_under_its_clip(served, music):
    folder, source = music
    code, result = served.otio("separate", source, "-o", folder / "stems.xml", "--model", "hpss")
    assert code == 0, result
    assert {row["name"]: row["status"] for row in result["clips"]} == {
        "verse": "done", "chorus": "done", "dialog": "done"}
    before, after = read_back(source), read_back(folder / "stems.xml")
    audio = [t for t in after.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [[c.name for c in t.find_clips()] for t in audio] == [
        ["verse", "chorus"], ["verse harmonic", "chorus harmonic"], ["verse percussive", "chorus percussive"],
        ["dialog"], ["dialog harmonic"], ["dialog percussive"]]
    old, new = clips_by_name(before), clips_by_name(after)
    for name in ("verse", "chorus", "dialog"):
        for stem in ("harmonic", "percussive"):
            made = new[f"{name} {stem}"]
            assert made.range_in_parent() == old[name].range_in_parent()  # same place on the timeline
            assert made.source_range == old[name].source_range  # same part of a same-length file
            path = url_to_path(made.media_reference.target_url)
            assert path == result["clips"][[r["name"] for r in result["clips"]].index(name)]["stems"][stem]
            assert any("studio-bridge " + stem in m.name for m in made.markers)
        assert new[name].media_reference.target_url == old[name].media_reference.target_url  # untouched
    tone = soundfile.info(str(served.files.tone))
    stem = soundfile.info(url_to_path(new["verse harmonic"].media_reference.target_url))
    assert (stem.frames, stem.samplerate) == (tone.frames, tone.samplerate)
    # The sidecar (.otio) carries the job details.
    sidecar = read_back(folder / "stems.xml.otio")
    details = clips_by_name(sidecar)["chorus percussive"].metadata["studio_bridge"]
    assert details["engine"] == "separate" and details["model"] == "hpss" and details["stem"] == "percussive"


def test_master_points_each_clip_at_its_mastered_file_and_keeps_the_original(served, music):
    folder, source = music
    code, result = served.otio("master", source, "-o", folder / "mastered.otio", "--preset", "streaming",
                               "--track", "A1")
    assert code == 0, result
    assert [row["name"] for row in result["clips"]] == ["verse", "chorus"]
    assert result["clips"][0]["report"]["after"]["integrated_lufs"] == pytest.approx(-14, abs=1)
    before, after = read_back(source), read_back(folder / "mastered.otio")
    old, new = clips_by_name(before), clips_by_name(after)
    for name in ("verse", "chorus"):
        refs = new[name].media_references()
        assert url_to_path(refs["DEFAULT_MEDIA"].target_url) == result["clips"][0]["render"]
        assert url_to_path(refs["original"].target_url) == str(served.files.tone)
        assert new[name].range_in_parent() == old[name].range_in_parent()
        assert new[name].source_range == old[name].source_range
        assert refs["DEFAULT_MEDIA"].available_range == TR(RT(0, RATE), RT(90, RATE))
    mastered = soundfile.info(result["clips"][0]["render"])
    assert mastered.frames == soundfile.info(str(served.files.tone)).frames
    assert url_to_path(new["dialog"].media_reference.target_url) == str(served.files.a)  # not selected
