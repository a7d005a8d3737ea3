"""Reframe through the real daemon and CLI, judged against clips with per-frame ground truth.

The clips (tests/vision/clips.py) move the astronaut photo along known paths over
ffmpeg lavfi backgrounds, shots concatenated so the cuts are known. The issue's
accuracy bounds: the face is inside the crop in every frame, the mean distance
between crop centre and face centre is at most 3 % of the crop width, the path
resets within one frame of each cut, and on a static subject the crop moves at
most 0.5 px per frame.
"""

from __future__ import annotations

import json
import subprocess

import av
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("scenedetect")
pytest.importorskip("skimage")

from tests.conftest import running_daemon  # noqa: E402
from tests.vision.clips import Shot, linear, make_clip, sinusoid, static  # noqa: E402

# 640x360 at 30 fps, 9:16 crop = 202x360; the face is 160 * 95 / 300 = 51 px wide.
SHOTS = [Shot(75, linear((20, 100), (440, 100)), "testsrc2"),       # a steady walk across
         Shot(60, static(380, 120), "mandelbrot"),                   # someone standing still
         Shot(90, sinusoid((240, 90), (80, 0), 120), "gradients")]  # swaying, slower than a pan


@pytest.fixture(scope="module")
def served():
    with running_daemon() as daemon:
        yield daemon


@pytest.fixture(scope="module")
def walk(served):
    path = served.media / "walk.mp4"
    truth = make_clip(path, SHOTS, timecode="01:00:10:00")
    return path, truth


def reframe(daemon, path, *args, out="out"):
    result = daemon.cli("reframe", str(path), "--out", str(daemon.media / out), "--json", *args)
    return result.returncode, json.loads(result.stdout)


def outputs(job) -> dict:
    return {o["kind"]: o["path"] for o in job["outputs"]}


def keyframes(job) -> dict:
    with open(outputs(job)["keyframes"]) as file:
        return json.load(file)


@pytest.fixture(scope="module")
def walked(served, walk):
    code, job = reframe(served, walk[0], "--aspect", "9:16")
    assert code == 0, job
    return job, keyframes(job)


def test_the_face_is_inside_the_crop_in_every_frame(walk, walked):
    _, truth = walk
    _, keys = walked
    x = np.array([f["x"] for f in keys["frames"]], dtype=float)
    w = keys["crop"]["width"]
    assert (w, keys["crop"]["height"]) == (202, 360) and len(x) == truth.frames
    left, right = truth.faces[:, 0], truth.faces[:, 0] + truth.faces[:, 2]
    outside = np.flatnonzero((left < x) | (right > x + w))
    assert not len(outside), f"face cut off at frames {outside.tolist()}"


def test_the_crop_is_centred_on_the_face(walk, walked):
    _, truth = walk
    _, keys = walked
    centre = np.array([f["x"] + f["w"] / 2 for f in keys["frames"]])
    error = np.abs(centre - truth.face_centres[:, 0])
    w = keys["crop"]["width"]
    for first, end in truth.shots:  # every shot on its own, not only on average
        assert error[first:end].mean() <= 0.03 * w, (first, error[first:end].mean())


def test_paths_reset_at_the_cuts_and_hold_still_on_a_still_subject(walk, walked):
    _, truth = walk
    job, keys = walked
    starts = [s["start"] for s in keys["shots"]]
    assert len(starts) == len(truth.shots)
    for found, cut in zip(starts[1:], truth.cuts):
        assert abs(found - cut) <= 1
    assert job["report"]["cuts"] == starts[1:]
    still = keys["shots"][1]
    x = np.array([f["x"] for f in keys["frames"]], dtype=float)[still["start"]:still["end"]]
    assert still["mode"] == "hold" and np.abs(np.diff(x)).max() <= 0.5
    assert [s["mode"] for s in keys["shots"]] == ["pan", "hold", "pan"]
    assert {s["subject"] for s in keys["shots"]} == {"faces"}


def test_the_render_holds_the_face_where_the_keyframes_say(walk, walked):
    path, truth = walk
    job, keys = walked
    video = outputs(job)["video"]
    assert video.endswith("/walk_9x16.reframe.video.mp4")
    with av.open(video) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (202, 360) and stream.average_rate == 30
        assert stream.metadata.get("timecode") == "01:00:10:00"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = [f.to_ndarray(format="gray") for f in container.decode(stream)]
    assert len(frames) == truth.frames
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    for index in (10, 100, 200):
        found = cascade.detectMultiScale(frames[index], 1.1, 5)
        assert len(found) == 1, index
        fx = found[0][0] + found[0][2] / 2  # in the render's own pixels
        want = truth.face_centres[index, 0] - keys["frames"][index]["x"]
        assert abs(fx - want) < 6, (index, fx, want)


def test_a_portrait_source_is_cut_along_its_height(served):
    """9:16 in, 1:1 out: the crop moves vertically with a rising subject."""
    path = served.media / "portrait.mp4"
    truth = make_clip(path, [Shot(60, linear((100, 400), (100, 60)), "testsrc2", face_size=150)],
                      size=(360, 640), audio=False)
    code, job = reframe(served, path, "--aspect", "1:1", out="portrait")
    assert code == 0, job
    keys = keyframes(job)
    assert (keys["crop"]["width"], keys["crop"]["height"]) == (360, 360)
    y = np.array([f["y"] for f in keys["frames"]], dtype=float)
    top, bottom = truth.faces[:, 1], truth.faces[:, 1] + truth.faces[:, 3]
    assert ((top >= y) & (bottom <= y + 360)).all()
    assert {f["x"] for f in keys["frames"]} == {0}
    assert y[0] - y[-1] > 200  # it followed the subject up
    assert job["report"]["audio"] is None


def test_a_size_scales_the_crop_and_a_range_keeps_media_time(served, walk):
    path, truth = walk
    code, job = reframe(served, path, "--aspect", "270x480", "--start", "1", "--duration", "1.5",
                        out="range")
    assert code == 0, job
    keys = keyframes(job)
    assert (keys["crop"]["width"], keys["crop"]["height"]) == (202, 360)
    assert (keys["output"]["width"], keys["output"]["height"]) == (270, 480)
    assert len(keys["frames"]) == 45 and keys["frames"][0]["time"] == 0.0
    assert job["report"]["timecode"] == "01:00:11:00"  # the source's timecode, one second on
    with av.open(outputs(job)["video"]) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (270, 480)
        assert stream.metadata.get("timecode") == "01:00:11:00"
        times = [float(f.pts * f.time_base) for f in container.decode(stream)]
    assert len(times) == 45 and times[0] == 0.0
    # the range's face positions match the whole clip's ground truth 30 frames in
    centre = np.array([f["x"] + 101 for f in keys["frames"]])
    assert np.abs(centre - truth.face_centres[30:75, 0]).mean() <= 0.03 * 202


@pytest.mark.parametrize("codec, suffix, args, want, fmt", [
    ("prores_ks", ".mov", ["-pix_fmt", "yuv422p10le"], "prores", "yuv422p10le"),
    ("libx265", ".mp4", ["-x265-params", "log-level=error"], "hevc", "yuv420p"),
])
def test_the_codec_family_is_kept(served, codec, suffix, args, want, fmt):
    path = served.media / f"master_{want}{suffix}"
    make_clip(path, [Shot(20, static(200, 100))], size=(320, 180), crf=None, codec=codec,
              encoder_args=args, audio=False)
    code, job = reframe(served, path, "--aspect", "4:5", out=want)
    assert code == 0, job
    assert outputs(job)["video"].endswith(suffix) and job["report"]["source_codec"] == want
    with av.open(outputs(job)["video"]) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == want
        assert stream.codec_context.format.name == fmt
        assert (stream.width, stream.height) == (144, 180)
        assert sum(1 for _ in container.decode(stream)) == 20


def test_bad_video_gets_a_clear_error_and_the_daemon_keeps_serving(served, tmp_path):
    audio = served.media / "tone.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "sine", "-t", "1",
                    str(audio)], check=True)
    code, job = reframe(served, audio, "--aspect", "9:16", out="bad")
    assert code and job["error"]["code"] == "bad_media"
    assert "has no video stream" in job["error"]["message"] and "tone.wav" in job["error"]["message"]

    corrupt = served.media / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    code, job = reframe(served, corrupt, "--aspect", "9:16", out="bad")
    assert code and job["error"]["code"] == "bad_media"
    assert "cannot be opened" in job["error"]["message"] and "corrupt.mp4" in job["error"]["message"]

    code, job = reframe(served, audio, "--aspect", "nine:sixteen", out="bad")
    assert code and "9:16" in job["error"]["message"]
    assert not (served.media / "bad").exists() or not any((served.media / "bad").iterdir())

    good = served.media / "after.mp4"
    make_clip(good, [Shot(15, static(200, 100))], size=(320, 180), audio=False)
    code, job = reframe(served, good, "--aspect", "1:1", out="after")
    assert code == 0 and job["state"] == "succeeded", job  # the daemon serves on


def test_odd_sizes_and_a_variable_frame_rate_are_kept(served):
    odd = served.media / "odd.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=641x361:rate=25:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv444p",
                    str(odd)], check=True)
    code, job = reframe(served, odd, "--aspect", "9:16", out="odd")
    assert code == 0, job
    assert job["report"]["crop"] == {"width": 202, "height": 360}
    vfr = served.media / "vfr.mkv"  # frames at 0, 40, 120, 160, ... ms: every third one doubled
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=25:duration=2", "-vf",
                    "setpts='N/25/TB+floor(N/3)*0.04/TB'", "-fps_mode", "vfr", "-c:v", "libx264",
                    str(vfr)], check=True)
    code, job = reframe(served, vfr, "--aspect", "1:1", out="vfr")
    assert code == 0, job
    assert any("variable frame rate" in w for w in job["report"]["warnings"])
    with av.open(str(vfr)) as source, av.open(outputs(job)["video"]) as render:
        want = [f.pts * f.time_base for f in source.decode(video=0)]
        got = [f.pts * f.time_base for f in render.decode(video=0)]
    assert got == want


def test_cancel_mid_render_leaves_no_file_and_the_next_job_runs(served):
    long = served.media / "long.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1280x720:rate=30:duration=30", "-c:v", "libx264", "-preset",
                    "ultrafast", str(long)], check=True)
    out = served.media / "cancelled"
    with served.client() as client:
        job = client.submit("reframe", {"video": str(long)}, {"aspect": "9:16"}, str(out))
        for event in client.watch(job["job_id"]):
            if event["state"] == "running" and event["progress"] > 0.05:
                client.cancel(job["job_id"])
                break
        final = client.wait(job["job_id"])
        assert final["state"] == "cancelled" and final["outputs"] == []
        assert not out.exists() or not any(out.iterdir())
        assert not any((served.state_dir / "scratch").glob("*/*"))  # the job's partial render is gone
        again = client.run("reframe", {"video": str(long)}, {"aspect": "1:1", "duration": 1.0},
                           str(out))
        assert again["state"] == "succeeded" and len(again["outputs"]) == 2


def test_a_subject_that_jumps_inside_a_shot_is_followed_at_once(served):
    """No cut, the subject jumps across the frame: the crop jumps with it (the corridor
    wins over the pan limits) instead of gliding for a second with the face outside.
    Between two analysis frames (every 3rd) where it jumped is unknown: at most 2 frames."""
    from tests.vision.clips import step

    path = served.media / "jump.mp4"
    truth = make_clip(path, [Shot(90, step((20, 100), (440, 100), at=0.5), "testsrc2")], audio=False)
    code, job = reframe(served, path, "--aspect", "9:16", out="jump")
    assert code == 0, job
    keys = keyframes(job)
    assert len(keys["shots"]) == 1
    x = np.array([f["x"] for f in keys["frames"]], dtype=float)
    left, right = truth.faces[:, 0], truth.faces[:, 0] + truth.faces[:, 2]
    outside = np.flatnonzero((left < x) | (right > x + 202))
    assert len(outside) <= 2 and all(abs(k - 45) <= 2 for k in outside), outside
