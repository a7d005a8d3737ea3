"""OSC packets by hand, and the two ways the daemon's own user talks to it; standard library only.

Tests build odd packets with it that no OSC library would write, and the
other-user tests copy this file next to the scripts they run as `nobody`
under the system python3 (which has none of the project's packages).
Loopback UDP is served to nobody (a datagram's sender cannot be known), so
tests send to the unix socket (``UnixPeer``) or over TCP (``TcpPeer``).
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import tempfile
import time

NTP_DELTA = 2208988800  # seconds from 1900 (NTP's epoch) to 1970
IMMEDIATELY = None


def string(value: str | bytes) -> bytes:
    """An OSC string: the bytes, a zero, padded to 4."""
    raw = value.encode() if isinstance(value, str) else value
    return raw + b"\0" * (4 - len(raw) % 4)


def blob(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value + b"\0" * (-len(value) % 4)


def message(address: str | bytes, *args, types: str | None = None) -> bytes:
    """A message; args typed by their Python type (bool T/F, int i, float f, str s, bytes b,
    None N) unless ``types`` (without the comma) is given, which is then written as is."""
    tags, data = "", b""
    for arg in args:
        if isinstance(arg, bool):
            tags += "T" if arg else "F"
        elif isinstance(arg, int):
            tags, data = tags + "i", data + struct.pack(">i", arg)
        elif isinstance(arg, float):
            tags, data = tags + "f", data + struct.pack(">f", arg)
        elif isinstance(arg, str):
            tags, data = tags + "s", data + string(arg)
        elif isinstance(arg, bytes):
            tags, data = tags + "b", data + blob(arg)
        elif arg is None:
            tags += "N"
        else:
            raise TypeError(f"no OSC type for {arg!r}")
    return string(address) + string("," + (tags if types is None else types)) + data


def timetag(when: float | None) -> bytes:
    """An NTP time tag for ``when`` (seconds since 1970), or "immediately" for None."""
    if when is None:
        return struct.pack(">Q", 1)
    seconds = when + NTP_DELTA
    return struct.pack(">II", int(seconds), int((seconds % 1) * 2 ** 32))


def bundle(when: float | None, *elements: bytes) -> bytes:
    """A bundle of messages or bundles, due at ``when`` (None = immediately)."""
    return b"#bundle\0" + timetag(when) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def frame(packet: bytes) -> bytes:
    """OSC 1.0 TCP framing: a big-endian int32 length, then the packet."""
    return struct.pack(">i", len(packet)) + packet


def parse(dgram: bytes) -> tuple[str, list]:
    """(address, args) of a reply (types s, i, f, h, d, T, F, N)."""
    def read_string(at: int) -> tuple[str, int]:
        end = dgram.index(b"\0", at)
        return dgram[at:end].decode(), (end // 4 + 1) * 4

    address, at = read_string(0)
    if at >= len(dgram):
        return address, []
    tags, at = read_string(at)
    args: list = []
    for tag in tags[1:]:
        if tag == "s":
            value, at = read_string(at)
        elif tag in "if":
            value = struct.unpack(">" + tag, dgram[at:at + 4])[0]
            at += 4
        elif tag in "hd":
            value = struct.unpack(">" + ("q" if tag == "h" else "d"), dgram[at:at + 8])[0]
            at += 8
        else:
            value = {"T": True, "F": False, "N": None}[tag]
        args.append(value)
    return address, args


class UnixPeer:
    """A unix datagram socket of the test's own, bound to a path so that the daemon's
    replies come back to it; ``target`` is the daemon's OSC socket (``daemon.osc_socket``)."""

    def __init__(self, target: str):
        self.target = target
        self.folder = tempfile.mkdtemp(prefix="sb-peer-")  # short: a socket path holds ~100 bytes
        self.path = os.path.join(self.folder, "peer.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def send(self, packet: bytes) -> None:
        self.sock.sendto(packet, self.target)

    def recv(self, timeout: float) -> bytes:
        """The next reply; raises socket.timeout if none comes."""
        _wait(self.sock, timeout)
        return self.sock.recv(1 << 17)

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "UnixPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TcpPeer:
    """An OSC 1.0 TCP connection to ``port``: packets out framed, replies back on it."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self._buffer = b""

    def send(self, packet: bytes) -> None:
        self.sock.sendall(frame(packet))

    def recv(self, timeout: float) -> bytes | None:
        """The next framed reply; None once the daemon has closed the connection;
        raises socket.timeout if none comes."""
        deadline = time.monotonic() + timeout
        while len(self._buffer) < 4 or len(self._buffer) < 4 + struct.unpack(">i", self._buffer[:4])[0]:
            _wait(self.sock, deadline - time.monotonic())
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        size = struct.unpack(">i", self._buffer[:4])[0]
        packet, self._buffer = self._buffer[4:4 + size], self._buffer[4 + size:]
        return packet

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader on another thread
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "TcpPeer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _wait(sock: socket.socket, timeout: float) -> None:
    """Wait for ``sock`` to be readable without touching its timeout (another thread may be
    sending on it)."""
    if not select.select([sock], [], [], max(0.0, timeout))[0]:
        raise socket.timeout(f"nothing to read within {timeout:.1f} s")
