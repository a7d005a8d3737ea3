"""The service and scheduler, in process, with small real engines."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.core.config import Config
from bridge.core.errors import Busy, InvalidArgument, NotFound, PermissionDenied
from bridge.core.jobs import JobState
from bridge.core.service import Service
from bridge.engines import Registry
from tests.conftest import wait_state, write_tone
from tests.fakes import ClipEngine, GainEngine, ModelGainEngine


@pytest.fixture
def parts(media_dir):
    media = media_dir / "media"
    media.mkdir()
    registry = Registry(targets={}, plugins=False)
    gain, model = GainEngine(), ModelGainEngine()
    registry.add(gain)
    registry.add(model)
    config = Config(state_dir=media_dir / "state", media_roots=[media], grpc="", socket="", osc="",
                    queue_capacity=3, dsp_workers=2)
    service = Service(config, registry)
    yield service, gain, model, media
    gain.gate.set()
    model.gate.set()
    service.close(timeout=2)


def test_job_runs_through_states_and_writes_output(parts):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=1.0)
    record = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.5, "steps": 3},
                            out_dir=str(media / "out"))
    seen = [rec.state for _, rec in service.watch(record.id)]
    assert seen[-1] is JobState.SUCCEEDED
    job = service.get_job(record.id)
    out = Path(job.outputs[0]["path"])
    assert out.name == "clip.gain.scaled.wav" and out.parent == media / "out"
    data, rate = soundfile.read(out)
    source, _ = soundfile.read(src)
    assert rate == 48000 and data.shape == source.shape
    np.testing.assert_allclose(data, source * 0.5, atol=1e-6)
    assert job.progress == 1.0 and job.report == {"gain": 0.5}


def test_progress_events_stream_in_order(parts):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.5)
    gain.steps = threading.Semaphore(0)
    record = service.submit("gain", {"audio": {"path": str(src)}}, {"steps": 4}, out_dir=str(media))
    events = []
    thread = threading.Thread(target=lambda: [events.append(e) for e in service.watch(record.id)])
    thread.start()
    # A watcher sees the latest snapshot: let each step run only once the one
    # before has been seen, so every step's progress must reach it.
    for step in range(1, 5):
        gain.steps.release()
        deadline = time.monotonic() + 10
        while not any(rec.progress >= step / 4 for _, rec in list(events)) and time.monotonic() < deadline:
            time.sleep(0.01)
    thread.join(10)
    seqs = [seq for seq, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    progress = [rec.progress for _, rec in events if rec.state is JobState.RUNNING]
    assert progress == sorted(progress) and {0.25, 0.5, 0.75} <= set(progress)
    assert events[-1][1].state is JobState.SUCCEEDED


def test_bad_params_fail_before_queueing(parts):
    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.5)
    with pytest.raises(InvalidArgument, match="allowed range is 0 to 4"):
        service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 9})
    with pytest.raises(InvalidArgument, match="it takes: gain, steps, fail, format"):
        service.submit("gain", {"audio": {"path": str(src)}}, {"gian": 1})
    with pytest.raises(NotFound, match="engines: gain, modelgain"):
        service.submit("nope", {"audio": {"path": str(src)}})
    assert service.list_jobs() == []


def test_paths_outside_media_roots_are_refused(parts, tmp_path):
    service, _, _, media = parts
    outside = write_tone(tmp_path / "outside.wav", seconds=0.5)
    with pytest.raises(PermissionDenied, match=str(media)):
        service.submit("gain", {"audio": {"path": str(outside)}})
    inside = write_tone(media / "in.wav", seconds=0.5)
    with pytest.raises(PermissionDenied, match="outside the daemon's media roots"):
        service.submit("gain", {"audio": {"path": str(inside)}}, out_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == [outside]


def test_full_queue_answers_busy_at_once(parts):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    gain.gate.clear()
    running = [service.submit("gain", {"audio": {"path": str(src)}}, {"gain": g}, out_dir=str(media))
               for g in (0.1, 0.2)]  # two DSP workers take these
    for record in running:
        wait_state(service, record.id, {JobState.RUNNING})
    queued = [service.submit("gain", {"audio": {"path": str(src)}}, {"gain": g}, out_dir=str(media))
              for g in (0.3, 0.4, 0.5)]
    started = time.monotonic()
    with pytest.raises(Busy, match="queue is full \\(3 jobs waiting\\)"):
        service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.6}, out_dir=str(media))
    assert time.monotonic() - started < 0.5
    assert service.status()["queue_depth"] == 3
    gain.gate.set()
    for record in running + queued:
        assert wait_state(service, record.id, {JobState.SUCCEEDED}).state is JobState.SUCCEEDED
    assert gain.max_concurrent == 2  # the DSP pool ran two side by side


def test_cancel_queued_and_running(parts):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    gain.gate.clear()
    first = service.submit("gain", {"audio": {"path": str(src)}}, {"steps": 50, "gain": 0.1}, out_dir=str(media / "o"))
    second = service.submit("gain", {"audio": {"path": str(src)}}, {"steps": 50, "gain": 0.2}, out_dir=str(media / "o"))
    third = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.3}, out_dir=str(media / "o"))
    wait_state(service, first.id, {JobState.RUNNING})
    wait_state(service, second.id, {JobState.RUNNING})
    deadline = time.monotonic() + 10  # running means reading input first: wait for both engines
    while gain.concurrent < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert service.get_job(third.id).state is JobState.QUEUED
    service.cancel(third.id)
    assert service.get_job(third.id).state is JobState.CANCELLED
    service.cancel(first.id)
    gain.gate.set()
    job = wait_state(service, first.id, {JobState.CANCELLED, JobState.SUCCEEDED})
    assert job.state is JobState.CANCELLED and job.error["code"] == "cancelled"
    assert wait_state(service, second.id, {JobState.SUCCEEDED}).state is JobState.SUCCEEDED
    names = sorted(p.name for p in (media / "o").iterdir())
    assert names == ["clip.gain.scaled.wav"]  # only the job that finished wrote anything
    assert gain.runs == 2  # the cancelled queued job never ran


def test_engine_failure_is_reported_and_service_goes_on(parts):
    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    bad = service.submit("gain", {"audio": {"path": str(src)}}, {"fail": True}, out_dir=str(media / "o"))
    job = wait_state(service, bad.id, {JobState.FAILED})
    assert job.error["code"] == "internal" and "asked to fail" in job.error["message"]
    good = service.submit("gain", {"audio": {"path": str(src)}}, {}, out_dir=str(media / "o"))
    assert wait_state(service, good.id, {JobState.SUCCEEDED}).outputs
    assert [p.name for p in (media / "o").iterdir()] == ["clip.gain.scaled.wav"]


def test_result_cache_answers_repeat_requests(parts):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.5)
    first = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.25}, out_dir=str(media / "a"))
    wait_state(service, first.id, {JobState.SUCCEEDED})
    copy = media / "renamed.wav"
    copy.write_bytes(src.read_bytes())  # same content under another name: same key
    again = service.submit("gain", {"audio": {"path": str(copy)}}, {"gain": 0.25}, out_dir=str(media / "b"))
    assert again.state is JobState.SUCCEEDED and again.cached  # answered in submit itself
    out = Path(again.outputs[0]["path"])
    assert out.name == "renamed.gain.scaled.wav"
    assert out.read_bytes() == Path(service.get_job(first.id).outputs[0]["path"]).read_bytes()
    assert gain.runs == 1
    other = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.3}, out_dir=str(media / "b"))
    assert not other.cached
    wait_state(service, other.id, {JobState.SUCCEEDED})
    forced = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.25}, out_dir=str(media / "b"),
                            no_cache=True)
    wait_state(service, forced.id, {JobState.SUCCEEDED})
    assert gain.runs == 3


def test_outputs_never_overwrite_existing_files(parts):
    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    (media / "o").mkdir()
    mine = media / "o" / "clip.gain.scaled.wav"
    mine.write_bytes(b"the user's file")
    record = service.submit("gain", {"audio": {"path": str(src)}}, {}, out_dir=str(media / "o"))
    job = wait_state(service, record.id, {JobState.SUCCEEDED})
    assert job.outputs[0]["path"].endswith("clip.gain.scaled.2.wav")
    assert mine.read_bytes() == b"the user's file"


def test_model_engine_keeps_model_resident_and_runs_one_at_a_time(parts):
    service, _, model, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    model.gate.clear()
    jobs = [service.submit("modelgain", {"audio": {"path": str(src)}}, {"steps": 2, "gain": g},
                           out_dir=str(media / "o"), model="double") for g in (0.1, 0.2, 0.3)]
    wait_state(service, jobs[0].id, {JobState.RUNNING})
    time.sleep(0.1)
    assert [service.get_job(j.id).state for j in jobs[1:]] == [JobState.QUEUED, JobState.QUEUED]
    model.gate.set()
    for job in jobs:
        done = wait_state(service, job.id, {JobState.SUCCEEDED})
        assert done.report["model_gain"] == 2.0
    assert model.loads == ["double"] and model.max_concurrent == 1
    resident = {m["name"]: m for m in service.models()}
    assert resident["double"]["state"] == "resident" and resident["triple"]["state"] == "unloaded"
    assert resident["double"]["expires_at"] > time.time() + 250  # default keep-alive 5 min


def test_keep_alive_zero_unloads_after_the_job(parts):
    service, _, model, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    record = service.submit("modelgain", {"audio": {"path": str(src)}}, {}, out_dir=str(media / "o"),
                            model="triple", keep_alive=0)
    wait_state(service, record.id, {JobState.SUCCEEDED})
    assert model.loads == ["triple"] and model.unloads == [3.0]
    assert {m["name"]: m["state"] for m in service.models()}["triple"] == "unloaded"


def test_unknown_model_names_installed_ones(parts):
    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    with pytest.raises(NotFound, match="installed: double, triple.*models pull"):
        service.submit("modelgain", {"audio": {"path": str(src)}}, model="quadruple")


def test_explicit_load_and_unload(parts):
    service, _, model, _ = parts
    info = service.load_model("triple", keep_alive=-1)
    assert info["state"] == "resident" and info["keep_alive"] == -1
    assert service.status()["memory_used"] == 1000
    assert service.unload_model("triple")["state"] == "unloaded"
    assert model.unloads == [3.0]
    with pytest.raises(NotFound):
        service.unload_model("triple")


def test_records_survive_a_restart_and_running_jobs_read_interrupted(parts, media_dir):
    service, gain, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    done = service.submit("gain", {"audio": {"path": str(src)}}, {}, out_dir=str(media / "o"))
    wait_state(service, done.id, {JobState.SUCCEEDED})
    gain.gate.clear()
    hung = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.7}, out_dir=str(media / "o"))
    wait_state(service, hung.id, {JobState.RUNNING})
    # A second service on the same state dir sees what a restarted daemon sees.
    config = Config(state_dir=media_dir / "state", media_roots=[media], grpc="", socket="", osc="")
    reborn = Service(config, Registry(targets={}, plugins=False))
    try:
        assert reborn.get_job(done.id).state is JobState.SUCCEEDED
        job = reborn.get_job(hung.id)
        assert job.state is JobState.INTERRUPTED
        assert "did not complete" in job.error["message"]
        assert [s for _, s in reborn.watch(hung.id)][-1].state is JobState.INTERRUPTED
    finally:
        reborn.close(timeout=1)


def test_daemon_output_store_is_pruned_after_retention(parts):
    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.2)
    record = service.submit("gain", {"audio": {"path": str(src)}}, {})  # no out_dir: daemon's store
    job = wait_state(service, record.id, {JobState.SUCCEEDED})
    folder = Path(job.outputs[0]["path"]).parent
    assert folder.parent == service.config.outputs_dir
    assert service.prune_outputs() == []  # fresh: kept
    later = time.time() + service.config.output_retention + 1
    assert service.prune_outputs(now=later) == [folder]
    assert not folder.exists()


def test_a_video_input_is_passed_as_a_file_and_a_rendered_file_is_published(media_dir):
    media = media_dir / "media"
    media.mkdir()
    registry = Registry(targets={}, plugins=False)
    clip = ClipEngine()
    registry.add(clip)
    service = Service(Config(state_dir=media_dir / "state", media_roots=[media], grpc="",
                             socket="", osc=""), registry)
    try:
        source = media / "shot.mov"
        source.write_bytes(bytes(range(256)) * 4)
        record = service.submit("clip", {"video": {"path": str(source)}}, {"keep": 300},
                                out_dir=str(media / "out"))
        job = wait_state(service, record.id, (JobState.SUCCEEDED, JobState.FAILED))
        assert job.state is JobState.SUCCEEDED, job.error
        assert clip.seen.path == source and clip.seen.name == "shot"  # not decoded as audio
        outputs = {o["kind"]: Path(o["path"]) for o in job.outputs}
        assert outputs["video"] == media / "out" / "shot.clip.video.mp4"
        assert outputs["video"].read_bytes() == source.read_bytes()[:300]
        assert outputs["keyframes"].name == "shot.clip.keyframes.json"
        assert not clip.rendered.exists()  # the job's scratch is gone
    finally:
        service.close(timeout=2)


def test_a_name_swapped_after_linking_neither_hangs_nor_poisons_the_cache(parts, monkeypatch):
    """Found in review: after linking, outputs were re-read by name - a FIFO there hung the
    worker, another file there went into the cache and was served to the next request."""
    import os

    from bridge.core.publish import Publication

    service, _, _, media = parts
    src = write_tone(media / "clip.wav", seconds=0.5)
    real = Publication.commit

    def swap_after_linking(self, linked=lambda: None):
        paths = real(self, linked)
        paths[0].unlink()
        os.mkfifo(paths[0])  # someone with write access to the folder, right after the link
        return paths

    monkeypatch.setattr(Publication, "commit", swap_after_linking)
    first = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.5}, out_dir=str(media / "a"))
    job = wait_state(service, first.id, {JobState.SUCCEEDED, JobState.FAILED}, timeout=20)
    assert job.state is JobState.SUCCEEDED, job.error
    monkeypatch.setattr(Publication, "commit", real)
    again = service.submit("gain", {"audio": {"path": str(src)}}, {"gain": 0.5}, out_dir=str(media / "b"))
    assert again.cached
    data, _ = soundfile.read(again.outputs[0]["path"])
    source, _ = soundfile.read(src)
    np.testing.assert_allclose(data, source * 0.5, atol=1e-6)  # what the job made, not the swap
    assert again.outputs[0]["sha256"] == job.outputs[0]["sha256"]
