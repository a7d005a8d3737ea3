"""The `studio-bridge otio` command line: help without OpenTimelineIO, human output, exit codes."""

from __future__ import annotations

import subprocess
import sys

import opentimelineio as otio

from tests.conftest import ROOT
from tests.hosts.otio.media import av_timeline, clip, make_video, ref, write_as


def test_help_does_not_import_opentimelineio():
    code = ("import sys; from bridge.cli import build_parser; build_parser(); "
            "assert 'opentimelineio' not in sys.modules, 'imported'; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
    result = subprocess.run([sys.executable, "-m", "bridge", "otio", "reframe", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    for flag in ("--aspect", "--search-path", "--handles", "--rate", "--track", "--marker", "--media-dir"):
        assert flag in result.stdout


def test_human_output_lists_each_clip(served):
    folder = served.media / "human"
    folder.mkdir()
    source = write_as(av_timeline(served.files), folder / "in.otio")
    result = served.cli("otio", "reframe", str(source), "-o", str(folder / "out.kdenlive"), "--name", "shotA")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"reframe: 1 of 1 clips -> {folder / 'out.kdenlive'}"
    assert "canvas: 608x1080" in result.stdout and "done    V1 shotA:" in result.stdout

    result = served.cli("otio", "reframe", str(folder / "none.otio"), "-o", str(folder / "x.otio"))
    assert result.returncode == 1 and "not_found" in result.stderr and "none.otio" in result.stderr


def test_no_daemon_is_exit_3_with_what_to_do(tmp_path):
    media = make_video(tmp_path / "a.mp4", seconds=0.5, audio=False)
    timeline = otio.schema.Timeline()
    timeline.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video,
                                             children=[clip("c", ref(media, frames=15), 108000, 10)]))
    source = write_as(timeline, tmp_path / "in.otio")
    result = subprocess.run([sys.executable, "-m", "bridge", "otio", "reframe", str(source), "-o",
                             str(tmp_path / "out.otio"), "--addr", f"unix://{tmp_path}/none.sock", "--json"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 3, result.stdout + result.stderr
    assert '"unavailable"' in result.stdout and "studio-bridge serve" in result.stdout
    assert not (tmp_path / "out.otio").exists()
