"""The adversary's campaign, kept: cancels, kills and stops at random points, a crowd of
clients, files changed under the daemon, folders swapped for links.

Every job a record calls anything but succeeded has left nothing in the host's
folder; every succeeded job has left all of its outputs; no temp file stays.
The random points come from a seeded generator (the seed is in the test id), so
a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import soundfile

from bridge.core.errors import BridgeError
from tests.conftest import running_daemon, write_tone

TERMINAL = {"succeeded", "failed", "cancelled", "interrupted"}
STEMS = ("harmonic", "percussive")


def wait_terminal(client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if job["state"] in TERMINAL:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def check_folder(job: dict, folder: Path) -> None:
    """The promise: all of a succeeded job's outputs, nothing of any other job's, no temp file."""
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert not [n for n in names if n.endswith(".part")], names
    if job["state"] == "succeeded":
        assert sorted(Path(o["path"]).name for o in job["outputs"]) == names, (job, names)
        assert sorted(o["kind"] for o in job["outputs"]) == sorted(STEMS)
        for output in job["outputs"]:
            assert soundfile.info(output["path"]).frames > 0
    else:
        assert names == [] and job["outputs"] == [], (job["state"], names)


@pytest.fixture
def song(daemon) -> Path:
    return write_tone(daemon.media / "song.wav", seconds=20.0)


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])  # more points: -m slow
def test_cancel_at_random_points_leaves_all_or_nothing(daemon, song, seed):
    rng = random.Random(seed)
    with daemon.client() as client:
        for index in range(4):
            out = daemon.media / f"cancel-{seed}-{index}"
            job = client.submit("separate", {"audio": str(song)}, {}, str(out), model="hpss",
                                no_cache=True)
            time.sleep(rng.uniform(0.0, 1.5))
            client.cancel(job["job_id"])
            check_folder(wait_terminal(client, job["job_id"]), out)


@pytest.mark.parametrize("sig,seed", [(signal.SIGKILL, 3), (signal.SIGTERM, 4)])
def test_kill_or_stop_at_random_points_leaves_all_or_nothing(media_dir, sig, seed):
    """Jobs queued and running when the daemon dies; the restarted daemon's records agree with
    the folders (a half-published set is undone at start from the job record)."""
    rng = random.Random(seed)
    jobs = []
    for round_ in range(2):
        (media_dir / f"r{round_}").mkdir()
        with running_daemon(media_dir / f"r{round_}") as proc:
            song = write_tone(proc.media / "song.wav", seconds=20.0)
            with proc.client() as client:
                for index in range(3):
                    out = proc.media / f"out-{index}"
                    jobs.append((proc.state_dir, out, client.submit(
                        "separate", {"audio": str(song)}, {}, str(out), model="hpss",
                        no_cache=True)["job_id"]))
            time.sleep(rng.uniform(0.2, 4.0))
            proc.stop(sig)
            proc.start()  # the same state dir: repairs, then serves
            with proc.client() as client:
                for state_dir, out, job_id in jobs[-3:]:
                    job = client.get_job(job_id)
                    assert job["state"] in ("succeeded", "interrupted"), job
                    check_folder(job, out)
                assert client.run("separate", {"audio": str(song)}, {}, str(proc.media / "after"),
                                  model="hpss")["state"] == "succeeded"
    assert any(job for job in jobs)


def test_fifty_clients_against_a_bounded_queue(media_dir):
    """Every answer is accepted-then-finished or busy at once; no job is lost or doubled."""
    with running_daemon(media_dir, extra=["--queue", "4"]) as proc:
        song = write_tone(proc.media / "short.wav", seconds=1.0)
        results: list[tuple[str, object, float]] = []
        lock = threading.Lock()

        def one(index: int) -> None:
            with proc.client() as client:
                started = time.monotonic()
                try:
                    job = client.submit("master", {"audio": str(song)}, {}, str(proc.media / f"o{index}"),
                                        no_cache=True)
                    outcome: object = wait_terminal(client, job["job_id"])
                except BridgeError as exc:
                    outcome = exc
                with lock:
                    results.append((str(index), outcome, time.monotonic() - started))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert len(results) == 50
        done = [r for r in results if isinstance(r[1], dict)]
        busy = [r for r in results if isinstance(r[1], BridgeError)]
        assert all(r[1].code == "busy" and "queue is full" in r[1].message for r in busy), busy[:3]
        assert all(r[1]["state"] == "succeeded" for r in done), [r[1] for r in done if r[1]["state"] != "succeeded"]
        assert len(done) >= 5 and len(done) + len(busy) == 50
        for index, job, _ in done:
            assert [Path(o["path"]).parent.name for o in job["outputs"]] == [f"o{index}"]
        with proc.client() as client:
            listed = {j["job_id"] for j in client.list_jobs(limit=200)}
            assert {job["job_id"] for _, job, _ in done} <= listed
            assert len(listed) == len(done)  # a refused submit left no record
            status = client.status()
            assert status["queue_depth"] == 0 and status["running"] == 0
        assert proc.alive()


def test_an_input_rewritten_in_place_is_not_answered_from_the_cache(daemon):
    """Same size, same mtime, other content: the cache key is the content."""
    path = write_tone(daemon.media / "take.wav", seconds=2.0, level=0.1)
    st = path.stat()
    with daemon.client() as client:
        first = client.run("master", {"audio": str(path)}, {}, str(daemon.media / "a"))
        data, rate = soundfile.read(path)
        soundfile.write(str(path), data[::-1] * 0.5, rate, subtype="PCM_24")  # same length and format
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
        second = client.run("master", {"audio": str(path)}, {}, str(daemon.media / "b"))
    assert not second["cached"], second
    assert first["outputs"][0]["sha256"] != second["outputs"][0]["sha256"]


def test_an_output_folder_swapped_for_a_link_while_queued_writes_nothing_outside(daemon, media_dir):
    song = write_tone(daemon.media / "song.wav", seconds=20.0)
    outside = media_dir / "outside"  # beside the media root, not under it
    outside.mkdir()
    out = daemon.media / "stems"
    out.mkdir()
    with daemon.client() as client:
        ahead = client.submit("separate", {"audio": str(song)}, {}, str(daemon.media / "first"),
                              model="hpss", no_cache=True)
        queued = client.submit("separate", {"audio": str(song)}, {}, str(out), model="hpss",
                               no_cache=True)
        assert client.get_job(queued["job_id"])["state"] == "queued"
        out.rmdir()
        out.symlink_to(outside)
        job = wait_terminal(client, queued["job_id"])
        wait_terminal(client, ahead["job_id"])
    assert job["state"] == "failed" and job["error"]["code"] == "permission_denied", job
    assert "outside the daemon's media roots" in job["error"]["message"]
    assert list(outside.iterdir()) == []
