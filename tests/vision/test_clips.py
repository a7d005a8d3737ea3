"""The clip generator's ground truth holds: faces where it says, cuts where it says."""

from __future__ import annotations

import av
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
data = pytest.importorskip("skimage.data")

from tests.vision.clips import (PHOTO_FACE, Shot, face_box, ground_truth, linear, make_clip,  # noqa: E402
                                paste, sinusoid, static, step)

SHOTS = [Shot(30, linear((40, 60), (420, 120)), "testsrc2"),
         Shot(25, sinusoid((240, 80), (150, 20), 25), "mandelbrot", face_size=200),
         Shot(25, step((20, 30), (430, 150)), "gradients", face_size=180),
         Shot(20, static(300, 100), "smptebars", face_size=140)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "four.mp4"
    truth = make_clip(path, SHOTS, timecode="01:00:10:00")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    return path, truth, frames


def haar():
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def test_the_photo_face_is_where_the_cascade_finds_it():
    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    assert [tuple(box) for box in haar().detectMultiScale(gray, 1.1, 5)] == [PHOTO_FACE]


def test_frame_count_rate_and_cuts(clip):
    path, truth, frames = clip
    assert len(frames) == truth.frames == 100
    assert truth.cuts == [30, 55, 80] and truth.shots[-1] == (80, 100)
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 30
        assert container.streams.video[0].metadata.get("timecode") == "01:00:10:00"
        audio = container.streams.audio[0]
        assert abs(float(audio.duration * audio.time_base) - truth.duration) < 0.05


def test_the_frame_difference_spikes_exactly_at_the_cuts(clip):
    _, truth, frames = clip
    diff = np.array([0.0] + [np.abs(b.astype(np.int16) - a).mean() for a, b in zip(frames, frames[1:])])
    others = np.delete(diff, truth.cuts)
    assert sorted(np.argsort(diff)[-len(truth.cuts):]) == truth.cuts
    assert diff[truth.cuts].min() > 2 * others.max()


def test_the_cascade_finds_the_face_at_its_ground_truth(clip):
    _, truth, frames = clip
    cascade = haar()
    for start, end in truth.shots:
        for index in (start, (start + end) // 2, end - 1):
            found = cascade.detectMultiScale(frames[index], 1.1, 5)
            assert len(found), f"no face in frame {index}"
            centres = found[:, :2] + found[:, 2:] / 2
            want = truth.face_centres[index]
            nearest = np.argmin(np.hypot(*(centres - want).T))
            assert np.hypot(*(centres[nearest] - want)) < 3, (index, centres, want)
            assert abs(found[nearest, 2] / truth.faces[index, 2] - 1) < 0.2


def test_paths():
    assert static(5, 6)(3, 10) == (5, 6)
    assert linear((0, 0), (90, 9))(0, 10) == (0, 0) and linear((0, 0), (90, 9))(9, 10) == (90, 9)
    assert np.allclose(sinusoid((100, 50), (10, 0), 20)(5, 40), (110, 50))
    jump = step((0, 0), (100, 0), at=0.5)
    assert [jump(i, 10)[0] for i in (4, 5)] == [0, 100]


def test_ground_truth_maps_the_face_through_the_paste():
    truth = ground_truth([Shot(2, (10, 20), face_size=300), Shot(1, (-50, 0), face_size=150)],
                         (320, 180), 25)
    assert truth.cuts == [2] and truth.frames == 3
    assert tuple(truth.faces[0]) == (10 + 77, 20 + 66, 95, 95)  # the photo's box, offset
    assert tuple(truth.faces[2]) == face_box(-50, 0, 150) == (-50 + 38.5, 33.0, 47.5, 47.5)
    assert tuple(truth.subjects[2]) == (-50, 0, 150, 150)  # off the frame: the box is not clipped


def test_paste_is_clipped_to_the_frame():
    frame = np.zeros((10, 10, 3), np.uint8)
    paste(frame, np.full((4, 4, 3), 255, np.uint8), -2, 8)
    assert frame[8:, :2].min() == 255 and frame.sum() == 255 * 3 * 4
