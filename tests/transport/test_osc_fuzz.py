"""A seeded OSC fuzzer against a real daemon: the unix socket, TCP (OSC 1.0 framing), and UDP.

Thousands of packets: valid-looking messages with wrong or odd types, random
bytes, truncated packets, bad type tags, huge strings, deeply nested bundles,
bundles with past, future and immediate time tags, blobs; bad TCP length
prefixes and a connection that sends half a frame and stalls; loopback UDP,
which is refused whatever it holds. Afterwards the
daemon must be alive, answer a ping, run a real job, have written nothing else
under its media root, hold no traceback in a log whose size is bounded by the
kinds of trouble (not by the number of packets), and stop promptly on SIGTERM.
"""

from __future__ import annotations

import random
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from bridge.transport.osc_server import KNOWN, LOG_KINDS
from tests.conftest import running_daemon, write_tone
from tests.transport import oscwire

SEED = 20240611
LINE = 800  # bytes: the longest log line the daemon writes about one packet (sender, kind, detail)


class Fuzzer:
    """Packets from a seeded generator; ``media`` is where wrong paths point."""

    def __init__(self, seed: int, media: Path, reply_port: int):
        self.rng = random.Random(seed)
        self.media, self.reply_port = media, reply_port
        self.kinds = [self.odd_message, self.odd_message, self.random_bytes, self.truncated,
                      self.bad_type_tags, self.huge_string, self.nested, self.timed_bundle, self.blobs]

    def packet(self) -> bytes:
        return self.rng.choice(self.kinds)()

    # -- the pieces ------------------------------------------------------------------
    def text(self) -> str:
        r = self.rng
        return r.choice([
            "", "x", "/etc/passwd", "/etc/shadow", str(self.media), str(self.media / "missing.wav"),
            str(self.media / ".." / "escape.wav"), "relative/path.wav", "master", "hpss", "streaming",
            "ü" * r.randint(1, 50), "".join(chr(r.randint(1, 0x2FF)) for _ in range(r.randint(1, 40))),
            "%s%n%x", "{}", "\n\r\t", f"/tmp/{r.random()}", "../" * 20, "nan", "-1"])

    def arg(self):
        r = self.rng
        kind = r.randrange(8)
        if kind == 0:
            return r.choice([0, 1, -1, 2 ** 31 - 1, -2 ** 31, r.randint(-10 ** 6, 10 ** 6)])
        if kind == 1:
            return r.choice([0.0, -14.0, 1e38, -1e38, float("inf"), float("-inf"), float("nan"), r.uniform(-100, 100)])
        if kind == 2:
            return bytes(r.getrandbits(8) for _ in range(r.randint(0, 64)))
        if kind == 3:
            return r.choice([True, False, None])
        return self.text()

    def address(self) -> str:
        return self.rng.choice([*KNOWN, *KNOWN, "/bridge/", "/bridge/master/", "/bridge/*", "/bridge/p?ng",
                                "/", "//", "/bridge/nothing", "/bridge/" + "a" * self.rng.randint(1, 3000)])

    def odd_message(self) -> bytes:
        address = self.address()
        if address == "/bridge/reply_port":  # never a port of someone else's on this machine
            return oscwire.message(address, self.rng.choice([0, -1, 70000, self.reply_port, "nine", 1.5, True]))
        args = [self.arg() for _ in range(self.rng.randint(0, 9))]
        if address == "/bridge/submit" and self.rng.random() < 0.5:
            args[:3] = [self.rng.choice(["master", "separate", "generate", "reframe", "nope", ""]),
                        self.text(), str(self.media / f"fuzz-{self.rng.randrange(10)}")]
        return oscwire.message(address, *args)

    def random_bytes(self) -> bytes:
        r = self.rng
        head = r.choice([b"", b"/", b"/bridge/ping", b"#bundle\0", b"#bundle", b"\0"])
        return head + bytes(r.getrandbits(8) for _ in range(r.randint(0, 200)))

    def truncated(self) -> bytes:
        whole = self.rng.choice([self.odd_message, self.timed_bundle, self.blobs])()
        return whole[:self.rng.randint(0, max(0, len(whole) - 1))]

    def bad_type_tags(self) -> bytes:
        r = self.rng
        tags = "".join(r.choice("ifsbhdtmrTFNcSI[]x?\0,") for _ in range(r.randint(0, 12)))
        data = bytes(r.getrandbits(8) for _ in range(r.randint(0, 64)))
        if r.random() < 0.3:  # no comma at all
            return oscwire.string(self.address()) + oscwire.string(tags.lstrip(",")) + data
        return oscwire.message(self.address(), types=tags) + data

    def huge_string(self) -> bytes:
        big = self.rng.choice("xé/") * self.rng.randint(5_000, 14_000)
        address = self.rng.choice(["/bridge/master", "/bridge/submit", "/bridge/cancel", "/bridge/x" + big[:5000]])
        return oscwire.message(address, big, -14.0, -1.0, big)

    def nested(self) -> bytes:
        inner = oscwire.message("/bridge/ping")
        for _ in range(self.rng.choice([2, 8, 9, 50, 500, 2000])):
            inner = oscwire.bundle(None, inner)
        return inner[:65000]

    def timed_bundle(self) -> bytes:
        r = self.rng
        when = r.choice([None, 0.0, time.time() - 3600, time.time() - 0.1, time.time() + r.uniform(0.1, 2.0),
                         time.time() + 86400, time.time() + 10 ** 8, 2 ** 32 - oscwire.NTP_DELTA - 1])
        elements = [r.choice([oscwire.message("/bridge/ping"), self.odd_message(), self.random_bytes()])
                    for _ in range(r.randint(0, 5))]
        packet = oscwire.bundle(when, *elements)
        if r.random() < 0.2:  # lie about an element's size
            packet = packet[:16] + struct.pack(">i", r.choice([-1, 0, 3, 10 ** 6])) + packet[20:]
        return packet

    def blobs(self) -> bytes:
        r = self.rng
        blob = bytes(r.getrandbits(8) for _ in range(r.randint(0, 3000)))
        return oscwire.message(r.choice(KNOWN), blob, self.text(), blob[:10], -14.0)


class Replies:
    """Reads one of the owner's sockets in the background: the daemon's answers.

    ``read`` returns one reply's bytes (raises socket.timeout when there is
    none yet, OSError or returns None once the socket is done)."""

    def __init__(self, read):
        self.read, self.got, self._stop = read, [], threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                data = self.read()
            except socket.timeout:
                continue
            except (OSError, ValueError):  # closed under it
                return
            if data is None:
                return
            try:
                self.got.append(oscwire.parse(data))
            except Exception:  # the test's own small parser; the count is what matters
                self.got.append(("?", []))

    def wait_for(self, address: str, start: int, timeout: float) -> tuple[str, list]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for reply in self.got[start:]:
                if reply[0] == address:
                    return reply
            time.sleep(0.02)
        raise AssertionError(f"no {address} within {timeout} s; last replies: {self.got[-5:]}")

    def close(self):
        self._stop.set()
        self.thread.join(2)


class Tcp:
    """The long-lived TCP connection, reopened when the daemon ends it after a bad frame;
    its replies come back on it and are read in the background."""

    def __init__(self, port: int):
        self.port, self.replies, self.count = port, [], 0
        self.open()

    def open(self):
        self.peer = oscwire.TcpPeer(self.port)
        self.replies.append(Replies(lambda peer=self.peer: peer.recv(0.2)))

    def send(self, packet: bytes) -> None:
        try:
            self.peer.send(packet if 0 < len(packet) <= 65536 else b"/x\0\0")
            self.count += 1
        except OSError:  # the daemon closed it after a bad frame: open another
            self.peer.close()
            self.open()

    def close(self) -> int:
        """Closes it; returns how many replies came back on its connections."""
        for replies in self.replies:
            replies.close()
        self.peer.close()
        return sum(len(replies.got) for replies in self.replies)


def fuzz(daemon, count: int, seed: int = SEED) -> dict:
    """Send ``count`` packets to the unix socket and a share of them over TCP and loopback UDP;
    returns what was sent."""
    me = oscwire.UnixPeer(daemon.osc_socket)  # the owner's: served, replies come back to its path
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the owner's too, but UDP: refused
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    replies, refusals = Replies(lambda: me.recv(0.2)), Replies(lambda: udp.recv(65536))
    fuzzer = Fuzzer(seed, daemon.media, udp.getsockname()[1])
    sent = {"unix": 0, "udp": 0, "tcp_frames": 0, "tcp_bad": 0, "replies": 0}
    target = ("127.0.0.1", daemon.osc_port)
    tcp = Tcp(daemon.osc_port)
    stalled = socket.create_connection(target)
    stalled.sendall(oscwire.frame(oscwire.message("/bridge/ping"))[:7])  # half a frame, then nothing
    try:
        for i in range(count):
            packet = fuzzer.packet()[:65507]  # the most a UDP datagram holds
            if i % 10 == 3:  # OSC 1.0 framing over the long-lived connection
                tcp.send(packet)
            elif i % 100 == 7:  # bad framing: a lying length, or a frame cut short
                bad_frame(target, fuzzer.rng, packet)
                sent["tcp_bad"] += 1
            elif i % 10 == 6:  # loopback UDP: answered with a refusal, never run
                udp.sendto(packet, target)
                sent["udp"] += 1
            else:
                me.send(packet)
                sent["unix"] += 1
            if i % 64 == 63:
                time.sleep(0.01)  # the kernel holds only ~256 small datagrams per UDP socket
        # the daemon answers once it has worked through the flood
        start = len(replies.got)
        me.send(oscwire.message("/bridge/ping"))
        replies.wait_for("/bridge/pong", start, timeout=30)
        sent["replies"] = len(replies.got)
        # a real job, after all that
        song = write_tone(daemon.media / "good.wav", 2.0)
        start = len(replies.got)
        me.send(oscwire.message("/bridge/master", str(song), -16.0, -1.0, str(daemon.media / "good")))
        done = replies.wait_for("/bridge/done", start, timeout=60)
        sent["output"] = done[1][1]
        # bundles still waiting, a stalled frame and an idle connection at the stop
        me.send(oscwire.bundle(time.time() + 30, oscwire.message("/bridge/ping")))
        time.sleep(0.2)
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        sent["exit"] = daemon.proc.wait(15)
        sent["stop_seconds"] = time.monotonic() - started
    finally:
        sent["tcp_frames"], sent["tcp_replies"] = tcp.count, tcp.close()
        replies.close()
        refusals.close()
        sent["udp_refusals"] = sum(1 for address, args in refusals.got
                                   if address == "/bridge/error" and args[1:2] == ["permission_denied"])
        for s in (udp, stalled):
            s.close()
        me.close()
    return sent


def bad_frame(target, rng, packet: bytes) -> None:
    """A connection with a lying length or a frame cut short: told so, then closed."""
    with oscwire.TcpPeer(target[1]) as bad:
        bad.send(oscwire.message("/bridge/ping"))  # accepted once answered (a half-closed one is not)
        assert oscwire.parse(bad.recv(10))[0] == "/bridge/pong"
        head = rng.choice([0, -1, -2 ** 31, 65537, 2 ** 31 - 1, len(packet) + 100])
        bad.sock.sendall(struct.pack(">i", head) + packet[:200])
        if head == len(packet) + 100:
            bad.sock.shutdown(socket.SHUT_WR)  # the frame ends early
        replies = []
        try:  # the error, then the end (or a reset: the daemon closed with bytes unread)
            while (reply := bad.recv(10)) is not None:
                replies.append(oscwire.parse(reply)[0])
        except ConnectionResetError:
            pass
        assert replies in ([], ["/bridge/error"]), replies


def check_after(daemon, sent: dict) -> None:
    assert sent["exit"] == 0 and sent["stop_seconds"] < 3.0, sent
    log = daemon.read_log()
    assert "Traceback" not in log, log[:3000]
    assert "Unhandled parameter type" not in log and "Could not identify" not in log  # python-osc's own
    lines = log.splitlines()
    # the first line of each kind, its count at the stop, and the start/stop lines
    assert len(lines) <= 2 * len(LOG_KINDS) + 4, "\n".join(lines)
    assert len(log.encode()) <= 2 * len(LOG_KINDS) * LINE + 2000, f"{len(log.encode())} bytes of log"
    files = sorted(str(p.relative_to(daemon.media)) for p in daemon.media.rglob("*") if p.is_file())
    assert files == ["good.wav", str(Path(sent["output"]).relative_to(daemon.media))], files
    assert sent["udp_refusals"] >= sent["udp"] * 0.9, sent  # each answered (the kernel may drop a few)
    assert sent["tcp_replies"] > 0, sent
    assert "refused OSC senders (loopback-udp)" in log or sent["udp"] < 2


def test_fuzzed_packets_do_not_break_the_daemon(media_dir):
    with running_daemon(media_dir) as daemon:
        sent = fuzz(daemon, 3000)
        check_after(daemon, sent)
    print(f"fuzz: {sent}, log {len(daemon.read_log().encode())} bytes")


@pytest.mark.slow
def test_fuzz_soak(media_dir):
    with running_daemon(media_dir) as daemon:
        sent = fuzz(daemon, 40000, seed=SEED + 1)
        check_after(daemon, sent)
    print(f"soak: {sent}, log {len(daemon.read_log().encode())} bytes")
