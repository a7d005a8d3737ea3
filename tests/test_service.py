"""`studio-bridge service`: the unit and plist it writes, and the daemon the unit really starts.

There is no user systemd (nor launchd) here: the CLI runs with no service manager
on PATH and must write the file, say what to run and exit 0; the manager's side
is driven through an injected runner.
"""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge import service_unit as su
from bridge.core.errors import Unavailable
from tests.conftest import ROOT

TRICKY = ["/opt/My Apps/bin/studio-bridge", "serve", "--media-root", "/home/u/100% $HOME \"q\" back\\slash",
          "--osc", "", "--grpc", "127.0.0.1:0", "--preload", "a;b"]


def cli_env(tmp: Path, path_dirs: list[Path] = ()) -> dict:
    """A user whose home is ``tmp``; PATH holds no service manager (only ``path_dirs``)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "STUDIO_BRIDGE_ADDR")}
    empty = tmp / "empty-bin"
    empty.mkdir(exist_ok=True)
    return env | {"HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp / "cfg"),
                  "PATH": os.pathsep.join(str(d) for d in [*path_dirs, empty])}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", "service", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


# -- the files, from the pure functions -------------------------------------------------
def test_unit_exec_start_round_trips_awkward_arguments():
    unit = su.systemd_unit(TRICKY, grace=5.0)
    assert su.exec_start(unit) == TRICKY
    assert "100%% $$HOME" in unit  # specifiers and variables escaped, not expanded by systemd


def test_unit_has_the_service_settings():
    unit = su.systemd_unit(["/usr/bin/studio-bridge", "serve"], grace=4.0,
                           environment={"STUDIO_BRIDGE_TOKEN": "t s"})
    lines = unit.splitlines()
    for want in ("Restart=on-failure", "KillSignal=SIGTERM", "TimeoutStopSec=22", "WantedBy=default.target",
                 'Environment="STUDIO_BRIDGE_TOKEN=t s"'):
        assert want in lines
    sections = [line for line in lines if line.startswith("[")]
    assert sections == ["[Unit]", "[Service]", "[Install]"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_accepts_the_unit(tmp_path):
    argv = [*su.daemon_executable(), "serve", "--media-root", str(tmp_path / "a 100% folder"), "--osc", ""]
    path = tmp_path / su.UNIT_NAME
    path.write_text(su.systemd_unit(argv, environment={"STUDIO_BRIDGE_TOKEN": "secret"}))
    done = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 0, done.stderr
    path.write_text(su.systemd_unit(["relative/studio-bridge", "serve"]))  # the check itself bites
    assert subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, check=False).returncode != 0


def test_launchd_plist():
    job = plistlib.loads(su.launchd_plist(TRICKY, "/Users/u/state", grace=5.0,
                                          environment={"PATH": "/opt/homebrew/bin:/usr/bin"}))
    assert job["Label"] == su.LAUNCHD_LABEL and job["ProgramArguments"] == TRICKY
    assert job["RunAtLoad"] is True and job["KeepAlive"] == {"SuccessfulExit": False, "Crashed": True}
    assert job["StandardErrorPath"] == job["StandardOutPath"] == "/Users/u/state/daemon.log"
    assert job["ExitTimeOut"] == su.stop_timeout(5.0)
    assert job["EnvironmentVariables"]["PATH"].startswith("/opt/homebrew")
    assert su.launchd_plist_path(Path("/Users/u")) == Path(f"/Users/u/Library/LaunchAgents/{su.LAUNCHD_LABEL}.plist")


def test_serve_options_pass_what_the_user_gave(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    defaults = {"grpc": "127.0.0.1:50551", "state_dir": "/home/u/.local/state/studio-bridge", "media_root": [],
                "keep_alive": 300.0, "memory_budget": None, "grace": 5.0, "socket": "/run/user/1/s.sock"}
    given = defaults | {"media_root": ["music", "~/video"], "keep_alive": 600.0, "memory_budget": 8 << 30}
    argv = su.serve_options(given, defaults)
    assert argv == ["--state-dir", "/home/u/.local/state/studio-bridge",
                    "--media-root", str(tmp_path / "music"), "--media-root", os.path.expanduser("~/video"),
                    "--keep-alive", "600", "--memory-budget", str(8 << 30)]
    switches = {"osc_trust_loopback": False, "osc_socket": None}
    argv = su.serve_options({"osc_trust_loopback": True, "osc_socket": "osc.sock"}, switches, pin=())
    assert argv == ["--osc-trust-loopback", "--osc-socket", str(tmp_path / "osc.sock")]  # no "True"


def test_windows_says_what_to_do_instead():
    with pytest.raises(su.Unimplemented) as err:
        su.target("win32", Path("C:/Users/u"), {})
    assert "schtasks /Create" in err.value.message and "ONLOGON" in err.value.message


# -- the manager's side, injected ------------------------------------------------------
class FakeManager:
    def __init__(self, answers: dict[str, tuple[int, str]]):
        self.answers, self.calls = answers, []

    def __call__(self, cmd):
        self.calls.append(" ".join(cmd))
        for key, answer in self.answers.items():
            if key in " ".join(cmd):
                return answer
        return 0, ""


def test_systemd_install_status_uninstall_with_a_manager(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    run = FakeManager({"is-enabled": (0, "enabled"), "is-active": (0, "active")})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    done = su.install(["/x/studio-bridge", "serve"], platform="linux", home=tmp_path, env=env, run=run)
    assert done["manager"] == "available" and not done["next"]
    assert run.calls[-3:] == ["systemctl --user daemon-reload", f"systemctl --user enable {su.UNIT_NAME}",
                              f"systemctl --user restart {su.UNIT_NAME}"]
    assert Path(done["file"]) == tmp_path / "cfg/systemd/user" / su.UNIT_NAME
    same = su.install(["/x/studio-bridge", "serve"], platform="linux", home=tmp_path, env=env, run=run)
    assert not same["changed"] and run.calls[-1] == f"systemctl --user start {su.UNIT_NAME}"  # no restart
    state = su.status(platform="linux", home=tmp_path, env=env, run=run, health=lambda addr: "SERVING")
    assert state["installed"] and state["enabled"] is True and state["active"] == "active"
    assert state["daemon"] == "SERVING" and state["exec_start"] == ["/x/studio-bridge", "serve"]
    gone = su.uninstall(platform="linux", home=tmp_path, env=env, run=run)
    assert gone["removed"] and f"systemctl --user disable --now {su.UNIT_NAME}" in run.calls
    assert not Path(done["file"]).exists()


def test_launchd_install_status_uninstall_with_a_manager(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: f"/bin/{name}")
    uid = os.getuid()
    run = FakeManager({f"print gui/{uid}/{su.LAUNCHD_LABEL}": (0, "{\n\tstate = running\n\tpid = 7\n}"),
                       "bootout": (3, "Boot-out failed: 3: No such process")})
    done = su.install(["/x/studio-bridge", "serve"], platform="darwin", home=tmp_path,
                      env={"PATH": "/opt/homebrew/bin"}, run=run, state_dir=str(tmp_path / "state"))
    assert done["manager"] == "available" and not done["next"]  # booting out what is not loaded is fine
    assert f"launchctl bootstrap gui/{uid} {done['file']}" in run.calls
    same = su.install(["/x/studio-bridge", "serve"], platform="darwin", home=tmp_path,
                      env={"PATH": "/opt/homebrew/bin"}, run=run, state_dir=str(tmp_path / "state"))
    assert not same["changed"] and run.calls[-1] == f"launchctl kickstart gui/{uid}/{su.LAUNCHD_LABEL}"
    job = plistlib.loads(Path(done["file"]).read_bytes())
    assert job["StandardOutPath"] == str(tmp_path / "state/daemon.log") and (tmp_path / "state").is_dir()
    state = su.status(platform="darwin", home=tmp_path, env={}, run=run, health=lambda a: "SERVING")
    assert state["enabled"] is True and state["active"] == "running"
    assert su.uninstall(platform="darwin", home=tmp_path, env={}, run=run)["removed"]
    assert su.uninstall(platform="darwin", home=tmp_path, env={}, run=run)["removed"] is False


def test_launchd_without_a_gui_session_writes_the_plist_and_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    done = su.install(["/x/studio-bridge", "serve"], platform="darwin", home=tmp_path, env={}, run=FakeManager({}))
    assert done["manager"] == "unavailable" and Path(done["file"]).exists()
    assert done["next"][-1] == f"launchctl bootstrap gui/{os.getuid()} {done['file']}"
    gone = su.uninstall(platform="darwin", home=tmp_path, env={}, run=FakeManager({}))
    assert gone["removed"] and gone["next"] == [f"launchctl bootout gui/{os.getuid()}/{su.LAUNCHD_LABEL}"]
    again = su.uninstall(platform="darwin", home=tmp_path, env={}, run=FakeManager({}))
    assert again["removed"] is False and again["next"] == []


def test_status_asks_where_the_installed_daemon_listens():
    assert su.daemon_addr(["x", "serve", "--socket", "/r/s.sock"]) == "unix:///r/s.sock"
    assert su.daemon_addr(["x", "serve", "--socket", "", "--grpc", "127.0.0.1:6000"]) == "127.0.0.1:6000"
    assert su.daemon_addr(["x", "serve", "--socket", ""]) == "127.0.0.1:50551"


def test_status_probe_maps_no_daemon_to_unavailable():
    def nobody(addr):
        raise Unavailable("no daemon")

    assert su.probe("unix:///nowhere.sock", nobody) == "unavailable"


# -- the real CLI, no service manager --------------------------------------------------
def test_cli_without_a_manager_writes_the_unit_and_says_what_to_run(tmp_path):
    env = cli_env(tmp_path)
    first = cli(env, "install", "--media-root", "~/Music", "--keep-alive", "10m", "--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    unit = tmp_path / "cfg/systemd/user" / su.UNIT_NAME  # XDG_CONFIG_HOME honoured
    assert result["manager"] == "unavailable" and result["file"] == str(unit) and result["changed"]
    assert result["next"] == ["systemctl --user daemon-reload", f"systemctl --user enable {su.UNIT_NAME}",
                              f"systemctl --user restart {su.UNIT_NAME}"]
    argv = su.exec_start(unit.read_text())
    assert Path(argv[0]).is_absolute() and "serve" in argv
    assert su.option(argv, "--media-root") == str(tmp_path / "Music") and su.option(argv, "--keep-alive") == "600"
    assert su.option(argv, "--state-dir") == str(tmp_path / ".local/state/studio-bridge")

    again = json.loads(cli(env, "install", "--media-root", "~/Music", "--keep-alive", "10m", "--json").stdout)
    assert again["changed"] is False

    state = cli(env, "status")
    assert state.returncode == 0 and "(installed)" in state.stdout and "manager: unavailable" in state.stdout
    assert "daemon at unix://" in state.stdout and ": unavailable" in state.stdout

    for _ in range(2):  # idempotent
        gone = cli(env, "uninstall", "--json")
        assert gone.returncode == 0
    assert json.loads(gone.stdout)["removed"] is False and not unit.exists()
    assert json.loads(cli(env, "status", "--json").stdout)["installed"] is False


def test_the_units_exec_start_runs_a_daemon_that_stops_on_sigterm(tmp_path):
    from bridge.client import Client

    env = cli_env(tmp_path)
    sock, grace = tmp_path / "d.sock", 2.0
    media = tmp_path / "my media"
    media.mkdir()
    done = cli(env, "install", "--state-dir", str(tmp_path / "state"), "--socket", str(sock), "--grpc", "",
               "--osc", "", "--media-root", str(media), "--grace", str(grace), "--log-level", "WARNING")
    assert done.returncode == 0, done.stderr
    argv = su.exec_start((tmp_path / "cfg/systemd/user" / su.UNIT_NAME).read_text())
    assert "TimeoutStopSec=" in (tmp_path / "cfg/systemd/user" / su.UNIT_NAME).read_text()

    daemon = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        with Client(f"unix://{sock}", timeout=2.0) as client:
            while True:
                try:
                    if client.health(timeout=1.0) == "SERVING":
                        break
                except Unavailable:
                    pass
                assert daemon.poll() is None and time.monotonic() < deadline, daemon.stdout.read().decode()
                time.sleep(0.1)
        state = json.loads(cli(env, "status", "--json").stdout)
        assert state["installed"] and state["daemon"] == "SERVING" and state["addr"] == f"unix://{sock}"
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=su.stop_timeout(grace)) == 0
        assert time.monotonic() - started < grace + 1.0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
