"""Another local user cannot reach the daemon's owner's files over OSC.

Loopback is no boundary between the users of one machine, and OSC carries no
credentials. These tests run real senders as `nobody` (setpriv, the system
python3 with the standard library only, liblo's oscsend) against a daemon run
by this test's user (root here: the check must still refuse uid 65534, and
closed sockets, which show as uid 0) and prove that nothing of theirs runs,
while the owner's own programs are served.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import running_daemon, write_tone
from tests.transport import oscwire

SETPRIV, OSCSEND, PYTHON = shutil.which("setpriv"), shutil.which("oscsend"), "/usr/bin/python3"
AS_NOBODY = [SETPRIV or "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _can_run_as_nobody() -> str:
    if os.geteuid() != 0:
        return "needs root to run senders as nobody"
    if not (SETPRIV and OSCSEND and os.access(PYTHON, os.X_OK)):
        return "needs setpriv, oscsend and /usr/bin/python3"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user nobody"
    if not Path("/proc/net/udp").exists():
        return "no /proc/net: senders cannot be attributed here"
    return ""


pytestmark = pytest.mark.skipif(bool(_can_run_as_nobody()), reason=_can_run_as_nobody() or "ok")

SENDER = r'''
import json, socket, sys
import oscwire

mode, target, packet, wait = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), float(sys.argv[4])
out = {}
try:
    if mode == "udp":  # a live socket: it stays open to hear the answer
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(wait)
        sock.sendto(packet, ("127.0.0.1", int(target)))
        try:
            out["reply"] = oscwire.parse(sock.recv(65536))
        except socket.timeout:
            out["reply"] = None
    elif mode == "tcp":
        sock = socket.create_connection(("127.0.0.1", int(target)), timeout=wait)
        sock.sendall(oscwire.frame(packet))
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    out["closed"] = True
                    break
                data += chunk
        except socket.timeout:
            out["closed"] = False
        out["reply"] = oscwire.parse(data[4:]) if len(data) > 4 else None
    elif mode == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.sendto(packet, target)
        out["sent"] = True
except OSError as exc:
    out["errno"] = exc.errno
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def scripts():
    """A folder nobody can read (pytest's own temp folders are 0700 under /root)."""
    folder = Path(tempfile.mkdtemp(prefix="sb-nobody-", dir="/tmp"))
    folder.chmod(0o755)
    shutil.copy(Path(__file__).with_name("oscwire.py"), folder / "oscwire.py")
    (folder / "sender.py").write_text(SENDER)
    for path in folder.iterdir():
        path.chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def owner():
    """The daemon, and the owner's private file under its media root."""
    with running_daemon() as daemon:
        secret = write_tone(daemon.media / "secret.wav", 2.0)
        secret.chmod(0o600)
        daemon.secret = secret
        yield daemon


def as_nobody(scripts: Path, mode: str, target, packet: bytes, wait: float = 3.0) -> dict:
    cmd = [*AS_NOBODY, PYTHON, "-E", "-s", str(scripts / "sender.py"), mode, str(target), packet.hex(), str(wait)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=scripts)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def job_ids(daemon) -> set[str]:
    with daemon.client() as client:
        return {job["job_id"] for job in client.list_jobs(500)}


def no_job_and_no_output(daemon, out_dir: Path, before: set[str]) -> None:
    time.sleep(0.5)
    assert not out_dir.exists(), f"{out_dir} was written for another user"
    assert job_ids(daemon) == before, "a job ran for another user"


def master(song: Path, out_dir: Path) -> bytes:
    return oscwire.message("/bridge/master", str(song), -16.0, -1.0, str(out_dir))


def test_nobody_with_a_live_udp_socket_is_refused_and_told_why(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-udp"
    got = as_nobody(scripts, "udp", owner.osc_port, master(owner.secret, out_dir))
    assert got["reply"] is not None, got
    address, (job_id, code, message) = got["reply"]
    assert (address, job_id, code) == ("/bridge/error", "", "permission_denied")
    assert "uid 65534" in message and "its own user's programs" in message, message
    no_job_and_no_output(owner, out_dir, before)
    assert "refused: its socket belongs to uid 65534" in owner.read_log()


def test_nobody_gets_no_pong_and_cannot_take_the_owners_replies(owner, scripts):
    address, (_, code, message) = as_nobody(scripts, "udp", owner.osc_port, oscwire.message("/bridge/ping"))["reply"]
    assert (address, code) == ("/bridge/error", "permission_denied")
    # nobody's /bridge/reply_port would redirect every 127.0.0.1 sender's replies to nobody
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
        thief.bind(("127.0.0.1", 0))
        thief.settimeout(1.0)
        as_nobody(scripts, "udp", owner.osc_port, oscwire.message("/bridge/reply_port", thief.getsockname()[1]))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
            mine.bind(("127.0.0.1", 0))
            mine.settimeout(5)
            mine.sendto(oscwire.message("/bridge/ping"), ("127.0.0.1", owner.osc_port))
            assert oscwire.parse(mine.recv(65536))[0] == "/bridge/pong"
        with pytest.raises(socket.timeout):
            thief.recv(65536)


def test_nobody_over_tcp_is_refused_on_the_connection(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-tcp"
    packet = oscwire.message("/bridge/submit", "master", str(owner.secret), str(out_dir))
    got = as_nobody(scripts, "tcp", owner.osc_port, packet)
    assert got.get("closed") is True, got
    address, (_, code, message) = got["reply"]
    assert (address, code) == ("/bridge/error", "permission_denied") and "uid 65534" in message
    no_job_and_no_output(owner, out_dir, before)


def test_nobody_with_oscsend_over_udp_runs_nothing(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-oscsend"
    for _ in range(5):
        result = subprocess.run([*AS_NOBODY, OSCSEND, "localhost", str(owner.osc_port), "/bridge/master",
                                 "sffs", str(owner.secret), "-16", "-1", str(out_dir)],
                                capture_output=True, text=True, timeout=10, cwd="/tmp")
        assert result.returncode == 0, result.stderr
    no_job_and_no_output(owner, out_dir, before)


def test_nobody_cannot_send_to_the_unix_socket(owner, scripts):
    before = job_ids(owner)
    path = Path(owner.osc_socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    out_dir = owner.media / "stolen-unix"
    got = as_nobody(scripts, "unix", path, master(owner.secret, out_dir))
    assert got == {"errno": 13}, got  # EACCES
    # liblo's oscsend as nobody: the same wall (it reports the failure its own way)
    subprocess.run([*AS_NOBODY, OSCSEND, f"osc.unix://{path}", "/bridge/master", "sffs",
                    str(owner.secret), "-16", "-1", str(out_dir)], capture_output=True, timeout=10, cwd="/tmp")
    no_job_and_no_output(owner, out_dir, before)


def test_the_owners_long_lived_socket_is_served(owner):
    out_dir = owner.media / "mine-udp"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.bind(("127.0.0.1", 0))
        mine.settimeout(30)
        mine.sendto(master(owner.secret, out_dir), ("127.0.0.1", owner.osc_port))
        replies = [oscwire.parse(mine.recv(65536))]
        while replies[-1][0] not in ("/bridge/done", "/bridge/error"):
            replies.append(oscwire.parse(mine.recv(65536)))
    assert replies[0][0] == "/bridge/job" and replies[-1][0] == "/bridge/done", replies
    assert Path(replies[-1][1][1]).is_file() and Path(replies[-1][1][1]).parent == out_dir


def test_the_owners_oscsend_over_the_unix_socket_is_served(owner):
    out_dir = owner.media / "mine-unix"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(30)
        url = f"osc.unix://{owner.osc_socket}"
        for args in (["/bridge/reply_port", "i", str(listener.getsockname()[1])],
                     ["/bridge/master", "sffs", str(owner.secret), "-14", "-1", str(out_dir)]):
            subprocess.run([OSCSEND, url, *args], check=True, timeout=10)
        replies = [oscwire.parse(listener.recv(65536))]
        while replies[-1][0] not in ("/bridge/done", "/bridge/error"):
            replies.append(oscwire.parse(listener.recv(65536)))
    assert replies[-1][0] == "/bridge/done", replies
    assert Path(replies[-1][1][1]).parent == out_dir
