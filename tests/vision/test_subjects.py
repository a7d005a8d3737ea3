"""Subjects found in frames with known ground truth: a photographed face, a bright object, motion."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data")

from bridge.vision.subjects import SubjectFinder  # noqa: E402


def background(width=640, height=360, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grad = np.linspace(60, 110, width)[None, :].repeat(height, 0)
    return np.clip(grad + rng.normal(0, 4, (height, width)), 0, 255).astype(np.uint8)


def with_face(x: int, y: int, size: int = 160) -> np.ndarray:
    """The astronaut's head and shoulders pasted at (x, y) on a plain background."""
    face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[30:250, 120:340]
    face = cv2.resize(face, (size, size))
    frame = background()
    frame[y:y + size, x:x + size] = face
    return frame


@pytest.mark.parametrize("x", [20, 240, 460])
def test_a_face_is_found_where_it_was_pasted(x):
    finder = SubjectFinder(scale=2.0)  # analysis frames at half size: boxes come back doubled
    subject = finder.find(with_face(x, 100))
    assert subject is not None and subject.source == "faces"
    cx, cy = subject.centre
    # the face sits in the upper middle of the pasted square
    assert abs(cx / 2 - (x + 80)) < 30 and 100 < cy / 2 < 260


def test_without_a_face_the_salient_object_is_the_subject():
    frame = background(seed=1)
    cv2.circle(frame, (500, 120), 30, 250, -1)  # a bright ball
    subject = SubjectFinder(modes=("faces", "saliency")).find(frame)
    assert subject is not None and subject.source == "saliency"
    cx, cy = subject.centre
    assert abs(cx - 500) < 25 and abs(cy - 120) < 25


def test_motion_is_the_last_resort():
    finder = SubjectFinder(modes=("motion",))
    first = background(seed=2)
    assert finder.find(first) is None  # nothing to compare with yet
    second = first.copy()
    second[200:260, 100:160] = 255  # something moved in
    subject = finder.find(second)
    assert subject is not None and subject.source == "motion"
    assert abs(subject.centre[0] - 130) < 10 and abs(subject.centre[1] - 230) < 10
    assert finder.find(second) is None  # still: no motion
