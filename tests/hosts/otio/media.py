"""Test media and timelines for the otio host: ffmpeg lavfi clips with timecode, timelines
built with OpenTimelineIO and written through the real adapters, and melt renders.

    media = make_media(folder)          # a.mp4 (tc 01:00:00:00), b.mp4 (tc 10:00:00:00), ...
    timeline = av_timeline(media)       # V1: shotA, gap, shotB; A1: shotA's sound
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opentimelineio as otio

from hosts.otio.formats import quiet
from hosts.otio.timeline import write_timeline
from tests.conftest import write_tone

RATE = 30
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange


def make_video(path: Path, seconds: float = 3.0, size=(640, 360), rate: int = RATE,
               timecode: str | None = "01:00:00:00", pattern: str = "testsrc2", audio: bool = True,
               extra: list[str] = ()) -> Path:
    """A short H.264 clip from an ffmpeg lavfi pattern (moving content: every frame differs)."""
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
           f"{pattern}=size={size[0]}x{size[1]}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra]
    if timecode:
        cmd += ["-timecode", timecode]
    subprocess.run([*cmd, str(path)], check=True)
    return path


@dataclass
class Media:
    a: Path      # 3 s, 640x360, tc 01:00:00:00, with sound
    b: Path      # 3 s, 640x360, tc 10:00:00:00
    tone: Path   # 3 s stereo WAV (no video)
    vfr: Path    # variable frame rate, no timecode
    tiny: Path   # 24x24: too small for a 9:16 crop
    junk: Path   # not media at all


def make_media(folder: Path) -> Media:
    folder.mkdir(parents=True, exist_ok=True)
    junk = folder / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    return Media(
        a=make_video(folder / "a.mp4"),
        b=make_video(folder / "b.mp4", timecode="10:00:00:00", pattern="testsrc2", audio=False,
                     extra=["-vf", "hue=h=90"]),
        tone=write_tone(folder / "tone.wav", seconds=3.0, level=0.2),
        vfr=make_video(folder / "vfr.mp4", timecode=None, audio=False,
                       extra=["-vf", r"select='lt(n\,30)+not(mod(n\,3))'", "-fps_mode", "vfr"]),
        tiny=make_video(folder / "tiny.mp4", seconds=1, size=(24, 24), timecode=None, audio=False),
        junk=junk)


# -- timelines --------------------------------------------------------------------
def ref(path: Path, origin: int = 108000, frames: int = 90, url: str | None = None):
    """An ExternalReference whose media time starts at the file's timecode (``origin`` frames)."""
    return otio.schema.ExternalReference(target_url=url or path.as_uri(),
                                         available_range=TR(RT(origin, RATE), RT(frames, RATE)))


def clip(name: str, media, start: int, duration: int, markers=()) -> otio.schema.Clip:
    """A clip using frames [start, start + duration) of its media (media time)."""
    item = otio.schema.Clip(name=name, media_reference=media, source_range=TR(RT(start, RATE), RT(duration, RATE)))
    for marker_name, at, color in markers:
        item.markers.append(otio.schema.Marker(name=marker_name, color=color, marked_range=TR(RT(at, RATE),
                                                                                             RT(0, RATE))))
    return item


def av_timeline(media: Media) -> otio.schema.Timeline:
    """V1: shotA (a.mp4 +10..+40), a 10-frame gap, shotB (b.mp4 +20..+60); A1: shotA's sound."""
    timeline = otio.schema.Timeline(name="demo", global_start_time=RT(108000, RATE))
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    video.append(clip("shotA", ref(media.a), 108010, 30, [("look here", 108015, "RED")]))
    video.append(otio.schema.Gap(duration=RT(10, RATE)))
    video.append(clip("shotB", ref(media.b, origin=10 * 3600 * RATE), 10 * 3600 * RATE + 20, 40,
                      [("keep", 10 * 3600 * RATE + 30, "GREEN")]))
    sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    sound.append(clip("shotA", ref(media.a), 108010, 30))
    timeline.tracks.extend([video, sound])
    return timeline


def write_as(timeline, path: Path, canvas=(1920, 1080)) -> Path:
    """Write through the real adapter, the sequence declaring ``canvas`` where the format can."""
    from hosts.otio.formats import declare_canvas, format_for

    declare_canvas(timeline, format_for(path, write=True), canvas)
    write_timeline(timeline, path, canvas)
    return path


def read_back(path: Path, rate: int = RATE):
    kwargs = {"rate": rate} if path.suffix == ".edl" else {}
    with quiet():
        return otio.adapters.read_from_file(str(path), **kwargs)


def video_clips(timeline) -> list:
    return [c for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video for c in t.find_clips()]


# -- looking at pictures ------------------------------------------------------------
def gray_frames(path: Path, size=(90, 160)) -> list[np.ndarray]:
    """Every frame of a video, grey and small (width, height), as float arrays."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.reformat(width=size[0], height=size[1], format="gray").to_ndarray()
            frames.append(image.astype(np.float64))
    return frames


def melt_render(project: Path, out: Path, frames: int) -> subprocess.CompletedProcess:
    """Render a Kdenlive/MLT project headless with Debian's melt (``out=`` bounds it)."""
    return subprocess.run(["melt", str(project), f"out={frames - 1}", "-consumer", f"avformat:{out}",
                           "vcodec=libx264", "preset=ultrafast", "an=1", "-silent"],
                          capture_output=True, text=True, timeout=120)
