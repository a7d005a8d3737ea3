"""One job for the REAPER adapter, run in its own process (outside REAPER).

    python -m hosts.reaper.worker SPEC.json STATUS.json

SPEC holds ``engine``, ``inputs``, ``params``, ``model`` and ``out_dir``, and may hold
``trim`` ``{"input", "start", "duration"}`` (seconds of that input's file): then only
that span - what the item plays - is sent: cut into a private temp file and uploaded to
the daemon as a blob named after the source, so nothing lands in the project. The job
goes to the daemon through ``bridge.client``; every event (at most ten a second)
and then the end are written to STATUS atomically, so REAPER's side can read the
file from its idle loop without ever waiting. STATUS is one JSON object:
``{"state", "progress", "stage", "job_id"}`` while running, plus ``"done": true``
and ``"result"`` (the CLI's job shape) or ``"error"`` ``{code, message}`` at the end.
Exit codes follow the CLI: 0 done, 1 failed, 3 no daemon answers.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path


def write_status(path: Path, status: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status))
    os.replace(tmp, path)


RECONNECT_SECONDS = 15.0  # how long a daemon that went away mid-job may take to come back


def run(spec: dict, status_path: Path) -> int:
    from bridge.client import Client
    from bridge.client import BridgeError, Unavailable

    last = [0.0]
    seen: dict = {}

    def on_event(job: dict) -> None:
        seen["job_id"] = job["job_id"]
        now = time.monotonic()
        if now - last[0] >= 0.1 or job["state"] != "running":
            last[0] = now
            write_status(status_path, {"state": job["state"], "progress": job["progress"],
                                       "stage": job["stage"], "job_id": job["job_id"]})

    try:
        with Client() as client:
            client.health(timeout=3.0)
            if spec.get("trim"):
                _cut(spec, client)
            try:
                job = client.run(spec["engine"], spec["inputs"], spec.get("params") or {}, spec["out_dir"],
                                 on_event=on_event, model=spec.get("model") or "", client="reaper")
            except Unavailable as exc:
                if "job_id" not in seen:
                    raise
                job = _after_restart(client, seen["job_id"], exc)
    except BridgeError as exc:
        write_status(status_path, {"done": True, "state": "failed", "error": exc.to_dict()})
        return 3 if exc.code == "unavailable" else 1
    result = {k: job[k] for k in ("job_id", "state", "engine", "model", "report", "error")}
    result["outputs"] = [{"path": o["path"], "kind": o["kind"]} for o in job["outputs"]]
    write_status(status_path, {"done": True, "state": job["state"], "progress": job["progress"],
                               "job_id": job["job_id"], "result": result, "error": job["error"]})
    return 0 if job["state"] == "succeeded" else 1


def _cut(spec: dict, client) -> None:
    """Send only the trimmed span of ``spec["inputs"][trim.input]``: cut into a private temp
    file, uploaded as a blob named after the source (outputs keep the clip's name), and the
    input pointed at it. Nothing is written into the project's folders; the original is only read."""
    import soundfile

    from bridge.client import InvalidArgument

    trim = spec["trim"]
    source = Path(spec["inputs"][trim["input"]])
    with soundfile.SoundFile(str(source)) as f:
        start = max(0, round(trim["start"] * f.samplerate))
        frames = round(trim["duration"] * f.samplerate)
        if start >= f.frames or frames <= 0:
            raise InvalidArgument(f"the item plays {trim['duration']:.3f} s from {trim['start']:.3f} s of "
                                  f"'{source.name}', which holds {f.frames / f.samplerate:.3f} s: nothing "
                                  f"to send; trim the item onto its audio")
        f.seek(start)
        audio = f.read(min(frames, f.frames - start), dtype="float32", always_2d=True)
        rate, subtype = f.samplerate, f.subtype
    with tempfile.TemporaryDirectory(prefix="sb-reaper-") as folder:
        cut = Path(folder) / f"{source.stem}.wav"
        soundfile.write(str(cut), audio, rate, subtype="FLOAT" if subtype.startswith("FLOAT") else "PCM_24",
                        format="WAV")
        blob = client.upload(cut)
    spec["inputs"] = {**spec["inputs"], trim["input"]: ("blob:" + blob, source.name)}


def _after_restart(client, job_id: str, exc) -> dict:
    """The daemon went away mid-job: ask what became of the job until it answers again
    (a restarted daemon reports it ``interrupted``), or say that it stopped."""
    from bridge.client import TERMINAL
    from bridge.client import Unavailable

    deadline = time.monotonic() + RECONNECT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:  # the old daemon may still answer while it shuts down, so follow until it ends
            job = client.get_job(job_id)
            return job if job["state"] in TERMINAL else client.wait(job_id)
        except Unavailable:
            continue
    raise Unavailable(f"the daemon stopped while job {job_id} ran and did not come back within "
                      f"{RECONNECT_SECONDS:g} s ({exc.message})")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, status_path = Path(argv[0]), Path(argv[1])
    return run(json.loads(spec_path.read_text()), status_path)


if __name__ == "__main__":
    sys.exit(main())
