"""Test videos with exact per-frame ground truth: a moving face over real backgrounds.

Each shot is an ffmpeg lavfi source (``testsrc2``, ``mandelbrot``, ``life``, ...)
with scikit-image's astronaut photo (head and shoulders) pasted at a known
position in every frame. Frames are composed in numpy and piped into one
encode, so the face box, the pasted box and the cut frames are known exactly::

    truth = make_clip(tmp / "a.mp4", [
        Shot(60, linear((40, 60), (400, 60)), "testsrc2"),
        Shot(45, sinusoid((240, 80), (150, 0), 45), "mandelbrot", face_size=200),
    ])
    truth.cuts            # [60]
    truth.faces[70]       # (x, y, w, h) of the astronaut's face in frame 70

Positions are whole pixels (paths are rounded) so nothing is resampled per frame.
A subject may leave the frame: the paste is clipped, the boxes are not.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

PathFn = Callable[[int, int], tuple[float, float]]  # (frame in shot, frames in shot) -> top-left

# The astronaut's face in skimage.data.astronaut() (512x512), as OpenCV's default frontal
# Haar cascade finds it: (x, y, w, h). tests/vision/test_clips.py checks this.
PHOTO_FACE = (177, 66, 95, 95)
# The head-and-shoulders square pasted into frames: rows 0..300, cols 100..400 of the photo.
PHOTO_CROP = (100, 0, 300, 300)  # x, y, w, h

# Options that make a source look like footage rather than a still (size/rate are added).
# Seeded: gradients picks random colours otherwise, and a test's margins would vary by run.
SOURCE_OPTIONS = {"life": "mold=10:ratio=0.5:seed=1", "mandelbrot": "", "gradients": "speed=0.02:seed=1"}


# -- paths: where the pasted photo's top-left corner is, frame by frame in a shot ----------
def static(x: float, y: float) -> PathFn:
    """The subject stays at (x, y)."""
    return lambda i, n: (x, y)


def linear(start: tuple[float, float], end: tuple[float, float]) -> PathFn:
    """From ``start`` on the shot's first frame to ``end`` on its last, at constant speed."""
    def path(i: int, n: int) -> tuple[float, float]:
        t = i / max(n - 1, 1)
        return start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t
    return path


def sinusoid(centre: tuple[float, float], amplitude: tuple[float, float], period: float,
             phase: float = 0.0) -> PathFn:
    """``centre + amplitude * sin(2 pi (i / period + phase))``, ``period`` in frames."""
    def path(i: int, n: int) -> tuple[float, float]:
        s = np.sin(2 * np.pi * (i / period + phase))
        return centre[0] + amplitude[0] * s, centre[1] + amplitude[1] * s
    return path


def step(before: tuple[float, float], after: tuple[float, float], at: float = 0.5) -> PathFn:
    """At ``before`` until frame ``int(at * frames)`` of the shot, then at ``after``."""
    return lambda i, n: before if i < int(at * n) else after


# -- shots and ground truth -----------------------------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One shot: ``frames`` long, the photo following ``path`` over ``background``.

    Args:
        frames: length in frames.
        path: a path function (see ``static``, ``linear``, ...) or a fixed (x, y).
        background: a lavfi video source name, optionally with options
            (``"life=mold=5"``); size and rate are set by ``make_clip``.
        face_size: side in pixels of the pasted head-and-shoulders square (the face
            itself is ``face_size * 95 / 300`` wide).
    """

    frames: int
    path: PathFn | tuple[float, float] = (0, 0)
    background: str = "testsrc2"
    face_size: int = 160


@dataclass
class GroundTruth:
    """What a clip made by ``make_clip`` holds, frame by frame.

    ``faces`` and ``subjects`` are (frames, 4) arrays of (x, y, w, h) in full-frame
    pixels: the astronaut's face box (floats: the photo's face box scaled and
    offset like the paste) and the pasted square (ints).
    """

    fps: Fraction
    size: tuple[int, int]
    frames: int
    cuts: list[int]
    faces: np.ndarray
    subjects: np.ndarray

    @property
    def face_centres(self) -> np.ndarray:
        """(frames, 2) centre of the face box."""
        return self.faces[:, :2] + self.faces[:, 2:] / 2

    @property
    def shots(self) -> list[tuple[int, int]]:
        """[(first frame, end frame)) of every shot."""
        edges = [0, *self.cuts, self.frames]
        return list(zip(edges, edges[1:]))

    @property
    def duration(self) -> float:
        return float(self.frames / self.fps)


def face_box(x: int, y: int, face_size: int) -> tuple[float, float, float, float]:
    """The face box in the frame when the photo's square of side ``face_size`` is at (x, y)."""
    scale = face_size / PHOTO_CROP[2]
    fx, fy, fw, fh = PHOTO_FACE
    return (x + (fx - PHOTO_CROP[0]) * scale, y + (fy - PHOTO_CROP[1]) * scale,
            fw * scale, fh * scale)


def ground_truth(shots: Sequence[Shot], size: tuple[int, int], fps) -> GroundTruth:
    """The ground truth of ``shots`` without rendering anything."""
    faces, subjects, cuts, start = [], [], [], 0
    for shot in shots:
        if start:
            cuts.append(start)
        for i in range(shot.frames):
            x, y = _position(shot, i)
            subjects.append((x, y, shot.face_size, shot.face_size))
            faces.append(face_box(x, y, shot.face_size))
        start += shot.frames
    return GroundTruth(_fraction(fps), tuple(size), start, cuts,
                       np.array(faces, dtype=float).reshape(-1, 4),
                       np.array(subjects, dtype=int).reshape(-1, 4))


# -- rendering ------------------------------------------------------------------------------
def make_clip(path: str | Path, shots: Sequence[Shot], size: tuple[int, int] = (640, 360),
              fps=30, crf: int | None = 12, audio: bool = True, timecode: str | None = None,
              codec: str = "libx264", noise: int = 0,
              encoder_args: Sequence[str] = ()) -> GroundTruth:
    """Render ``shots`` back to back into ``path`` (yuv420p) and return the ground truth.

    Args:
        path: output file; the container follows the suffix (.mp4, .mov, .mkv).
        shots: the shots, in order; each cut is the first frame of a shot after the first.
        size: (width, height), even.
        fps: frame rate (int, float or Fraction such as Fraction(30000, 1001)).
        crf: the encoder's constant-quality factor; None leaves rate control to
            ``encoder_args`` (e.g. ``["-b:v", "12M", "-maxrate", "15M", "-bufsize", "20M"]``).
        audio: add a 440 Hz sine track (AAC) as long as the video.
        timecode: start timecode written by ffmpeg's ``-timecode`` ("01:00:00:00").
        codec: video encoder.
        noise: strength of temporal noise on the backgrounds (ffmpeg ``noise=alls=N:allf=t``);
            makes the encoder spend camera-like bitrates. The subject stays clean.
        encoder_args: extra ffmpeg output options, after the defaults.

    Returns:
        The clip's GroundTruth.

    Raises:
        RuntimeError: ffmpeg failed (its message is included).
    """
    truth = ground_truth(shots, size, fps)
    width, height = truth.size
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{width}x{height}", "-r", str(truth.fps), "-i", "-"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={truth.duration}",
                "-map", "0:v", "-map", "1:a", "-c:a", "aac", "-b:a", "192k"]
    cmd += ["-c:v", codec, "-pix_fmt", "yuv420p"]
    cmd += ["-crf", str(crf)] if crf is not None else []
    cmd += ["-timecode", timecode] if timecode else []
    cmd += [*encoder_args, str(path)]
    with tempfile.TemporaryFile() as errors:
        encoder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errors)
        try:
            for shot in shots:
                photo = subject_photo(shot.face_size)
                for i, frame in enumerate(backgrounds(shot.background, shot.frames, truth.size,
                                                      truth.fps, noise)):
                    paste(frame, photo, *_position(shot, i))
                    encoder.stdin.write(frame.data)
        except BrokenPipeError:
            pass  # the encoder died: its message is reported below
        finally:
            _close(encoder.stdin)
            code = encoder.wait()
        if code:
            errors.seek(0)
            raise RuntimeError(f"ffmpeg could not encode {path} ({' '.join(cmd)}): "
                               f"{errors.read().decode(errors='replace').strip()}")
    return truth


def backgrounds(source: str, frames: int, size: tuple[int, int], fps, noise: int = 0):
    """Yield ``frames`` writable (height, width, 3) RGB frames of a lavfi source.

    Raises:
        RuntimeError: ffmpeg gave fewer frames (an unknown source or bad options).
    """
    name, _, options = source.partition("=")
    options = options or SOURCE_OPTIONS.get(name, "")
    width, height = size
    graph = f"{name}=size={width}x{height}:rate={_fraction(fps)}" + (f":{options}" if options else "")
    graph += f",noise=alls={noise}:allf=t" if noise else ""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", graph, "-frames:v", str(frames),
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    nbytes = width * height * 3
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        for index in range(frames):
            data = proc.stdout.read(nbytes)
            if len(data) < nbytes:
                proc.kill()
                raise RuntimeError(f"lavfi source '{graph}' gave {index} of {frames} frames: "
                                   f"{proc.stderr.read().decode(errors='replace').strip()}")
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
        proc.stdout.close()
        proc.stderr.read()


def subject_photo(face_size: int) -> np.ndarray:
    """The astronaut's head and shoulders, ``face_size`` square, RGB."""
    import cv2
    from skimage import data

    x, y, w, h = PHOTO_CROP
    crop = data.astronaut()[y:y + h, x:x + w]
    return cv2.resize(crop, (face_size, face_size), interpolation=cv2.INTER_AREA)


def paste(frame: np.ndarray, photo: np.ndarray, x: int, y: int) -> None:
    """Paste ``photo`` with its top-left at (x, y), clipped to the frame, in place."""
    height, width = frame.shape[:2]
    ph, pw = photo.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, width), min(y + ph, height)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = photo[y0 - y:y1 - y, x0 - x:x1 - x]


def _position(shot: Shot, i: int) -> tuple[int, int]:
    x, y = shot.path(i, shot.frames) if callable(shot.path) else shot.path
    return int(round(x)), int(round(y))


def _fraction(fps) -> Fraction:
    return fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)


def _close(pipe) -> None:
    try:
        pipe.close()
    except BrokenPipeError:
        pass
