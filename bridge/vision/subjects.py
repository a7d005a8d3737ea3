"""Where the subject is in a frame: faces first, then what stands out, then what moves.

Works on small grayscale frames (analysis is done downscaled; boxes come
back in full-frame pixels). Faces: OpenCV's frontal and profile Haar
cascades (shipped in opencv-contrib-python-headless 4.x). No face: the
spectral-residual saliency map (``cv2.saliency``, no weights), thresholded,
its largest region. Nothing salient: the difference to the previous analysed
frame. Each answer says which of the three it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_FACE_FRACTION = 0.06  # faces smaller than this share of the frame height are ignored
SALIENT_PERCENTILE = 95.0  # the brightest 5 % of the saliency map is "what stands out"
MOTION_THRESHOLD = 25  # grey levels of change that count as motion
SCALE_STEP = 1.15  # the cascade's size steps: 1.1 costs 1.4x as much at 480 px (the tests' faces are found either way)
SECONDARY_FACE = 0.6  # another face counts (a two-shot) when at least this share of the biggest


@dataclass(frozen=True)
class Subject:
    """A box in full-frame pixels and where it came from."""

    x: float
    y: float
    w: float
    h: float
    source: str  # "faces" | "saliency" | "motion"
    parts: tuple = ()  # the boxes it is the union of (each face of a two-shot)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


class SubjectFinder:
    """Finds the subject in successive analysis frames (keeps the previous one for motion).

    Args:
        scale: full-frame pixels per analysis pixel (boxes are scaled back by it).
        modes: which detectors to use, in order of preference.
    """

    def __init__(self, scale: float = 1.0, modes: tuple[str, ...] = ("faces", "saliency", "motion")):
        import cv2

        self.scale, self.modes = float(scale), modes
        folder = cv2.data.haarcascades
        self._cascades = [cv2.CascadeClassifier(folder + name) for name in
                          ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")]
        self._spectral = cv2.saliency.StaticSaliencySpectralResidual_create()
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new shot: motion must not compare across a cut)."""
        self._previous = None

    def find(self, gray: np.ndarray) -> Subject | None:
        """The subject in one grayscale analysis frame, or None."""
        found = None
        for mode in self.modes:
            boxes = getattr(self, f"_{mode}")(gray)
            if boxes:
                found = subject_of([tuple(v * self.scale for v in box) for box in boxes], mode)
                break
        self._previous = gray
        return found

    def _faces(self, gray):
        smallest = max(12, int(MIN_FACE_FRACTION * gray.shape[0]))

        def detect(cascade):
            found = cascade.detectMultiScale(gray, scaleFactor=SCALE_STEP, minNeighbors=5,
                                             minSize=(smallest, smallest))
            return [tuple(b) for b in np.asarray(found).reshape(-1, 4)]
        # The profile cascade runs only when no face looks at the camera: it costs as much
        # as the frontal one (a two-shot of one frontal and one profile face keeps the first).
        faces = detect(self._cascades[0]) or detect(self._cascades[1])
        # Faces much smaller than the biggest are background (or false hits), not the
        # subject of a two-shot.
        if not faces:
            return None
        biggest = max(w for _, _, w, _ in faces)
        return [f for f in faces if f[2] >= SECONDARY_FACE * biggest]

    def _saliency(self, gray):
        ok, sal = self._spectral.computeSaliency(gray)
        if not ok or not np.isfinite(sal).all() or sal.max() <= 0:
            return None
        mask = sal >= np.percentile(sal, SALIENT_PERCENTILE)
        return _listed(_largest_region(mask))

    def _motion(self, gray):
        if self._previous is None or self._previous.shape != gray.shape:
            return None
        diff = np.abs(gray.astype(np.int16) - self._previous.astype(np.int16)) > MOTION_THRESHOLD
        return _listed(_largest_region(diff)) if diff.mean() > 0.001 else None


def subject_of(boxes: list, source: str) -> Subject:
    """The subject made of ``boxes`` (their union; a two-shot keeps both people in)."""
    return Subject(*_union(boxes), source=source, parts=tuple(boxes))


def _listed(box):
    return [box] if box is not None else None


def _union(boxes) -> tuple[float, float, float, float]:
    """The box around every face (a two-shot keeps both people in)."""
    arr = np.asarray(boxes, dtype=np.float64)
    x0, y0 = arr[:, 0].min(), arr[:, 1].min()
    x1, y1 = (arr[:, 0] + arr[:, 2]).max(), (arr[:, 1] + arr[:, 3]).max()
    return x0, y0, x1 - x0, y1 - y0


def _largest_region(mask: np.ndarray):
    """Bounding box of the largest connected region of ``mask`` (after closing small gaps)."""
    import cv2

    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (float(v) for v in stats[best, :4])
    return x, y, w, h
