"""The OSC transport driven by liblo's real `oscsend` / `oscdump` and by python-osc.

oscdump listens on a UDP port the daemon is told about with
/bridge/reply_port; everything the daemon answers is read back from oscdump's
line-buffered output. Results are judged with libebur128 (pyebur128).
"""

from __future__ import annotations

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
from pythonosc.udp_client import SimpleUDPClient

from tests import loudness
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


def oscsend(target: str | int, address: str, types: str = "", *args) -> None:
    """Run liblo's oscsend; ``target`` is a UDP port on localhost or a liblo URL."""
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


def wait_for_pong(dump: OscDump, osc_port: int) -> None:
    """Ping until oscdump prints the pong: proves the reply route is in place."""
    deadline = time.monotonic() + WAIT
    while True:
        oscsend(osc_port, "/bridge/ping")
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
    oscsend(served.osc_port, "/bridge/reply_port", "i", dump.port)
    wait_for_pong(dump, served.osc_port)
    yield dump
    dump.close()


# -- tests ---------------------------------------------------------------------------------
def test_ping_pong(served, dump):
    oscsend(served.osc_port, "/bridge/ping")
    assert dump.expect("/bridge/pong", timeout=5) == []


def test_master_over_udp(served, dump, music):
    song = song_in(served.media, music)
    out_dir = served.media / "osc-udp"
    oscsend(served.osc_port, "/bridge/master", "sffs", song, -16.0, -1.5, out_dir)
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
    song = song_in(served.media, music, "tcp-song.wav")
    out_dir = served.media / "osc-tcp"
    oscsend(f"osc.tcp://localhost:{served.osc_port}", "/bridge/master", "sffs", song, -18.0, -2.0, out_dir)
    job_id, paths, messages = follow_job(dump)
    path = Path(paths[0])
    assert path.parent == out_dir and path.is_file()
    lufs, peak = measure(path)
    assert abs(lufs - (-18.0)) <= 0.1
    assert peak <= -2.0


def test_generic_submit_with_params(served, dump, music):
    song = song_in(served.media, music, "generic.wav")
    out_dir = served.media / "osc-submit"
    oscsend(served.osc_port, "/bridge/submit", "sssssss", "master", song, out_dir,
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
    oscsend(served.osc_port, "/bridge/submit", "ssssfsfsi", "master", song, out_dir,
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

    oscsend(served.osc_port, address, types, *map(subst, args))
    job_id, got_code, message = dump.expect("/bridge/error", timeout=10)
    assert job_id == ""  # refused before it became a job
    assert got_code == code, message
    for word in map(subst, words):
        assert word in message, f"{word!r} not in {message!r}"
    assert not out.exists() or not any(out.iterdir())
    # the daemon still works: a good job right after succeeds
    oscsend(served.osc_port, "/bridge/master", "sffs", song, -16.0, -1.5, served.media / "osc-after")
    _, paths, _ = follow_job(dump)
    assert Path(paths[0]).is_file()


def test_bad_reply_port_is_refused(served, dump):
    oscsend(served.osc_port, "/bridge/reply_port", "s", "nine")
    _, code, message = dump.expect("/bridge/error", timeout=10)
    assert code == "invalid_argument" and "port" in message
    # the old reply port still holds
    oscsend(served.osc_port, "/bridge/ping")
    dump.expect("/bridge/pong", timeout=5)


def test_python_osc_replies_to_sender_port(daemon, music):
    """With no reply_port set, replies go back to the port the message came from."""
    song = song_in(daemon.media, music, "pyosc.wav")
    out_dir = daemon.media / "pyosc"
    client = SimpleUDPClient("127.0.0.1", daemon.osc_port)
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
    oscsend(served.osc_port, "/bridge/master", "sffs", src, -16.0, -1.5, out_dir)
    job_id, _ = dump.expect("/bridge/job")
    # wait until it runs, then cancel it
    dump.expect("/bridge/progress", where=lambda a: a[0] == job_id)
    oscsend(served.osc_port, "/bridge/cancel", "s", job_id)
    deadline = time.monotonic() + WAIT
    while True:
        address, args = _next_for(dump, job_id, deadline)
        if address in ("/bridge/error", "/bridge/done"):
            break
    assert address == "/bridge/error", args
    assert args[1] == "cancelled", args
    assert not out_dir.exists() or [p.name for p in out_dir.iterdir()] == []

    oscsend(served.osc_port, "/bridge/cancel", "s", "no-such-job")
    got_id, code, message = dump.expect("/bridge/error", timeout=10)
    assert (got_id, code) == ("no-such-job", "not_found")
    assert "no-such-job" in message

