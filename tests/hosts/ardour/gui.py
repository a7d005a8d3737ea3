"""The real Ardour 7 GUI, headless: Xvfb, a private jackd, xdotool through the setup dialog.

Everything started here is stopped by its own PID; display numbers and the JACK
server name are picked so that other people's Xvfb/jackd on the machine are left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

TOOLS = ("ardour", "Xvfb", "xdotool", "jackd", "jack_lsp")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _free_display() -> int:
    for number in range(140, 400):
        if not Path(f"/tmp/.X{number}-lock").exists() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return number
    raise RuntimeError("no free X display number between :140 and :399")


def _stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Xdo:
    """xdotool on one display."""

    def __init__(self, display: str):
        self.env = {**os.environ, "DISPLAY": display}

    def run(self, *args: str) -> str:
        result = subprocess.run(["xdotool", *args], check=False, env=self.env, capture_output=True,
                                text=True, timeout=20)
        return result.stdout

    def windows(self) -> list[dict]:
        """Visible windows: id, name, x, y, width, height."""
        found = []
        for wid in self.run("search", "--onlyvisible", "--class", ".").split():
            geometry = dict(line.split("=", 1) for line in
                            self.run("getwindowgeometry", "--shell", wid).split() if "=" in line)
            if not geometry:
                continue
            found.append({"id": wid, "name": self.run("getwindowname", wid).strip(),
                          **{k.lower(): int(geometry[k]) for k in ("X", "Y", "WIDTH", "HEIGHT")}})
        return found

    def window(self, name: str) -> dict | None:
        return next((w for w in self.windows() if w["name"] == name), None)

    def click(self, x: int, y: int) -> None:
        self.run("mousemove", str(x), str(y), "click", "1")


class ArdourGui:
    """Ardour started on a new session with a SessionInit script, on its own X and JACK.

    Args:
        base: a scratch folder (config, logs, screenshots go here).
        session: the new session's folder (must not exist).
        script_name: the SessionInit script's ``name`` (its file must be in
            ``<base>/config/ardour7/scripts``).
    """

    def __init__(self, base: Path, session: Path, script_name: str):
        self.base, self.session, self.script_name = Path(base), Path(session), script_name
        self.config = self.base / "config" / "ardour7"
        (self.config / "scripts").mkdir(parents=True, exist_ok=True)
        (self.config / ".a7").touch()  # not a first run: no welcome wizard
        self.xvfb = self.jackd = self.ardour = None
        self.display = ""
        self.jack_name = f"sbardour{os.getpid()}"
        self.shots: list[Path] = []
        self._logs: list = []

    def _log(self, name: str):
        handle = open(self.base / name, "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def start(self, timeout: float = 90.0) -> ArdourGui:
        number = _free_display()
        self.display = f":{number}"
        self.xvfb = subprocess.Popen(
            ["Xvfb", self.display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL, stderr=self._log("xvfb.log"))
        self.xdo = Xdo(self.display)
        self._wait(self._xvfb_ready, 10, "Xvfb did not start")
        self.jackd = subprocess.Popen(
            ["jackd", "-n", self.jack_name, "-d", "dummy", "-r", "48000", "-p", "256"],
            stdout=self._log("jackd.log"), stderr=subprocess.STDOUT,
            env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"})
        self._wait(lambda: subprocess.run(["jack_lsp", "-s", self.jack_name], check=False,
                                          capture_output=True).returncode == 0, 10, "jackd did not start")
        env = {**os.environ, "DISPLAY": self.display, "JACK_DEFAULT_SERVER": self.jack_name,
               "XDG_CONFIG_HOME": str(self.base / "config"), "XDG_DATA_HOME": str(self.base / "data"),
               "XDG_CACHE_HOME": str(self.base / "cache")}
        self.ardour = subprocess.Popen(
            ["ardour", "-n", "-a", "-N", str(self.session), "-T", self.script_name],
            stdout=self._log("ardour.log"), stderr=subprocess.STDOUT, env=env, cwd=self.base)
        self._connect_jack(timeout)
        return self

    def _xvfb_ready(self) -> bool:
        if self.xvfb.poll() is not None:  # e.g. the display was taken: never talk to another's X
            raise RuntimeError(f"Xvfb {self.display} exited: {(self.base / 'xvfb.log').read_text()[-500:]}")
        return subprocess.run(["xdotool", "getdisplaygeometry"], check=False, env=self.xdo.env,
                              capture_output=True).returncode == 0

    def _connect_jack(self, timeout: float) -> None:
        """The audio-setup dialog: Audio System -> JACK, then 'Connect to JACK'."""
        dialog = self._wait(lambda: self.xdo.window("Audio/MIDI Setup"), timeout, "no audio-setup dialog")
        time.sleep(1.0)
        dialog = self.xdo.window("Audio/MIDI Setup")
        width = dialog["width"]
        for _ in range(3):
            self.xdo.click(dialog["x"] + 285, dialog["y"] + 49)  # the Audio System combo
            time.sleep(0.8)
            self.xdo.click(dialog["x"] + 238, dialog["y"] + 71)  # its second entry: JACK
            time.sleep(1.5)
            dialog = self.xdo.window("Audio/MIDI Setup") or dialog
            if dialog["width"] != width:  # the JACK page is wider: it took
                break
        self.screenshot("setup-jack")
        self.xdo.click(dialog["x"] + dialog["width"] - 70, dialog["y"] + dialog["height"] - 31)

    def wait_for(self, predicate, timeout: float, what: str):
        """Wait for ``predicate()``, dismissing the locked-memory warning if it shows."""
        return self._wait(lambda: self._dismiss_memory_warning() or predicate(), timeout, what)

    def _dismiss_memory_warning(self) -> None:
        # "WARNING: Your system has a limit for maximum amount of locked memory" (ulimit -l
        # cannot be raised in this container): an unnamed 444x192 dialog, OK at bottom right.
        for window in self.xdo.windows():
            if window["name"] == "" and 300 < window["width"] < 600 and 120 < window["height"] < 300:
                self.screenshot("memory-warning")
                self.xdo.click(window["x"] + window["width"] - 55, window["y"] + window["height"] - 26)
                time.sleep(0.5)

    def _wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.ardour is not None and self.ardour.poll() is not None:
                raise RuntimeError(f"{what}: ardour exited with {self.ardour.returncode}; "
                                   f"log: {self.log()[-2000:]}")
            time.sleep(0.25)
        shot = self.screenshot("timeout")
        raise TimeoutError(f"{what} within {timeout:.0f} s; screenshot {shot}; "
                           f"ardour log tail: {self.log()[-1500:]}")

    def screenshot(self, label: str) -> Path | None:
        if not self.display or shutil.which("ffmpeg") is None:
            return None
        path = self.base / f"shot-{len(self.shots):02d}-{label}.png"
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "x11grab", "-video_size", "1600x1000",
                        "-i", self.display, "-frames:v", "1", str(path)], check=False, capture_output=True,
                       timeout=30)
        self.shots.append(path)
        return path

    def log(self) -> str:
        path = self.base / "ardour.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        # Editor:access_action("Main", "Quit") does not exit; stop it by PID.
        for proc in (self.ardour, self.jackd, self.xvfb):
            _stop(proc)
        for handle in self._logs:
            handle.close()


@contextlib.contextmanager
def ardour_gui(base: Path, session: Path, script_name: str, timeout: float = 90.0):
    gui = ArdourGui(base, session, script_name)
    try:
        yield gui.start(timeout)
    finally:
        gui.stop()
