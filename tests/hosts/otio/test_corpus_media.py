"""Real editors' timelines (corpus/SOURCES.md) processed for real: media made to match what
each file names (its name, rate, timecode and length), then reframe, separate and master
in the file's own format. Every clip keeps its place and length, every output file is used,
and renders carry the timecode of the media time they stand for.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import opentimelineio as otio
import pytest

from hosts.otio.formats import META, url_to_path
from hosts.otio.rates import exact
from hosts.otio.timeline import read_document
from tests.hosts.otio.test_corpus import CORPUS, check_result, otio_cli

AUDIO = {".wav", ".ogg", ".mp3", ".aif", ".aiff", ".flac", ".m4a"}
VIDEO = {".mov", ".mp4", ".m4v", ".mkv", ".mxf", ".avi"}
LONGEST = 120.0  # seconds of media made for any one file (clips past it say so)
FAST = ["simple_cut.otio", "hiero_xml_export.xml"]
SLOW = ["29.97d.fcpxml", "premiere_example.xml", "kdenlive_example_v240770.kdenlive", "avid_example.edl",
        "23.98.fcpxml"]


def _file_name(url: str) -> str:
    return Path(url_to_path(url).replace("\\", "/")).name


def media_wanted(source: Path) -> dict[str, tuple[float, float, float]]:
    """{file name: (rate, first media second, seconds)} for every file the timeline names."""
    wanted: dict[str, tuple[float, float, float]] = {}
    for clip in read_document(source).timeline.find_clips():
        ref = clip.media_reference
        if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
            continue
        declared, used = ref.available_range, clip.source_range
        span = declared or used
        if span is None:
            continue
        rate = span.start_time.rate
        start = span.start_time.to_seconds() if declared else math.floor(used.start_time.to_seconds()) - 1.0
        end = span.end_time_exclusive().to_seconds() + (0 if declared else 1.0)
        name = _file_name(ref.target_url)
        if name in wanted:  # another clip of the same file: cover both
            old_rate, old_start, old_len = wanted[name]
            start, end, rate = min(start, old_start), max(end, old_start + old_len), old_rate
        wanted[name] = (rate, max(0.0, start), min(LONGEST, end - max(0.0, start)))
    return wanted


def make_media(folder: Path, name: str, rate: float, start: float, seconds: float, file_relative: bool) -> None:
    suffix = Path(name).suffix.lower()
    seconds = max(seconds, 0.5)
    audio = ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={seconds}"]
    if suffix in AUDIO:
        cmd = [*audio, "-ac", "2"]
    elif suffix in VIDEO:
        fps = exact(rate)
        cmd = ["-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={fps.numerator}/{fps.denominator}", *audio,
               "-t", str(seconds), "-pix_fmt", "yuv420p"]
        cmd += ["-c:v", "mpeg2video", "-c:a", "pcm_s16le"] if suffix == ".mxf" else \
            ["-c:v", "libx264", "-preset", "ultrafast"]
        if not file_relative:
            at = otio.opentime.RationalTime(round(start * float(fps)), float(fps))
            cmd += ["-timecode", otio.opentime.to_timecode(at, float(fps))]
    else:
        return  # image sequences and camera raw: the clip says it cannot be found
    subprocess.run(["ffmpeg", "-v", "error", "-y", *cmd, str(folder / name)], check=True)


def layout(timeline, skip: set[str] = frozenset()) -> list[tuple]:
    """Every item of every track but ``skip``: (track, kind, name, place, duration)."""
    return [(track.name, type(item).__name__, item.name, item.range_in_parent(), item.duration())
            for track in timeline.tracks if track.name not in skip for item in track]


def referenced(timeline) -> set[Path]:
    """Every file the timeline uses or records (media of every reference, keyframes)."""
    found = set()
    for clip in timeline.find_clips():
        for ref in clip.media_references().values():
            if isinstance(ref, otio.schema.ExternalReference):
                found.add(Path(url_to_path(ref.target_url)))
        details = clip.metadata.get(META, {})
        if details.get("keyframes"):
            found.add(Path(details["keyframes"]))
    return found


def probed_timecode(path: str) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream_tags=timecode", "-of", "json", path],
                         capture_output=True, text=True, check=True).stdout
    return next((s["tags"]["timecode"] for s in json.loads(out)["streams"] if s.get("tags", {}).get("timecode")), "")


def run_corpus_file(served, tmp_path, name: str) -> None:
    source = CORPUS / name
    folder = served.media / tmp_path.name
    (folder / "media").mkdir(parents=True)
    fmt_relative = source.suffix == ".kdenlive"
    for file_name, (rate, start, seconds) in media_wanted(source).items():
        make_media(folder / "media", file_name, rate, start, seconds, fmt_relative)
    before = read_document(source).timeline
    for action, extra in (("reframe", ["--aspect", "1:1", "--follow", "center"]), ("separate", ["--model", "hpss"]),
                          ("master", [])):
        out = folder / f"{action}{source.suffix}"
        code, result = otio_cli(served, action, source, "-o", out, "--search-path", folder / "media", *extra)
        check_result(code, result, source)
        if code != 0:
            assert result["error"]["code"] in ("not_found", "nothing_processed"), result  # no clip of its kind
            continue
        sidecar = otio.adapters.read_from_file(result["sidecar"])
        stems = {f"{row['track']} {kind}" for row in result["clips"] for kind in row.get("stems", {})}
        assert layout(sidecar, stems) == layout(before), f"{action} changed the edit of {name}"
        made = set(Path(result["media_dir"]).rglob("*.*"))
        assert made <= referenced(sidecar), f"orphaned: {made - referenced(sidecar)}"
        for row in result["clips"]:
            if action == "reframe" and row["status"] == "done" and row.get("timecode"):
                assert probed_timecode(row["render"]) == row["timecode"], row


@pytest.mark.parametrize("name", FAST)
def test_a_real_timeline_is_processed_without_changing_the_edit(served, tmp_path, name):
    run_corpus_file(served, tmp_path, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_more_real_timelines_are_processed_without_changing_the_edit(served, tmp_path, name):
    run_corpus_file(served, tmp_path, name)
