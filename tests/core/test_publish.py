"""All or none: a job's outputs appear together, and a killed daemon's half-publication is undone."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bridge.core.config import Config
from bridge.core.engine import Audio
from bridge.core.errors import PermissionDenied
from bridge.core.jobs import JobRecord, JobState, JobStore
from bridge.core.media import stage_audio
from bridge.core.publish import Publication, repair
from bridge.core.service import Service


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def staged_three(folder: Path, tag: str = "job1") -> Publication:
    publication = Publication(folder, tag)
    for stem in ("drums", "bass", "vocals"):
        publication.stage(f"song.{stem}.wav", stem, lambda handle, s=stem: handle.write(s.encode() * 100))
    return publication


def test_nothing_is_visible_until_commit_then_everything(tmp_path):
    out = tmp_path / "out"
    publication = staged_three(out)
    names = visible(out)
    assert len(names) == 3 and all(n.startswith(".") and n.endswith(".part") for n in names)
    paths = publication.commit()
    assert [p.name for p in paths] == ["song.drums.wav", "song.bass.wav", "song.vocals.wav"]
    publication.discard()
    assert visible(out) == ["song.bass.wav", "song.drums.wav", "song.vocals.wav"]
    assert (out / "song.bass.wav").read_bytes() == b"bass" * 100


def test_a_failed_link_removes_the_links_already_made(tmp_path, monkeypatch):
    out = tmp_path / "out"
    publication = staged_three(out)
    real = Publication._link
    calls = []

    def flaky(self, temp, name):
        calls.append(name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(self, temp, name)

    monkeypatch.setattr(Publication, "_link", flaky)
    with pytest.raises(PermissionDenied) as info:
        publication.commit()
    assert "no space left" in info.value.message and str(out) in info.value.message
    publication.discard()
    assert visible(out) == []  # not two of three stems: none


def test_existing_files_are_never_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "song.drums.wav").write_bytes(b"the user's own")
    publication = staged_three(out)
    paths = publication.commit()
    publication.discard()
    assert paths[0].name == "song.drums.2.wav"
    assert (out / "song.drums.wav").read_bytes() == b"the user's own"


def test_repair_undoes_a_crash_between_two_links(tmp_path):
    """What a SIGKILL between the first and second link leaves, undone from the plan."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "song.drums.wav").write_bytes(b"the user's own, same name")  # must survive
    publication = staged_three(out)
    plan = publication.plan()
    first = publication.staged[0]
    os.link(out / first.temp, out / "song.drums.2.wav")  # the one link made before the kill
    removed, done = repair(plan, succeeded=False)
    assert done and out / "song.drums.2.wav" in removed
    assert visible(out) == ["song.drums.wav"]
    assert (out / "song.drums.wav").read_bytes() == b"the user's own, same name"


def test_repair_removes_the_names_the_plan_recorded_even_as_copies(tmp_path, monkeypatch):
    """On FAT (no hard links) outputs are copies: the plan's recorded names undo them."""
    import errno

    out = tmp_path / "out"
    publication = staged_three(out)
    real = os.link
    monkeypatch.setattr(os, "link", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EPERM, "no links")))
    plans = []
    publication.commit(linked=lambda: plans.append(publication.plan()))
    monkeypatch.setattr(os, "link", real)
    assert os.stat(out / "song.drums.wav").st_nlink == 1  # a copy, not a link
    killed_after_two = plans[1]  # the record as saved after the second link
    assert [item.get("final") for item in killed_after_two] == ["song.drums.wav", "song.bass.wav", None]
    (out / "song.vocals.wav").unlink()  # the third was never linked in this story
    repair(killed_after_two, succeeded=False)
    assert visible(out) == []


def test_repair_waits_for_a_missing_folder(tmp_path):
    out = tmp_path / "drive" / "out"
    publication = staged_three(out)
    plan = publication.plan()
    (tmp_path / "drive").rename(tmp_path / "unmounted")
    removed, done = repair(plan, succeeded=False)
    assert removed == [] and not done  # kept for the next start


def test_outputs_are_fingerprinted_from_the_staged_files(tmp_path):
    import hashlib

    out = tmp_path / "out"
    publication = staged_three(out)
    publication.commit()
    drums = publication.staged[0]
    assert drums.size == 500 and drums.sha256 == hashlib.sha256(b"drums" * 100).hexdigest()


def test_repair_keeps_a_succeeded_jobs_outputs(tmp_path):
    out = tmp_path / "out"
    publication = staged_three(out)
    plan = publication.plan()
    publication.commit()  # linked, record saved as succeeded, killed before the temps went
    repair(plan, succeeded=True)
    assert visible(out) == ["song.bass.wav", "song.drums.wav", "song.vocals.wav"]


def test_a_restarted_service_undoes_an_interrupted_publication(tmp_path):
    state, media = tmp_path / "state", tmp_path / "media"
    media.mkdir()
    out = media / "stems"
    publication = staged_three(out, "deadbeef00000001")
    store = JobStore(state / "jobs.sqlite3")
    record = JobRecord(engine="separate", inputs={"audio": {"path": str(media / "song.wav")}},
                       params={}, out_dir=str(out), id="deadbeef00000001", state=JobState.RUNNING)
    record.publishing = publication.plan()
    store.save(record)
    publication.staged[0].path = None
    os.link(out / publication.staged[0].temp, out / "song.drums.wav")  # half-linked, then killed
    store.close()
    service = Service(Config(state_dir=state, media_roots=[media], grpc="", socket="", osc=""))
    try:
        again = service.get_job(record.id)
        assert again.state is JobState.INTERRUPTED and again.outputs == [] and again.publishing == []
        assert visible(out) == []
    finally:
        service.close()


def test_the_folder_is_pinned_while_staged(tmp_path):
    """A folder renamed and replaced by a link mid-job: the files stay in the folder that
    was checked (now renamed), none reaches the link's target."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    publication = Publication(out, "job2")
    audio = Audio(np.zeros((480, 2), dtype=np.float32), 48000)
    stage_audio(publication, "a.wav", "mastered", audio, "wav24")
    out.rename(tmp_path / "moved")
    out.symlink_to(elsewhere)
    [path] = publication.commit()
    publication.discard()
    assert visible(elsewhere) == []
    assert visible(tmp_path / "moved") == ["a.wav"]
