"""Shot cuts with PySceneDetect, on the small frames the analysis decodes anyway.

A crop path must never glide across a cut: the subject of the next shot is
somewhere else. PySceneDetect's ContentDetector watches changes in hue,
saturation and brightness between consecutive frames; it is fed the same
downscaled BGR frames the subject finder sees, one at a time, so the video
is decoded once for all analysis.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


class CutFinder:
    """Feed every frame in order; ``finish()`` returns the first frame of each new shot.

    Args:
        fps: the video's frame rate (PySceneDetect counts in timecodes).
        threshold: ContentDetector's threshold (its default, 27, suits edited material).
        min_shot_frames: shortest shot accepted (flashes do not cut).
    """

    def __init__(self, fps: float | Fraction, threshold: float = 27.0, min_shot_frames: int = 8):
        from scenedetect import ContentDetector

        self.fps = Fraction(fps).limit_denominator(1001000) if not isinstance(fps, Fraction) else fps
        self.min_shot_frames = int(min_shot_frames)
        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_shot_frames)
        self._cuts: list[int] = []
        self._frame = -1

    def add(self, bgr: np.ndarray) -> list[int]:
        """The next frame (BGR, any size; small is fast); returns cuts confirmed by it.

        A cut can be confirmed a few frames after it happened (the detector's
        flash filter waits ``min_shot_frames``), never before.
        """
        from scenedetect import FrameTimecode

        self._frame += 1
        found = self._detector.process_frame(FrameTimecode(self._frame, self.fps), bgr)
        new = [c.frame_num for c in found if c.frame_num > 0]
        self._cuts += new
        return new

    @property
    def latency(self) -> int:
        """Frames a cut may be confirmed after it happened (an upper bound)."""
        return self.min_shot_frames + 2

    def finish(self) -> list[int]:
        """Frame numbers where a new shot starts (0 is not listed), all of them."""
        from scenedetect import FrameTimecode

        if self._frame >= 0:
            found = self._detector.post_process(FrameTimecode(self._frame, self.fps))
            self._cuts += [c.frame_num for c in found]
        return sorted({c for c in self._cuts if c > 0})


def shots(cuts: list[int], frames: int) -> list[tuple[int, int]]:
    """(first, end) frame ranges of the shots between ``cuts``."""
    edges = [0, *[c for c in cuts if 0 < c < frames], frames]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]
