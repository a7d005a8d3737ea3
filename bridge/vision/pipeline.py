"""Auto-reframe in one decode pass: analyse, plan each shot as it ends, render it.

Decoding dominates the cost of a reframe (measured in bench/RESULTS.md), so the
video is decoded once. Every frame feeds the cut finder (a tiny colour copy);
one frame in every few is kept as a small grey analysis frame; the decoded
frames themselves are held until their shot ends. When a cut is confirmed,
the finished shot's subject is found and tracked on its analysis frames,
its crop path is planned (per axis, like a camera operator: hold or a smooth
pan that never cuts the subject off), and its frames are cropped and
encoded. A shot longer than the memory budget is planned in pieces, each
continuing from the last position and speed of the one before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.errors import InvalidArgument, MediaError
from ..dsp.camera import plan_shot
from .render import CropWriter, Encoding, source_timecode
from .shots import CutFinder
from .subjects import SubjectFinder
from .track import track_shot

ANALYSIS_SIDE = 480  # the long side of subject-analysis frames (Haar finds faces >= 24 px)
CUT_WIDTH = 160  # cut detection needs only colour changes: tiny frames
ANALYSIS_RATE = 10.0  # analysis frames per second
DETECT_EVERY = 5  # a detection on every 5th analysis frame (2 per second), tracking between
HELD_BYTES = 384 << 20  # decoded frames held for an open shot before it is planned in pieces
TRACK_MODES = {"auto": ("faces", "saliency", "motion"), "faces": ("faces",),
               "saliency": ("saliency", "motion"), "center": ()}
_PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}


@dataclass(frozen=True)
class Target:
    """The crop (source pixels) and the output frame size."""

    crop: tuple[int, int]
    size: tuple[int, int]


def parse_aspect(aspect: str) -> tuple[int, int, bool]:
    """``"9:16"`` -> (9, 16, False); ``"1080x1920"`` -> (1080, 1920, True): a size.

    Raises:
        InvalidArgument: neither a ratio nor a size.
    """
    text = aspect.strip().lower()
    sep = ":" if ":" in text else "x" if "x" in text else None
    try:
        a, b = (int(v) for v in text.split(sep)) if sep else (0, 0)
    except ValueError:
        a = b = 0
    if a <= 0 or b <= 0 or max(a, b) > 16384:
        raise InvalidArgument(f"aspect '{aspect}' is not a ratio like 9:16 or a size like 1080x1920; "
                              "common: 9:16, 1:1, 4:5, 4:3, 16:9")
    return a, b, sep == "x"


def target_for(aspect: str, width: int, height: int) -> Target:
    """The largest crop of a ``width`` x ``height`` frame with the asked shape.

    ``aspect`` is a ratio ("9:16") - the output is the crop itself - or a size
    ("1080x1920") - the crop has that shape and is scaled to it.

    Raises:
        InvalidArgument: not a ratio or size, or a crop too small to encode.
    """
    a, b, is_size = parse_aspect(aspect)
    if width * b >= height * a:  # the source is wider: full height, cut the sides
        crop = (int(round(height * a / b)) & ~1, height & ~1)
    else:
        crop = (width & ~1, int(round(width * b / a)) & ~1)
    if min(crop) < 16:
        raise InvalidArgument(f"aspect {aspect} of a {width}x{height} video leaves a {crop[0]}x{crop[1]} "
                              "crop; too small to encode")
    size = (a & ~1, b & ~1) if is_size else crop
    return Target(crop, size)


@dataclass
class Shot:
    start: int
    end: int
    mode: str
    subject: str
    fits: bool
    detections: int = 0
    tracked: int = 0

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "mode": self.mode, "subject": self.subject,
                "fits": self.fits, "detections": self.detections, "tracked": self.tracked}


@dataclass
class Reframed:
    """What a pass produced: per-frame crops, shots, and facts for the report."""

    fps: float
    source: dict
    target: Target
    frames: list[dict] = field(default_factory=list)  # {"frame","time","x","y","w","h"}
    shots: list[Shot] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)
    timecode: str | None = None
    start: float = 0.0
    audio: str | None = None
    warnings: list[str] = field(default_factory=list)


def reframe(src: Path, dst: Path, aspect: str, track: str = "auto", start: float = 0.0,
            duration: float = 0.0, encoding: Encoding | None = None,
            progress: Callable[[float], None] | None = None,
            check: Callable[[], None] | None = None) -> Reframed:
    """Reframe ``src`` into ``dst``.

    Args:
        src: the source video (any codec PyAV decodes; audio is copied).
        dst: the file to write (its container from the suffix).
        aspect: "9:16", "1:1", ... or "WxH" (see ``target_for``).
        track: "auto" | "faces" | "saliency" | "center".
        start, duration: seconds of the source to render (duration 0: to the end).
        encoding: encoder settings (default libx264).
        progress: called with the fraction done.
        check: called between frames; raises to stop (cancel).

    Raises:
        MediaError: no video stream, nothing decodable, or a decode failure.
        InvalidArgument: an aspect that cannot be cut from this frame.
    """
    import av

    try:
        container = av.open(str(src))
    except av.error.FFmpegError as exc:
        raise MediaError(f"video cannot be opened: {_why(exc)}") from None
    with container:
        if not container.streams.video:
            kinds = ", ".join(s.type for s in container.streams) or "no streams"
            raise MediaError(f"video has no video stream (it holds {kinds}); reframe needs a video file")
        with _Pass(container, dst, aspect, track, start, duration, encoding or Encoding(),
                   progress, check) as one:
            return one.run()


class _Pass:
    """The state of one decode pass (see the module docstring)."""

    def __init__(self, container, dst, aspect, track, start, duration, encoding, progress, check):
        self.vin = container.streams.video[0]
        self.vin.thread_type = "AUTO"
        self.ain = container.streams.audio[0] if container.streams.audio else None
        self.container = container
        ctx = self.vin.codec_context
        width, height = ctx.width, ctx.height
        if not width or not height:
            raise MediaError("video has no frame size (damaged header?)")
        self.fps = float(self.vin.average_rate or self.vin.guessed_rate or 0) or 25.0
        self.target = target_for(aspect, width, height)
        self.modes = TRACK_MODES[track]
        # Ranges count from the first frame; frame times from the stream's zero, which is not
        # the first frame in MPEG-TS (AVCHD) and other streams with a start time.
        self._begin = float(self.vin.start_time * self.vin.time_base) if self.vin.start_time else 0.0
        self.offset = float(start)
        self.start = self._begin + float(start)
        self.end = self.start + float(duration) if duration else float("inf")
        scale = max(width, height) / float(ANALYSIS_SIDE) if max(width, height) > ANALYSIS_SIDE else 1.0
        self.analysis_size = (int(round(width / scale)), int(round(height / scale)))
        self.finder = SubjectFinder(scale=width / self.analysis_size[0], modes=self.modes) if self.modes else None
        self.cuts = CutFinder(Fraction(self.fps).limit_denominator(1001000))
        self.step = max(1, int(round(self.fps / ANALYSIS_RATE)))
        self.dst, self.encoding = dst, encoding
        self._progress, self._check = progress, check
        self.out = Reframed(self.fps, {"width": width, "height": height, "codec": ctx.name,
                                        "pix_fmt": ctx.format.name if ctx.format else ""},
                            self.target)
        self.held: list = []  # decoded frames of the open shot: (index, frame)
        self.grays: dict[int, np.ndarray] = {}  # analysis frames of the open shot
        self.shot_start = 0
        self.lead: dict[int, np.ndarray] | None = None  # a long shot's last positions, per axis
        self.writer: CropWriter | None = None
        self.count = 0
        self._shift = 0.0  # seconds taken off every timestamp (a range starts at 0)
        self._early_audio: list = []  # audio demuxed before the first video frame
        self._frame_bytes = 0
        self._pts: set[int] = set()  # every frame timestamp seen (variable frame rate check)

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if self.writer is not None and kind is not None:
            self.writer.abort()  # cancelled or failed: the caller discards the file

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> Reframed:
        import av

        self._seek_to_start()
        expected = self._expected_frames()
        try:
            for kind, item in _prefetch(self._demux()):
                if kind == "audio":
                    self._audio(item)
                    continue
                self._ensure_writer(item)
                self._add(item)
                if self._progress and expected:
                    self._progress(min(self.count / expected, 0.99))
        except av.error.FFmpegError as exc:
            raise MediaError(f"video cannot be decoded after frame {self.count}: {_why(exc)}") from None
        if not self.count:
            raise MediaError("video has no decodable frames in the asked range"
                             if self.offset else "video has no decodable frames (corrupt or empty)")
        for cut in self.cuts.finish():
            if cut > self.shot_start:
                self._close(cut, cut=True)
        self._close(self.count, cut=True)
        self.out.cuts = sorted({s.start for s in self.out.shots if s.start > 0})
        self.writer.close()
        self.writer = None
        self._note_timing()
        return self.out

    def _seek_to_start(self) -> None:
        """Position the demuxer at the range (the writer opens on the first frame kept)."""
        # Formats without an index (MPEG-TS/PS, raw streams) land mid-GOP when seeking and
        # then decode nothing: those are read from the start and the frames before skipped.
        indexed = not set(self.container.format.name.split(",")) & _NO_INDEX
        if self.offset > 0 and indexed:
            self.container.seek(int(self.start / self.vin.time_base), stream=self.vin, backward=True)
        self.out.start = self.offset
        self._source_timecode = source_timecode(self.container, self.vin)
        self.out.timecode = self._source_timecode
        self.out.audio = self.ain.codec_context.name if self.ain is not None else None

    def _demux(self):
        """("video", frame) inside [start, end) and ("audio", packet), in file order."""
        streams = [s for s in (self.vin, self.ain) if s is not None]
        video_done = False
        for packet in self.container.demux(*streams):
            if packet.stream.type == "audio":
                yield "audio", packet
                if video_done and _time(packet) is not None and _time(packet) >= self.end:
                    return
                continue
            if video_done:
                continue
            for frame in packet.decode():
                time = _time(frame)
                if time is not None and time < self.start - 0.5 / self.fps:
                    continue
                if time is not None and time >= self.end - 0.5 / self.fps:
                    video_done = True
                    break
                yield "video", frame
            if video_done and self.ain is None:
                return

    def _ensure_writer(self, first) -> None:
        if self.writer is not None:
            return
        self._shift = _time(first) if self.offset > 0 and _time(first) is not None else 0.0
        if self._source_timecode and self._shift:
            # The render's timecode is its first frame's: the source's, that many frames on.
            self.out.timecode = _advance(self._source_timecode, self._shift - self._begin,
                                         _timecode_rate(self.vin))
        self._frame_bytes = _nbytes(first)
        self.writer = CropWriter(self.dst, self.vin, self.ain, self.target.crop, self.target.size,
                                 self.encoding, self.out.timecode, self._shift)
        for packet in self._early_audio:
            self.writer.audio(packet)
        self._early_audio = []

    def _audio(self, packet) -> None:
        time = _time(packet)
        if packet.dts is None or (time is not None and not self.start - 0.1 <= time < self.end):
            return
        if self.writer is None:  # audio before the first video frame: keep it for the writer
            self._early_audio.append(packet)
        else:
            self.writer.audio(packet)

    def _add(self, frame) -> None:
        if self._check:
            self._check()
        index = self.count
        self.count += 1
        if frame.pts is not None:
            self._pts.add(frame.pts)
        tiny, gray = _small(frame, (CUT_WIDTH, max(2, int(CUT_WIDTH * frame.height / frame.width))),
                            self.analysis_size if index % self.step == 0 and self.modes else None)
        if gray is not None:
            self.grays[index] = gray
        self.held.append((index, frame))
        for cut in self.cuts.add(tiny):
            if cut > self.shot_start:
                self._close(cut, cut=True)
        if self._frame_bytes * len(self.held) > HELD_BYTES:
            self._close(max(self.shot_start + 1, self.count - self.cuts.latency), cut=False)

    # -- one shot (or piece of a long one) ------------------------------------------------
    def _close(self, end: int, cut: bool) -> None:
        """Plan and render frames [shot_start, end); ``cut``: a new shot starts at ``end``."""
        frames = [(i, f) for i, f in self.held if i < end]
        if not frames:
            return
        self.held = self.held[len(frames):]
        start = frames[0][0]
        grays = [(i, self.grays.pop(i)) for i in sorted(self.grays) if i < end]
        centres, halves, shot = self._subject(start, end, grays)
        positions = self._plan(centres, halves, shot)
        w, h = self.target.crop
        for (index, frame), (x, y) in zip(frames, positions):
            self.writer.write(frame, int(x), int(y))
            self.out.frames.append({"frame": index, "time": _rel(frame, self._shift), "x": int(x) & ~1,
                                    "y": int(y) & ~1, "w": w, "h": h})
        self._record(shot)
        self.lead = None if cut else {axis: positions[-2:, axis] for axis in (0, 1)}
        self.shot_start = end if cut else self.shot_start

    def _subject(self, start: int, end: int, grays):
        """Per frame of [start, end): subject centre and half-size (x, y), NaN where unknown."""
        n = end - start
        centres, halves = np.full((n, 2), np.nan), np.full((n, 2), np.nan)
        shot = Shot(self.shot_start, end, "hold", "center" if not self.modes else "none", True)
        if self.finder is None or not grays:
            return centres, halves, shot
        found = track_shot([g for _, g in grays], self.finder, DETECT_EVERY)
        at = np.array([i - start for i, _ in grays], dtype=np.float64)
        known = np.isfinite(found.boxes[:, 0])
        if known.any():
            boxes = found.boxes[known]
            frames = np.arange(n)
            for axis in (0, 1):
                centres[:, axis] = _between(frames, at[known], boxes[:, axis] + boxes[:, axis + 2] / 2,
                                            boxes[:, axis + 2])
                halves[:, axis] = _between(frames, at[known], boxes[:, axis + 2] / 2, boxes[:, axis + 2])
        shot.subject, shot.detections, shot.tracked = found.source, found.detections, found.tracked
        return centres, halves, shot

    def _plan(self, centres, halves, shot: Shot) -> np.ndarray:
        source = (self.out.source["width"], self.out.source["height"])
        positions = np.zeros((len(centres), 2))
        for axis in (0, 1):
            if self.target.crop[axis] >= source[axis] - 1:
                continue  # the crop spans this axis: nothing to move
            lead = self.lead[axis] if self.lead else None
            plan = plan_shot(centres[:, axis], halves[:, axis], source[axis], self.target.crop[axis],
                             self.fps, lead=lead)
            positions[:, axis] = plan.positions
            shot.fits = shot.fits and plan.fits
            shot.mode = "pan" if plan.mode == "pan" else shot.mode
        return np.round(positions)

    def _record(self, shot: Shot) -> None:
        last = self.out.shots[-1] if self.out.shots else None
        if last is not None and last.start == shot.start:  # another piece of a long shot
            last.end, last.fits = shot.end, last.fits and shot.fits
            last.mode = "pan" if "pan" in (last.mode, shot.mode) else "hold"
            last.detections += shot.detections
            last.tracked += shot.tracked
        else:
            self.out.shots.append(shot)

    # -- facts ----------------------------------------------------------------------------
    def _expected_frames(self) -> int:
        total = int(self.vin.frames or 0)
        if not total and self.vin.duration:
            total = int(float(self.vin.duration * self.vin.time_base) * self.fps)
        if self.end != float("inf"):
            total = int((self.end - self.start) * self.fps)
        elif self.offset:
            total = max(0, total - int(self.offset * self.fps))
        return total

    def _note_timing(self) -> None:
        """A variable frame rate is kept (timestamps are copied); the report says so."""
        pts = np.diff(sorted(self._pts))
        if len(pts) > 2 and pts.max() > 1.5 * pts.min():
            tb = float(self.vin.time_base)
            self.out.warnings.append(
                f"variable frame rate: frame durations from {pts.min() * tb * 1000:.1f} to "
                f"{pts.max() * tb * 1000:.1f} ms; the render keeps every source timestamp, "
                f"the crop path was planned at the average {self.fps:.3f} fps")


def _prefetch(items, size: int = 8):
    """Iterate ``items`` on a thread, ``size`` ahead: decoding (which releases the GIL)
    overlaps analysis and encoding. Errors re-raise here; leaving early stops the thread."""
    import queue
    import threading

    box: queue.Queue = queue.Queue(size)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=work, name="reframe-decode", daemon=True)
    thread.start()
    try:
        while (item := box.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _small(frame, cut_size, analysis_size):
    """A tiny BGR frame for the cut finder and, when asked, a grey analysis frame."""
    import cv2

    if frame.format.name in _PLANAR_8BIT:
        planes = [_view(p) for p in frame.planes[:3]]
        # Area-averaged, so sensor noise does not read as change (nearest-pixel tiny frames
        # gave false cuts on grainy footage); every 2nd..4th pixel is enough to average.
        step = max(1, frame.width // (3 * cut_size[0]))
        tiny = cv2.merge([cv2.resize(p[::k, ::k], cut_size, interpolation=cv2.INTER_AREA)
                          for p, k in zip(planes, _steps(step, frame, planes))])
        tiny = cv2.cvtColor(tiny, cv2.COLOR_YUV2BGR)
        gray = cv2.resize(planes[0], analysis_size, interpolation=cv2.INTER_AREA) if analysis_size else None
        return tiny, gray
    tiny = frame.to_ndarray(format="bgr24", width=cut_size[0], height=cut_size[1])
    gray = frame.to_ndarray(format="gray", width=analysis_size[0], height=analysis_size[1]) \
        if analysis_size else None
    return tiny, gray


def _steps(step: int, frame, planes) -> list[int]:
    """Per plane, the stride that samples about the same picture grid (chroma may be smaller)."""
    return [max(1, step * p.shape[1] // frame.width) if i else step for i, p in enumerate(planes)]


def _view(plane) -> np.ndarray:
    data = np.frombuffer(plane, np.uint8)
    return data[:plane.height * plane.line_size].reshape(plane.height, plane.line_size)[:, :plane.width]


def _nbytes(frame) -> int:
    return sum(p.buffer_size for p in frame.planes)


def _between(frames, at, values, sizes) -> np.ndarray:
    """``values`` known at analysis frames ``at``, for every frame: linear between two
    samples, but a jump bigger than the subject (it moved further than itself between
    two analysis frames) is a step halfway, not a glide through where it never was."""
    out = np.interp(frames, at, values)
    for a, b, va, vb, size in zip(at, at[1:], values, values[1:], sizes):
        if abs(vb - va) > size:
            inside = (frames > a) & (frames < b)
            out[inside] = np.where(frames[inside] < (a + b) / 2, va, vb)
    return out


def _why(exc) -> str:
    """ffmpeg's reason without its errno and path (the caller names the file)."""
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"{reason} (not a video ffmpeg can read, or damaged)"


def _time(item) -> float | None:
    return None if item.pts is None else float(item.pts * item.time_base)


def _rel(frame, shift: float) -> float | None:
    time = _time(frame)
    return None if time is None else round(time - shift, 6)


_NO_INDEX = {"mpegts", "mpeg", "mpegvideo", "h264", "hevc", "m4v"}


def _timecode_rate(stream) -> float:
    """The rate a stream's timecode counts at: its average rate where that is a SMPTE
    rate, else its nominal one (a variable-rate file's average is neither), else 0."""
    from opentimelineio import opentime

    for rate in (stream.average_rate, stream.guessed_rate):
        if rate and abs(opentime.RationalTime.nearest_valid_timecode_rate(float(rate)) / float(rate) - 1) < 0.001:
            return float(rate)
    return 0.0


def _advance(timecode: str, seconds: float, rate) -> str | None:
    """``timecode`` moved on by the frames in ``seconds`` at the stream's ``rate``.

    Counted at the exact SMPTE rate (29.97 is 30000/1001, which OpenTimelineIO
    needs), drop-frame when the timecode is written with ``;``.
    """
    from opentimelineio import opentime

    try:
        tc_rate = opentime.RationalTime.nearest_valid_timecode_rate(float(rate))
        if abs(tc_rate / float(rate) - 1) > 0.001:
            return None  # no SMPTE rate near it (e.g. 12.5 fps): no timecode rather than a wrong one
        at = opentime.from_timecode(timecode, tc_rate)
        moved = at + opentime.RationalTime(round(seconds * tc_rate), tc_rate)
        return opentime.to_timecode(moved, tc_rate, ";" in timecode)
    except (ValueError, TypeError, ZeroDivisionError):
        return None  # a timecode OTIO cannot parse: none rather than the source's, which is wrong here
