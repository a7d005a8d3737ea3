"""A render of a range carries the timecode of its own first frame, at every broadcast rate.

The expected timecodes are counted by hand (drop-frame skips frame numbers 00 and 01
at each minute not divisible by ten at 29.97, and 00-03 at 59.94); ffprobe reads
what the render carries.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import pytest

from bridge.vision.pipeline import reframe

# (rate as ffmpeg takes it, source timecode, frames into the source, the render's timecode)
CASES = [
    ("24000/1001", "01:00:00:00", 60, "01:00:02:12"),
    ("24", "01:00:00:00", 60, "01:00:02:12"),
    ("25", "10:00:00:00", 60, "10:00:02:10"),
    ("30000/1001", "01:00:59;20", 30, "01:01:00;22"),  # drop-frame: ;00 and ;01 do not exist
    ("30000/1001", "01:00:59:20", 30, "01:01:00:20"),  # the same rate, non-drop
    ("30", "01:00:59:20", 30, "01:01:00:20"),
    ("50", "01:00:00:00", 60, "01:00:01:10"),
    ("60000/1001", "01:00:59;50", 60, "01:01:00;54"),  # drop-frame at 59.94: ;00-;03 skipped
    ("30000/1001", "00:09:59;29", 1, "00:10:00;00"),  # every tenth minute keeps ;00
]


def _clip(path, rate: str, timecode: str):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate={rate}",
                    "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-timecode", timecode, str(path)], check=True)
    return path


def _probed_timecode(path) -> str:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream_tags=timecode:format_tags=timecode",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    found = [s.get("tags", {}).get("timecode") for s in data.get("streams", [])]
    found.append(data.get("format", {}).get("tags", {}).get("timecode"))
    return next(tc for tc in found if tc)


@pytest.mark.parametrize("rate,timecode,frames,expected", CASES,
                         ids=[f"{r.replace('/', '_')}-{tc}" for r, tc, _, _ in CASES])
def test_a_range_starts_at_its_own_timecode(tmp_path, rate, timecode, frames, expected):
    src = _clip(tmp_path / "src.mp4", rate, timecode)
    assert _probed_timecode(src) == timecode
    start = float(frames / Fraction(rate))
    result = reframe(src, tmp_path / "out.mp4", "1:1", "center", start=round(start, 6), duration=0.5)
    assert result.timecode == expected
    assert _probed_timecode(tmp_path / "out.mp4") == expected


def test_a_range_counts_from_the_first_frame_when_the_stream_starts_later(tmp_path):
    """MPEG-TS (AVCHD cameras) starts its clock at 1.4 s: 1.0 s in is frame 30, not frame 0."""
    import av
    import numpy as np

    src = tmp_path / "cam.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=30", "-t", "3",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-qp", "0", str(src)],
                   check=True)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        assert stream.start_time * stream.time_base > 1.0  # the case: a stream that does not start at 0
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    result = reframe(src, tmp_path / "out.mp4", "16:9", "center", start=1.0, duration=1.0)
    assert result.start == 1.0
    with av.open(str(tmp_path / "out.mp4")) as container:
        out = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    assert len(out) == 30
    first = min(range(len(frames)), key=lambda i: np.abs(frames[i].astype(int) - out[0]).mean())
    assert first == 30
