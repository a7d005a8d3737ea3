"""Render a moving crop of a video: crop on the YUV planes, encode, audio copied.

PyAV end to end, one frame at a time. Each frame's crop is copied plane by
plane straight into the encoder's frame (rows are padded, so planes are
addressed through their line size); frames keep their source timestamps
(shifted only when a range is cut out of the source), so frame rate,
variable or not, is kept, as is the timecode; audio packets are remuxed
untouched. Chroma planes are subsampled, so crop positions and sizes are
even. A source in another pixel format than the encoder's is converted
first.

``CropWriter`` takes frames in any order of arrival (the reframe pipeline
hands it a shot at a time); ``render_crop`` is the whole-file loop on top.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class Encoding:
    """Encoder settings.

    ``codec`` libx264 / libx265 take a constant-quality ``crf`` (0 = lossless)
    and a ``preset``; prores_ks takes a ``profile`` (3 = 422 HQ).
    """

    codec: str = "libx264"
    crf: int = 18
    preset: str = "veryfast"
    pix_fmt: str = PIX_FMT
    profile: int = 3

    def options(self) -> dict[str, str]:
        if self.codec == "prores_ks":
            return {"profile": str(self.profile)}
        if self.codec == "libx265":
            return {"crf": str(self.crf), "preset": self.preset, "x265-params": "log-level=error"}
        return {"crf": str(self.crf), "preset": self.preset}


class CropWriter:
    """An open output: video frames cropped (and scaled) as they come, audio packets copied.

    Args:
        dst: output file (container from its suffix).
        vin: the source's video stream (rate, time base, colour range).
        ain: the source's audio stream to copy, or None.
        crop: (width, height) of the crop in source pixels (made even).
        size: (width, height) of the output; None = the crop's size.
        encoding: encoder settings.
        timecode: written as the output's start timecode, when given.
        shift: seconds subtracted from every timestamp (a range cut from the source
            starts at 0).
    """

    def __init__(self, dst: Path, vin, ain, crop: tuple[int, int], size: tuple[int, int] | None = None,
                 encoding: Encoding = Encoding(), timecode: str | None = None, shift: float = 0.0):
        import av

        self.crop = tuple(int(v) & ~1 for v in crop)
        self.size = tuple(int(v) & ~1 for v in (size or self.crop))
        self.encoding = encoding
        self._out = av.open(str(dst), "w")
        try:
            self._video = self._video_stream(vin, timecode)
            self._audio = self._out.add_stream_from_template(ain) if ain is not None else None
        except Exception:
            self._out.close()
            raise
        self._shift = Fraction(shift).limit_denominator(1_000_000)
        self._pending_audio: deque = deque()  # held until the video reaches their time (interleaving)
        self.frames = 0
        self.last_time = float("-inf")

    def _video_stream(self, vin, timecode):
        vout = self._out.add_stream(self.encoding.codec, rate=vin.average_rate or vin.guessed_rate)
        vout.width, vout.height = self.size
        vout.pix_fmt = self.encoding.pix_fmt
        vout.time_base = vin.time_base  # frames keep the source's timestamps
        vout.codec_context.time_base = vin.time_base
        vout.options = self.encoding.options()
        vout.codec_context.thread_type = "FRAME"  # frame threads (PyAV's default slices are slower)
        vout.codec_context.color_range = vin.codec_context.color_range
        if timecode:
            vout.metadata["timecode"] = timecode
        return vout

    def write(self, frame, x: int, y: int) -> None:
        """Crop ``frame`` at (x, y), scale if asked, encode it at its own (shifted) time."""
        out = crop_frame(frame, x, y, *self.crop, pix_fmt=self.encoding.pix_fmt)
        if self.size != self.crop:
            out = out.reformat(width=self.size[0], height=self.size[1], interpolation="BICUBIC")
        out.time_base = frame.time_base
        out.pts = None if frame.pts is None else frame.pts - self._ticks(frame.time_base)
        self._out.mux(self._video.encode(out))
        self.frames += 1
        if frame.pts is not None:
            self.last_time = float(frame.pts * frame.time_base - self._shift)
            self._flush_audio(self.last_time)

    def audio(self, packet) -> None:
        """Queue one source audio packet (muxed once the video has caught up with it)."""
        if self._audio is None or packet.dts is None:  # the demuxer's flush packet has none
            return
        ticks = self._ticks(packet.time_base)
        packet.pts = packet.pts - ticks if packet.pts is not None else None
        packet.dts -= ticks
        packet.stream = self._audio
        self._pending_audio.append(packet)

    def _flush_audio(self, until: float) -> None:
        pending = self._pending_audio
        while pending and float(pending[0].dts * pending[0].time_base) <= until:
            self._out.mux(pending.popleft())

    def _ticks(self, time_base) -> int:
        return int(round(self._shift / time_base)) if self._shift else 0

    def close(self) -> None:
        """Drain the encoder, write the remaining audio and the container's index."""
        try:
            self._out.mux(self._video.encode(None))
            self._flush_audio(float("inf"))
        finally:
            self._out.close()

    def abort(self) -> None:
        """Close without draining (the caller removes the file)."""
        self._out.close()


def render_crop(src: Path, dst: Path, positions: np.ndarray, size: tuple[int, int],
                encoding: Encoding = Encoding(),
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``dst``: every frame of ``src`` cropped at ``positions[frame]`` = (x, y).

    Args:
        src: the source video (audio, if any, is copied).
        dst: the output file (its container from the suffix).
        positions: (frames, 2) top-left corners; a frame past the end uses the last.
        size: (width, height) of the crop, even numbers.
        encoding: encoder settings.
        progress: called with (frames done, frames expected or 0); may raise to stop.

    Returns:
        {"frames", "width", "height", "fps", "audio": copied or None, "timecode"}.
    """
    import av

    positions = np.asarray(positions, dtype=np.int64)
    with av.open(str(src)) as source:
        vin = source.streams.video[0]
        vin.thread_type = "AUTO"
        ain = source.streams.audio[0] if source.streams.audio else None
        timecode = source_timecode(source, vin)
        writer = CropWriter(dst, vin, ain, size, encoding=encoding, timecode=timecode)
        expected = int(vin.frames or 0)
        for packet in source.demux(*[s for s in (vin, ain) if s is not None]):
            if packet.stream.type == "audio":
                writer.audio(packet)
                continue
            for frame in packet.decode():
                x, y = positions[min(writer.frames, len(positions) - 1)]
                writer.write(frame, int(x), int(y))
                if progress is not None:
                    progress(writer.frames, expected)
        writer.close()
    return {"frames": writer.frames, "width": writer.size[0], "height": writer.size[1],
            "fps": float(vin.average_rate or 0), "audio": ain.codec_context.name if ain else None,
            "timecode": timecode}


def source_timecode(container, stream) -> str | None:
    """The start timecode a camera or editor wrote (stream tag first, then container)."""
    return stream.metadata.get("timecode") or container.metadata.get("timecode") or None


def crop_frame(frame, x: int, y: int, width: int, height: int, pix_fmt: str = PIX_FMT):
    """A new ``pix_fmt`` frame holding the (x, y, width, height) crop of ``frame``.

    Positions outside the frame are clamped; x and y are made even (chroma is
    subsampled). Works for any planar format (8-bit or 16-bit samples).
    """
    import av

    if frame.format.name != pix_fmt:
        frame = frame.reformat(format=pix_fmt)
    x = min(max(0, x), frame.width - width) & ~1
    y = min(max(0, y), frame.height - height) & ~1
    out = av.VideoFrame(width, height, pix_fmt)
    depth = 2 if max(c.bits for c in out.format.components) > 8 else 1  # bytes per sample
    for source, plane in zip(frame.planes, out.planes):
        sx, sy = width // plane.width, height // plane.height  # subsampling of this plane
        rows = _plane(source, depth)
        _plane(plane, depth)[:] = rows[y // sy:y // sy + plane.height,
                                       (x // sx) * depth:(x // sx + plane.width) * depth]
    return out


def _plane(plane, depth: int = 1) -> np.ndarray:
    """A plane as (height, width * bytes per sample) bytes, through its padded line size."""
    data = np.frombuffer(plane, np.uint8)
    return data[:plane.height * plane.line_size].reshape(plane.height, plane.line_size)[
        :, :plane.width * depth]
