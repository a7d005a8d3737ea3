"""Shared fixtures: a real daemon process on free ports, and media folders."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DaemonProc:
    """A `studio-bridge serve` subprocess and where it listens."""

    media: Path  # the daemon's media root; put inputs and outputs under it
    state_dir: Path
    socket: str
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)

    @property
    def addr(self) -> str:
        return self.info["socket"]

    @property
    def tcp(self) -> str:
        return self.info["grpc"]

    @property
    def token(self) -> str:
        """The daemon's own token (TCP needs it; the unix socket does not)."""
        return (self.state_dir / "token").read_text().strip()

    @property
    def osc_port(self) -> int:
        return int(self.info["osc"].rpartition(":")[2])

    @property
    def osc_socket(self) -> str:
        """The OSC unix socket's path (liblo: osc.unix://PATH)."""
        return self.info["osc_socket"]

    def start(self, timeout: float = 20.0) -> "DaemonProc":
        info_path = self.state_dir / "daemon.json"
        if info_path.exists():
            info_path.unlink()
        cmd = [sys.executable, "-m", "bridge", "serve", "--grpc", "127.0.0.1:0",
               "--socket", self.socket, "--osc", "127.0.0.1:0", "--state-dir", str(self.state_dir),
               "--media-root", str(self.media), "--log-level", "WARNING",
               *([] if "--osc-socket" in self.extra  # beside the gRPC socket, not the user's own
                 else ["--osc-socket", str(Path(self.socket).with_suffix(".osc"))]),
               *self.extra]
        self.log = open(self.state_dir.parent / "daemon.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + timeout
        while not info_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daemon did not start: {self.read_log()}")
            time.sleep(0.02)
        self.info = json.loads(info_path.read_text())
        return self

    def client(self, tcp: bool = False, **kwargs):
        """A client on the unix socket, or on TCP with the daemon's token."""
        from bridge.client import Client

        if tcp:
            return Client(self.tcp, **{"token": self.token, **kwargs})
        return Client(self.addr, **kwargs)

    def cli(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run the real CLI against this daemon."""
        env = {**os.environ, "STUDIO_BRIDGE_ADDR": self.addr,
               "STUDIO_BRIDGE_TOKEN_FILE": str(self.state_dir / "token")}
        result = subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode:
            raise AssertionError(f"CLI {args} failed: {result.stdout}\n{result.stderr}")
        return result

    def read_log(self) -> str:
        path = self.state_dir.parent / "daemon.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@contextlib.contextmanager
def running_daemon(base: Path | None = None, extra: list[str] | None = None):
    """A started DaemonProc in ``base`` (default: a new short temp folder)."""
    own = base is None
    base = base or Path(tempfile.mkdtemp(prefix="sb-"))
    (base / "media").mkdir()
    (base / "state").mkdir()
    proc = DaemonProc(media=base / "media", state_dir=base / "state", socket=str(base / "s.sock"),
                      extra=list(extra or []))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        if own:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def media_dir():
    """A short-path temp folder (unix sockets allow ~100 characters)."""
    path = Path(tempfile.mkdtemp(prefix="sb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(media_dir):
    """A running daemon whose media root is ``daemon.media``."""
    with running_daemon(media_dir) as proc:
        yield proc


def write_tone(path: Path, seconds: float = 3.0, rate: int = 48000, channels: int = 2,
               level: float = 0.1, subtype: str = "PCM_24") -> Path:
    """A tone with slow amplitude movement: measurable loudness, not music."""
    t = np.arange(int(seconds * rate)) / rate
    mono = level * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    data = np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1)
    soundfile.write(str(path), data, rate, subtype=subtype)
    return path


def wait_state(service, job_id: str, states, timeout: float = 60.0):
    """Poll an in-process Service until the job reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.get_job(job_id)
        if job.state in states:
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {service.get_job(job_id).state}")
