"""Tracking between detections, and false face hits dropped by their neighbours."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("skimage")

from bridge.vision.subjects import Subject, SubjectFinder, subject_of  # noqa: E402
from bridge.vision.track import _persistent, track_shot  # noqa: E402
from tests.vision.clips import face_box, paste, subject_photo  # noqa: E402


def frames(xs, y=60, size=120, shape=(270, 480)):
    """Grey frames of the astronaut photo at x = xs[i] on a textured background."""
    rng = np.random.default_rng(3)
    base = np.clip(rng.normal(110, 20, (*shape, 3)), 0, 255).astype(np.uint8)
    photo = subject_photo(size)
    out = []
    for x in xs:
        frame = base.copy()
        paste(frame, photo, int(x), y)
        out.append(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
    return out


def test_frames_between_detections_are_tracked_onto_the_face():
    xs = np.linspace(20, 300, 13).round()
    result = track_shot(frames(xs), SubjectFinder(modes=("faces",)), detect_every=4)
    assert result.source == "faces" and result.detections == 4 and result.tracked == 9
    truth = np.array([face_box(int(x), 60, 120) for x in xs])
    centres = result.boxes[:, 0] + result.boxes[:, 2] / 2
    assert np.abs(centres - (truth[:, 0] + truth[:, 2] / 2)).max() < 4


def test_the_head_of_a_shot_before_its_first_detection_is_tracked_backwards():
    xs = np.linspace(100, 160, 9).round()
    grays = frames(xs)
    grays[0] = cv2.GaussianBlur(grays[0], (31, 31), 12)  # the cascade misses a blurred face
    result = track_shot(grays, SubjectFinder(modes=("faces",)), detect_every=4)
    assert np.isfinite(result.boxes).all()  # frames 0-3 filled from the detection at 4


def test_a_lost_subject_stays_unknown():
    grays = frames([100] * 4 + [100] * 4)
    for k in range(1, 8):
        grays[k] = np.full_like(grays[k], 90)  # the subject is gone after the first frame
    result = track_shot(grays, SubjectFinder(modes=("faces",)), detect_every=8)
    assert np.isfinite(result.boxes[0]).all() and np.isnan(result.boxes[1:]).all()


def test_a_one_off_false_face_is_dropped_and_a_two_shot_is_kept():
    def faces(*boxes):
        return subject_of(list(boxes), "faces")
    left, right = (100, 50, 40, 40), (300, 50, 40, 40)
    found = {0: faces((100, 50, 40, 40)),
             4: faces((110, 50, 40, 40), (150, 75, 50, 50)),  # a hit on the collar
             8: faces((120, 50, 40, 40))}
    cleaned = _persistent(found)
    assert cleaned[4].parts == ((110, 50, 40, 40),)
    two = {0: faces(left, right), 4: faces(left, right), 8: faces(left, right)}
    assert _persistent(two)[4].parts == (left, right)
    assert isinstance(cleaned[0], Subject)


def test_a_face_that_jumps_and_stays_is_kept():
    def faces(box):
        return subject_of([box], "faces")
    old, new = (100, 50, 40, 40), (400, 60, 40, 40)
    found = {0: faces(old), 4: faces(old), 8: faces(new), 12: faces(new)}
    cleaned = _persistent(found)
    assert sorted(cleaned) == [0, 4, 8, 12]  # neither side of the jump is a one-off
    assert cleaned[8].parts == (new,) and cleaned[12].parts == (new,)
