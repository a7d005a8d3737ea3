"""Shot cuts at the exact frame, on clips concatenated from different sources."""

from __future__ import annotations

import subprocess

import av
import pytest

pytest.importorskip("scenedetect")

from bridge.vision.shots import CutFinder, shots  # noqa: E402


@pytest.fixture(scope="module")
def three_shots(tmp_path_factory):
    """testsrc2 (2 s) | mandelbrot (1.5 s) | life (1 s) at 30 fps: cuts at frames 60 and 105."""
    path = tmp_path_factory.mktemp("cuts") / "cut.mp4"
    sources = ["testsrc2=size=320x180:rate=30:duration=2",
               "mandelbrot=size=320x180:rate=30,trim=duration=1.5",
               "life=size=320x180:rate=30:mold=10:ratio=0.5,trim=duration=1"]
    args = []
    for source in sources:
        args += ["-f", "lavfi", "-i", source]
    graph = "".join(f"[{i}:v]format=yuv420p,setsar=1[v{i}];" for i in range(3))
    graph += "[v0][v1][v2]concat=n=3:v=1:a=0[out]"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *args, "-filter_complex", graph,
                    "-map", "[out]", "-c:v", "libx264", "-crf", "18", str(path)], check=True)
    return path


def test_cuts_are_found_at_the_exact_frames(three_shots):
    with av.open(str(three_shots)) as container:
        stream = container.streams.video[0]
        finder = CutFinder(stream.average_rate)
        count = 0
        for frame in container.decode(stream):
            finder.add(frame.to_ndarray(format="bgr24", width=160, height=90))
            count += 1
    cuts = finder.finish()
    assert cuts == [60, 105]
    assert shots(cuts, count) == [(0, 60), (60, 105), (105, count)]


def test_one_shot_and_no_frames():
    assert shots([], 10) == [(0, 10)]
    assert CutFinder(25).finish() == []
