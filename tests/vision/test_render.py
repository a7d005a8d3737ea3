"""Cropped renders: exact pixels (lossless), source timing and timecode kept, audio copied."""

from __future__ import annotations

import subprocess

import av
import numpy as np
import pytest

from bridge.vision.render import Encoding, crop_frame, render_crop


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s of 320x180 testsrc2 at 30 fps with a tone, in a mov with a timecode."""
    path = tmp_path_factory.mktemp("video") / "shot.mov"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=30:duration=2", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2:sample_rate=48000", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-timecode", "01:00:10:00",
                    "-shortest", str(path)], check=True)
    return path


def frames(path):
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format="yuv420p")) for f in container.decode(video=0)]


def test_a_lossless_render_holds_exactly_the_cropped_pixels(clip, tmp_path):
    source = frames(clip)
    n = len(source)
    positions = np.stack([np.linspace(0, 220, n), np.linspace(0, 40, n)], axis=1)
    out = tmp_path / "crop.mov"
    info = render_crop(clip, out, positions, (100, 140), Encoding(crf=0, preset="ultrafast"))
    assert info["frames"] == n == 60 and (info["width"], info["height"]) == (100, 140)
    assert info["timecode"] == "01:00:10:00" and info["audio"] == "aac"
    rendered = frames(out)
    assert [p for p, _ in rendered] == [p for p, _ in source]  # same timestamps, same rate
    for (_, got), (_, src), (x, y) in zip(rendered, source, positions.astype(int) & ~1):
        want = src[:180][y:y + 140, x:x + 100]
        np.testing.assert_array_equal(got[:140], want)  # the luma plane, exactly
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == 30
        assert container.streams.video[0].metadata.get("timecode") == "01:00:10:00"


def test_audio_packets_are_copied_untouched(clip, tmp_path):
    out = tmp_path / "crop.mov"
    render_crop(clip, out, np.zeros((1, 2)), (100, 180))

    def packets(path):
        with av.open(str(path)) as container:
            return [bytes(p) for p in container.demux(audio=0) if p.size]
    assert packets(out) == packets(clip)


def test_crops_stay_inside_the_frame_and_on_even_pixels():
    frame = av.VideoFrame(320, 180, "yuv420p")
    for plane in frame.planes:
        np.frombuffer(plane, np.uint8)[:] = 7
    out = crop_frame(frame, 301, -5, 100, 140)  # asked past the right edge and above the top
    assert (out.width, out.height) == (100, 140)
    rgb = av.VideoFrame(320, 180, "rgb24")
    assert crop_frame(rgb, 10, 10, 64, 64).format.name == "yuv420p"  # converted first
