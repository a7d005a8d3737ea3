"""Jobs run beside REAPER, never inside its UI thread.

Each job is a :mod:`hosts.reaper.worker` process (the daemon's client) that writes
its status to a small JSON file; :class:`Runner` reads those files from REAPER's
idle loop (``defer``), shows progress, runs the jobs one after another (the daemon
runs model jobs one at a time anyway) and, when all have ended, hands them to the
action's ``finish``. Nothing here waits: a tick reads a file and returns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ENV_PYTHON = "STUDIO_BRIDGE_PYTHON"
POLL_SECONDS = 0.1

# How a job ended, as the actions see it.
SUCCEEDED, FAILED, UNAVAILABLE, INTERRUPTED, CANCELLED = "succeeded", "failed", "unavailable", \
    "interrupted", "cancelled"


@dataclass
class Job:
    """One request to the daemon and what became of it.

    Attributes:
        label: what the user calls it (the take's name, the prompt).
        request: ``engine``, ``inputs``, ``params``, ``model``, ``out_dir``.
        show: shows a status text (``None`` = restore what was there).
        context: whatever the action needs to place the result.
    """

    label: str
    request: dict
    show: Callable[[str | None], None] = lambda text: None
    context: object = None
    state: str = "pending"
    progress: float = 0.0
    result: dict | None = None
    error: dict | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _folder: Path | None = field(default=None, repr=False)
    _shown: str = ""

    @property
    def outputs(self) -> list[dict]:
        return (self.result or {}).get("outputs") or []

    @property
    def problem(self) -> str:
        """One line saying why the job gave nothing ('' when it succeeded)."""
        if self.state == SUCCEEDED:
            return ""
        if self.state == INTERRUPTED:
            return "the daemon stopped or restarted while it ran (job interrupted); run the action again"
        if self.state == UNAVAILABLE:
            return (self.error or {}).get("message") or "no Studio Bridge daemon answers"
        if self.state == CANCELLED:
            return "cancelled"
        return (self.error or {}).get("message") or "failed"


PYTHON_HELP = (f"Jobs run in a Python with Studio Bridge installed: run installers/setup.sh (it makes "
               f"<checkout>/.venv), or set {ENV_PYTHON} - or the saved setting, "
               f"RPR_SetExtState('StudioBridge', 'python', PATH, True) - to such a Python.")


def worker_python(ext_state: Callable[[str], str] = lambda key: "") -> str:
    """The Python that runs workers: $STUDIO_BRIDGE_PYTHON, the saved setting, the checkout's .venv."""
    for candidate in (os.environ.get(ENV_PYTHON, ""), ext_state("python")):
        if candidate:
            return candidate
    for venv in (ROOT / ".venv" / "bin" / "python", ROOT / ".venv" / "Scripts" / "python.exe"):
        if venv.exists():
            return str(venv)
    # Inside REAPER sys.executable is REAPER itself, never a Python to start.
    return shutil.which("python3") or shutil.which("python") or sys.executable


class Runner:
    """Runs jobs in worker processes and follows them from REAPER's idle loop.

    Args:
        api: the :class:`hosts.reaper.api.Reaper`.
        jobs: what to run, in order.
        finish: called once with all jobs when every one has ended.
        python: the interpreter for workers (default: :func:`worker_python`).
        addr: the daemon's address for workers ('' = their environment's default).
    """

    def __init__(self, api, jobs: list[Job], finish: Callable[[list[Job]], None], python: str = "",
                 addr: str = ""):
        self.api = api
        self.jobs = jobs
        self.finish = finish
        self.python = python or worker_python(api.ext_state)
        self.addr = addr
        self._next_read = 0.0
        self._waiting_for_project = False
        self.done = False

    def start(self) -> None:
        self.api.bind_project()
        self.api.defer(self.tick)

    def tick(self) -> None:
        """One idle-loop step: read the running job's status, start the next, or finish."""
        try:
            if time.monotonic() >= self._next_read:
                self._next_read = time.monotonic() + POLL_SECONDS
                self._step()
        except Exception as exc:  # noqa: BLE001 - deferred code has no caller to report to: say it here
            self._abort()
            self.api.console(traceback.format_exc())
            self.api.message(f"Studio Bridge stopped on an error: {exc}\n(Details on the ReaScript console.)")
            return
        if self.done:
            return
        self.api.defer(self.tick)

    # -- steps ------------------------------------------------------------------------
    def _step(self) -> None:
        running = next((j for j in self.jobs if j.state == "running"), None)
        if running is not None:
            self._poll(running)
            if running.state == "running":
                return
            if running.state == UNAVAILABLE:  # no daemon: the rest would fail the same way
                for job in self.jobs:
                    if job.state == "pending":
                        job.state, job.error = UNAVAILABLE, running.error
        pending = next((j for j in self.jobs if j.state == "pending"), None)
        if pending is not None:
            self._launch(pending)
            self._show(pending, f"{pending.request['engine']}: starting")
            for job in self.jobs:
                if job.state == "pending":
                    self._show(job, f"{job.request['engine']}: waiting")
            return
        if not self.api.project_is_active():  # REAPER edits the active project: wait for the user
            if not self.api.project_is_open():
                self.done = True
                self.api.message("The project these jobs came from was closed, so their results were not "
                                 "placed. The files are in: " + ", ".join(
                                     sorted({o["path"] for j in self.jobs for o in j.outputs})), "Studio Bridge")
                return
            if not self._waiting_for_project:
                self._waiting_for_project = True
                self.api.console("Studio Bridge: results are ready; switch back to the project they came "
                                 "from to place them.")
            return
        self.done = True
        for job in self.jobs:
            self._show(job, None)
        self.finish(self.jobs)

    def _launch(self, job: Job) -> None:
        job._folder = Path(tempfile.mkdtemp(prefix="sb-reaper-"))
        spec = job._folder / "spec.json"
        spec.write_text(json.dumps(job.request))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        if self.addr:
            env["STUDIO_BRIDGE_ADDR"] = self.addr
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            with open(job._folder / "worker.log", "wb") as log:
                job._proc = subprocess.Popen(
                    [self.python, "-m", "hosts.reaper.worker", str(spec), str(job._folder / "status.json")],
                    cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    creationflags=flags)
        except OSError as exc:
            job.state, job.error = "failed", {"code": "worker", "message": (
                f"cannot start the worker Python '{self.python}' ({exc.strerror or exc}). {PYTHON_HELP}")}
            return
        job.state = "running"

    def _poll(self, job: Job) -> None:
        status = _read_json(job._folder / "status.json")
        code = job._proc.poll()
        if status.get("done"):
            if code is not None:  # REAPER's loop never waits: the next poll reaps it
                self._end(job, status, code)
        elif code is not None:  # exited without a final status: it crashed
            log = (job._folder / "worker.log").read_text(errors="replace").strip().splitlines()
            last = log[-1] if log else "no output"
            hint = f" {PYTHON_HELP}" if "ModuleNotFoundError" in last or "No module named" in last else ""
            self._end(job, {"error": {"code": "worker", "message": (
                f"the job's worker ({self.python}) stopped with exit code {code}: {last}.{hint}")}}, code)
        elif status.get("state"):  # nothing yet while the worker connects and submits
            job.progress = float(status.get("progress") or 0.0)
            stage = status.get("stage") or status["state"]
            self._show(job, f"{job.request['engine']} {job.progress * 100:.0f}% {stage}")

    def _end(self, job: Job, status: dict, code: int | None) -> None:
        job.result, job.error = status.get("result"), status.get("error")
        state = (job.result or {}).get("state") or status.get("state")
        if state == SUCCEEDED:
            job.state = SUCCEEDED
        elif state == INTERRUPTED:
            job.state = INTERRUPTED
        elif code == 3 or (job.error or {}).get("code") == "unavailable":
            job.state = UNAVAILABLE
        elif state == CANCELLED:
            job.state = CANCELLED
        else:
            job.state = FAILED
        shutil.rmtree(job._folder, ignore_errors=True)

    def _show(self, job: Job, text: str | None) -> None:
        if text != job._shown:
            job._shown = text or ""
            job.show(text)

    def _abort(self) -> None:
        """A bug in a tick: stop the workers and put the names back before the error surfaces."""
        self.done = True
        for job in self.jobs:
            if job._proc is not None and job._proc.poll() is None:
                job._proc.kill()
            try:
                self._show(job, None)
            except Exception:  # noqa: BLE001, S110 - the error being reported matters more than a name
                pass


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
