"""Another local user cannot reach the daemon's owner's files, or hear its replies, over OSC.

Loopback is no boundary between the users of one machine, and OSC carries no
credentials. These tests run real senders and listeners as `nobody` (setpriv,
the system python3 with the standard library only, liblo's oscsend) against a
daemon run by this test's user (root here: the checks must still refuse uid
65534, and closed sockets, which show as uid 0) and prove that nothing of
theirs runs and nothing of the owner's reaches them: loopback UDP is refused
to everyone (a datagram's sender cannot be known: SO_REUSEADDR lets another
user send from the owner's very port), TCP is served per connection, and a
UDP reply goes only to a port the owner alone listens on.
"""

from __future__ import annotations

import contextlib
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
import json, select, socket, sys, time
import oscwire

spec = json.loads(sys.stdin.readline())
mode, target, wait = spec["mode"], spec.get("target"), spec.get("wait", 3.0)
packets = [bytes.fromhex(p) for p in spec.get("packets", [])]
out = {}


def udp(port=0, reuse=False, host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


try:
    if mode == "udp":  # a live socket: it stays open to hear the answer
        sock = udp()
        sock.settimeout(wait)
        sock.sendto(packets[0], ("127.0.0.1", target))
        try:
            out["reply"] = oscwire.parse(sock.recv(65536))
        except socket.timeout:
            out["reply"] = None
    elif mode == "reuse":  # the owner's port, bound beside the owner's socket; sent from, then closed
        for packet in packets:
            sock = udp(spec["port"], reuse=True)
            sock.sendto(packet, ("127.0.0.1", target))
            sock.close()
        out["sent"] = len(packets)
    elif mode == "listen":  # bound to someone else's port, hoping to hear their replies
        sock = udp(spec["port"], reuse=spec.get("reuse", False), host=spec.get("host", "127.0.0.1"))
        print(json.dumps({"ready": True}), flush=True)
        # Until the owner's test is done (it closes our stdin) and ``linger`` s more, for
        # replies still on their way; never past ``wait``.
        got, deadline, ends = [], time.monotonic() + wait, None
        while (left := min(deadline, ends or deadline) - time.monotonic()) > 0:
            ready, _, _ = select.select([sock] + ([] if ends else [sys.stdin]), [], [], left)
            if sock in ready:
                got.append(oscwire.parse(sock.recv(65536)))
            elif ready and not sys.stdin.readline():
                ends = time.monotonic() + spec.get("linger", 1.0)
        out["got"] = got
    elif mode == "tcp":
        sock = socket.create_connection(("127.0.0.1", target), timeout=wait)
        sock.sendall(oscwire.frame(packets[0]))
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
        sock.sendto(packets[0], target)
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


@pytest.fixture(scope="module")
def trusting():
    """A daemon for a single-user machine: serve --osc-trust-loopback."""
    with running_daemon(extra=["--osc-trust-loopback"]) as daemon:
        daemon.song = write_tone(daemon.media / "song.wav", 2.0)
        yield daemon


def _nobody(scripts: Path) -> list[str]:
    return [*AS_NOBODY, PYTHON, "-E", "-s", str(scripts / "sender.py")]


def as_nobody(scripts: Path, mode: str, target=None, *packets: bytes, **spec) -> dict:
    """Run the sender script as nobody; returns what it printed."""
    line = json.dumps({"mode": mode, "target": target, "packets": [p.hex() for p in packets], **spec})
    result = subprocess.run(_nobody(scripts), input=line + "\n", capture_output=True, text=True,
                            timeout=60, cwd=scripts)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@contextlib.contextmanager
def nobody_listening(scripts: Path, port: int, wait: float = 60.0, **spec):
    """nobody bound to UDP ``port`` (127.0.0.1 unless ``host``) while the block runs and a
    second after (at most ``wait`` s); yields a dict that gets "got", the messages it heard,
    once the block is over."""
    proc = subprocess.Popen(_nobody(scripts), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=scripts)
    heard: dict = {}
    try:
        proc.stdin.write(json.dumps({"mode": "listen", "port": port, "wait": wait, **spec}) + "\n")
        proc.stdin.flush()
        ready = json.loads(proc.stdout.readline() or "{}")
        assert ready.get("ready"), (ready, proc.stderr.read())
        yield heard
        proc.stdin.close()
        proc.wait(timeout=wait + 30)
        assert proc.returncode == 0, proc.stderr.read()
        heard.update(json.loads(proc.stdout.read()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def job_ids(daemon) -> set[str]:
    with daemon.client() as client:
        return {job["job_id"] for job in client.list_jobs(1000)}


def no_job_and_no_output(daemon, out_dir: Path, before: set[str]) -> None:
    time.sleep(0.5)
    assert not out_dir.exists(), f"{out_dir} was written for another user"
    assert job_ids(daemon) == before, "a job ran for another user"


def master(song: Path, out_dir: Path) -> bytes:
    return oscwire.message("/bridge/master", str(song), -16.0, -1.0, str(out_dir))


def replies_until_end(read, timeout: float = 30.0) -> list[tuple[str, list]]:
    """Replies from ``read(timeout)`` up to the job's /bridge/done or /bridge/error."""
    replies = [oscwire.parse(read(timeout))]
    while replies[-1][0] not in ("/bridge/done", "/bridge/error"):
        replies.append(oscwire.parse(read(timeout)))
    return replies


# -- loopback UDP: whoever sends it, nothing runs ---------------------------------------------
def test_nobody_with_a_live_udp_socket_is_refused_and_told_why(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-udp"
    got = as_nobody(scripts, "udp", owner.osc_port, master(owner.secret, out_dir))
    assert got["reply"] is not None, got
    address, (job_id, code, message) = got["reply"]
    assert (address, job_id, code) == ("/bridge/error", "", "permission_denied")
    assert "UDP senders cannot be told apart from other users" in message and "TCP" in message, message
    no_job_and_no_output(owner, out_dir, before)
    assert "refused: UDP senders cannot be told apart from other users" in owner.read_log()


def test_nobody_sending_from_the_owners_reused_port_starts_nothing(owner, scripts):
    """The reviewer's attack: the owner's program holds a UDP port with SO_REUSEADDR; nobody
    binds the same port (UDP's SO_REUSEADDR has no uid check), sends and closes at once, so
    that the kernel's table shows only the owner's socket when the daemon looks. It used to
    be accepted (189 of 200 packets here, 118 of 200 for the reviewer)."""
    before = job_ids(owner)
    out_dir = owner.media / "stolen-reuse"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        mine.bind(("127.0.0.1", 0))
        packets = [master(owner.secret, out_dir / f"{i:03d}") for i in range(200)]
        got = as_nobody(scripts, "reuse", owner.osc_port, *packets, port=mine.getsockname()[1])
        assert got == {"sent": 200}, got
        time.sleep(1.0)
    no_job_and_no_output(owner, out_dir, before)
    print(f"SO_REUSEADDR attack: 0 of {got['sent']} packets accepted")


def test_nobodys_reply_port_redirects_nothing(owner, scripts):
    port = free_udp_port()
    with nobody_listening(scripts, port) as heard:  # nobody's reply_port names its own port...
        got = as_nobody(scripts, "udp", owner.osc_port, oscwire.message("/bridge/reply_port", port))
        assert got["reply"][1][1] == "permission_denied"
        with oscwire.UnixPeer(owner.osc_socket) as mine:  # ...and the owner's replies stay the owner's
            mine.send(oscwire.message("/bridge/ping"))
            assert oscwire.parse(mine.recv(5))[0] == "/bridge/pong"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as pathless:
            pathless.sendto(oscwire.message("/bridge/ping"), owner.osc_socket)
    assert heard["got"] == [], heard


def test_nobody_with_oscsend_over_udp_runs_nothing(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-oscsend"
    for _ in range(5):
        result = subprocess.run([*AS_NOBODY, OSCSEND, "localhost", str(owner.osc_port), "/bridge/master",
                                 "sffs", str(owner.secret), "-16", "-1", str(out_dir)],
                                capture_output=True, text=True, timeout=10, cwd="/tmp")
        assert result.returncode == 0, result.stderr
    no_job_and_no_output(owner, out_dir, before)


def test_the_owners_udp_is_refused_too_unless_the_daemon_trusts_loopback(owner, trusting):
    out_dir = owner.media / "mine-udp"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.bind(("127.0.0.1", 0))
        mine.settimeout(30)
        mine.sendto(master(owner.secret, out_dir), ("127.0.0.1", owner.osc_port))
        address, (_, code, message) = oscwire.parse(mine.recv(65536))
        assert (address, code) == ("/bridge/error", "permission_denied") and "osc.unix://" in message
        out = trusting.media / "served"
        mine.sendto(master(trusting.song, out), ("127.0.0.1", trusting.osc_port))
        replies = replies_until_end(lambda timeout: mine.recv(65536))
    assert not out_dir.exists()
    assert replies[0][0] == "/bridge/job" and replies[-1][0] == "/bridge/done", replies
    assert Path(replies[-1][1][1]).is_file() and Path(replies[-1][1][1]).parent == out


# -- TCP: attributed per connection, answered on it --------------------------------------------
def test_nobody_over_tcp_is_refused_on_the_connection(owner, scripts):
    before = job_ids(owner)
    out_dir = owner.media / "stolen-tcp"
    packet = oscwire.message("/bridge/submit", "master", str(owner.secret), str(out_dir))
    got = as_nobody(scripts, "tcp", owner.osc_port, packet)
    assert got.get("closed") is True, got
    address, (_, code, message) = got["reply"]
    assert (address, code) == ("/bridge/error", "permission_denied") and "uid 65534" in message
    no_job_and_no_output(owner, out_dir, before)
    assert "refused: its socket belongs to uid 65534" in owner.read_log()


def test_nobody_cannot_hear_a_tcp_senders_replies_on_its_port_number(owner, scripts):
    """Replies used to go by UDP to a TCP sender's source port: nobody could read that port
    from /proc/net/tcp, bind the same number on UDP and hear them."""
    private = owner.media / "private-plans" / "unreleased-song.wav"
    with oscwire.TcpPeer(owner.osc_port) as tcp:
        port = tcp.sock.getsockname()[1]
        with nobody_listening(scripts, port, reuse=True) as heard, \
                nobody_listening(scripts, port, host="0.0.0.0", reuse=True) as wildcard:
            tcp.send(oscwire.message("/bridge/ping"))
            tcp.send(master(private, owner.media / "out"))
            out_dir = owner.media / "mine-tcp"
            tcp.send(master(owner.secret, out_dir))
            got = [oscwire.parse(tcp.recv(10)) for _ in range(2)]
            job = replies_until_end(tcp.recv)
    assert got[0] == ("/bridge/pong", []) and got[1][1][1] == "not_found" and str(private) in got[1][1][2]
    assert job[-1][0] == "/bridge/done" and Path(job[-1][1][1]).parent == out_dir
    assert heard["got"] == [] and wildcard["got"] == [], (heard, wildcard)


# -- UDP reply ports: only where the owner alone listens ----------------------------------------
@pytest.mark.parametrize("via", ["unix", "tcp"])
def test_a_reply_port_nobody_holds_gets_no_reply(owner, scripts, via):
    """The owner's listener exited and nobody bound its port: the owner's job runs, and
    nobody hears neither its id nor its output paths."""
    port = free_udp_port()
    out_dir = owner.media / f"mine-{via}-unheard"
    before = job_ids(owner)
    with nobody_listening(scripts, port) as heard:
        if via == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as pathless:  # like oscsend
                for packet in (oscwire.message("/bridge/reply_port", port), oscwire.message("/bridge/ping"),
                               master(owner.secret, out_dir)):
                    pathless.sendto(packet, owner.osc_socket)
        else:
            with oscwire.TcpPeer(owner.osc_port) as tcp:
                for packet in (oscwire.message("/bridge/reply_port", port), oscwire.message("/bridge/ping"),
                               master(owner.secret, out_dir)):
                    tcp.send(packet)
                wait_for_output(out_dir)
        wait_for_output(out_dir)
    assert heard["got"] == [], heard
    assert len(job_ids(owner) - before) == 1  # the owner's job ran
    assert "a socket of uid 65534 is bound to that port" in owner.read_log()  # once a minute


def test_a_reply_port_shared_with_nobody_by_so_reuseaddr_gets_no_reply(owner, scripts):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        mine.bind(("127.0.0.1", 0))
        mine.settimeout(1.0)
        port = mine.getsockname()[1]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as pathless:
            pathless.sendto(oscwire.message("/bridge/reply_port", port), owner.osc_socket)
            pathless.sendto(oscwire.message("/bridge/ping"), owner.osc_socket)
            assert oscwire.parse(mine.recv(65536))[0] == "/bridge/pong"  # mine alone: served
            with nobody_listening(scripts, port, reuse=True) as heard:
                pathless.sendto(oscwire.message("/bridge/ping"), owner.osc_socket)
                with pytest.raises(socket.timeout):
                    mine.recv(65536)
    assert heard["got"] == [], heard


def test_the_owners_oscsend_over_the_unix_socket_is_served(owner):
    out_dir = owner.media / "mine-unix"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(30)
        url = f"osc.unix://{owner.osc_socket}"
        for args in (["/bridge/reply_port", "i", str(listener.getsockname()[1])],
                     ["/bridge/master", "sffs", str(owner.secret), "-14", "-1", str(out_dir)]):
            subprocess.run([OSCSEND, url, *args], check=True, timeout=10)
        replies = replies_until_end(lambda timeout: listener.recv(65536))
    assert replies[-1][0] == "/bridge/done", replies
    assert Path(replies[-1][1][1]).parent == out_dir


def test_nobody_cannot_send_to_the_unix_socket(owner, scripts):
    before = job_ids(owner)
    path = Path(owner.osc_socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_uid == os.geteuid()
    out_dir = owner.media / "stolen-unix"
    got = as_nobody(scripts, "unix", str(path), master(owner.secret, out_dir))
    assert got == {"errno": 13}, got  # EACCES
    # liblo's oscsend as nobody: the same wall (it reports the failure its own way)
    subprocess.run([*AS_NOBODY, OSCSEND, f"osc.unix://{path}", "/bridge/master", "sffs",
                    str(owner.secret), "-16", "-1", str(out_dir)], capture_output=True, timeout=10, cwd="/tmp")
    no_job_and_no_output(owner, out_dir, before)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_output(out_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not list(out_dir.glob("*.wav")):
        assert time.monotonic() < deadline, f"nothing in {out_dir} after {timeout} s"
        time.sleep(0.1)
