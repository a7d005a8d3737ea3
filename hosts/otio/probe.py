"""What a media file is: frame rate, length, timecode, size (headers only, through PyAV).

The host needs this to turn a clip's source range into seconds of the file and
to clamp handles to the media that exists. It never judges the media: a file
this cannot open is still sent to the daemon, whose message says what is wrong.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


@dataclass(frozen=True)
class MediaInfo:
    """A media file's headers.

    Attributes:
        fps: average video frame rate (None without video).
        nominal_fps: the stream's nominal (base) rate; differs from ``fps`` when
            the frame rate varies.
        frames: video frames (0 = unknown).
        timecode: the start timecode as written ("01:00:00:00"), or "".
        duration: seconds (the longest stream's).
    """

    path: Path
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: Fraction | None = None
    nominal_fps: Fraction | None = None
    frames: int = 0
    timecode: str = ""
    duration: float = 0.0
    sample_rate: int = 0


def probe(path: Path) -> MediaInfo | None:
    """Read ``path``'s headers; None if PyAV cannot open it (the daemon will say why).

    A run asks about the same file for every clip that uses it, and again in its dry
    run: answers are kept while the file's size and modification time stay the same.
    """
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _probe(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _probe(path: str, mtime_ns: int, size: int) -> MediaInfo | None:
    import av

    try:
        with av.open(path) as container:
            return _info(Path(path), container)
    except (av.error.FFmpegError, OSError, ValueError):
        return None


def _info(path: Path, container) -> MediaInfo:
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    duration = container.duration / 1e6 if container.duration else 0.0
    if video is None:
        return MediaInfo(path, False, audio is not None, duration=duration,
                         sample_rate=audio.rate if audio is not None else 0)
    fps = _fraction(video.average_rate or video.guessed_rate)
    nominal = _fraction(video.guessed_rate or video.average_rate)
    seconds = float(video.duration * video.time_base) if video.duration and video.time_base else duration
    frames = video.frames or (int(round(seconds * fps)) if fps else 0)
    return MediaInfo(path, True, audio is not None, video.codec_context.width, video.codec_context.height,
                     fps, nominal, frames, _timecode(container, video), duration or seconds,
                     audio.rate if audio is not None else 0)


def _fraction(rate) -> Fraction | None:
    return Fraction(rate.numerator, rate.denominator) if rate else None


def _timecode(container, video) -> str:
    """The start timecode: on the video stream (MOV/MP4), a tmcd data stream, or the container."""
    for metadata in (video.metadata, *(s.metadata for s in container.streams.data), container.metadata):
        if metadata.get("timecode"):
            return metadata["timecode"]
    return ""
