"""The OSC transport driven by liblo's real `oscsend` / `oscdump` and by python-osc.

oscsend talks to the daemon's unix socket (`osc.unix://PATH`): loopback UDP is
served to nobody, the daemon's own user included, since a datagram's sender
cannot be told apart from another user's (see test_osc_users.py). oscdump
listens on a UDP port the daemon is told about with /bridge/reply_port;
everything the daemon answers is read back from oscdump's line-buffered
output. python-osc and raw sockets talk over TCP (replies on the connection)
or from a bound unix socket of their own. Results are judged with libebur128
(pyebur128).
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import soundfile

from tests import loudness
from tests.transport import oscwire
from tests.conftest import running_daemon, write_tone
from tests.music import cache_dir, have_renderer, render_bach

OSCSEND, OSCDUMP = shutil.which("oscsend"), shutil.which("oscdump")
pytestmark = pytest.mark.skipif(not (OSCSEND and OSCDUMP), reason="liblo-tools is not installed")

WAIT = 30.0  # the longest any single reply may take


# -- helpers --------------------------------------------------------------------------
def measure(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) by libebur128."""
    result = loudness.measure(path)
    return result["integrated_lufs"], result["true_peak_dbtp"]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def oscsend(target, address: str, types: str = "", *args) -> None:
    """Run liblo's oscsend; ``target`` is a daemon (its unix socket), a UDP port on localhost
    or a liblo URL."""
    if hasattr(target, "osc_socket"):
        target = f"osc.unix://{target.osc_socket}"
    head = [str(target)] if isinstance(target, str) and "://" in target else ["localhost", str(target)]
    cmd = [OSCSEND, *head, address, *([types] if types else []), *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, f"{cmd}: {result.stderr}"


class OscDump:
    """`oscdump -L PORT` in the background; parsed lines arrive on a queue."""

    def __init__(self):
        for _ in range(5):
            self.port = free_udp_port()
            self.proc = subprocess.Popen([OSCDUMP, "-L", str(self.port)], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
            time.sleep(0.1)
            if self.proc.poll() is None:
                break
        else:
            raise RuntimeError("oscdump would not start")
        self.lines: list[str] = []
        self.seen: list[tuple[str, list]] = []  # messages read while looking for others
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            message = parse_dump_line(line)
            if message:
                self._queue.put(message)

    def expect(self, address: str, timeout: float = WAIT, where=lambda args: True) -> list:
        """The args of the next message to ``address`` matching ``where``; others are kept."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {address} within {timeout} s; oscdump printed:\n"
                                     + "\n".join(self.lines))
            try:
                got_address, args = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if got_address == address and where(args):
                return args
            self.seen.append((got_address, args))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def parse_dump_line(line: str) -> tuple[str, list] | None:
    """`<timetag> /addr types arg...` (strings quoted) -> (address, typed args)."""
    tokens = shlex.split(line.strip())
    if len(tokens) < 2 or not tokens[1].startswith("/"):
        return None
    address, types, values = tokens[1], (tokens[2] if len(tokens) > 2 else ""), tokens[3:]
    args = []
    for kind, value in zip(types, values):
        args.append(float(value) if kind in "fd" else int(value) if kind in "ih" else value)
    return address, args


def wait_for_pong(dump: OscDump, daemon) -> None:
    """Ping until oscdump prints the pong: proves the reply route is in place."""
    deadline = time.monotonic() + WAIT
    while True:
        oscsend(daemon, "/bridge/ping")
        try:
            dump.expect("/bridge/pong", timeout=1.0)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise


def follow_job(dump: OscDump, timeout: float = WAIT) -> tuple[str, list, list]:
    """Read /bridge/job then the job's /bridge/done (fails on /bridge/error).

    Returns (job id, output paths, every message for the job in order).
    """
    job_id, engine = dump.expect("/bridge/job", timeout)
    deadline = time.monotonic() + timeout
    messages = [("/bridge/job", [job_id, engine])]
    while True:
        address, args = _next_for(dump, job_id, deadline)
        messages.append((address, args))
        if address == "/bridge/error":
            raise AssertionError(f"job {job_id} failed: {args}")
        if address == "/bridge/done":
            return job_id, args[1:], messages


def _next_for(dump: OscDump, job_id: str, deadline: float):
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError("job did not end in time; oscdump printed:\n" + "\n".join(dump.lines))
        try:
            address, args = dump._queue.get(timeout=remaining)
        except queue.Empty:
            continue
        if args and args[0] == job_id:
            return address, args


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    """One daemon for the oscdump tests (each test sets its own reply port)."""
    with running_daemon() as proc:
        yield proc


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    return cache_dir(tmp_path_factory)


def song_in(folder: Path, music, name: str = "chorale.wav", seconds: float = 12.0) -> Path:
    dest = folder / name
    if have_renderer():
        shutil.copyfile(render_bach(music, 48000, seconds=seconds), dest)
    else:
        write_tone(dest, seconds, 48000, 2)
    return dest


@pytest.fixture
def dump(served):
    dump = OscDump()
    try:  # closed even when the reply route never comes up (an oscdump must not outlive its test)
        oscsend(served, "/bridge/reply_port", "i", dump.port)
        wait_for_pong(dump, served)
        yield dump
    finally:
        dump.close()


# -- tests ---------------------------------------------------------------------------------
def test_ping_pong(served, dump):
    oscsend(served, "/bridge/ping")
    assert dump.expect("/bridge/pong", timeout=5) == []


def test_master_over_the_unix_socket_replies_to_oscdump(served, dump, music):
    song = song_in(served.media, music)
    out_dir = served.media / "osc-unix"
    oscsend(served, "/bridge/master", "sffs", song, -16.0, -1.5, out_dir)
    job_id, paths, messages = follow_job(dump)
    assert len(job_id) >= 8
    assert len(paths) == 1
    path = Path(paths[0])
    assert path.parent == out_dir and path.name == "chorale.master.mastered.wav"
    assert path.is_file()
    lufs, peak = measure(path)
    assert abs(lufs - (-16.0)) <= 0.1, f"{lufs} LUFS"
    assert peak <= -1.5, f"{peak} dBTP"
    # progress came in between, for this job, as fractions
    assert messages[0][0] == "/bridge/job" and messages[0][1][1] == "master"
    progress = [a for addr, a in messages if addr == "/bridge/progress"]
    assert all(0.0 <= a[1] <= 1.0 and isinstance(a[2], str) for a in progress), progress
    assert [a[1] for a in progress] == sorted(a[1] for a in progress), "progress went backwards"


def test_master_over_tcp_replies_to_udp_reply_port(served, dump, music):
    """A controller holding a TCP connection (python-osc, OSC 1.0 framing as liblo's): its
    replies go to the UDP port it names, here oscdump's."""
    from pythonosc.tcp_client import SimpleTCPClient

    song = song_in(served.media, music, "tcp-song.wav")
    out_dir = served.media / "osc-tcp"
    client = SimpleTCPClient("127.0.0.1", served.osc_port, mode="1.0")
    try:
        client.send_message("/bridge/reply_port", [dump.port])
        client.send_message("/bridge/master", [str(song), -18.0, -2.0, str(out_dir)])
        job_id, paths, messages = follow_job(dump)
    finally:
        client.close()
    path = Path(paths[0])
    assert path.parent == out_dir and path.is_file()
    lufs, peak = measure(path)
    assert abs(lufs - (-18.0)) <= 0.1
    assert peak <= -2.0


def test_generic_submit_with_params(served, dump, music):
    song = song_in(served.media, music, "generic.wav")
    out_dir = served.media / "osc-submit"
    oscsend(served, "/bridge/submit", "sssssss", "master", song, out_dir,
            "preset", "ebu-r128", "format", "wav16")
    job_id, paths, messages = follow_job(dump)
    path = Path(paths[0])
    assert path.parent == out_dir
    info = soundfile.info(str(path))
    assert info.subtype == "PCM_16"
    lufs, peak = measure(path)
    assert abs(lufs - (-23.0)) <= 0.1
    assert peak <= -1.0


def test_generic_submit_numeric_params(served, dump, music):
    song = song_in(served.media, music, "numeric.wav")
    out_dir = served.media / "osc-numeric"
    oscsend(served, "/bridge/submit", "ssssfsfsi", "master", song, out_dir,
            "lufs", -20.0, "ceiling", -3.0, "eq", 0)
    _, paths, _ = follow_job(dump)
    lufs, peak = measure(Path(paths[0]))
    assert abs(lufs - (-20.0)) <= 0.1
    assert peak <= -3.0


@pytest.mark.parametrize("address, types, args, code, words", [
    ("/bridge/master", "sfff", ["{song}", -16.0, -1.5, 3.0], "invalid_argument", ["argument 4", "string"]),
    ("/bridge/master", "fffs", [1.0, -16.0, -1.5, "{out}"], "invalid_argument", ["argument 1", "string"]),
    ("/bridge/master", "sfs", ["{song}", -16.0, "{out}"], "invalid_argument", ["sffs", "got 3"]),
    ("/bridge/master", "sffs", ["{media}/missing.wav", -16.0, -1.5, "{out}"], "not_found", ["missing.wav"]),
    ("/bridge/master", "sffs", ["/etc/hosts", -16.0, -1.5, "{out}"], "permission_denied", ["/etc/hosts", "{media}"]),
    ("/bridge/master", "sffs", ["{song}", -8.0, -6.0, "{out}"], "invalid_argument", ["-8 LUFS", "ceiling"]),
    ("/bridge/submit", "ss", ["master", "{song}"], "invalid_argument", ["engine path out_dir"]),
    ("/bridge/submit", "sss", ["nope", "{song}", "{out}"], "not_found", ["nope", "master"]),
    ("/bridge/submit", "sssss", ["master", "{song}", "{out}", "preset", "loud"], "invalid_argument", ["loud", "streaming"]),
    ("/bridge/nothing", "", [], "invalid_argument", ["/bridge/nothing", "/bridge/master"]),
], ids=["float-for-path", "float-for-string", "too-few", "missing-file", "outside-roots",
        "no-headroom", "submit-short", "submit-unknown-engine", "submit-bad-preset", "unknown-address"])
def test_errors_reply_and_daemon_keeps_serving(served, dump, music, address, types, args, code, words):
    song = song_in(served.media, music, "err.wav", seconds=6.0)
    out = served.media / "osc-err"
    fill = {"{song}": str(song), "{out}": str(out), "{media}": str(served.media.resolve())}

    def subst(value):
        if isinstance(value, str):
            for key, real in fill.items():
                value = value.replace(key, real)
        return value

    oscsend(served, address, types, *map(subst, args))
    job_id, got_code, message = dump.expect("/bridge/error", timeout=10)
    assert job_id == ""  # refused before it became a job
    assert got_code == code, message
    for word in map(subst, words):
        assert word in message, f"{word!r} not in {message!r}"
    assert not out.exists() or not any(out.iterdir())
    # the daemon still works: a good job right after succeeds
    oscsend(served, "/bridge/master", "sffs", song, -16.0, -1.5, served.media / "osc-after")
    _, paths, _ = follow_job(dump)
    assert Path(paths[0]).is_file()


def test_bad_reply_port_is_refused(served, dump):
    oscsend(served, "/bridge/reply_port", "s", "nine")
    _, code, message = dump.expect("/bridge/error", timeout=10)
    assert code == "invalid_argument" and "port" in message
    # the old reply port still holds
    oscsend(served, "/bridge/ping")
    dump.expect("/bridge/pong", timeout=5)


def test_python_osc_over_tcp_hears_its_replies_on_the_connection(daemon, music):
    """With no reply_port set, a TCP sender's replies come back on its own connection, in
    OSC 1.0 framing (python-osc's TCP client reads them), the job follower's included."""
    from pythonosc.tcp_client import SimpleTCPClient

    song = song_in(daemon.media, music, "pyosc.wav")
    out_dir = daemon.media / "pyosc"
    client = SimpleTCPClient("127.0.0.1", daemon.osc_port, mode="1.0")
    try:
        client.send_message("/bridge/ping", [])
        reply = next(client.get_messages(timeout=5.0), None)
        assert reply is not None and reply.address == "/bridge/pong"

        client.send_message("/bridge/master", [str(song), -16.0, -1.5, str(out_dir)])
        deadline = time.monotonic() + WAIT
        got, done = [], None
        while done is None and time.monotonic() < deadline:
            for message in client.get_messages(timeout=1.0):
                got.append((message.address, list(message.params)))
                if message.address in ("/bridge/done", "/bridge/error"):
                    done = got[-1]
                    break
    finally:
        client.close()
    assert done is not None, f"no /bridge/done within {WAIT} s; got {got}"
    assert got[0][0] == "/bridge/job", got
    job_id = got[0][1][0]
    assert done[0] == "/bridge/done", done
    assert done[1][0] == job_id
    path = Path(done[1][1])
    assert path.parent == out_dir and path.is_file()
    lufs, peak = measure(path)
    assert abs(lufs - (-16.0)) <= 0.1
    assert peak <= -1.5


def test_sigterm_with_open_tcp_connection_exits_promptly(daemon):
    """A controller holding its OSC TCP connection open must not block a graceful stop."""
    import signal

    from pythonosc.tcp_client import SimpleTCPClient

    client = SimpleTCPClient("127.0.0.1", daemon.osc_port, mode="1.0")
    try:
        client.send_message("/bridge/ping", [])  # the connection is up and served
        time.sleep(0.2)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            code = daemon.proc.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        elapsed = time.monotonic() - started
    finally:
        client.close()
        daemon.stop(signal.SIGKILL)
    assert code == 0, f"the daemon did not stop within 15 s of SIGTERM (exit {code})"
    assert elapsed <= 6.5, f"stop took {elapsed:.1f} s"


def test_cancel_running_job(served, dump):
    src = write_tone(served.media / "cancel-me.wav", 240.0, 48000, 2)  # seconds of work, not one
    out_dir = served.media / "osc-cancel"
    oscsend(served, "/bridge/master", "sffs", src, -16.0, -1.5, out_dir)
    job_id, _ = dump.expect("/bridge/job")
    # wait until it runs, then cancel it
    dump.expect("/bridge/progress", where=lambda a: a[0] == job_id)
    oscsend(served, "/bridge/cancel", "s", job_id)
    deadline = time.monotonic() + WAIT
    while True:
        address, args = _next_for(dump, job_id, deadline)
        if address in ("/bridge/error", "/bridge/done"):
            break
    assert address == "/bridge/error", args
    assert args[1] == "cancelled", args
    assert not out_dir.exists() or [p.name for p in out_dir.iterdir()] == []

    oscsend(served, "/bridge/cancel", "s", "no-such-job")
    got_id, code, message = dump.expect("/bridge/error", timeout=10)
    assert (got_id, code) == ("no-such-job", "not_found")
    assert "no-such-job" in message



# -- time tags, malformed packets, limits ------------------------------------------------
class Sender:
    """The daemon's own user's unix datagram socket, bound to a path: raw packets out, replies in."""

    def __init__(self, daemon):
        self.peer = oscwire.UnixPeer(daemon.osc_socket)

    def send(self, packet: bytes) -> None:
        self.peer.send(packet)

    def reply(self, timeout: float = 5.0) -> tuple[str, list, float]:
        """(address, args, monotonic time it arrived) of the next reply."""
        try:
            data = self.peer.recv(timeout)
        except socket.timeout:
            raise AssertionError(f"no reply within {timeout} s") from None
        return (*oscwire.parse(data), time.monotonic())

    def quiet(self, seconds: float) -> list:
        """Replies that arrive within ``seconds`` (expected: none)."""
        got, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(oscwire.parse(self.peer.recv(left)))
            except socket.timeout:
                break
        return got

    def close(self) -> None:
        self.peer.close()


@pytest.fixture
def sender(daemon):
    sender = Sender(daemon)
    yield sender
    sender.close()


def test_bundle_runs_at_its_time_tag(daemon, sender):
    lateness = []
    for _ in range(3):
        due = time.time() + 1.0
        sent = time.monotonic()
        sender.send(oscwire.bundle(due, oscwire.message("/bridge/ping")))
        address, args, arrived = sender.reply(timeout=5)
        assert address == "/bridge/pong"
        lateness.append(arrived - sent - 1.0)
    lateness.sort()  # never early; on time but for a scheduling hiccup (2 cores, engines importing)
    assert lateness[0] >= -0.005 and lateness[1] <= 0.05 and lateness[2] <= 0.3, f"pong vs tag: {lateness} s"
    # a past time tag and "immediately" run at once
    for when in (time.time() - 60, oscwire.IMMEDIATELY):
        sent = time.monotonic()
        sender.send(oscwire.bundle(when, oscwire.message("/bridge/ping")))
        assert sender.reply(timeout=5)[0] == "/bridge/pong"
        assert time.monotonic() - sent < 0.5


def test_bundle_a_day_ahead_is_refused_with_the_limit(daemon, sender):
    sender.send(oscwire.bundle(time.time() + 86400, oscwire.message("/bridge/ping")))
    address, (job_id, code, message), _ = sender.reply()
    assert (address, job_id, code) == ("/bridge/error", "", "invalid_argument")
    assert "86400 s ahead" in message and "3600 s" in message and "closer to its time" in message
    assert sender.quiet(0.5) == []  # and nothing of it runs


def test_pending_bundles_are_bounded_and_do_not_hold_a_stop(daemon, sender):
    """python-osc's own dispatcher slept in a handler thread until the time tag: a bundle for
    later kept a SIGTERMed daemon serving until then (30 s here, or forever)."""
    import signal

    later = time.time() + 30
    for _ in range(4):  # 4 x 64 = 256: the most that may wait
        sender.send(oscwire.bundle(later, *[oscwire.message("/bridge/ping")] * 64))
    sender.send(oscwire.bundle(later, oscwire.message("/bridge/ping")))
    address, (_, code, message), _ = sender.reply()
    assert (address, code) == ("/bridge/error", "invalid_argument")
    assert "256 OSC messages already wait" in message and "at most 256" in message
    sender.send(oscwire.bundle(time.time() + 86400 * 365, oscwire.message("/bridge/ping")))
    assert sender.reply()[0] == "/bridge/error"
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(15)
    elapsed = time.monotonic() - started
    assert code == 0 and elapsed < 3.0, f"stop took {elapsed:.1f} s (exit {code})"
    assert "dropped 256 OSC messages still waiting for their bundle's time tag" in daemon.read_log()


@pytest.mark.parametrize("packet, words", [
    (b"\xff\xfe garbage", ["neither an OSC message"]),
    (oscwire.message("/bridge/master", "a", 1.0)[:-6], ["shorter than"]),
    (oscwire.message("/bridge/ping", types="xyz"), ["argument type", "'x'"]),
    (oscwire.string("/bridge/ping") + oscwire.string("sf"), ["type tag"]),
    (oscwire.string("/bridge/\xe9".encode("latin-1")), ["not UTF-8"]),
    (oscwire.message("/bridge/master", types="s") + b"\xc3\x28\0\0", ["not UTF-8"]),
    (oscwire.message("/bridge/ping", types="[[i]") + b"\0\0\0\1", ["unbalanced"]),
    (b"#bundle\0\0\0", ["bundle"]),
    (oscwire.bundle(None, b"/x\0\0") + b"\0\0\0\x40", ["bundle"]),
], ids=["random", "truncated", "unknown-type", "no-comma", "bad-utf8-address", "bad-utf8-arg",
        "brackets", "short-bundle", "bad-element-size"])
def test_malformed_packet_is_answered_not_traced(daemon, sender, packet, words):
    sender.send(packet)
    address, (job_id, code, message), _ = sender.reply()
    assert (address, job_id, code) == ("/bridge/error", "", "invalid_argument")
    assert message.startswith("malformed OSC packet"), message
    for word in words:
        assert word in message, message
    sender.send(oscwire.message("/bridge/ping"))
    assert sender.reply()[0] == "/bridge/pong"
    assert "Traceback" not in daemon.read_log()


def test_nested_bundles_and_huge_packets_are_refused(daemon, sender):
    deep = oscwire.message("/bridge/ping")
    for _ in range(2000):  # RecursionError in python-osc's OscBundle
        deep = oscwire.bundle(None, deep)
    sender.send(deep[:65000])
    assert "nested more than 8 deep" in sender.reply()[1][2]
    sender.send(oscwire.bundle(None, *[oscwire.message("/bridge/ping")] * 65))
    assert "more than 64 messages" in sender.reply()[1][2]
    sender.send(oscwire.message("/bridge/master", "x" * 60000, -14.0, -1.0, "y"))
    address, (_, code, message), _ = sender.reply()
    assert address == "/bridge/error" and len(message) <= 400 and "x" * 50 in message, message
    log = daemon.read_log()
    assert "Traceback" not in log and "RecursionError" not in log and len(log) < 4000


def test_a_flood_of_one_kind_logs_one_line_and_a_count(daemon, sender):
    import re

    flood = Sender(daemon)  # its 500 answers are not read: they would crowd out the pong
    try:
        for _ in range(500):  # a unix sender waits while the daemon's queue is full: none is lost
            flood.send(b"\x00\x01\x02\x03")
        sender.send(oscwire.message("/bridge/ping"))
        assert sender.reply(timeout=10)[0] == "/bridge/pong"
        assert sender.quiet(0.5) == []
    finally:
        flood.close()
    daemon.stop()
    lines = [line for line in daemon.read_log().splitlines() if "not-osc" in line]
    assert len(lines) == 2, lines  # the first, and at stop the count of the rest
    assert "malformed OSC packet (not-osc) from unix:" in lines[0]
    count = re.search(r"(\d+) more malformed OSC packets of kind not-osc since \d\d:\d\d:\d\d$", lines[1])
    assert count and int(count.group(1)) >= 100, lines[1]


def test_unknown_address_and_odd_argument_types_are_invalid_argument(daemon, sender):
    sender.send(oscwire.message("/bridge/" + "z" * 5000))
    _, (_, code, message), _ = sender.reply()
    assert code == "invalid_argument" and "unknown OSC address" in message and len(message) <= 400
    sender.send(oscwire.message("/bridge/submit", "master", "a.wav", "out", "preset", b"\x01\x02"))
    _, (_, code, message), _ = sender.reply()
    assert code == "invalid_argument" and "argument 5 (preset) must be a string or a number" in message
    sender.send(oscwire.message("/bridge/submit", "master", "a.wav", "out", 7, "x"))
    _, (_, code, message), _ = sender.reply()
    assert code == "invalid_argument" and "argument 4 must be a parameter name" in message
    sender.send(oscwire.message("/bridge/reply_port", True))
    assert sender.reply()[1][1] == "invalid_argument"


def test_tcp_bad_frames_end_the_connection_and_a_stalled_frame_does_not_hold_a_stop(daemon):
    import signal

    with oscwire.TcpPeer(daemon.osc_port) as tcp:  # replies come back on the connection
        tcp.send(oscwire.message("/bridge/ping"))
        assert oscwire.parse(tcp.recv(5))[0] == "/bridge/pong"
        tcp.send(b"junk")  # a bad packet in a good frame: the connection stays
        assert "malformed" in oscwire.parse(tcp.recv(5))[1][2]
        tcp.send(oscwire.message("/bridge/ping"))
        assert oscwire.parse(tcp.recv(5))[0] == "/bridge/pong"
        tcp.sock.sendall((-5).to_bytes(4, "big", signed=True))  # framing is lost: told, then closed
        assert "TCP frame length" in oscwire.parse(tcp.recv(5))[1][2]
        assert tcp.recv(5) is None
    stalled = socket.create_connection(("127.0.0.1", daemon.osc_port))
    stalled.sendall(oscwire.frame(oscwire.message("/bridge/ping"))[:10])  # half a frame, then nothing
    time.sleep(0.3)
    started = time.monotonic()
    daemon.proc.send_signal(signal.SIGTERM)
    code = daemon.proc.wait(15)
    assert code == 0 and time.monotonic() - started < 3.0
    stalled.close()


# -- in-process: a handler's bug, the log limiter, the sender check, the packet parser -----------
class _Boom:
    """A service whose registry fails as a bug would."""

    class registry:
        @staticmethod
        def get(name):
            raise RuntimeError("a bug, not bad input")


def test_a_bug_in_a_handler_is_an_internal_error_reply_and_one_log_line(tmp_path, caplog):
    from bridge.transport.osc_server import OscServer

    server = OscServer(_Boom(), "127.0.0.1:0", socket_path=str(tmp_path / "o.sock"))
    server.start()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "me.sock"))  # a unix sender with a path hears its replies there
    listener.settimeout(5)
    try:
        with caplog.at_level("WARNING", logger="bridge.transport.osc_server"):
            for _ in range(3):
                listener.sendto(oscwire.message("/bridge/submit", "master", "a.wav", "out"), str(tmp_path / "o.sock"))
                address, (job_id, code, message) = oscwire.parse(listener.recv(65536))
                assert (address, job_id, code) == ("/bridge/error", "", "internal")
                assert "internal error handling /bridge/submit: RuntimeError" in message
    finally:
        listener.close()
        server.stop()
    lines = [r for r in caplog.records if "internal error in OSC" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "RuntimeError: a bug, not bad input (at test_osc.py:" in lines[0].getMessage()
    assert not (tmp_path / "o.sock").exists()  # removed at stop


def test_log_limiter_first_line_then_counts_per_interval(caplog):
    import logging

    from bridge.transport.ratelog import LogLimiter

    now = [100.0]
    limiter = LogLimiter(logging.getLogger("t.limiter"), 60.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="t.limiter"):
        for _ in range(1000):
            limiter.note("a", "things of kind a", "first a %d", 1)
        limiter.note("b", "things of kind b", "first b")
        limiter.flush()  # the interval is not over: nothing yet
        assert [r.getMessage() for r in caplog.records] == ["first a 1", "first b"]
        now[0] += 61
        limiter.flush()
        assert caplog.records[-1].getMessage().startswith("999 more things of kind a since ")
        limiter.note("a", "things of kind a", "again a")  # a new interval: counted, not logged
        limiter.flush(final=True)
    assert [r.getMessage().split(" since")[0] for r in caplog.records][2:] == [
        "999 more things of kind a", "1 more things of kind a"]


def _proc_net(folder: Path, udp: list[str], tcp: list[str] = ()) -> Path:
    head = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    for name, rows in (("udp", udp), ("tcp", tcp), ("udp6", []), ("tcp6", [])):
        (folder / name).write_text(head + "".join(f"   {i}: {row} 0\n" for i, row in enumerate(rows)))
    return folder


def _row(local: str, remote: str, uid: int, inode: int, state: str = "07") -> str:
    return f"{local} {remote} {state} 00000000:00000000 00:00000000 00000000 {uid:5d} 0 {inode} 2 0000000000000000"


def test_tcp_peers_are_attributed_by_their_exact_connection(tmp_path):
    from bridge.transport.osc_peers import PeerCheck, Reason

    me, other, server = 1000, 65534, "0100007F:C350"  # the daemon: 127.0.0.1:50000
    tcp = [_row("0100007F:9C40", server, me, 21, "01"),          # 40000 -> the daemon, mine, ESTABLISHED
           _row("0100007F:9C41", server, 0, 0, "06"),            # 40001: TIME_WAIT (closed: uid 0, inode 0)
           _row("0100007F:9C42", server, other, 22, "01"),       # 40002: nobody's
           _row("0100007F:9C43", "0100007F:C351", me, 23, "01"),  # 40003: mine, but to another port
           _row("0100007F:9C44", server, me, 24, "04"),          # 40004: mine, FIN_WAIT1: no longer a peer
           _row("00000000:9C45", "00000000:0000", me, 25, "0A"),  # 40005: mine, listening: no connection
           _row("0100007F:9C46", server, me, 26, "01"),          # 40006: mine, and on the same pair
           _row("0100007F:9C46", server, other, 27, "01")]       # ... nobody's (cannot be: refused)
    check = PeerCheck(uid=me, proc_net=_proc_net(tmp_path, [], tcp))
    assert check.tcp("127.0.0.1", 40000, "127.0.0.1", 50000).ok
    assert check.tcp("::ffff:127.0.0.1", 40000, "::ffff:127.0.0.1", 50000).ok
    assert check.tcp("127.0.0.1", 40000, "127.0.0.1", 50001).reason is Reason.GONE  # not this connection
    assert check.tcp("127.0.0.2", 40000, "127.0.0.1", 50000).reason is Reason.GONE
    assert check.tcp("127.0.0.1", 40001, "127.0.0.1", 50000).reason is Reason.GONE
    assert check.tcp("127.0.0.1", 40002, "127.0.0.1", 50000).reason is Reason.OTHER_USER
    assert check.tcp("127.0.0.1", 40002, "127.0.0.1", 50000).uids == (other,)
    assert check.tcp("127.0.0.1", 40003, "127.0.0.1", 50000).reason is Reason.GONE
    assert check.tcp("127.0.0.1", 40004, "127.0.0.1", 50000).reason is Reason.GONE
    assert check.tcp("127.0.0.1", 40005, "127.0.0.1", 50000).reason is Reason.GONE
    assert check.tcp("127.0.0.1", 40006, "127.0.0.1", 50000).reason is Reason.OTHER_USER
    assert check.tcp("127.0.0.1", 40009, "127.0.0.1", 50000).reason is Reason.GONE  # no socket at all
    # a daemon running as root trusts no closed socket, though it shows as uid 0
    assert PeerCheck(uid=0, proc_net=tmp_path).tcp("127.0.0.1", 40001, "127.0.0.1", 50000).reason is Reason.GONE
    assert not PeerCheck(proc_net=tmp_path / "none").available
    assert PeerCheck(proc_net=tmp_path / "none").tcp("127.0.0.1", 1, "127.0.0.1", 2).reason is Reason.UNATTRIBUTABLE


def test_udp_receivers_must_all_be_the_daemons_users(tmp_path):
    from bridge.transport.osc_peers import PeerCheck, Reason

    me, other = 1000, 65534
    udp = [_row("0100007F:9C40", "00000000:0000", me, 11),        # 127.0.0.1:40000, mine
           _row("00000000:9C41", "00000000:0000", me, 12),        # 0.0.0.0:40001, mine
           _row("0100007F:9C42", "00000000:0000", other, 13),     # 127.0.0.1:40002, nobody's
           _row("0100007F:9C43", "00000000:0000", 0, 0),          # 40003: no live socket (inode 0)
           _row("0100007F:9C44", "00000000:0000", me, 14),        # 40004: mine (SO_REUSEADDR), and
           _row("0100007F:9C44", "00000000:0000", other, 15),     # ... nobody's on the same port
           _row("0100007F:9C45", "00000000:0000", me, 16),        # 40005: mine, and
           _row("00000000:9C45", "00000000:0000", other, 17),     # ... nobody's on the wildcard
           _row("0200007F:9C46", "00000000:0000", other, 18)]     # 127.0.0.2:40006, nobody's
    check = PeerCheck(uid=me, proc_net=_proc_net(tmp_path, udp))
    assert check.receivers("127.0.0.1", 40000).ok
    assert check.receivers("127.0.0.1", 40001).ok
    assert check.receivers("127.0.0.1", 40002).reason is Reason.OTHER_USER
    assert check.receivers("127.0.0.1", 40003).reason is Reason.GONE
    assert check.receivers("127.0.0.1", 40004).reason is Reason.OTHER_USER
    assert check.receivers("127.0.0.1", 40004).uids == (other,)
    assert check.receivers("127.0.0.1", 40005).reason is Reason.OTHER_USER
    assert check.receivers("127.0.0.1", 40006).reason is Reason.GONE  # nobody's is on another address
    assert check.receivers("127.0.0.1", 40009).reason is Reason.GONE  # nobody listens at all
    assert PeerCheck(proc_net=tmp_path / "none").receivers("127.0.0.1", 1).reason is Reason.UNATTRIBUTABLE


def test_receivers_know_ipv6_and_mapped_addresses(tmp_path):
    from bridge.transport.osc_peers import PeerCheck, Reason

    head = "  sl  local_address                         remote_address                        st\n"
    mapped = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1, as the kernel prints it
    rows = [f"0: {mapped}:9C40 00000000000000000000000000000000:0000 07 0:0 0:0 0 1000 0 31 2 0",
            "1: 00000000000000000000000000000000:9C41 00000000000000000000000000000000:0000 07 0:0 0:0 0 "
            "65534 0 32 2 0"]
    for name in ("udp", "tcp", "tcp6"):
        (tmp_path / name).write_text(head)
    (tmp_path / "udp6").write_text(head + "\n".join(rows) + "\n")
    check = PeerCheck(uid=1000, proc_net=tmp_path)
    assert check.receivers("127.0.0.1", 40000).ok
    assert check.receivers("127.0.0.1", 40001).reason is Reason.OTHER_USER  # [::]:40001 is dual-stack
    assert check.receivers("::1", 40001).reason is Reason.OTHER_USER


def test_closed_sockets_are_never_attributed_on_this_kernel():
    """A TCP socket closed by its program lingers (FIN_WAIT/TIME_WAIT) as uid 0, inode 0."""
    from bridge.transport.osc_peers import PeerCheck, Reason

    check = PeerCheck(uid=0)  # even for a daemon that is root
    if not check.available:
        pytest.skip("no /proc/net")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        client = socket.create_connection(server.getsockname())
        conn, (host, port) = server.accept()
        assert check.tcp(host, port, *server.getsockname()).ok or os.geteuid() != 0
        client.close()  # the client's side is now an orphan: FIN_WAIT2
        time.sleep(0.1)
        assert check.tcp(host, port, *server.getsockname()).reason is Reason.GONE
        conn.close()


def test_parse_walks_bundles_with_their_time_tags():
    from bridge.transport.osc_packets import Malformed, parse

    ping = oscwire.message("/bridge/ping")
    timed = parse(oscwire.bundle(2000.0, ping, oscwire.bundle(1000.0, ping), oscwire.bundle(3000.0, ping)))
    assert [round(when) for when, _ in timed] == [2000, 2000, 3000]  # inner bundles never run earlier
    assert parse(oscwire.bundle(None, ping))[0][0] == 0.0
    assert parse(oscwire.bundle(None))[:1] == []
    with pytest.raises(Malformed) as bad:
        parse(b"")
    assert bad.value.kind == "empty"


# -- the unix socket and the serve options -------------------------------------------------
def test_unix_socket_alone_replies_to_the_senders_path(media_dir):
    path = media_dir / "only.osc"
    with running_daemon(media_dir, extra=["--osc", "", "--osc-socket", str(path)]) as daemon:
        assert daemon.info["osc"] == "" and daemon.info["osc_socket"] == str(path)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as me:
            me.bind(str(media_dir / "me.sock"))
            me.settimeout(5)
            me.sendto(oscwire.message("/bridge/ping"), str(path))
            assert oscwire.parse(me.recv(100))[0] == "/bridge/pong"
            me.sendto(oscwire.bundle(time.time() + 0.3, oscwire.message("/bridge/cancel", "nope")), str(path))
            assert oscwire.parse(me.recv(1000))[1][:2] == ["nope", "not_found"]
    assert not path.exists()  # removed at stop


def test_a_live_osc_socket_is_never_taken_and_a_file_never_removed(media_dir):
    import subprocess as sp
    import sys

    from tests.conftest import ROOT

    def serve(path):
        return sp.run([sys.executable, "-m", "bridge", "serve", "--grpc", "", "--socket", "",
                       "--osc", "", "--osc-socket", str(path), "--state-dir", str(media_dir / "st2"),
                       "--media-root", str(media_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60)

    with running_daemon(media_dir) as first:
        result = serve(first.osc_socket)
        assert result.returncode == 3 and "a daemon already receives OSC on" in result.stderr, result.stderr
        assert os.path.exists(first.osc_socket)
        oscsend(first, "/bridge/ping")  # the first still serves its socket
    precious = media_dir / "song.wav"
    precious.write_bytes(b"RIFF")
    result = serve(precious)
    assert result.returncode == 3 and "exists and is not a socket" in result.stderr
    assert precious.read_bytes() == b"RIFF"


def test_trust_loopback_serves_a_sender_already_gone(media_dir):
    """For a single-user machine: `--osc-trust-loopback` lets `oscsend localhost PORT` in."""
    with running_daemon(media_dir, extra=["--osc-trust-loopback"]) as daemon:
        write_tone(daemon.media / "t.wav", 1.0)
        for index in range(3):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as once:  # gone at once
                once.sendto(oscwire.message("/bridge/master", str(daemon.media / "t.wav"), -16.0, -1.0,
                                            str(daemon.media / f"out{index}")), ("127.0.0.1", daemon.osc_port))
        deadline = time.monotonic() + WAIT
        while not all(list((daemon.media / f"out{i}").glob("*.wav")) for i in range(3)):
            assert time.monotonic() < deadline, daemon.read_log()
            time.sleep(0.1)
    # and without it, the same senders run nothing: loopback UDP is whoever's
    with running_daemon(extra=[]) as daemon:
        write_tone(daemon.media / "t.wav", 1.0)
        for _ in range(3):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as once:
                once.sendto(oscwire.message("/bridge/master", str(daemon.media / "t.wav"), -16.0, -1.0,
                                            str(daemon.media / "out")), ("127.0.0.1", daemon.osc_port))
        time.sleep(1.0)
        assert not (daemon.media / "out").exists()
        assert "UDP senders cannot be told apart from other users" in daemon.read_log()
